"""Slow: a known-false claim searched in shards on a dask cluster; the counterexample replays."""

from __future__ import annotations

import pytest

distributed = pytest.importorskip("distributed")

from tests.helpers import shards_match_sequential  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    c = distributed.Client(cluster)
    yield c
    c.close()
    cluster.close()


def test_theorem_shards_on_dask_merge_and_counterexamples_replay(client, tmp_path):
    import theorems
    from verifier.sweep.theorems import parallel_search

    shards_match_sequential(client, examples=10)
    # a known-false claim: the counterexample comes back shrunk and replays on this side
    bad = parallel_search("split-without-isometry", examples=20, seed=0, workers=2, client=client)
    assert not bad.holds
    ce = bad.counterexample
    assert ce.seed in (0, 1) and ce.evidence.verdict == "fails"
    # replayable: saved and read back, the claim still fails on it
    path = tmp_path / "ce.json"
    ce.save(path)
    name, inst, doc = theorems.load_counterexample(path)
    assert name == "split-without-isometry" and doc["meta"]["seed"] == ce.seed
    assert theorems.get(name).check(inst).verdict == "fails"
    assert bad.checked >= 1 and bad.counterexample.found_after <= 20


def test_cli_theorems_check_workers_writes_a_replayable_counterexample(tmp_path, capsys):
    from verifier.cli import main

    out = tmp_path / "ce.json"
    assert main(["theorems", "check", "split-without-isometry", "--examples", "10", "--workers", "2",
                 "--out", str(out)]) == 1
    text = capsys.readouterr().out
    assert "2 shard(s) on dask: 5 from seed 0, 5 from seed 1" in text and "COUNTEREXAMPLE" in text
    assert main(["theorems", "replay", str(out)]) == 1                       # still fails: reproduced
    assert "counterexample reproduced" in capsys.readouterr().out
    assert main(["theorems", "check", "euler-identity", "--examples", "6", "--workers", "3"]) == 0
    assert "no counterexample in 6 distinct instances" in capsys.readouterr().out


def test_demo_spec_runs_on_a_local_cluster(tmp_path):
    """The example spec, shrunk to a few cells, on the embedded LocalCluster (workers = 2)."""
    import tomllib
    from pathlib import Path

    from verifier.sweep import parse_spec, run

    root = Path(__file__).resolve().parents[2]
    raw = tomllib.loads((root / "examples" / "sweep_demo.toml").read_text())
    raw["grid"] = {"width": [8, 16], "seed": [0], "steps": [100, 200]}
    res = run(parse_spec(raw, base=root / "examples"), workers=2, out=tmp_path)
    assert res.errors == 0 and res.computed == 8
    assert {p.name for p in res.plots} >= {"eps_rel_vs_steps.png", "normalized_margin_vs_width.png"}
