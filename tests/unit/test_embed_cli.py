"""``verifier embed``: files written, exit status, and one-line errors on bad input.

Oracles: the written files are re-read and compared with the library's objects and with
the narrow network's own forward pass.
"""

import json

import numpy as np
import pytest
import scipy.sparse as sps

import verifier
from verifier.cli import main
from verifier.cli.embed import SpecError, parse_spec
from verifier.datasets import linearly_separable
from verifier.io import load_network, load_params, save_data, save_params


@pytest.fixture()
def files(tmp_path):
    net = verifier.mlp([2, 5, 1])
    p = net.init_params(0)
    X, y = linearly_separable(10, seed=1)
    net.to_json(tmp_path / "net.json")
    save_params(tmp_path / "params.npz", p)
    save_data(tmp_path / "data.npz", X, y)
    return tmp_path, net, p, X, y


def _args(d, *extra):
    return ["embed", "--net", str(d / "net.json"), "--params", str(d / "params.npz"), *extra]


def test_split_writes_wide_network_params_map_and_report(files, capsys):
    d, net, p, X, y = files
    out = d / "wide"
    rc = main(_args(d, "--data", str(d / "data.npz"), "--split", "layer=1,neuron=3,ratios=3/5,4/5", "--out", str(out),
                    "--gd-steps", "20", "--flow-time", "0.2", "--probes", "4"))
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "all 7 checks passed" in text
    wide = load_network(out / "net.json")
    wp = load_params(out / "params.npz", wide)
    assert wide.param_shapes["W1"] == (6, 2)
    np.testing.assert_allclose(verifier.forward(wide, wp, X), verifier.forward(net, p, X), atol=1e-14)
    T = sps.load_npz(out / "T.npz")
    np.testing.assert_allclose(T @ net.flatten(p), wide.flatten(wp), atol=1e-15)
    exact = json.loads((out / "T_exact.json").read_text())
    assert exact["rational"] is True and {e[2] for e in exact["entries"]} == {"1", "3/5", "4/5"}
    rep = json.loads((out / "report.json").read_text())
    assert rep["passed"] is True and set(rep["checks"]) == {"isometry", "function", "gradient", "kkt",
                                                            "gd_trajectory", "flow_trajectory", "direction"}


def test_sequence_of_splits_and_failing_checks_exit_1(files, capsys):
    d, net, p, X, y = files
    out = d / "w"
    rc = main(_args(d, "--split", "layer=1,neuron=0,in_ratios=1/2,1/2,out_ratios=1,1",
                    "--add-zero", "layer=1,count=2", "--out", str(out)))
    text = capsys.readouterr().out
    assert rc == 1
    assert "FAIL" in text and "isometry" in text and "no --data" in text
    wide = load_network(out / "net.json")
    assert wide.param_shapes["W1"] == (8, 2)
    rep = json.loads((out / "report.json").read_text())
    assert rep["failed"] == ["isometry", "gradient"] and rep["checks"]["function"]["passed"]


def test_channel_variant(tmp_path, capsys):
    net = verifier.cnn((1, 4, 4), channels=[2], pool="max")
    p = net.init_params(0)
    net.to_json(tmp_path / "net.json")
    save_params(tmp_path / "params.npz", p)
    rc = main(_args(tmp_path, "--channel", "layer=1,channel=1,ratios=1/sqrt(2),1/sqrt(2)", "--out",
                    str(tmp_path / "w"), "--json"))
    rep = json.loads(capsys.readouterr().out)
    assert rc == 0 and rep["passed"] and rep["embedding"]["rational"] is False
    wide = load_network(tmp_path / "w" / "net.json")
    assert wide.param_shapes["W2"] == (1, 12)


@pytest.mark.parametrize("opt, spec, msg", [
    ("--split", "layer=1,3", "item '3' follows 'layer', which takes a single value"),
    ("--split", "layer=1,neuron=1", "lacks ratios"),
    ("--split", "neuron=1,ratios=1", "lacks layer"),
    ("--split", "layer=1,neuron=x,ratios=1", "neuron='x' must be an integer"),
    ("--split", "layer=1,neuron=1,ratios=3/5,,4/5", "empty item"),
    ("--split", "layer=1,neuron=1,ratio=1", "unknown key 'ratio'"),
    ("--split", "layer=1,layer=2,neuron=1,ratios=1", "key 'layer' is given twice"),
    ("--split", "", "is empty"),
    ("--split", "layer=1,neuron=9,ratios=3/5,4/5", "neuron=9 is out of range; layer 'fc1' has 5 neurons"),
    ("--split", "layer=2,neuron=0,ratios=1", "is the output layer"),
    ("--split", "layer=1,neuron=0,ratios=1/2,1/2", "sum alpha_k^2 = 1/2 != 1"),
    ("--split", "layer=1,neuron=0,ratios=0,1", "is not positive"),
    ("--channel", "layer=1,channel=0,ratios=1", "is a dense layer; use neuron_split"),
    ("--add-zero", "layer=1,count=0", "count=0 must be a positive integer"),
])
def test_bad_specs_give_one_line_errors(files, capsys, opt, spec, msg):
    d, *_ = files
    rc = main(_args(d, opt, spec, "--out", str(d / "x")))
    err = capsys.readouterr().err
    assert rc == 2
    assert msg in err and err.count("\n") == 1 and err.startswith("verifier embed: error:")


def test_missing_split_and_bad_files(files, capsys):
    d, *_ = files
    assert main(_args(d, "--out", str(d / "x"))) == 2
    assert "give at least one of --split" in capsys.readouterr().err
    assert main(["embed", "--net", str(d / "nope.json"), "--params", str(d / "params.npz"), "--split",
                 "layer=1,neuron=0,ratios=1", "--out", str(d / "x")]) == 2
    assert "cannot read network file" in capsys.readouterr().err


def test_parse_spec_directly():
    assert parse_spec("layer=fc1,unit=2,ratios=1") == {"layer": "fc1", "neuron": 2, "ratios": ["1"]}
    assert parse_spec("layer=1,count=3", "add_zero") == {"layer": 1, "count": 3}
    with pytest.raises(SpecError, match="--channel 'layer=1,neuron=0,ratios=1': unknown key 'neuron'"):
        parse_spec("layer=1,neuron=0,ratios=1", "channel")
