"""Sweep specs: validation (one-line errors naming the field), expansion into cells, cell keys; the
sequential runner (no dask): results against direct calls, resume, error records."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import verifier
from verifier.datasets import linearly_separable
from verifier.sweep import SweepError, load_spec, parse_spec, read_table, run


def base_spec(**over):
    spec = {"grid": {"width": [2, 3], "steps": [10, 30]},
            "data": {"generator": "linearly_separable", "n": 12, "margin": 0.2, "seed": 1},
            "network": {"builder": "mlp", "widths": [2, "{width}", 1]},
            "train": {"steps": "{steps}", "lr": 0.5, "seed": 0},
            "check": [{"kind": "kkt"}], "sweep": {"plots": False, "table": "csv"}}
    spec.update(over)
    return spec


# -- malformed specs: the message is one line and names the field ----------------------------------------

@pytest.mark.parametrize("mutate, field", [
    (lambda s: s.update(grid={"width": 4, "steps": [10]}), "grid.width"),
    (lambda s: s.update(grid={"width": [], "steps": [10]}), "grid.width"),
    (lambda s: s["grid"].update(depth=[1, 2]), "grid.depth"),                        # axis used by no field
    (lambda s: s["network"].update(widths=[2, "{wdth}", 1]), "{wdth}"),               # placeholder of no axis
    (lambda s: s["network"].update(builder="transformer"), "network.builder"),
    (lambda s: s["network"].update(depth=3), "network.depth"),                       # not an mlp() argument
    (lambda s: s["data"].update(generator="mnist"), "data.generator"),
    (lambda s: s["train"].update(momentum=0.9), "train.momentum"),
    (lambda s: s["train"].update(loss="hinge"), "train.loss"),
    (lambda s: s["train"].pop("steps"), "train.steps"),
    (lambda s: s["train"].update(lr=-1), "train.lr"),
    (lambda s: s.update(check=[{"kind": "kkt", "tol": "tiny"}]), "check[0].tol"),
    (lambda s: s.update(check=[{"kind": "kkt", "solver_opts": 1}]), "check[0].solver_opts"),
    (lambda s: s.update(check=[{"kind": "verify"}]), "check[0].kind"),
    (lambda s: s.update(check=[{"kind": "theorem", "name": "no-such-claim"}]), "check[0].name"),
    (lambda s: s.update(check=[{"kind": "theorem", "name": "euler-identity", "examples": 0}]), "check[0].examples"),
    # a tolerance named like a search() flag was bound to that flag when the cell ran
    (lambda s: s.update(check=[{"kind": "theorem", "name": "euler-identity", "tol": {"seed": 1}}]), "check[0].tol"),
    (lambda s: s.update(check=[{"kind": "embedding"}]), "check[0].split"),
    (lambda s: s.update(check=[{"kind": "function", "function": "not a path"}]), "check[0].function"),
    (lambda s: s.update(sweep={"table": "xlsx"}), "sweep.table"),
    (lambda s: s.update(sweep={"colour": "red"}), "sweep.colour"),
    (lambda s: s.update(sweep={"plots": ["loss"]}), "sweep.plots"),
    (lambda s: s.update(sweep={"plot_axes": ["depth"]}), "sweep.plot_axes"),
    (lambda s: s.update(extras={}), "extras"),
    (lambda s: s.update(params={"file": "x.npz"}), "[params]"),                     # both train and params
    (lambda s: s.update(grid={"width": [2, 2], "steps": [10]}), "grid.width"),      # repeated values
    (lambda s: s.update(grid={"width": {"range": [0, 10, 0]}, "steps": [10]}), "grid.width"),
])
def test_malformed_spec_names_the_field(mutate, field):
    spec = base_spec()
    mutate(spec)
    with pytest.raises(SweepError) as e:
        parse_spec(spec, source="s.toml")
    msg = str(e.value)
    assert field in msg, msg
    assert msg.startswith("s.toml")
    assert "\n" not in msg


def test_missing_file_glob_and_bad_toml(tmp_path):
    spec = base_spec(grid={"ckpt": {"glob": "nothing/*.npz"}}, params={"file": "{ckpt}"})
    del spec["train"]
    spec["network"] = {"builder": "mlp", "widths": [2, 2, 1]}
    with pytest.raises(SweepError, match=r"field 'grid.ckpt' glob 'nothing/\*.npz' matches no file"):
        parse_spec(spec, base=tmp_path)
    p = tmp_path / "bad.toml"
    p.write_text("[grid\nwidth = [1]\n")
    with pytest.raises(SweepError, match="not valid TOML"):
        load_spec(p)
    with pytest.raises(SweepError, match="cannot read sweep spec"):
        load_spec(tmp_path / "absent.toml")
    spec = base_spec(network={"file": "net.json"}, grid={"steps": [10]})
    with pytest.raises(SweepError, match="field 'network.file' names file .*net.json.*, which does not exist"):
        parse_spec(spec, base=tmp_path)


def test_input_shape_mismatch_is_a_spec_error(tmp_path):
    spec = base_spec(network={"builder": "mlp", "widths": [3, "{width}", 1]})
    with pytest.raises(SweepError, match=r"inputs of shape \[3\] but \[data\] gives samples of shape \[2\]"):
        run(spec, sequential=True, out=tmp_path)


# -- expansion and keys ---------------------------------------------------------------------------------

def test_cells_expand_the_grid_and_keys_follow_the_inputs(tmp_path):
    spec = parse_spec(base_spec(check=[{"kind": "kkt"}, {"kind": "kkt", "label": "kkt-loose", "tol": 1e-3}]))
    cells = spec.cells()
    assert len(cells) == 2 * 2 * 2
    assert [c.axes for c in cells[:4]] == [{"width": 2, "steps": 10}] * 2 + [{"width": 2, "steps": 30}] * 2
    assert [c.label for c in cells[:2]] == ["kkt", "kkt-loose"]
    assert cells[0].network == {"builder": "mlp", "widths": [2, 2, 1]}          # "{width}" keeps its type
    assert len({c.key for c in cells}) == len(cells)
    # cells that differ only in the checkpoint step share a training run
    assert cells[0].train_key == cells[2].train_key != cells[4].train_key
    # the key is a function of the inputs: same spec, same keys; another tolerance, another key
    again = parse_spec(base_spec(check=[{"kind": "kkt"}, {"kind": "kkt", "label": "kkt-loose", "tol": 1e-3}]))
    assert [c.key for c in again.cells()] == [c.key for c in cells]
    other = parse_spec(base_spec(check=[{"kind": "kkt", "tol": 1e-5}]))
    assert other.cells()[0].key != cells[0].key
    # a file's content is part of the key
    X, y = linearly_separable(12, 2, margin=0.2, seed=1)
    f = tmp_path / "d.npz"
    verifier.io.save_data(f, X, y)
    k1 = parse_spec(base_spec(data={"file": "d.npz"}), base=tmp_path).cells()[0].key
    verifier.io.save_data(f, X, -y)
    k2 = parse_spec(base_spec(data={"file": "d.npz"}), base=tmp_path).cells()[0].key
    assert k1 != k2


def test_range_and_text_placeholders(tmp_path):
    spec = parse_spec({"grid": {"seed": {"range": [3, 6]}},
                       "check": [{"kind": "theorem", "name": "euler-identity", "examples": 2, "seed": "{seed}",
                                  "label": "euler-{seed}"}]})
    cells = spec.cells()
    assert [c.check["seed"] for c in cells] == [3, 4, 5]
    assert [c.label for c in cells] == ["euler-3", "euler-4", "euler-5"]


# -- the sequential runner against direct calls ------------------------------------------------------------

def test_sequential_sweep_matches_direct_calls_and_resumes(tmp_path):
    res = run(base_spec(), sequential=True, out=tmp_path)
    assert (res.computed, res.skipped, res.errors) == (4, 0, 0)
    X, y = linearly_separable(12, 2, margin=0.2, seed=1)
    for row in res.rows():
        net = verifier.mlp([2, row["width"], 1])
        tr = verifier.train(net, net.init_params(0), X, y, steps=row["steps"], lr=0.5, progress=False)
        rep = verifier.check_kkt(net, tr.params, X, y)
        assert row["verdict"] == rep.verdict
        assert row["eps_rel"] == rep.eps_rel and row["delta_rel"] == rep.delta_rel
        assert row["normalized_margin"] == rep.normalized_margin
    # every cell has its full report beside the table
    table = read_table(res.table)
    assert [r["cell"] for r in table] == [r["cell"] for r in res.rows()]
    for r in res.rows():
        doc = json.loads((tmp_path / "cells" / f"{r['cell']}.json").read_text())
        assert doc["format"] == "kkt-verifier/sweep-cell" and doc["report"]["verdict"] == r["verdict"]
    # re-run: nothing computed; one record removed: only that cell
    again = run(base_spec(), sequential=True, out=tmp_path)
    assert (again.computed, again.skipped) == (0, 4)
    gone = res.rows()[1]["cell"]
    (tmp_path / "cells" / f"{gone}.json").unlink()
    third = run(base_spec(), sequential=True, out=tmp_path)
    assert (third.computed, third.skipped) == (1, 3)
    assert third.rows() == res.rows() or all(a[k] == b[k] for a, b in zip(third.rows(), res.rows())
                                             for k in ("cell", "verdict", "eps_rel", "delta_rel"))
    # a torn (truncated) record is not trusted: recomputed
    (tmp_path / "cells" / f"{gone}.json").write_text('{"format": "kkt-verifier/sweep-cell", "cell"')
    assert run(base_spec(), sequential=True, out=tmp_path).computed == 1


def raise_for_width_3(net, params, X, y, **kw):
    if net.param_shapes["W1"][0] == 3:
        raise ValueError("width 3\nis not welcome")
    return {"n": int(X.shape[0]), "theta_norm": float(np.linalg.norm(net.flatten(params)))}


def test_a_cell_that_raises_records_one_line_and_the_sweep_goes_on(tmp_path):
    spec = base_spec(check=[{"kind": "function", "function": f"{__name__}:raise_for_width_3"}, {"kind": "kkt"}])
    res = run(spec, sequential=True, out=tmp_path)
    rows = res.rows()
    bad = [r for r in rows if r["status"] == "error"]
    assert res.errors == len(bad) == 2 and {r["width"] for r in bad} == {3}
    assert all(r["error"] == "ValueError: width 3 is not welcome" for r in bad)
    good = [r for r in rows if r["check"] == "function" and r["status"] == "ok"]
    assert len(good) == 2 and all(r["n"] == 12 for r in good)
    assert all(r["status"] == "ok" for r in rows if r["check"] == "kkt")
    # errors are not retried unless asked
    assert run(spec, sequential=True, out=tmp_path).computed == 0
    assert run(spec, sequential=True, out=tmp_path, retry_errors=True).computed == 2


def test_a_theorem_cell_refuses_a_tolerance_named_like_a_search_flag(tmp_path):
    """With the claim a grid axis the tolerances are checked when the cell runs; `keep` used to be taken as
    search(keep=3) and the cell passed."""
    spec = {"grid": {"claim": ["euler-identity"]},
            "check": [{"kind": "theorem", "name": "{claim}", "examples": 1, "tol": {"keep": 3}}],
            "sweep": {"plots": False, "table": "csv"}}
    res = run(spec, sequential=True, out=tmp_path)
    (row,) = res.rows()
    assert res.errors == 1 and row["status"] == "error"
    assert row["error"].startswith("TheoremError: euler-identity: unknown tolerance(s) ['keep']")


def test_checkpoint_glob_with_params_files_and_csv_table(tmp_path):
    X, y = linearly_separable(12, 2, margin=0.2, seed=1)
    net = verifier.mlp([2, 3, 1])
    (tmp_path / "net.json").write_text(net.to_json())
    verifier.io.save_data(tmp_path / "d.npz", X, y)
    tr = verifier.train(net, net.init_params(0), X, y, steps=40, lr=0.5, checkpoint_every=[10, 40], progress=False)
    (tmp_path / "ck").mkdir()
    for s, th in tr.checkpoints.items():
        verifier.io.save_params(tmp_path / "ck" / f"step{s:04d}.npz", net.unflatten(th))
    spec = {"grid": {"ckpt": {"glob": "ck/step*.npz"}}, "network": {"file": "net.json"}, "data": {"file": "d.npz"},
            "params": {"file": "{ckpt}"}, "check": [{"kind": "kkt"}, {"kind": "certify"}],
            "sweep": {"table": "csv", "out": "res"}}
    res = run(parse_spec(spec, base=tmp_path), sequential=True)
    assert res.out == tmp_path / "res" and res.table.name == "results.csv"
    rows = read_table(res.table)
    assert sorted(tr.checkpoints) == [10, 40]
    assert [Path(r["ckpt"]).name for r in rows] == ["step0010.npz"] * 2 + ["step0040.npz"] * 2
    for r in rows:
        if r["check"] == "kkt" and r["status"] == "ok" and r["verdict"] != "infeasible":
            s = int(Path(r["ckpt"]).stem[4:])
            rep = verifier.check_kkt(net, net.unflatten(tr.checkpoints[s]), X, y)
            assert float(r["eps_rel"]) == pytest.approx(rep.eps_rel, rel=1e-12)   # CSV round trip of repr
    certs = [r for r in rows if r["check"] == "certify" and r["status"] == "ok"]
    assert certs and all(r["passed"] == "True" for r in certs)
    # the certificate is written beside the record and re-checks exactly
    from verifier.certificates import check_certificate

    cert = json.loads((res.out / "cells" / f"{certs[0]['cell']}.cert.json").read_text())
    assert check_certificate(cert).ok
