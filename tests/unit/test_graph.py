"""The network IR: builders, JSON round trip, validation errors (what, where, what is valid)."""

import json
import re

import numpy as np
import pytest

import verifier
from verifier import Network
from verifier.errors import FormatError, GraphError, ParameterError, ShapeError, UnknownOpError


def test_mlp_names_shapes_and_flat_order():
    net = verifier.mlp([3, 5, 4, 2], bias="first")
    assert net.param_names == ["W1", "b1", "W2", "W3"]
    assert [net.param_shapes[p] for p in net.param_names] == [(5, 3), (5,), (4, 5), (2, 4)]
    p = net.init_params(0)
    theta = net.flatten(p)
    manual = np.concatenate([p["W1"].ravel(), p["b1"], p["W2"].ravel(), p["W3"].ravel()])
    np.testing.assert_array_equal(theta, manual)
    back = net.unflatten(theta)
    for k in p:
        np.testing.assert_array_equal(back[k], p[k])
    assert net.num_params == theta.size == 15 + 5 + 20 + 8


def test_flat_order_matches_torch_parameters_to_vector():
    torch = pytest.importorskip("torch", reason="torch not installed")
    net = verifier.mlp([3, 4, 2, 1])
    model = torch.nn.Sequential(torch.nn.Linear(3, 4, bias=False), torch.nn.ReLU(), torch.nn.Linear(4, 2, bias=False),
                                torch.nn.ReLU(), torch.nn.Linear(2, 1, bias=False)).double()
    params = {f"W{i + 1}": m.weight.detach().numpy() for i, m in enumerate(model[::2])}
    vec = torch.nn.utils.parameters_to_vector(model.parameters()).detach().numpy()
    np.testing.assert_array_equal(net.flatten(params), vec)
    X = np.random.default_rng(0).normal(size=(7, 3))
    np.testing.assert_allclose(verifier.forward(net, params, X), model(torch.tensor(X)).detach().numpy(), rtol=0, atol=1e-14)


def test_init_params_reproducible():
    net = verifier.cnn((1, 6, 6), channels=[2])
    a, b, c = net.init_params(3), net.init_params(3), net.init_params(4)
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["W1"], c["W1"])


@pytest.mark.parametrize("net", [
    verifier.mlp([2, 3, 1], activation="leaky_relu:0.2", bias="all"),
    verifier.cnn((2, 6, 6), channels=[3], pool="avg", hidden=[4], outputs=3),
    verifier.diagonal_linear(4, depth=3),
])
def test_json_round_trip(tmp_path, net):
    path = tmp_path / "net.json"
    net.to_json(path)
    again = Network.from_json(path)
    assert again.to_dict() == net.to_dict()
    assert again.param_shapes == net.param_shapes
    p = net.init_params(1)
    X = np.random.default_rng(0).normal(size=(3, *net.input_shape))
    np.testing.assert_array_equal(verifier.forward(again, p, X), verifier.forward(net, p, X))
    assert Network.from_dict(json.loads(path.read_text())).to_dict() == net.to_dict()


def _nodes():
    return [
        {"name": "x", "op": "input", "attrs": {"shape": [2]}},
        {"name": "h", "op": "dense", "inputs": ["x"], "params": {"weight": "W"}, "attrs": {"out_features": 3}},
        {"name": "a", "op": "relu", "inputs": ["h"]},
        {"name": "o", "op": "dense", "inputs": ["a"], "params": {"weight": "V"}, "attrs": {"out_features": 1}},
        {"name": "out", "op": "output", "inputs": ["o"]},
    ]


def test_validation_cycle():
    nodes = _nodes()
    nodes[1]["inputs"] = ["a"]
    with pytest.raises(GraphError, match=r"cycle: .*(h -> a|a -> h)"):
        Network(nodes)


def test_validation_dangling_input():
    nodes = _nodes()
    nodes[2]["inputs"] = ["hidden"]
    with pytest.raises(GraphError, match=r"node 'a' \(relu\): input 'hidden' is not a node"):
        Network(nodes)


def test_validation_unknown_op_lists_known_ones():
    nodes = _nodes()
    nodes[2]["op"] = "gelu"
    with pytest.raises(UnknownOpError, match=r"node 'a': unknown op 'gelu'; known ops are: .*relu.*"):
        Network(nodes)


def test_validation_shape_mismatch():
    nodes = _nodes()
    nodes.insert(4, {"name": "s", "op": "add", "inputs": ["o", "h"]})
    nodes[-1]["inputs"] = ["s"]
    with pytest.raises(ShapeError, match=r"node 's' \(add\): summands have different shapes"):
        Network(nodes)
    with pytest.raises(ShapeError, match=r"needs a flat input .* insert a 'flatten'"):
        Network([{"name": "x", "op": "input", "attrs": {"shape": [1, 4, 4]}},
                 {"name": "d", "op": "dense", "inputs": ["x"], "params": {"weight": "W"}, "attrs": {"out_features": 1}},
                 {"name": "out", "op": "output", "inputs": ["d"]}])


def test_validation_attrs_and_arity():
    nodes = _nodes()
    nodes[1]["attrs"] = {"out_features": 0}
    with pytest.raises(GraphError, match=r"attribute out_features=0 is not valid; expected a positive integer"):
        Network(nodes)
    nodes = _nodes()
    nodes[1]["attrs"] = {"out_features": 3, "units": 2}
    with pytest.raises(GraphError, match=r"unknown attribute\(s\) \['units'\]"):
        Network(nodes)
    nodes = _nodes()
    nodes[2]["inputs"] = ["h", "x"]
    with pytest.raises(GraphError, match=r"node 'a' \(relu\) takes 1 input\(s\), got 2"):
        Network(nodes)


def test_validation_structure():
    nodes = _nodes()
    nodes.append(dict(nodes[2]))
    with pytest.raises(GraphError, match="duplicate node name 'a'"):
        Network(nodes)
    nodes = _nodes()
    nodes[3]["params"] = {"weight": "W"}
    with pytest.raises(GraphError, match="parameter 'W' is used by nodes 'h' and 'o'"):
        Network(nodes)
    nodes = _nodes()
    nodes.insert(3, {"name": "stray", "op": "relu", "inputs": ["h"]})
    with pytest.raises(GraphError, match=r"\['stray'\] do not feed the output"):
        Network(nodes)
    with pytest.raises(GraphError, match="exactly one 'output' node"):
        Network(_nodes()[:-1])
    nodes = _nodes()
    nodes[1]["params"] = {}
    with pytest.raises(GraphError, match=r"needs parameter roles \['weight'\], got none"):
        Network(nodes)


def test_params_validation_messages():
    net = Network(_nodes())
    good = net.init_params(0)
    with pytest.raises(ParameterError, match=r"missing \['V'\]"):
        net.check_params({"W": good["W"]})
    with pytest.raises(ParameterError, match=r"unexpected \['Z'\]"):
        net.check_params({**good, "Z": np.zeros(1)})
    with pytest.raises(ParameterError, match=r"tensor 'W' has shape \(2, 3\), expected \(3, 2\)"):
        net.check_params({**good, "W": np.zeros((2, 3))})
    bad = {k: v.copy() for k, v in good.items()}
    bad["V"][0, 2] = np.nan
    with pytest.raises(ParameterError, match=r"tensor 'V' has a non-finite entry nan at index \(0, 2\)"):
        net.check_params(bad)
    with pytest.raises(ParameterError, match=r"flat vector has shape \(4,\), expected \(9,\)"):
        net.unflatten(np.zeros(4))
    with pytest.raises(ParameterError, match="non-finite entry at index 1"):
        net.unflatten([0, np.inf, 0, 0, 0, 0, 0, 0, 0])


def test_json_format_errors(tmp_path):
    with pytest.raises(FormatError, match="not valid JSON"):
        Network.from_json("{nodes: ]")
    d = verifier.mlp([2, 1]).to_dict()
    with pytest.raises(FormatError, match=r"field 'version' is 99; this verifier reads version\(s\) 1"):
        Network.from_dict({**d, "version": 99})
    with pytest.raises(FormatError, match="field 'nodes' must be a non-empty list"):
        Network.from_dict({**d, "nodes": {}})
    with pytest.raises(FormatError, match=r"parameters\[0\] \('W1'\) declares shape \[3, 3\]"):
        Network.from_dict({**d, "parameters": [{"name": "W1", "shape": [3, 3]}]})
    with pytest.raises(FormatError, match=r"nodes\[1\] has unknown field\(s\) \['weights'\]"):
        Network.from_dict({**d, "nodes": [d["nodes"][0], {**d["nodes"][1], "weights": 1}, *d["nodes"][2:]]})
    with pytest.raises(FormatError, match="cannot read network file"):
        Network.from_json(tmp_path / "missing.json")


def test_builder_argument_errors():
    with pytest.raises(GraphError, match=r"activation='swish' is not valid; use one of relu"):
        verifier.mlp([2, 3, 1], activation="swish")
    with pytest.raises(GraphError, match=r"activation='power:0' is not valid"):
        verifier.mlp([2, 3, 1], activation="power:0")
    with pytest.raises(GraphError, match=r"bias='some' must be one of"):
        verifier.mlp([2, 3, 1], bias="some")
    with pytest.raises(GraphError, match=r"widths=\[2\] must be at least 2 positive integers"):
        verifier.mlp([2])
    with pytest.raises(GraphError, match=r"depth=1 must be an integer >= 2"):
        verifier.diagonal_linear(3, depth=1)
    with pytest.raises(ShapeError, match="does not fit"):
        verifier.cnn((1, 2, 2), channels=[1], kernel_size=5, padding=0, pool=None)


def test_graph_ir_is_the_ground_floor():
    """The IR imports no analysis, engine or feature layer (issue: the IR is the ground floor)."""
    import ast
    import pathlib

    root = pathlib.Path(verifier.__file__).parent / "graph"
    allowed = {"errors", "ops", "graph", "_json"}
    for f in root.glob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level >= 1:
                mod = (node.module or "").split(".")[0]
                top = mod if node.level == 2 else "graph"
                assert top in allowed, f"{f.name} imports {'.' * node.level}{node.module}"
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("verifier") for a in node.names), f"{f.name} imports {node.names}"


def test_moved_methods_name_their_replacement():
    net = verifier.mlp([2, 3, 1])
    for name, new in [("degree", "verifier.degree(net)"), ("forward", "verifier.forward(net, params, X)"),
                      ("quasi_homogeneous_weights", "verifier.quasi_homogeneous_weights(net)")]:
        with pytest.raises(AttributeError, match=re.escape(new)):
            getattr(net, name)
    with pytest.raises(AttributeError, match="no attribute 'nonsense'"):
        net.nonsense
    assert verifier.degree(net) == 2 and verifier.degrees(net)["out"] == 2
