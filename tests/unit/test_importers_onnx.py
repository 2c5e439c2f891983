"""ONNX importer: models written by torch.onnx.export, checked against the torch model that produced them
(onnxruntime is not used; onnx.reference is the importer's own self-check, not the oracle here)."""

from __future__ import annotations

import verifier
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the ONNX tests export their models with torch (the [torch] extra)")
onnx = pytest.importorskip("onnx", reason="the ONNX importer needs the [onnx] extra")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

nn = torch.nn
F = torch.nn.functional

from verifier.errors import FormatError, ShapeError  # noqa: E402
from verifier.importers import UnsupportedModelError, from_onnx  # noqa: E402


def export(model, shape, path, dynamic=True):
    """torch.onnx.export with the TorchScript exporter (the dynamo one needs onnxscript, not installed)."""
    kw = dict(input_names=["x"], output_names=["y"])
    if dynamic:
        kw["dynamic_axes"] = {"x": {0: "n"}, "y": {0: "n"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.zeros(shape),), str(path), dynamo=False, **kw)
    return path


def torch_out(model, X):
    import copy

    m = copy.deepcopy(model).double()
    with torch.no_grad():
        return m(torch.tensor(X)).numpy()


def rand(shape, seed=1):
    return np.random.default_rng(seed).normal(size=shape)


class ResCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 3, padding=1)
        self.conv2 = nn.Conv2d(3, 3, 3, padding=1, bias=False)
        self.pool = nn.MaxPool2d(2)
        self.avg = nn.AvgPool2d(2, stride=1)
        self.fc = nn.Linear(3 * 2 * 2, 2)

    def forward(self, x):
        h = F.leaky_relu(self.conv1(x), 0.1)
        h = h + F.relu(self.conv2(h))
        h = self.avg(self.pool(h))
        return self.fc(h.view(h.size(0), -1))


@pytest.mark.parametrize("bias", [False, True])
def test_mlp_gemm_and_matmul(tmp_path, bias):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7, bias=bias), nn.ReLU(), nn.Linear(7, 1, bias=bias))
    net, params = from_onnx(export(model, (1, 5), tmp_path / "m.onnx"))
    X = rand((8, 5))
    assert np.max(np.abs(verifier.forward(net, params, X) - torch_out(model, X))) < 1e-12
    if bias:  # Gemm keeps torch's names (initializers are the state dict)
        assert net.param_names == ["0.weight", "0.bias", "2.weight", "2.bias"]
        assert all(np.array_equal(params[k], v.detach().double().numpy()) for k, v in model.state_dict().items())
    else:  # MatMul with a transposed copy: weight transposed back to (out, in)
        assert [net.param_shapes[p] for p in net.param_names] == [(7, 5), (1, 7)]
        assert verifier.degree(net) == 2


def test_cnn_residual_pools_leaky_and_dynamic_view(tmp_path):
    torch.manual_seed(1)
    model = ResCNN()
    net, params = from_onnx(export(model, (1, 1, 6, 6), tmp_path / "c.onnx", dynamic=True))
    ops = [net.nodes[n].op for n in net.order]
    assert ops.count("add") == 1 and "maxpool2d" in ops and "avgpool2d" in ops and "flatten" in ops
    slopes = [net.nodes[n].attrs["slope"] for n in net.order if net.nodes[n].op == "leaky_relu"]
    assert slopes == [0.1]  # the float32 attribute read back as the decimal torch was given
    X = rand((5, 1, 6, 6))
    assert np.max(np.abs(verifier.forward(net, params, X) - torch_out(model, X))) < 1e-12


def test_static_batch_reshape_and_bytes_input(tmp_path):
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(2, 2, 3, stride=2, bias=False), nn.ReLU(), nn.Flatten(), nn.Linear(8, 3, bias=False))
    path = export(model, (1, 2, 5, 5), tmp_path / "s.onnx", dynamic=False)
    net, params = from_onnx(path.read_bytes())
    X = rand((4, 2, 5, 5))
    assert np.max(np.abs(verifier.forward(net, params, X) - torch_out(model, X))) < 1e-12
    assert net.num_outputs == 3


def _graph(nodes, inits, in_shape=("N", 2), out_shape=("N", 1)):
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, list(out_shape))],
                          [numpy_helper.from_array(np.asarray(v, dtype=np.float32), k) for k, v in inits.items()])
    return helper.make_model(g)


def test_gemm_transb0_and_bias_oracle_by_hand():
    B = np.array([[1.0, -2.0, 0.5], [3.0, 0.25, -1.0]])  # (in=2, out=3), transB = 0
    C = np.array([0.5, -0.5, 1.0])
    V = np.array([[1.0, -1.0, 2.0]])
    m = _graph([helper.make_node("Gemm", ["x", "B", "C"], ["h"]), helper.make_node("Relu", ["h"], ["a"]),
                helper.make_node("Gemm", ["a", "V"], ["y"], transB=1)], {"B": B, "C": C, "V": V})
    net, params = from_onnx(m)
    X = rand((6, 2))
    expected = np.maximum(X @ B + C, 0) @ V.T  # closed form
    assert np.max(np.abs(verifier.forward(net, params, X) - expected)) < 1e-12
    assert np.array_equal(params["B"], B.T) and np.array_equal(params["C"], C)


def test_not_onnx_and_missing_files(tmp_path):
    bad = tmp_path / "notes.onnx"
    bad.write_text("this is not a protobuf, just some text\n" * 3)
    with pytest.raises(FormatError, match=r"notes.onnx.*not an ONNX model"):
        from_onnx(bad)
    np.savez(tmp_path / "p.npz", a=np.zeros(3))
    with pytest.raises(FormatError, match="not an ONNX model"):
        from_onnx(tmp_path / "p.npz")
    with pytest.raises(FormatError, match="does not exist"):
        from_onnx(tmp_path / "nope.onnx")
    with pytest.raises(FormatError, match="path to an .onnx file"):
        from_onnx(12)


@pytest.mark.parametrize("nodes, inits, pattern", [
    ([helper.make_node("Gemm", ["x", "W"], ["h"], transB=1), helper.make_node("Softmax", ["h"], ["y"])],
     {"W": np.ones((1, 2))}, r"node 'Softmax_1' \(Softmax\) is not supported; supported ONNX ops: Gemm"),
    ([helper.make_node("Gemm", ["x", "W"], ["y"], transB=1, alpha=2.0)], {"W": np.ones((1, 2))}, r"\(Gemm\): alpha=2.0"),
    ([helper.make_node("MatMul", ["x", "x"], ["y"])], {}, r"\(MatMul\): the right factor B \('x'\) must be a constant"),
    ([helper.make_node("Gemm", ["x", "W"], ["h"], transB=1), helper.make_node("Gemm", ["h", "W"], ["y"], transB=1)],
     {"W": np.ones((1, 1))}, r"used by two layers; weight sharing"),
])
def test_unsupported_onnx_nodes_are_named(nodes, inits, pattern):
    in_shape = ("N", 1) if "W" in inits and inits["W"].shape == (1, 1) else ("N", 2)
    with pytest.raises(UnsupportedModelError, match=pattern):
        from_onnx(_graph(nodes, inits, in_shape=in_shape), check=False)


def test_unsupported_exported_pooling_and_symbolic_dims(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 1, 3), nn.MaxPool2d(2, padding=1), nn.Flatten(), nn.Linear(4, 1))
    with pytest.raises(UnsupportedModelError, match=r"node '/1/MaxPool' \(MaxPool\): pads="):
        from_onnx(export(model, (1, 1, 5, 5), tmp_path / "p.onnx"))
    m = _graph([helper.make_node("Relu", ["x"], ["y"])], {}, in_shape=("N", "D"), out_shape=("N", "D"))
    with pytest.raises(ShapeError, match="symbolic per-sample dims.*input_shape"):
        from_onnx(m)
    net, _ = from_onnx(m, input_shape=(3,))
    assert net.input_shape == (3,)


def test_reference_self_check_has_teeth():
    """The import's self-check (onnx.reference in float64) flags a network that disagrees with the file."""
    from verifier.importers import ImportCheckError
    from verifier.importers.onnx_import import _check_reference

    B = np.array([[1.0, -2.0], [0.5, 1.0]])
    m = _graph([helper.make_node("Gemm", ["x", "B"], ["h"], transB=1), helper.make_node("Relu", ["h"], ["a"]),
                helper.make_node("Gemm", ["a", "V"], ["y"], transB=1)], {"B": B, "V": np.array([[1.0, -1.0]])})
    net, params = from_onnx(m)  # passes its own check
    _check_reference(m, net, params, "x", 3, 1e-12, "m", onnx)
    bad = dict(params, B=params["B"].T)  # the classic mistake: a transposed weight
    with pytest.raises(ImportCheckError, match="disagrees with the model"):
        _check_reference(m, net, bad, "x", 3, 1e-6, "m", onnx)
