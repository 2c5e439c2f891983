"""Network expressions and homogeneity proofs.

Oracles: the numeric forward pass evaluated exactly on dyadic floats
(``Fraction``), the graph calculus ``verifier.degree(net)``, sympy's
``homogeneous_order``, and the core's error for non-homogeneous networks.
"""

from fractions import Fraction

import numpy as np
import pytest
import sympy as sp
from hypothesis import given, settings
from hypothesis import strategies as st

import verifier
from verifier.errors import DataError, NotHomogeneousError, ParameterError
from verifier.symbolic import (SymbolicLimitError, TimeBudgetError, input_symbols, network_expr, prove_homogeneity,
                               theta_symbols)


def _exact_equal(expr, value: float) -> bool:
    return sp.Rational(Fraction(float(value)).numerator, Fraction(float(value)).denominator) == expr


@st.composite
def tiny_networks(draw):
    kind = draw(st.sampled_from(["mlp", "mlp", "mlp", "cnn", "diag"]))
    if kind == "diag":
        return verifier.diagonal_linear(draw(st.integers(1, 3)), depth=draw(st.integers(2, 3)))
    act = draw(st.sampled_from(["relu", "abs", "leaky_relu:0.25", "identity", "power:2", "relu_power:2", "leaky_relu:3"]))
    if kind == "cnn":
        return verifier.cnn((1, 3, 3), channels=[draw(st.integers(1, 2))], kernel_size=2, padding=0,
                            pool=draw(st.sampled_from(["max", "avg", None])), pool_size=2, activation=act,
                            outputs=draw(st.integers(1, 2)), bias=draw(st.sampled_from(["none", "first"])))
    widths = [draw(st.integers(1, 3))] + draw(st.lists(st.integers(1, 3), min_size=1, max_size=2)) + [draw(st.integers(1, 2))]
    return verifier.mlp(widths, activation=act, bias=draw(st.sampled_from(["none", "first", "all"])))


@settings(max_examples=25, deadline=None)
@given(net=tiny_networks(), data=st.data())
def test_expression_equals_numeric_forward_exactly(net, data):
    """Dyadic inputs/params with few bits: float64 arithmetic is exact, so the comparison is exact."""
    dy = st.integers(-8, 8).map(lambda k: k / 4)
    params = {p: np.array(data.draw(st.lists(dy, min_size=int(np.prod(s)), max_size=int(np.prod(s)))), dtype=float).reshape(s)
              for p, s in net.param_shapes.items()}
    x = np.array(data.draw(st.lists(dy, min_size=int(np.prod(net.input_shape)), max_size=int(np.prod(net.input_shape)))),
                 dtype=float).reshape(net.input_shape)
    numeric = verifier.forward(net, params, x[None])[0]
    expr = network_expr(net)  # parameters and inputs as symbols
    outs = list(expr) if isinstance(expr, sp.MatrixBase) else [expr]
    sub = {s: sp.Rational(Fraction(float(v))) for s, v in zip(theta_symbols(net), net.flatten(params))}
    sub.update({s: sp.Rational(Fraction(float(v))) for s, v in zip(input_symbols(net).ravel(), x.ravel())})
    assert len(outs) == numeric.shape[0]
    for o, v in zip(outs, numeric):
        exact = o.xreplace(sub)
        assert exact.is_Rational, exact
        assert _exact_equal(exact, v), (exact, v)
    # the params= path gives the same numbers
    direct = network_expr(net, x, params=params)
    d_outs = list(direct) if isinstance(direct, sp.MatrixBase) else [direct]
    assert all(_exact_equal(o, v) for o, v in zip(d_outs, numeric))


def test_network_expr_shapes_and_bad_input():
    net = verifier.mlp([2, 2, 3])
    e = network_expr(net)
    assert isinstance(e, sp.MatrixBase) and e.shape == (3, 1)
    batch = network_expr(net, np.array([[1.0, 0.0], [0.0, 1.0]]))
    assert len(batch) == 2
    with pytest.raises(DataError, match=r"shape \(3,\).*\(2,\)"):
        network_expr(net, [1.0, 2.0, 3.0])
    with pytest.raises(DataError, match="not finite"):
        network_expr(net, [np.nan, 1.0])
    with pytest.raises(ParameterError, match="W2"):
        network_expr(net, params={"W1": np.zeros((2, 2))})
    with pytest.raises(SymbolicLimitError, match=r"parameters is 10.*max_params=5.*max_params=10"):
        network_expr(net, max_params=5)


@pytest.mark.parametrize("net", [
    verifier.mlp([2, 3, 1]),
    verifier.mlp([2, 2, 2, 2], activation="abs"),
    verifier.mlp([2, 2, 1], activation="leaky_relu:0.1", bias="first"),
    verifier.mlp([1, 2, 2, 1], activation="power:2"),
    verifier.mlp([2, 2, 1], activation="relu_power:3"),
    verifier.diagonal_linear(3, depth=3),
    verifier.cnn((1, 3, 3), channels=[1], kernel_size=2, padding=0, pool="max", pool_size=2),
], ids=["relu", "abs-3layer", "leaky-bias1", "power2", "relupow3", "diag3", "cnn-maxpool"])
def test_prove_homogeneity_agrees_with_graph_calculus_and_homogeneous_order(net):
    proof = prove_homogeneity(net, time_budget=None)
    assert proof.kind == "homogeneous"
    assert proof.degree == verifier.degree(net)
    assert proof.identity_residual == [0] * len(proof.identity_residual)
    assert proof.euler_residual == [0] * len(proof.euler_residual)
    assert proof.region_orders and all(o == verifier.degree(net) for o in proof.region_orders)
    assert proof.proved
    # independent numeric spot check of the identity at a random point (c = 3/2)
    p = net.init_params(seed=3)
    X = np.random.default_rng(0).normal(size=(2,) + tuple(net.input_shape))
    scaled = {k: 1.5 * v for k, v in p.items()}
    assert np.allclose(verifier.forward(net, scaled, X), 1.5 ** float(verifier.degree(net)) * verifier.forward(net, p, X))
    assert "PROVED" in str(proof) and r"\Phi" in proof.latex()


def test_wrong_degree_is_not_proved():
    """The identity is tied to the graph degree: claiming L+1 leaves a non-zero residual."""
    net = verifier.mlp([2, 2, 1])
    proof = prove_homogeneity(net, time_budget=None)
    phi = proof.expression
    c = proof.scale
    wrong = sp.expand(proof.scaled - c**3 * phi)
    assert wrong != 0


def test_quasi_homogeneous_weighted_identity():
    net = verifier.mlp([2, 2, 1], bias="all")
    with pytest.raises(NotHomogeneousError):
        verifier.degree(net)
    proof = prove_homogeneity(net, time_budget=None)
    q = verifier.quasi_homogeneous_weights(net)
    assert proof.kind == "quasi-homogeneous" and proof.weights == q.weights
    assert proof.identity_residual == [0] and proof.euler_residual == [0]
    assert proof.region_checks and all(proof.region_checks) and proof.proved
    # numeric oracle: Phi(exp(s r) . theta) = exp(s) Phi(theta)
    p = net.init_params(seed=1)
    X = np.random.default_rng(2).normal(size=(3, 2))
    s = 0.7
    scaled = {k: np.exp(s * float(q.weights[k])) * v for k, v in p.items()}
    assert np.allclose(verifier.forward(net, scaled, X), np.exp(s) * verifier.forward(net, p, X))


def test_non_homogeneous_gives_the_core_error():
    for net in (verifier.mlp([2, 2, 1], activation="sigmoid"), verifier.mlp([2, 2, 1], activation="tanh")):
        with pytest.raises(NotHomogeneousError) as core:
            verifier.degree(net)
        with pytest.raises(NotHomogeneousError) as ours:
            prove_homogeneity(net, time_budget=None)
        assert str(ours.value) == str(core.value) and "act1" in str(ours.value)


def test_limits_and_time_budget():
    with pytest.raises(SymbolicLimitError, match=r"parameters is 86.*max_params=64"):
        prove_homogeneity(verifier.mlp([4, 8, 6, 1]), time_budget=None)
    with pytest.raises(TimeBudgetError, match="time budget of 0.001 s"):
        prove_homogeneity(verifier.cnn((1, 4, 4), channels=[2]), time_budget=0.001)
