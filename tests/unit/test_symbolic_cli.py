"""``verifier symbolic degree|kkt|solve|split`` (oracle: the library results and exit codes)."""

import json

import numpy as np

import verifier
from verifier.cli import main
from verifier.io import save_data


def _files(tmp_path, net, X, y):
    net.to_json(tmp_path / "net.json")
    save_data(tmp_path / "data.npz", X, y)
    return str(tmp_path / "net.json"), str(tmp_path / "data.npz")


def test_degree_kkt_solve_split(tmp_path, capsys):
    net_p, data_p = _files(tmp_path, verifier.mlp([2, 1, 1]), np.eye(2), np.array([1.0, 1.0]))
    assert main(["symbolic", "degree", "--net", net_p]) == 0
    out = capsys.readouterr().out
    assert "degree L = 2" in out and "PROVED" in out
    assert main(["symbolic", "degree", "--net", net_p, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["proved"] is True
    assert main(["symbolic", "kkt", "--net", net_p, "--data", data_p]) == 0
    out = capsys.readouterr().out
    assert "stationarity" in out and "lambda_1 >= 0" in out
    assert main(["symbolic", "kkt", "--net", net_p, "--data", data_p, "--latex"]) == 0
    assert r"\begin{aligned}" in capsys.readouterr().out
    assert main(["symbolic", "solve", "--net", net_p, "--data", data_p, "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["complete"] and len(d["points"]) == 1
    assert np.isclose(d["points"][0]["norm_float"] ** 2, 2 * np.sqrt(2))
    assert main(["symbolic", "solve", "--net", net_p, "--data", data_p]) == 0
    assert "2**(1/4)" in capsys.readouterr().out
    assert main(["symbolic", "split", "--net", net_p]) == 0
    assert "HOLDS" in capsys.readouterr().out


def test_errors_are_one_line_exit_2(tmp_path, capsys):
    net_p, data_p = _files(tmp_path, verifier.mlp([2, 3, 1]), np.eye(2), np.array([1.0, -1.0]))
    assert main(["symbolic", "solve", "--net", net_p, "--data", data_p, "--max-params", "4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "max_params=4" in err and "--max-params" in err
    sig_p, _ = _files(tmp_path, verifier.mlp([2, 2, 1], activation="sigmoid"), np.eye(2), np.array([1.0, -1.0]))
    assert main(["symbolic", "degree", "--net", sig_p]) == 2
    assert "not positively homogeneous: node 'act1'" in capsys.readouterr().err
    assert main(["symbolic", "kkt", "--net", net_p, "--data", str(tmp_path / "missing.npz")]) == 2
    assert "does not exist" in capsys.readouterr().err
    pw_p, _ = _files(tmp_path, verifier.mlp([2, 2, 1], activation="power:2"), np.eye(2), np.array([1.0, -1.0]))
    assert main(["symbolic", "split", "--net", pw_p]) == 1
    assert "FAILS" in capsys.readouterr().out
