"""``verifier certify kkt|embed``, ``check-cert`` and ``report`` through ``verifier.cli.main``."""

from __future__ import annotations

import json
from fractions import Fraction

import pytest

import verifier
from verifier.cli import main
from verifier.datasets import two_clusters_xor
from verifier.io import save_data, save_params


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    X, y = two_clusters_xor(20, seed=3)
    net = verifier.mlp([2, 6, 1])
    res = verifier.train(net, net.init_params(seed=0), X, y, steps=300, lr=0.5, progress=False, kkt_every=100)
    net.to_json(d / "net.json")
    save_params(d / "params.npz", res.params)
    save_data(d / "data.npz", X, y)
    (d / "history.json").write_text(json.dumps(res.to_dict()))
    return d


def _args(d):
    return ["--net", str(d / "net.json"), "--params", str(d / "params.npz"), "--data", str(d / "data.npz")]


def test_certify_kkt_then_check(files, capsys):
    out = files / "kkt.cert.json"
    assert main(["certify", "kkt", *_args(files), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "wrote" in text and "eps2" in text and "check-cert" in text
    assert main(["check-cert", str(out)]) == 0
    text = capsys.readouterr().out
    assert "all 7 claims hold exactly" in text
    assert main(["check-cert", str(out), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["ok"] is True and {c["name"] for c in rep["claims"]} >= {"eps2", "delta", "min_margin", "degree"}
    # the claimed bound in the file is >= the exact value the checker reports
    c = next(c for c in rep["claims"] if c["name"] == "eps2")
    assert Fraction(c["claimed"]) >= Fraction(c["actual"])


def test_certify_embed_then_check_and_report(files, capsys):
    out = files / "emb.cert.json"
    code = main(["certify", "embed", *_args(files), "--split", "layer=1,neuron=3,ratios=3/5,4/5",
                 "--out", str(out), "--external"])
    assert code == 0
    capsys.readouterr()
    assert (files / "emb.cert.params.npz").exists()
    assert main(["check-cert", str(out)]) == 0
    assert "isometry" in capsys.readouterr().out
    rdir = files / "report"
    assert main(["report", str(out), "--out", str(rdir), "--history", str(files / "history.json")]) == 0
    assert "report written" in capsys.readouterr().out
    assert (rdir / "report.html").exists() and (rdir / "fig_training.png").exists()


def test_false_claim_exit_1_and_bad_inputs_exit_2(files, capsys, tmp_path):
    out = files / "kkt2.cert.json"
    assert main(["certify", "kkt", *_args(files), "--out", str(out), "--digits", "3"]) == 0
    d = json.loads(out.read_text())
    d["claims"]["min_margin"]["bound"] = "1.5"
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(d))
    capsys.readouterr()
    assert main(["check-cert", str(bad), "--quiet"]) == 1
    assert "claims.min_margin: FAILS" in capsys.readouterr().out
    assert main(["certify", "embed", *_args(files), "--split", "layer=1,neuron=9,ratios=3/5,4/5",
                 "--out", str(tmp_path / "x.json")]) == 2
    assert "neuron=9 is out of range" in capsys.readouterr().err
    assert main(["certify", "embed", *_args(files), "--split", "layer=1,frob=2", "--out", str(tmp_path / "x.json")]) == 2
    assert "unknown key 'frob'" in capsys.readouterr().err
    assert main(["report", str(tmp_path / "missing.json"), "--out", str(tmp_path / "r")]) == 2


def test_certify_refuses_a_bad_out_before_the_work(tmp_path):
    # the output path is checked first: an input as --out, or a missing folder, is one line and exit 2
    import subprocess
    import sys

    import numpy as np

    import verifier

    net = verifier.mlp([2, 2, 1])
    net.to_json(tmp_path / "net.json")
    np.savez(tmp_path / "p.npz", W1=np.eye(2), W2=np.ones((1, 2)))
    np.savez(tmp_path / "d.npz", X=np.array([[1.0, 0.0], [0.0, 1.0]]), y=np.array([1.0, 1.0]))
    before = (tmp_path / "d.npz").read_bytes()
    for out in (tmp_path / "d.npz", tmp_path / "missing" / "c.json", tmp_path):
        r = subprocess.run([sys.executable, "-m", "verifier", "certify", "kkt", "--net", str(tmp_path / "net.json"),
                            "--params", str(tmp_path / "p.npz"), "--data", str(tmp_path / "d.npz"), "--out", str(out)],
                           capture_output=True, text=True)
        assert r.returncode == 2, (out, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert (tmp_path / "d.npz").read_bytes() == before  # the input was not overwritten
