"""The torch importer on the shapes research code takes, each checked against torch's own forward.

Oracle: the model itself, run in float64 by torch on random inputs (the imported
network must reproduce it to rounding), and torch's parameter names.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the PyTorch importer needs the [torch] extra")
nn, F = torch.nn, torch.nn.functional

import verifier  # noqa: E402
from verifier.importers import UnsupportedModelError  # noqa: E402


def _agree(model, in_shape, **kw):
    torch.manual_seed(0)
    net, params = verifier.from_torch(model, torch.zeros(1, *in_shape), **kw)
    x = torch.randn(7, *in_shape, dtype=torch.float64)
    with torch.no_grad():
        ref = model.double()(x).numpy()
    ours = verifier.forward(net, params, x.numpy())
    assert ours.shape == ref.shape
    assert np.max(np.abs(ours - ref)) <= 1e-12 * max(1.0, np.max(np.abs(ref)))
    named = dict(model.named_parameters())
    assert set(net.param_names) == set(named)
    for p in net.param_names:  # float64 copies of torch's tensors, torch's layout
        np.testing.assert_array_equal(params[p], named[p].detach().numpy())
    return net, params


class ModuleInForward(nn.Module):
    """``nn.Flatten()(x)`` and ``nn.ReLU()(x)`` built inside forward (parameter-free)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, bias=False)
        self.fc = nn.Linear(2 * 4 * 4, 3, bias=False)

    def forward(self, x):
        return self.fc(nn.Flatten()(nn.ReLU()(self.conv(x))))


class Functional(nn.Module):
    """``F.relu``, ``torch.flatten`` and ``x.view(x.size(0), -1)``."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, bias=False)
        self.fc1 = nn.Linear(2 * 4 * 4, 5, bias=False)
        self.fc2 = nn.Linear(5, 3, bias=False)

    def forward(self, x):
        h = F.relu(self.conv(x))
        h = torch.flatten(h, 1)
        h = F.relu(self.fc1(h))
        h = h.view(h.size(0), -1)
        return self.fc2(h)


class Nested(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Sequential(nn.Conv2d(1, 2, 3, bias=False), nn.ReLU()),
                                      nn.Sequential(nn.MaxPool2d(2), nn.Flatten()))
        self.head = nn.Sequential(nn.Linear(2 * 2 * 2, 4, bias=False), nn.ReLU(),
                                  nn.Sequential(nn.Linear(4, 2, bias=False)))

    def forward(self, x):
        return self.head(self.features(x))


class ShapeBranch(nn.Module):
    """Python control flow on the input's rank: torch.fx cannot trace it, torch.export can."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(36, 6, bias=False)
        self.fc2 = nn.Linear(6, 1, bias=False)

    def forward(self, x):
        if x.dim() == 4:
            x = x.reshape(x.shape[0], -1)
        return self.fc2(F.relu(self.fc1(x)))


def test_module_built_inside_forward():
    net, _ = _agree(ModuleInForward(), (1, 6, 6))
    assert [net.nodes[n].op for n in net.order] == ["input", "conv2d", "relu", "flatten", "dense", "output"]
    assert verifier.degree(net) == 2


def test_module_with_parameters_built_inside_forward_is_refused():
    class Fresh(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3, bias=False)

        def forward(self, x):
            return nn.Linear(3, 1, bias=False)(F.relu(self.fc(x)))

    with pytest.raises(UnsupportedModelError, match=r"a Linear with parameters .* created inside the forward of model Fresh.*__init__"):
        verifier.from_torch(Fresh(), torch.zeros(1, 4))


def test_functional_calls():
    net, _ = _agree(Functional(), (1, 6, 6))
    assert verifier.degree(net) == 3


def test_nested_sequential_keeps_torch_paths():
    net, _ = _agree(Nested(), (1, 6, 6))
    assert net.param_names == ["features.0.0.weight", "head.0.weight", "head.2.0.weight"]
    assert "features.0.0" in net.nodes and "head.2.0" in net.nodes


def test_torch_export_fallback_where_fx_fails():
    with pytest.raises(UnsupportedModelError, match="torch.fx cannot trace"):
        verifier.from_torch(ShapeBranch(), torch.zeros(1, 1, 6, 6), tracer="fx")
    net, _ = _agree(ShapeBranch(), (1, 6, 6))  # tracer="auto": falls back to torch.export
    assert net.param_names == ["fc1.weight", "fc2.weight"]
    assert "fc1" in net.nodes and "fc2" in net.nodes  # node names from the module paths
    assert verifier.degree(net) == 2


@pytest.mark.parametrize("model", [Functional, Nested, ModuleInForward], ids=lambda m: m.__name__)
def test_torch_export_route_agrees_with_fx_route(model):
    m = model()
    net_fx, p_fx = verifier.from_torch(m, torch.zeros(1, 1, 6, 6), tracer="fx")
    net_ex, p_ex = _agree(m, (1, 6, 6), tracer="export")
    assert [net_fx.nodes[n].op for n in net_fx.order] == [net_ex.nodes[n].op for n in net_ex.order]
    assert net_fx.param_names == net_ex.param_names


def test_data_dependent_control_flow_names_both_tracers():
    class ValueBranch(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 1, bias=False)

        def forward(self, x):
            return self.fc(x) if x.sum() > 0 else -self.fc(x)

    with pytest.raises(UnsupportedModelError, match=r"torch.fx cannot trace .*; torch.export cannot export the model "
                                                     r"\(ValueBranch\) either: .*; supported: nn.Linear"):
        verifier.from_torch(ValueBranch(), torch.ones(1, 3))


def test_unknown_tracer_is_refused():
    with pytest.raises(UnsupportedModelError, match="tracer='jit' must be 'auto', 'fx' or 'export'"):
        verifier.from_torch(Nested(), torch.zeros(1, 1, 6, 6), tracer="jit")


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the legacy exporter writes the onnx:: names
def test_onnx_import_gets_readable_parameter_names(tmp_path):
    pytest.importorskip("onnx", reason="the ONNX importer needs the [onnx] extra")
    model = nn.Sequential(nn.Linear(4, 5, bias=False), nn.ReLU(), nn.Sequential(nn.Linear(5, 3, bias=False))).double()
    path = tmp_path / "m.onnx"
    torch.onnx.export(model, (torch.zeros(2, 4, dtype=torch.float64),), str(path), dynamo=False,
                      input_names=["x"], dynamic_axes={"x": {0: "N"}})
    import onnx

    raw = [i.name for i in onnx.load(str(path)).graph.initializer]
    assert all(n.startswith("onnx::") for n in raw)  # what torch's exporter writes
    net, params = verifier.from_onnx(path)
    assert net.param_names == ["0.weight", "2.0.weight"]  # torch's own names
    x = torch.randn(6, 4, dtype=torch.float64)
    with torch.no_grad():
        ref = model(x).numpy()
    np.testing.assert_allclose(verifier.forward(net, params, x.numpy()), ref, rtol=0, atol=1e-12)
    model.load_state_dict(verifier.to_torch_state_dict(net, params, model=model))  # the names load back

