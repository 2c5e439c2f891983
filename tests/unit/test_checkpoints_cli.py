"""``verifier kkt --torch model.py:Net --checkpoint ...`` and ``verifier new``.

Oracle for the checkpoint rows: the Python route a researcher would write by
hand -- ``torch.load`` + ``load_state_dict`` into a fresh model,
:func:`verifier.from_torch`, :func:`verifier.check_kkt` -- run independently on
each file.  ``verifier new`` is checked against the library calls it stands for.
"""

from __future__ import annotations

import csv
import io
import json
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="checkpoints are torch files (the [torch] extra)")

import verifier  # noqa: E402
from verifier.cli import main  # noqa: E402
from verifier.datasets import linearly_separable, two_clusters_xor  # noqa: E402
from verifier.io import load_data, load_params, save_data  # noqa: E402

MODEL = textwrap.dedent("""
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = torch.nn.Linear(2, 6, bias=False)
            self.fc2 = torch.nn.Linear(6, 1, bias=False)

        def forward(self, x):
            return self.fc2(torch.relu(self.fc1(x)))
""")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    (d / "model.py").write_text(MODEL)
    ns: dict = {}
    exec(MODEL, ns)
    X, y = linearly_separable(16, 2, margin=0.2, seed=3)
    save_data(d / "data.npz", X, y)
    torch.manual_seed(0)
    m = ns["Net"]()
    opt = torch.optim.SGD(m.parameters(), lr=0.5)
    Xt, yt = torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    (d / "ck").mkdir()
    for s in range(1, 301):
        opt.zero_grad()
        torch.exp(-yt * m(Xt)[:, 0]).mean().backward()
        opt.step()
        if s in (20, 100, 300):  # names sort wrongly as text: ckpt_100 < ckpt_20
            torch.save(m.state_dict(), d / "ck" / f"ckpt_{s}.pt")
    return d, ns["Net"], X, y


def _cli(argv, capsys):
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


def _oracle(Net, path, X, y):
    m = Net()
    m.load_state_dict(torch.load(path, weights_only=True))
    net, params = verifier.from_torch(m, torch.zeros(1, 2))
    return verifier.check_kkt(net, params, X, y)


def test_folder_of_checkpoints_csv_one_row_each_sorted_by_step(run, capsys, monkeypatch):
    d, Net, X, y = run
    monkeypatch.chdir(d)
    code, out, err = _cli(["kkt", "--torch", "model.py:Net", "--checkpoint", "ck", "--data", "data.npz", "--csv"], capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [int(r["step"]) for r in rows] == [20, 100, 300]
    for r in rows:
        rep = _oracle(Net, d / r["checkpoint"], X, y)
        assert r["verdict"] == rep.verdict
        if rep.verdict != "infeasible":
            assert float(r["eps_rel"]) == pytest.approx(rep.eps_rel, rel=1e-9)
            assert float(r["delta_rel"]) == pytest.approx(rep.delta_rel, rel=1e-9)
            assert int(r["support_size"]) == len(rep.support)
        assert float(r["min_margin"]) == pytest.approx(rep.min_margin, rel=1e-12)
        assert r["source_dtype"] == "float32"
    assert code == (0 if all(r["verdict"] == "kkt" for r in rows) else 1)
    # the table form: same rows, and the float32 note once
    code2, table, _ = _cli(["kkt", "--torch", "model.py:Net", "--checkpoint", "ck/ckpt_*.pt", "--data", "data.npz"],
                           capsys)
    assert code2 == code
    lines = table.splitlines()
    assert lines[0].split()[:3] == ["step", "checkpoint", "verdict"]
    assert [ln.split()[0] for ln in lines[1:4]] == ["20", "100", "300"]
    assert sum("float32" in ln for ln in lines) == 1


def test_single_checkpoint_json_and_full_report(run, capsys, monkeypatch):
    d, Net, X, y = run
    monkeypatch.chdir(d)
    code, out, _ = _cli(["kkt", "--torch", "model.py:Net", "--checkpoint", "ck/ckpt_300.pt", "--data", "data.npz",
                         "--json"], capsys)
    doc = json.loads(out)
    rep = _oracle(Net, d / "ck" / "ckpt_300.pt", X, y)
    assert doc["checkpoint"].endswith("ckpt_300.pt") and doc["step"] == 300
    assert doc["eps"] == pytest.approx(rep.eps, rel=1e-9) and doc["verdict"] == rep.verdict
    assert doc["source_dtype"] == "float32" and "theta_hat" not in doc
    code, out, _ = _cli(["kkt", "--torch", "model.py:Net", "--checkpoint", "ck/ckpt_300.pt", "--data", "data.npz"],
                        capsys)
    assert out.startswith("checkpoint ck/ckpt_300.pt (step 300): float32 weights")
    assert "warning: the weights came from a float32 model" in out


def test_lightning_style_checkpoint_is_unwrapped(run, capsys, monkeypatch, tmp_path):
    d, Net, X, y = run
    sd = torch.load(d / "ck" / "ckpt_100.pt", weights_only=True)
    torch.save({"state_dict": {f"model.{k}": v for k, v in sd.items()}, "global_step": 7, "epoch": 1},
               tmp_path / "last.ckpt")
    monkeypatch.chdir(d)
    code, out, _ = _cli(["kkt", "--torch", "model.py:Net", "--checkpoint", str(tmp_path / "last.ckpt"),
                         "--data", "data.npz", "--json"], capsys)
    doc = json.loads(out)
    assert doc["step"] == 7
    assert doc["eps"] == pytest.approx(_oracle(Net, d / "ck" / "ckpt_100.pt", X, y).eps, rel=1e-12)


@pytest.mark.parametrize("argv, message", [
    (["kkt", "--net", "n.json", "--params", "ck/ckpt_20.pt", "--data", "data.npz"],
     "'ck/ckpt_20.pt' is a PyTorch checkpoint .*verifier kkt --torch model.py:Net --checkpoint"),
    (["kkt", "--torch", "model.py:Nett", "--checkpoint", "ck", "--data", "data.npz"],
     r"defines no 'Nett' \(torch modules in it: \['Net'\]\)"),
    (["kkt", "--torch", "model.py:Net", "--data", "data.npz"], "--torch FILE.py:NAME and --checkpoint"),
    (["kkt", "--torch", "model.py:Net", "--checkpoint", "nothere/*.pt", "--data", "data.npz"],
     "the pattern 'nothere/\\*.pt' matches no file"),
    (["kkt", "--torch", "model.py:Net", "--checkpoint", "whole.pt", "--data", "data.npz"],
     r"cannot be read with torch.load\(weights_only=True\): it holds pickled Python objects"),
    (["kkt", "--torch", "model.py:Net", "--checkpoint", "other.pt", "--data", "data.npz"],
     r"lacks the model's tensor\(s\) \['fc1.weight', 'fc2.weight'\]"),
    (["kkt", "--params", "p.npz", "--data", "data.npz"], "verifier kkt needs --net"),
])
def test_bad_input_is_one_line_exit_2(run, capsys, monkeypatch, argv, message):
    d, Net, X, y = run
    monkeypatch.chdir(d)
    torch.save(torch.nn.Sequential(torch.nn.Linear(2, 1)), d / "whole.pt")  # a pickled module
    torch.save({"w": torch.zeros(2)}, d / "other.pt")
    verifier.mlp([2, 4, 1]).to_json(d / "n.json")  # the network exists: the params file is what is wrong
    code, out, err = _cli(argv, capsys)
    assert code == 2, out
    assert len(err.strip().splitlines()) == 1
    import re

    assert re.search(message, err), err


def test_new_writes_what_the_library_would(tmp_path, capsys):
    assert main(["new", "mlp", "2,16,1", "--out", str(tmp_path / "net.json")]) == 0
    net = verifier.Network.from_json(tmp_path / "net.json")
    assert net.to_dict() == verifier.mlp([2, 16, 1]).to_dict()
    assert main(["new", "params", "--net", str(tmp_path / "net.json"), "--seed", "1",
                 "--out", str(tmp_path / "p.npz")]) == 0
    p = load_params(tmp_path / "p.npz", net)
    for k, v in net.init_params(1).items():
        np.testing.assert_array_equal(p[k], v)
    assert main(["new", "data", "xor", "--n", "40", "--seed", "0", "--out", str(tmp_path / "d.npz")]) == 0
    X, y = load_data(tmp_path / "d.npz")
    Xr, yr = two_clusters_xor(40, seed=0)
    np.testing.assert_array_equal(X, Xr)
    np.testing.assert_array_equal(y, yr)
    assert main(["new", "mlp", "2,0,1", "--out", str(tmp_path / "bad.json")]) == 2
    assert "must be positive integers" in capsys.readouterr().err
