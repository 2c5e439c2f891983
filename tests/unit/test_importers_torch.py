"""PyTorch importer: forward agreement with torch itself (the oracle), names, homogeneity, round trip, bad input."""

from __future__ import annotations

import copy

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the PyTorch importer needs the [torch] extra")
nn = torch.nn
F = torch.nn.functional

import verifier  # noqa: E402
from verifier.errors import DataError, NotHomogeneousError, VerifierError  # noqa: E402
from verifier.importers import UnsupportedModelError, from_torch, to_torch_state_dict  # noqa: E402


def torch_out(model, X: np.ndarray) -> np.ndarray:
    """The oracle: the torch model itself, evaluated in float64 on a copy."""
    m = copy.deepcopy(model).double()
    with torch.no_grad():
        return m(torch.tensor(X, dtype=torch.float64)).numpy()


def rand(shape, seed=1):
    return np.random.default_rng(seed).normal(size=shape)


class Residual(nn.Module):
    """Two residual blocks (operator.add and torch.add), functional relu and torch.flatten."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(5, 5, bias=False)
        self.fc2 = nn.Linear(5, 5, bias=False)
        self.head = nn.Linear(5, 2, bias=False)

    def forward(self, x):
        h = x + F.relu(self.fc1(x))
        h = torch.add(h, torch.relu(self.fc2(h)))
        return self.head(torch.flatten(h, 1))


class ConvRes(nn.Module):
    """Conv residual block, functional leaky relu and pooling, x.view(x.size(0), -1)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 3, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(3, 3, 3, padding="same", bias=False)
        self.fc = nn.Linear(3 * 3 * 3, 2, bias=False)

    def forward(self, x):
        h = F.leaky_relu(self.conv1(x), 0.2)
        h = h + self.conv2(h).relu()
        h = F.max_pool2d(h, 2)
        return self.fc(h.view(h.size(0), -1))


def test_mlp_forward_names_and_degree():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8, bias=False), nn.ReLU(), nn.Linear(8, 8, bias=False), nn.ReLU(),
                          nn.Linear(8, 1, bias=False))
    net, params = from_torch(model, torch.zeros(1, 6))
    assert net.param_names == [n for n, _ in model.named_parameters()] == ["0.weight", "2.weight", "4.weight"]
    X = rand((7, 6))
    assert np.max(np.abs(verifier.forward(net, params, X) - torch_out(model, X))) < 1e-12
    assert verifier.degree(net) == 3
    # the degree against torch: Phi(c theta) = c^3 Phi(theta)
    scaled = copy.deepcopy(model).double()
    with torch.no_grad():
        for p in scaled.parameters():
            p.mul_(1.7)
    assert np.allclose(torch_out(scaled, X), 1.7**3 * torch_out(model, X), rtol=1e-12, atol=1e-14)


def test_cnn_with_pools_strides_and_bias():
    torch.manual_seed(1)
    model = nn.Sequential(
        nn.Conv2d(2, 4, 3, stride=1, padding=1), nn.LeakyReLU(0.1), nn.MaxPool2d(2),
        nn.Conv2d(4, 3, 3, stride=2, padding=(1, 0), bias=False), nn.ReLU(), nn.AvgPool2d(kernel_size=(2, 1), stride=1),
        nn.Flatten(), nn.Linear(3, 3, bias=False), nn.Identity(), nn.Dropout(0.3).eval(),
    )
    net, params = from_torch(model, torch.zeros(1, 2, 8, 8))
    ops = [net.nodes[n].op for n in net.order]
    assert ops == ["input", "conv2d", "bias", "leaky_relu", "maxpool2d", "conv2d", "relu", "avgpool2d", "flatten",
                   "dense", "output"]
    assert net.nodes["3"].attrs["stride"] == (2, 2) and net.nodes["3"].attrs["padding"] == (1, 0)
    assert net.nodes["1"].attrs["slope"] == 0.1
    X = rand((5, 2, 8, 8))
    assert np.max(np.abs(verifier.forward(net, params, X) - torch_out(model, X))) < 1e-12
    assert net.param_names == ["0.weight", "0.bias", "3.weight", "7.weight"]


def test_residual_functional_and_flatten():
    torch.manual_seed(2)
    model = Residual()
    net, params = from_torch(model, torch.zeros(1, 5))
    assert [net.nodes[n].op for n in net.order].count("add") == 2
    X = rand((9, 5))
    assert np.max(np.abs(verifier.forward(net, params, X) - torch_out(model, X))) < 1e-12
    # the skip adds x (degree 0) to relu(fc1 x) (degree 1): the calculus names that node
    with pytest.raises(NotHomogeneousError, match=r"node 'add': add has summands of degree 0 and 1"):
        verifier.degree(net)


class TwoBranch(nn.Module):
    """Parallel branches of equal degree: homogeneous of degree 2."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 6, bias=False)
        self.b = nn.Linear(4, 6, bias=False)
        self.head = nn.Linear(6, 1, bias=False)

    def forward(self, x):
        return self.head(F.relu(self.a(x)) + F.leaky_relu(self.b(x), 0.3))


def test_parallel_branches_degree_against_torch_scaling():
    torch.manual_seed(6)
    model = TwoBranch()
    net, params = from_torch(model, torch.zeros(1, 4))
    assert verifier.degree(net) == 2
    X = rand((6, 4))
    scaled = copy.deepcopy(model).double()
    with torch.no_grad():
        for p in scaled.parameters():
            p.mul_(0.6)
    assert np.allclose(torch_out(scaled, X), 0.36 * torch_out(model, X), rtol=1e-12, atol=1e-14)
    assert np.max(np.abs(verifier.forward(net, params, X) - torch_out(model, X))) < 1e-12


def test_conv_residual_leaky_functional_pool_and_view():
    torch.manual_seed(3)
    model = ConvRes()
    net, params = from_torch(model, torch.zeros(2, 1, 6, 6))
    assert net.param_names == ["conv1.weight", "conv2.weight", "fc.weight"]
    assert net.nodes["leaky_relu"].attrs["slope"] == 0.2
    assert net.nodes["conv2"].attrs["padding"] == (1, 1)
    X = rand((4, 1, 6, 6))
    assert np.max(np.abs(verifier.forward(net, params, X) - torch_out(model, X))) < 1e-12


def test_functional_linear_with_registered_parameters():
    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.w1 = nn.Parameter(torch.randn(4, 3))
            self.w2 = nn.Parameter(torch.randn(1, 4))

        def forward(self, x):
            return F.linear(F.relu(F.linear(x, self.w1)), self.w2)

    model = Custom()
    net, params = from_torch(model, torch.zeros(1, 3))
    assert net.param_names == ["w1", "w2"]
    X = rand((6, 3))
    assert np.max(np.abs(verifier.forward(net, params, X) - torch_out(model, X))) < 1e-12


def test_bias_reported_quasi_homogeneous_and_checked_against_torch():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(3, 6), nn.ReLU(), nn.Linear(6, 1))
    net, params = from_torch(model, torch.zeros(1, 3))
    assert net.param_names == ["0.weight", "0.bias", "2.weight", "2.bias"]
    with pytest.raises(NotHomogeneousError, match="quasi-homogeneous"):
        verifier.degree(net)
    q = verifier.quasi_homogeneous_weights(net)
    assert q.exists and not q.homogeneous
    # oracle: scaling tensor j by exp(s r_j) in torch multiplies the output by exp(s)
    s = 0.37
    scaled = copy.deepcopy(model).double()
    with torch.no_grad():
        for name, p in scaled.named_parameters():
            p.mul_(float(np.exp(s * float(q.weights[name]))))
    X = rand((5, 3))
    assert np.allclose(torch_out(scaled, X), np.exp(s) * torch_out(model, X), rtol=1e-10, atol=1e-12)


def test_sigmoid_imported_then_named_as_not_homogeneous():
    model = nn.Sequential(nn.Linear(3, 4, bias=False), nn.Sigmoid(), nn.Linear(4, 1, bias=False))
    net, params = from_torch(model, torch.zeros(1, 3))
    X = rand((4, 3))
    assert np.max(np.abs(verifier.forward(net, params, X) - torch_out(model, X))) < 1e-12
    with pytest.raises(NotHomogeneousError, match=r"node '1'.*sigmoid"):
        verifier.degree(net)


def test_round_trip_state_dict():
    torch.manual_seed(5)
    model = ConvRes()
    net, params = from_torch(model, torch.zeros(1, 1, 6, 6))
    new = {k: v + 0.01 * rand(v.shape, seed=i) for i, (k, v) in enumerate(params.items())}
    fresh = ConvRes()  # a different random init
    sd = to_torch_state_dict(net, new, model=fresh)
    assert fresh.load_state_dict(sd, strict=True) is not None
    for k, v in new.items():  # exact (float32 model: the values as float32)
        assert np.array_equal(fresh.state_dict()[k].numpy(), v.astype(np.float32))
    fresh64 = ConvRes().double()
    fresh64.load_state_dict(to_torch_state_dict(net, new), strict=True)
    X = rand((3, 1, 6, 6))
    with torch.no_grad():
        ref = fresh64(torch.tensor(X)).numpy()
    assert np.max(np.abs(verifier.forward(net, new, X) - ref)) < 1e-12
    # and importing the reloaded model gives back the same parameters exactly
    net2, params2 = from_torch(fresh64, torch.zeros(1, 1, 6, 6))
    assert all(np.array_equal(params2[k], new[k]) for k in new)


def test_state_dict_mismatch_is_reported():
    net, params = from_torch(nn.Sequential(nn.Linear(2, 3, bias=False)), torch.zeros(1, 2))
    with pytest.raises(verifier.ParameterError, match=r"'0.weight'.*not in the model"):
        to_torch_state_dict(net, params, model=nn.Sequential(nn.ReLU(), nn.Linear(2, 3)))
    with pytest.raises(verifier.ParameterError, match=r"shape \(3, 2\).*\(4, 2\)"):
        to_torch_state_dict(net, params, model=nn.Sequential(nn.Linear(2, 4)))


# -- bad input: one clear error naming the layer --------------------------------------------------
class WithAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(4, 1)
        self.fc = nn.Linear(4, 1)

    def forward(self, x):
        h, _ = self.attn(x, x, x)
        return self.fc(h)


class Branchy(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 1)

    def forward(self, x):
        if x.sum() > 0:  # data-dependent control flow
            return self.fc(x)
        return self.fc(-x)


class Outer(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Branchy()

    def forward(self, x):
        return self.block(x)


class Shared(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3, bias=False)

    def forward(self, x):
        return self.fc(F.relu(self.fc(x)))


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 1)

    def forward(self, x, z):
        return self.fc(x + z)


@pytest.mark.parametrize("model, shape, pattern", [
    (nn.Sequential(nn.Linear(3, 3), nn.BatchNorm1d(3), nn.Linear(3, 1)), (2, 3), r"module '1' \(BatchNorm1d\) is not supported.*supported: nn.Linear"),
    (nn.Sequential(nn.Linear(3, 3), nn.Dropout(0.5), nn.Linear(3, 1)), (2, 3), r"module '1' \(Dropout\).*train mode.*eval"),
    (WithAttention(), (2, 4), r"module 'attn' \(MultiheadAttention\) is not supported.*supported"),
    (Outer(), (2, 4), r"cannot trace module 'block' \(Branchy\).*control flow"),
    (nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, padding_mode="reflect"), nn.Flatten(), nn.Linear(32, 1)), (1, 1, 4, 4),
     r"module '0' \(Conv2d\): padding_mode='reflect'"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.AvgPool2d(2, padding=1), nn.Flatten(), nn.Linear(8, 1)), (1, 1, 4, 4),
     r"module '1' \(AvgPool2d\): padding=1"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(2, ceil_mode=True), nn.Flatten(), nn.Linear(8, 1)), (1, 1, 5, 5),
     r"module '1' \(MaxPool2d\): ceil_mode=True"),
    (nn.Sequential(nn.Linear(3, 3), nn.GELU(), nn.Linear(3, 1)), (1, 3), r"module '1' \(GELU\) is not supported"),
    (Shared(), (1, 3), r"module 'fc' \(Linear\) is called more than once; weight sharing"),
    (TwoInputs(), (1, 3), r"several tensor inputs"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten(0)), (1, 1, 4, 4), r"module '1' \(Flatten\): flattens dims 0"),
    (nn.Sequential(nn.Linear(3, 1), nn.Flatten(0)), (2, 3), r"module '1' \(Flatten\)"),
])
def test_unsupported_models_name_the_layer(model, shape, pattern):
    with pytest.raises(UnsupportedModelError, match=pattern):
        from_torch(model, torch.zeros(shape))


def test_unsupported_function_names_the_enclosing_module():
    class Block(nn.Module):
        def forward(self, x):
            return F.gelu(x)

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.block = Block()
            self.fc = nn.Linear(3, 1)

        def forward(self, x):
            return self.fc(self.block(x))

    with pytest.raises(UnsupportedModelError, match=r"gelu in the forward of module 'block' \(Block\) is not supported"):
        from_torch(Net(), torch.zeros(1, 3))


def test_bad_example_input_and_non_module():
    model = nn.Sequential(nn.Linear(3, 1))
    with pytest.raises(DataError, match="batch dimension"):
        from_torch(model, torch.zeros(3))
    with pytest.raises(DataError, match="non-finite"):
        from_torch(model, torch.full((1, 3), float("nan")))
    with pytest.raises(verifier.ShapeError, match="running the model on example_input of shape"):
        from_torch(model, torch.zeros(1, 4))
    with pytest.raises(UnsupportedModelError, match="torch.nn.Module"):
        from_torch(lambda x: x, torch.zeros(1, 3))
    # every error is a VerifierError (the CLI prints one line for those)
    assert issubclass(UnsupportedModelError, VerifierError)
