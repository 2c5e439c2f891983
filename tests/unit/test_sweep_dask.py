"""Sweeps on a real dask cluster (``LocalCluster(processes=True, n_workers=2)``, started and stopped here):
results equal the sequential loop's cell by cell, a killed worker costs only its cell (retried), resume
skips finished cells, the data are scattered once, ``theorems --workers`` shards agree with a plain loop."""

from __future__ import annotations

import os

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")

from tests.helpers import shards_match_sequential  # noqa: E402
from verifier.sweep import run  # noqa: E402

#: what may differ between two runs of the same cell: where and how long it ran
VOLATILE = ("seconds", "cpu_seconds", "worker", "seconds_exact_check")


def spec(**over):
    s = {"grid": {"width": [2, 3], "seed": [0, 1], "steps": [10, 30]},
         "data": {"generator": "linearly_separable", "n": 12, "margin": 0.2, "seed": 1},
         "network": {"builder": "mlp", "widths": [2, "{width}", 1]},
         "train": {"steps": "{steps}", "lr": 0.5, "seed": "{seed}"},
         "check": [{"kind": "kkt"}], "sweep": {"plots": False, "table": "csv"}}
    s.update(over)
    return s


def stable(rows):
    return [{k: v for k, v in r.items() if k not in VOLATILE} for r in rows]


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def where_is(net, params, X, y, **kw):
    """A check function reporting the process and the identity of the data array it was given."""
    return {"pid": os.getpid(), "x_id": id(X), "x_sum": float(X.sum())}


def test_cluster_equals_sequential_and_resumes(client, tmp_path):
    s = spec(check=[{"kind": "kkt"}, {"kind": "certify"},
                    {"kind": "embedding", "split": "layer=1,neuron=0,ratios=3/5,4/5",
                     "checks": ["isometry", "function", "kkt"]}])
    seq = run(s, sequential=True, out=tmp_path / "seq")
    par = run(s, client=client, out=tmp_path / "par")
    assert par.computed == seq.computed == 2 * 2 * 2 * 3
    assert stable(par.rows()) == stable(seq.rows())           # identical figures, cell by cell
    assert {r["worker"] for r in par.rows()} != {r["worker"] for r in seq.rows()}
    # shared training runs were cached, one per (width, seed)
    assert len(list((tmp_path / "par" / "train").glob("*.npz"))) == 4
    # resume: delete two records; only they are recomputed, the others are not touched
    recs = sorted((tmp_path / "par" / "cells").glob("*.json"))
    recs = [p for p in recs if p.name.count(".") == 1]
    before = {p: p.stat().st_mtime_ns for p in recs}
    recs[0].unlink()
    recs[5].unlink()
    again = run(s, client=client, out=tmp_path / "par")
    assert (again.computed, again.skipped) == (2, len(recs) - 2)
    assert all(p.stat().st_mtime_ns == t for p, t in before.items() if p not in (recs[0], recs[5]))
    assert stable(again.rows()) == stable(seq.rows())


def test_data_are_scattered_once_on_an_existing_scheduler(client, tmp_path):
    s = spec(check=[{"kind": "function", "function": f"{__name__}:where_is"}])
    res = run(s, scheduler=client.scheduler.address, out=tmp_path)      # as `--scheduler tcp://host:8786`
    rows = res.rows()
    assert all(r["status"] == "ok" for r in rows)
    by_pid: dict[int, set[int]] = {}
    for r in rows:
        by_pid.setdefault(r["pid"], set()).add(r["x_id"])
    # one array object per worker process, shared by all its cells (shipped per task, each cell would get a copy)
    assert all(len(ids) == 1 for ids in by_pid.values())
    assert sum(1 for r in rows) > len(by_pid)
    from verifier.datasets import linearly_separable

    X, _ = linearly_separable(12, 2, margin=0.2, seed=1)
    assert {r["x_sum"] for r in rows} == {float(X.sum())}


def test_theorem_shards_on_dask_equal_the_sequential_merge(client):
    plain = shards_match_sequential(client, examples=6)
    assert [r.checked for r in plain] == [3, 3]


def crash_once(net, params, X, y, *, marker, width_to_crash):
    """Kill the worker process the first time it runs for ``width_to_crash`` (recorded in ``marker``)."""
    if net.param_shapes["W1"][0] == width_to_crash:
        try:
            with open(marker, "x") as f:  # exclusive: one process only, even if two such cells run at once
                f.write(str(os.getpid()))
        except FileExistsError:
            pass
        else:
            os._exit(1)
    return {"pid": os.getpid(), "norm": float(np.linalg.norm(net.flatten(params)))}


def test_a_killed_worker_costs_only_its_cell(client, tmp_path):
    marker = tmp_path / "crashed"
    s = spec(grid={"width": [2, 3], "seed": [0, 1], "steps": [10]},
             check=[{"kind": "function", "function": f"{__name__}:crash_once", "marker": str(marker),
                     "width_to_crash": 3}, {"kind": "kkt"}])
    res = run(s, client=client, out=tmp_path / "out")    # the module's cluster (this test runs last)
    assert marker.exists()                                      # a worker did die
    dead = int(marker.read_text())
    rows = res.rows()
    assert res.errors == 0 and all(r["status"] == "ok" for r in rows), [r for r in rows if r["status"] != "ok"]
    crashed = [r for r in rows if r["check"] == "function" and r["width"] == 3]
    assert crashed and all(r["pid"] != dead for r in crashed)   # re-run on a live (restarted) worker
    seq = run(s, sequential=True, out=tmp_path / "seq")         # marker exists now: no crash
    assert [r["norm"] for r in rows if "norm" in r] == [r["norm"] for r in seq.rows() if "norm" in r]
    assert stable([r for r in rows if r["check"] == "kkt"]) == stable([r for r in seq.rows() if r["check"] == "kkt"])


def test_unreachable_scheduler_is_a_clear_error(tmp_path, monkeypatch):
    from verifier.sweep import SweepError, runner

    monkeypatch.setattr(runner, "CONNECT_TIMEOUT", "1s")
    with pytest.raises(SweepError, match=r"cannot reach the dask scheduler at 'tcp://127.0.0.1:1'"):
        run(spec(), scheduler="tcp://127.0.0.1:1", out=tmp_path)
