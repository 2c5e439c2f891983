"""CLI: ``verifier degree`` on a file written by ``to_json``; bad input is one line and exit 2."""

import json
import subprocess
import sys

import verifier
from verifier.cli import main


def test_degree_on_json_written_by_to_json(tmp_path, capsys):
    path = tmp_path / "net.json"
    verifier.mlp([2, 4, 4, 1], activation="relu_power:2").to_json(path)
    assert main(["degree", str(path)]) == 0
    out = capsys.readouterr().out
    assert "act2" in out and "degree 7" in out
    assert main(["degree", str(path), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["degree"] == "7" and d["nodes"]["fc2"] == "3" and d["nodes"]["act2"] == "6"


def test_degree_quasi(tmp_path, capsys):
    path = tmp_path / "net.json"
    verifier.mlp([2, 3, 1], bias="all").to_json(path)
    assert main(["degree", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "node 'fc2_bias'" in err[0] and "not positively homogeneous" in err[0]
    assert main(["degree", str(path), "--quasi", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["weights"]["b2"] == "1"


def test_bad_files_exit_2_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "kkt-verifier/network", "version": 1, "nodes": [{"name": "x", "op": "sigmoidal"}]}')
    assert main(["degree", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown op 'sigmoidal'; known ops are:" in err[0]
    assert main(["degree", str(tmp_path / "nope.json")]) == 2
    assert "cannot read network file" in capsys.readouterr().err


def test_python_dash_m_entry_point(tmp_path):
    path = tmp_path / "net.json"
    verifier.mlp([2, 8, 8, 1]).to_json(path)
    r = subprocess.run([sys.executable, "-m", "verifier", "degree", str(path)], capture_output=True, text=True)
    assert r.returncode == 0 and "degree 3" in r.stdout
    r = subprocess.run([sys.executable, "-m", "verifier", "degree"], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
