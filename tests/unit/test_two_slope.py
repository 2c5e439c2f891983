"""The proof op ``two_slope`` (``z -> a z`` for ``z >= 0``, ``b z`` for ``z < 0``), defined only in
``verifier/ops/two_slope.py``, through the engine, the kink handling, the symbolic layer and splitting.

Oracles: the special cases it covers (relu ``a=1, b=0``, leaky relu ``a=1, b=s``,
abs ``a=1, b=-1``) give the same numbers as those ops; the hand-built kink
point of ``test_kkt_kinks`` (closed-form multipliers and selection); finite
differences; sympy's own ``Piecewise`` for the expression; the wide network's
forward pass and ``T^T T = I`` for splits.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

import verifier
from verifier.kkt import check_kkt
from verifier.numeric.engine import kinks, margin_jacobian, margins
from tests.unit.test_kkt_kinks import C, kink_point

SAME = [("two_slope:1,0", "relu"), ("two_slope:1,-1", "abs"), ("two_slope:1,0.1", "leaky_relu:0.1")]


@pytest.mark.parametrize("spec,twin", SAME)
def test_special_cases_equal_the_ops_they_cover(spec, twin):
    rng = np.random.default_rng(0)
    a, b = verifier.mlp([3, 4, 4, 1], activation=spec), verifier.mlp([3, 4, 4, 1], activation=twin)
    p = a.init_params(1)
    X = rng.normal(size=(6, 3))
    X[0] = 0.0
    np.testing.assert_array_equal(verifier.forward(a, p, X), verifier.forward(b, p, X))
    y = np.sign(rng.normal(size=6))
    np.testing.assert_allclose(margin_jacobian(a, p, X, y), margin_jacobian(b, p, X, y), rtol=0, atol=0)
    assert verifier.degree(a) == verifier.degree(b) == 3


@pytest.mark.parametrize("spec", ["two_slope:2,-0.5", "two_slope:-1,3", "two_slope:0.5,0.5"])
def test_engine_gradients_match_finite_differences(spec):
    net = verifier.mlp([2, 3, 1], activation=spec, bias="first")
    rng = np.random.default_rng(3)
    p = net.init_params(0)
    X = rng.normal(size=(4, 2))
    y = np.array([1.0, -1.0, 1.0, -1.0])
    theta = net.flatten(p)
    J = margin_jacobian(net, theta, X, y)
    h = 1e-6
    for k in range(theta.size):
        e = np.zeros_like(theta)
        e[k] = h
        fd = (margins(net, theta + e, X, y) - margins(net, theta - e, X, y)) / (2 * h)
        np.testing.assert_allclose(J[:, k], fd, atol=1e-6)
    assert verifier.degree(net) == 2  # positively 1-homogeneous for every (a, b)


@pytest.mark.parametrize("spec,twin", SAME)
def test_kink_point_is_kkt_with_the_closed_form_selection(spec, twin):
    net, p, X, y, lam = kink_point(spec)
    rep = check_kkt(net, p, X, y)
    ref = check_kkt(*kink_point(twin)[:4])
    assert rep.verdict == ref.verdict == "kkt" and rep.relaxation == "exact"
    np.testing.assert_allclose(rep.multipliers, [lam, lam, 0.0], atol=1e-7)
    assert np.allclose([s["s"] for s in rep.kink_selections], C, atol=1e-7)
    assert all(s["interval"] == ref_s["interval"] for s, ref_s in zip(rep.kink_selections, ref.kink_selections))


def test_kink_interval_is_min_max_of_the_slopes():
    # slopes (1, 0.7): the interval [0.7, 1] misses the needed selection 3/5 -> not KKT (as leaky_relu:0.7)
    net, p, X, y, _ = kink_point("two_slope:1,0.7")
    rep = check_kkt(net, p, X, y)
    assert rep.verdict == "not_kkt"
    assert all(s["interval"] == [0.7, 1.0] for s in rep.kink_selections)
    # slopes swapped to (0.7, 1): same Clarke interval [0.7, 1]
    net2, p2, X2, y2, _ = kink_point("two_slope:0.7,1")
    assert {tuple(s["interval"]) for s in check_kkt(net2, p2, X2, y2).kink_selections} <= {(0.7, 1.0)}
    # a = b: no kink at all
    net3, p3, X3, _, _ = kink_point("two_slope:0.5,0.5")
    assert kinks(net3, p3, X3) == []


def test_symbolic_layer_uses_the_op():
    from verifier.symbolic import network_expr, solve_kkt
    from verifier.symbolic.functions import clarke_interval

    assert clarke_interval("two_slope", a=2, b=-0.5) == sp.Interval(sp.Rational(-1, 2), 2)
    net = verifier.mlp([1, 1, 1], activation="two_slope:2,-1")
    x = sp.Symbol("x", real=True)
    e = network_expr(net, [x])
    # oracle: sympy's Piecewise form of the op, evaluated at points on both sides and at the kink
    w1, w2 = sp.symbols("W1_0_0 W2_0_0", real=True)
    pw = w2 * sp.Piecewise((2 * w1 * x, w1 * x >= 0), (-w1 * x, True))
    for vals in [(1, 2, 3), (-1, 2, 3), (0, 2, 3), (1.5, -2, -1)]:
        sub = dict(zip((w1, w2, x), map(sp.nsimplify, vals)))
        assert sp.simplify(e.xreplace(sub) - pw.xreplace(sub)) == 0
    # the KKT points of two_slope:1,0 are those of relu (same function, same parameters)
    X, y = [[1, 0], [0, 1]], [1, 1]
    got = solve_kkt(verifier.mlp([2, 1, 1], activation="two_slope:1,0"), X, y, time_budget=None)
    ref = solve_kkt(verifier.mlp([2, 1, 1], activation="relu"), X, y, time_budget=None)
    assert sorted(str(p.theta) for p in got.points) == sorted(str(p.theta) for p in ref.points)
    assert [p.relaxation for p in got.points] == [p.relaxation for p in ref.points]


def test_symbolic_kkt_points_with_general_slopes_are_float_kkt():
    from verifier.symbolic import solve_kkt

    net = verifier.mlp([1, 1, 1], activation="two_slope:2,-1")
    sol = solve_kkt(net, [[1], [-1]], [1, 1], time_budget=None)
    assert sol.points, "the symbolic layer finds KKT points through the op's own facts"
    for pt in sol.points:
        theta = np.array([float(v) for v in pt.theta])
        rep = check_kkt(net, theta, np.array([[1.0], [-1.0]]), np.array([1.0, 1.0]))
        assert rep.verdict == "kkt", (pt.theta, rep.eps_rel)


@pytest.mark.parametrize("spec", ["two_slope:2,-0.5", "two_slope:1,0", "two_slope:-1,0.25"])
def test_neuron_split_through_two_slope(spec):
    net = verifier.mlp([3, 4, 2, 1], activation=spec, bias="first")
    p = net.init_params(0)
    emb = verifier.neuron_split(net, p, layer=1, neuron=2, ratios=["3/5", "4/5"])
    X = np.random.default_rng(1).normal(size=(7, 3))
    np.testing.assert_allclose(verifier.forward(emb.wide_net, emb.wide_params, X), verifier.forward(net, p, X), rtol=1e-12, atol=1e-12)
    T = emb.T.toarray() if hasattr(emb.T, "toarray") else np.asarray(emb.T)
    np.testing.assert_allclose(T.T @ T, np.eye(T.shape[1]), atol=1e-15)
    assert emb.warnings == []


def test_split_identity_is_proved_symbolically_through_two_slope():
    from verifier.symbolic import prove_split_identity

    res = prove_split_identity(verifier.mlp([2, 2, 1], activation="two_slope:3,-2"),
                               ratios=[sp.Rational(3, 5), sp.Rational(4, 5)])
    assert res.holds and res.scaling_exponent == 1


def test_channel_split_through_two_slope_and_maxpool():
    net = verifier.cnn((1, 6, 6), channels=[2], activation="two_slope:1.5,-0.25", pool="max")
    p = net.init_params(2)
    emb = verifier.channel_split(net, p, layer=1, channel=1, ratios=["3/5", "4/5"])
    X = np.random.default_rng(0).normal(size=(3, 1, 6, 6))
    np.testing.assert_allclose(verifier.forward(emb.wide_net, emb.wide_params, X), verifier.forward(net, p, X), rtol=1e-12, atol=1e-12)
