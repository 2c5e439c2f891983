"""Homogeneity calculus against independent oracles: sympy's ``homogeneous_order`` on the
region polynomial of the symbolic network, and numeric scaling ``Phi(c theta) = c^L Phi(theta)``."""

import numpy as np
import pytest
import sympy as sp

import verifier
from verifier import Network, NotHomogeneousError
from verifier.analysis.symbolic_eval import param_symbols, region_functions, symbolic_forward


def _residual():
    return Network([
        {"name": "x", "op": "input", "attrs": {"shape": [3]}},
        {"name": "h1", "op": "dense", "inputs": ["x"], "params": {"weight": "A"}, "attrs": {"out_features": 3}},
        {"name": "r1", "op": "relu", "inputs": ["h1"]},
        {"name": "h2", "op": "dense", "inputs": ["r1"], "params": {"weight": "B"}, "attrs": {"out_features": 3}},
        {"name": "skip", "op": "dense", "inputs": ["x"], "params": {"weight": "S1"}, "attrs": {"out_features": 3}},
        {"name": "skip2", "op": "scale", "inputs": ["skip"], "params": {"scale": "S2"}},
        {"name": "sum", "op": "add", "inputs": ["h2", "skip2"]},
        {"name": "a", "op": "abs", "inputs": ["sum"]},
        {"name": "o", "op": "dense", "inputs": ["a"], "params": {"weight": "C"}, "attrs": {"out_features": 2}},
        {"name": "out", "op": "output", "inputs": ["o"]},
    ])


NETWORKS = {
    "mlp-relu": (verifier.mlp([2, 3, 2, 1]), 3),
    "mlp-leaky": (verifier.mlp([2, 3, 1], activation="leaky_relu:0.25"), 2),
    "mlp-abs-first-bias": (verifier.mlp([2, 2, 2, 1], activation="abs", bias="first"), 3),
    "mlp-identity": (verifier.mlp([2, 2, 1], activation="identity"), 2),
    "mlp-power3": (verifier.mlp([2, 2, 1], activation="power:3"), 4),
    "mlp-power2-deep": (verifier.mlp([2, 2, 2, 1], activation="power:2"), 1 + 2 + 4),
    "mlp-relu_power2": (verifier.mlp([2, 2, 2, 1], activation="relu_power:2"), 7),
    "diagonal-3": (verifier.diagonal_linear(3, depth=3), 3),
    "cnn-max": (verifier.cnn((1, 4, 4), channels=[1], kernel_size=2, padding=0, pool="max"), 2),
    "cnn-avg-stride": (verifier.cnn((2, 5, 5), channels=[1], kernel_size=3, stride=2, padding=1, pool="avg", pool_size=2), 2),
    "residual": (_residual(), 3),
}


@pytest.mark.parametrize("key", sorted(NETWORKS))
def test_degree_matches_sympy_homogeneous_order(key):
    net, expected = NETWORKS[key]
    assert verifier.degree(net) == expected
    rng = np.random.default_rng(0)
    syms = [s for arr in param_symbols(net).values() for s in arr.ravel()]
    checked = 0
    for seed in range(30):  # a random region; skip the rare all-dead ones (output identically 0)
        params = net.init_params(seed=seed)
        x = rng.integers(-3, 4, size=net.input_shape)
        out = symbolic_forward(net, x, fns=region_functions(net, params))
        for expr in out.ravel():
            poly = sp.expand(expr)
            if poly != 0:
                assert sp.homogeneous_order(poly, *syms) == expected
                checked += 1
        if checked >= 2:
            break
    assert checked >= 2


@pytest.mark.parametrize("key", sorted(NETWORKS))
def test_numeric_scaling_identity(key):
    net, L = NETWORKS[key]
    theta = net.flatten(net.init_params(seed=5))
    X = np.random.default_rng(1).normal(size=(6, *net.input_shape))
    base = verifier.forward(net, theta, X)
    for c in (0.3, 2.0, 7.5):
        np.testing.assert_allclose(verifier.forward(net, c * theta, X), c**L * base, rtol=1e-11, atol=1e-12)


def test_per_node_degrees_power_chain():
    net = verifier.mlp([2, 2, 2, 2, 1], activation="power:2")
    d = verifier.degrees(net)
    assert [d[n] for n in ("fc1", "act1", "fc2", "act2", "fc3", "act3", "fc4")] == [1, 2, 3, 6, 7, 14, 15]
    assert verifier.degree(net) == 1 + 2 + 4 + 8


def test_not_homogeneous_messages():
    with pytest.raises(NotHomogeneousError, match=r"node 'act1': sigmoid is not positively homogeneous"):
        verifier.degree(verifier.mlp([2, 3, 1], activation="sigmoid"))
    with pytest.raises(NotHomogeneousError, match=r"node 'fc2_bias': bias adds a parameter of degree 1 to an input of degree 2 "
                                                  r"\(it is quasi-homogeneous"):
        verifier.degree(verifier.mlp([2, 3, 1], bias="all"))
    net = Network([
        {"name": "x", "op": "input", "attrs": {"shape": [2]}},
        {"name": "h1", "op": "dense", "inputs": ["x"], "params": {"weight": "A"}, "attrs": {"out_features": 2}},
        {"name": "a1", "op": "relu", "inputs": ["h1"]},
        {"name": "h2", "op": "dense", "inputs": ["a1"], "params": {"weight": "B"}, "attrs": {"out_features": 2}},
        {"name": "h2b", "op": "add", "inputs": ["h2", "h1"]},
        {"name": "o", "op": "dense", "inputs": ["h2b"], "params": {"weight": "C"}, "attrs": {"out_features": 1}},
        {"name": "out", "op": "output", "inputs": ["o"]},
    ])
    with pytest.raises(NotHomogeneousError, match=r"node 'h2b': add has summands of degree 2 and 1"):
        verifier.degree(net)


def test_quasi_homogeneous_weights_are_exact_and_work_numerically():
    net = verifier.mlp([2, 3, 3, 1], bias="all")
    q = verifier.quasi_homogeneous_weights(net)
    assert q.exists and not q.homogeneous
    assert all(isinstance(v, sp.Rational) and v > 0 for v in q.weights.values())
    # every degree equation holds exactly at the returned weights
    subs = {sp.Symbol(f"r_{p}", real=True): v for p, v in q.weights.items()}
    assert all(sp.simplify(e.subs(subs)) == 0 for e in q.equations)
    params = net.init_params(0)
    X = np.random.default_rng(0).normal(size=(5, 2))
    for s in (-0.7, 0.4, 1.3):
        scaled = {p: np.exp(s * float(q.weights[p])) * v for p, v in params.items()}
        np.testing.assert_allclose(verifier.forward(net, scaled, X), np.exp(s) * verifier.forward(net, params, X), rtol=1e-12)


def test_quasi_weights_of_homogeneous_network_are_one_over_L():
    q = verifier.quasi_homogeneous_weights(verifier.mlp([2, 3, 3, 1]))
    assert q.homogeneous and set(q.weights.values()) == {sp.Rational(1, 3)}


def test_quasi_homogeneous_impossible():
    # z^2 after a first-layer bias: b1 must weigh r_W1, the output needs 2 r_W1 + r_W2 = 1, fine;
    # but a bias added to the *output of a power layer* and also to its input has no positive solution
    net = Network([
        {"name": "x", "op": "input", "attrs": {"shape": [2]}},
        {"name": "h", "op": "dense", "inputs": ["x"], "params": {"weight": "W"}, "attrs": {"out_features": 2}},
        {"name": "p", "op": "power", "inputs": ["h"], "attrs": {"k": 2}},
        {"name": "s", "op": "add", "inputs": ["p", "h"]},
        {"name": "o", "op": "dense", "inputs": ["s"], "params": {"weight": "V"}, "attrs": {"out_features": 1}},
        {"name": "out", "op": "output", "inputs": ["o"]},
    ])
    q = verifier.quasi_homogeneous_weights(net)
    assert not q.exists
    assert "weight <= 0 to ['W']" in q.reason
    with pytest.raises(NotHomogeneousError):
        verifier.quasi_homogeneous_weights(verifier.mlp([2, 2, 1], activation="tanh"))
