"""CLI tracebacks found by hand (issue 14, item 6), each a regression test: exit status 2 and one line on
stderr naming the option or file field and what is valid; never a traceback."""

from __future__ import annotations

import json
import zipfile
from decimal import Decimal, getcontext

import numpy as np
import pytest

import verifier
from tests.helpers import write_files
from verifier.cli import main, one_line
from verifier.io import MAX_DIM, MAX_NODES, MAX_PARAMS, load_network


@pytest.fixture
def files(tmp_path):
    net = verifier.mlp([2, 4, 1])
    X = np.array([[1.0, 0.5], [-1.0, -0.2], [0.8, -0.1], [-0.7, 0.3], [0.9, 0.9], [-0.4, -1.0]])
    y = np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0])
    f = write_files(tmp_path, net, net.init_params(0), X, y)
    f["dir"] = tmp_path
    return f


def _one_line_error(capsys, *needles):
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err and ": error: " in err, err
    for n in needles:
        assert n in err, (n, err)
    return err


def _net_doc(files):
    return json.loads(files["net"].read_text())


def test_negative_seed(files, capsys):
    out = str(files["dir"] / "p.npz")
    assert main(["train", "--net", str(files["net"]), "--data", str(files["data"]), "--out", out, "--seed", "-1"]) == 2
    _one_line_error(capsys, "--seed", "-1", "[0, 4294967295]")
    assert main(["embed", "--net", str(files["net"]), "--params", str(files["params"]), "--split",
                 "layer=1,neuron=0,ratios=1", "--out", out, "--seed", "2**40"]) == 2
    _one_line_error(capsys, "--seed", "is not an integer")


@pytest.mark.parametrize("digits", ["-3", "0", "100000", "x"])
def test_certify_digits_out_of_range(files, capsys, digits):
    assert main(["certify", "kkt", "--net", str(files["net"]), "--params", str(files["params"]), "--data",
                 str(files["data"]), "--out", str(files["dir"] / "c.json"), "--digits", digits]) == 2
    _one_line_error(capsys, "--digits", "[1, 50]")
    assert not (files["dir"] / "c.json").exists()


def test_report_history_that_is_an_npz(files, capsys):
    from verifier.report.series import load_history

    with pytest.raises(verifier.FormatError, match=r"history file .*data.npz.* is not UTF-8 text \(it looks like a "
                                                   r"zip/.npz archive\)"):
        load_history(str(files["data"]))


def test_add_zero_count_is_bounded(files, capsys):
    from verifier.embed import MAX_ZERO_UNITS

    assert main(["embed", "--net", str(files["net"]), "--params", str(files["params"]), "--add-zero",
                 "layer=1,count=1000000000", "--out", str(files["dir"] / "w")]) == 2
    _one_line_error(capsys, "--add-zero", "count=1000000000 must be a positive integer <= " + str(MAX_ZERO_UNITS))
    assert not (files["dir"] / "w").exists()


@pytest.mark.parametrize("width", [10**12, 2**63, -5])
def test_huge_widths_are_refused_before_allocating(files, capsys, width):
    doc = _net_doc(files)
    doc["nodes"][1]["attrs"]["out_features"] = width
    doc["parameters"][0]["shape"] = [width, 2]
    files["net"].write_text(json.dumps(doc))
    assert main(["train", "--net", str(files["net"]), "--data", str(files["data"]),
                 "--out", str(files["dir"] / "p.npz")]) == 2
    err = _one_line_error(capsys, "net.json")
    assert ("out_features" in err and str(MAX_DIM) in err) or "parameters[0].shape" in err


def test_total_parameter_count_is_bounded(tmp_path):
    net = verifier.mlp([2, 4, 1])
    doc = net.to_dict()
    side = 10_000  # 10^8 entries > MAX_PARAMS, every dimension below MAX_DIM
    doc["nodes"][1]["attrs"]["out_features"] = side
    doc["nodes"][0]["attrs"]["shape"] = [side]
    doc["parameters"][0]["shape"] = [side, side]
    doc["parameters"][1]["shape"] = [1, side]
    p = tmp_path / "big.json"
    p.write_text(json.dumps(doc))
    with pytest.raises(verifier.FormatError, match=f"more than {MAX_PARAMS} entries.*'W1' has shape"):
        load_network(p)
    # the limit is a keyword: raised, the same file loads (nothing is allocated by loading a network)
    assert load_network(p, max_params=2 * side * side).num_params == side * side + side


def _deep(layers: int) -> dict:
    nodes = [{"name": "x", "op": "input", "attrs": {"shape": [2]}}]
    params, prev = [], "x"
    for i in range(layers):
        nodes.append({"name": f"fc{i}", "op": "dense", "inputs": [prev], "params": {"weight": f"W{i}"},
                      "attrs": {"out_features": 2}})
        nodes.append({"name": f"a{i}", "op": "relu", "inputs": [f"fc{i}"]})
        params.append({"name": f"W{i}", "shape": [2, 2]})
        prev = f"a{i}"
    nodes += [{"name": "head", "op": "dense", "inputs": [prev], "params": {"weight": "WL"}, "attrs": {"out_features": 1}},
              {"name": "out", "op": "output", "inputs": ["head"]}]
    params.append({"name": "WL", "shape": [1, 2]})
    return {"format": "kkt-verifier/network", "version": 1, "nodes": nodes, "parameters": params}


def test_five_thousand_layers_are_refused_by_the_node_limit(files, capsys):
    files["net"].write_text(json.dumps(_deep(5000)))
    assert main(["degree", str(files["net"])]) == 2
    _one_line_error(capsys, "field 'nodes' has 10003 entries", f"limit of {MAX_NODES}")


def test_a_deep_network_trains_without_overflow(tmp_path):
    """||theta||^L overflows a float for L in the hundreds (here 173^151 ~ 1e338) although the normalised
    margin itself (~1e-189) is a float; it is computed in logs.  Oracle: 60-digit decimal arithmetic."""
    p = tmp_path / "deep.json"
    p.write_text(json.dumps(_deep(150)))
    net = load_network(p)
    X = np.array([[1.0, 0.5], [0.5, 1.0]])
    y = np.array([1.0, -1.0])
    theta0 = {k: 10.0 * np.eye(2) if v == (2, 2) else np.array([[1.0, -1.0]]) for k, v in net.param_shapes.items()}
    res = verifier.train(net, theta0, X, y, steps=1, lr=1e-300, progress=False)
    h = res.history[0]
    getcontext().prec = 60
    L = int(verifier.degree(net))
    expect = Decimal(h["min_margin"]) / Decimal(h["norm"]) ** L
    assert L == 151 and Decimal(h["norm"]) ** L > Decimal("1e308") and expect > Decimal("1e-300")
    assert h["normalized_margin"] == pytest.approx(float(expect), rel=1e-9, abs=0.0)


def test_leaky_slope_1e400(files, capsys):
    doc = _net_doc(files)
    doc["nodes"][2] = {"name": "act1", "op": "leaky_relu", "inputs": ["fc1"], "attrs": {"slope": 0.1}}
    files["net"].write_text(json.dumps(doc).replace("0.1", "1e400"))
    assert main(["describe", str(files["net"])]) == 2
    _one_line_error(capsys, "node 'act1'", "slope", "finite")


def test_import_of_a_non_onnx_file_is_one_line(tmp_path, capsys):
    pytest.importorskip("onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x08\x01garbage, not a protobuf\n" * 20)
    assert main(["import", str(junk), "--out", str(tmp_path / "n.json"), "--params", str(tmp_path / "p.npz")]) == 2
    _one_line_error(capsys, "junk.onnx", "not an ONNX model")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.onnx"]


def test_multi_line_messages_become_one_line():
    assert one_line("Error parsing message:\n  wire format\n\n  was corrupt") == \
        "Error parsing message: wire format; was corrupt"


def _fake_torch_checkpoint(path):
    """The layout torch.save writes (a zip with <name>/data.pkl), without needing torch."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("ck/data.pkl", b"\x80\x02}q\x00.")
        z.writestr("ck/version", b"3\n")
        z.writestr("ck/.data/serialization_id", b"0")


def test_a_torch_checkpoint_as_params_is_named(files, capsys):
    ck = files["dir"] / "ck.pt"
    _fake_torch_checkpoint(ck)
    legacy = files["dir"] / "legacy.pt"
    legacy.write_bytes(b"\x80\x02}q\x00.")  # a pickle
    for path, kind in ((ck, "is a PyTorch checkpoint"), (legacy, "is a Python pickle")):
        assert main(["kkt", "--net", str(files["net"]), "--params", str(path), "--data", str(files["data"])]) == 2
        _one_line_error(capsys, str(path), kind, "--torch model.py:Net --checkpoint", "verifier.from_torch")


def test_a_real_torch_checkpoint_is_named(files, capsys):
    torch = pytest.importorskip("torch")
    ck = files["dir"] / "real.pt"
    torch.save({"W1": torch.zeros(4, 2), "W2": torch.zeros(1, 4)}, ck)
    assert main(["kkt", "--net", str(files["net"]), "--params", str(ck), "--data", str(files["data"])]) == 2
    _one_line_error(capsys, "is a PyTorch checkpoint")


def test_a_pool_node_without_stride_is_valid(tmp_path):
    """The docs: stride defaults to the kernel size.  Oracle: the same network with the stride written out."""
    net = verifier.cnn((1, 4, 4), [2], pool="max")
    doc = net.to_dict()
    pool = next(n for n in doc["nodes"] if n["op"] == "maxpool2d")
    assert pool["attrs"].pop("stride") == [2, 2]
    p = tmp_path / "pool.json"
    p.write_text(json.dumps(doc))
    net2 = load_network(p)
    params = net.init_params(0)
    X = np.random.default_rng(1).normal(size=(3, 1, 4, 4))
    assert np.array_equal(verifier.forward(net2, params, X), verifier.forward(net, params, X))


def test_a_folder_or_an_npz_as_network(files, capsys):
    assert main(["describe", str(files["dir"])]) == 2
    _one_line_error(capsys, "is a folder")
    assert main(["describe", str(files["data"])]) == 2
    _one_line_error(capsys, "not UTF-8 text", "zip/.npz archive")


@pytest.mark.parametrize("argv, needle", [
    (["kkt", "--tol", "-1"], "--tol"),
    (["embed", "--probes", "0"], "--probes"),
    (["embed", "--lr", "nan"], "--lr"),
    (["symbolic", "split", "--m", "1"], "--m"),
    (["symbolic", "degree", "--max-params", "-4"], "--max-params"),
    (["symbolic", "degree", "--time-budget", "inf"], "--time-budget"),
])
def test_bad_option_values_are_one_line(files, capsys, argv, needle):
    net = ["--net", str(files["net"])]
    extra = {"kkt": ["--params", str(files["params"]), "--data", str(files["data"])],
             "embed": ["--params", str(files["params"]), "--split", "layer=1,neuron=0,ratios=1",
                       "--out", str(files["dir"] / "w")]}.get(argv[0], [])
    assert main(argv + net + extra) == 2
    _one_line_error(capsys, needle, "expected")


def test_json_nested_too_deeply_or_not_json(tmp_path, capsys):
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "kkt-verifier/network",')
    for p, msg in ((deep, "nested too deeply"), (bad, "is not valid JSON")):
        assert main(["describe", str(p)]) == 2
        _one_line_error(capsys, str(p), msg)
