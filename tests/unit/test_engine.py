"""Numeric engine against independent oracles: central finite differences, Euler's identity,
explicit ``J J^T``, hand-computed multiclass margins, and torch's forward pass."""

import numpy as np
import pytest

import verifier
from verifier import DataError, Network
from verifier.numeric import gram_from, jacobian_from, kinks, margins_from, prepare, weighted_gradient_from
from tests.unit.test_homogeneity import NETWORKS
from tests.helpers import random_data


def _fd_jacobian(net, theta, X, y, h=1e-6):
    J = np.zeros((len(verifier.margins(net, theta, X, y)), theta.size))
    for k in range(theta.size):
        e = np.zeros_like(theta)
        e[k] = h
        J[:, k] = (verifier.margins(net, theta + e, X, y) - verifier.margins(net, theta - e, X, y)) / (2 * h)
    return J


@pytest.mark.parametrize("key", sorted(NETWORKS))
def test_jacobian_vs_finite_differences_and_euler(key):
    net, L = NETWORKS[key]
    X, y = random_data(net)
    theta = net.flatten(net.init_params(seed=7))
    fp, cons = prepare(net, theta, X, y)
    assert not verifier.kinks(net, theta, X, tol=1e-4), "test point must be away from kinks"
    J = jacobian_from(fp, cons)
    q = margins_from(fp, cons)
    np.testing.assert_allclose(J, _fd_jacobian(net, theta, X, y), rtol=1e-5, atol=1e-7)
    # Euler: <grad q_i, theta> = L q_i
    np.testing.assert_allclose(J @ theta, L * q, rtol=1e-10, atol=1e-12)
    # Gram without the Jacobian vs explicit J J^T
    np.testing.assert_allclose(gram_from(fp, cons), J @ J.T, rtol=1e-11, atol=1e-12)
    w = np.random.default_rng(3).random(cons.m)
    np.testing.assert_allclose(weighted_gradient_from(fp, cons, w), J.T @ w, rtol=1e-11, atol=1e-12)


def test_quasi_homogeneous_network_gradients():
    net = verifier.cnn((2, 5, 5), channels=[2], pool="max", hidden=[3], outputs=3, bias="all")
    X, y = random_data(net, n=4)
    theta = net.flatten(net.init_params(seed=1))
    fp, cons = prepare(net, theta, X, y)
    assert cons.m == 4 * 2
    np.testing.assert_allclose(jacobian_from(fp, cons), _fd_jacobian(net, theta, X, y), rtol=1e-5, atol=1e-7)


def test_multiclass_margins_by_hand():
    net = verifier.mlp([3, 4, 3])
    X, _ = random_data(net, n=4)
    y = np.array([0, 2, 1, 2])
    p = net.init_params(0)
    out = verifier.forward(net, p, X)
    expected = [out[i, y[i]] - out[i, j] for i in range(4) for j in range(3) if j != y[i]]
    np.testing.assert_allclose(verifier.margins(net, p, X, y), expected, rtol=1e-14)
    fp, cons = prepare(net, p, X, y)
    assert cons.label(3) == "sample 1 vs class 1"


def test_forward_matches_torch_cnn():
    torch = pytest.importorskip("torch", reason="torch not installed")
    net = verifier.cnn((2, 7, 7), channels=[3, 2], kernel_size=3, stride=1, padding=1, pool="max", hidden=[4])
    p = net.init_params(4)
    X, _ = random_data(net, n=3)
    t = torch.tensor(X)
    h = torch.relu(torch.nn.functional.conv2d(t, torch.tensor(p["W1"]), padding=1))
    h = torch.nn.functional.max_pool2d(h, 2)
    h = torch.relu(torch.nn.functional.conv2d(h, torch.tensor(p["W2"]), padding=1))
    h = torch.nn.functional.max_pool2d(h, 2).flatten(1)
    h = torch.relu(h @ torch.tensor(p["W3"]).T) @ torch.tensor(p["W4"]).T
    np.testing.assert_allclose(verifier.forward(net, p, X), h.numpy(), rtol=1e-12, atol=1e-13)
    net2 = verifier.cnn((1, 6, 6), channels=[2], kernel_size=2, stride=2, padding=0, pool="avg", pool_size=3)
    p2 = net2.init_params(0)
    X2, _ = random_data(net2, n=2)
    t2 = torch.nn.functional.avg_pool2d(torch.relu(torch.nn.functional.conv2d(torch.tensor(X2), torch.tensor(p2["W1"]), stride=2)), 3)
    np.testing.assert_allclose(verifier.forward(net2, p2, X2), t2.flatten(1).numpy() @ p2["W2"].T, rtol=1e-12)


def test_kinks_reported():
    net = verifier.mlp([2, 2, 1])
    p = {"W1": np.array([[1.0, -1.0], [1.0, 1.0]]), "W2": np.array([[1.0, 1.0]])}
    X = np.array([[1.0, 1.0], [2.0, 0.5]])  # sample 0 hits neuron 0 exactly at 0
    ks = kinks(net, p, X, tol=0.0)
    assert [(k.node, k.sample, k.unit, k.value) for k in ks] == [("act1", 0, (0,), 0.0)]
    # tol is relative to the node's per-sample scale max|z_i|: sample 1 has z = (1.5, 2.5), 1.5 / 2.5 = 0.6
    assert len(kinks(net, p, X, tol=0.7)) == 2
    assert {k.scale for k in kinks(net, p, X, tol=0.7)} == {2.0, 2.5}
    cnn = verifier.cnn((1, 4, 4), channels=[1], kernel_size=1, padding=0, pool="max")
    pc = {"W1": np.ones((1, 1, 1, 1)), "W2": np.ones((1, 4))}
    Xc = np.ones((1, 1, 4, 4))  # every window ties -> kinks in the pool (and none in relu)
    pool_kinks = [k for k in kinks(cnn, pc, Xc, tol=0.0) if k.node == "pool1"]
    assert len(pool_kinks) == 4
    with pytest.raises(DataError, match="tol=-1"):
        kinks(net, p, X, tol=-1)


def test_data_errors_name_sample_and_valid_values():
    net = verifier.mlp([2, 3, 1])
    p = net.init_params(0)
    X = np.zeros((3, 2))
    with pytest.raises(DataError, match=r"label 0 at sample 1 is not allowed; .* labels \+1 or -1"):
        verifier.margins(net, p, X, [1, 0, -1])
    with pytest.raises(DataError, match=r"inputs have shape \(3, 3\), expected \(n, 2\)"):
        verifier.margins(net, p, np.zeros((3, 3)), [1, 1, 1])
    Xn = X.copy()
    Xn[2, 1] = np.nan
    with pytest.raises(DataError, match="sample 2 has a non-finite value at flat feature 1"):
        verifier.margins(net, p, Xn, [1, 1, 1])
    with pytest.raises(DataError, match="2 labels for 3 samples"):
        verifier.margins(net, p, X, [1, 1])
    multi = verifier.mlp([2, 3, 3])
    with pytest.raises(DataError, match=r"label 3 at sample 0 .* class indices 0..2"):
        verifier.margins(multi, multi.init_params(0), X, [3, 0, 1])
