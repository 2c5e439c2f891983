"""Kink tolerances are relative to the scale they live at (issue: absolute prune threshold).

Oracle: positive homogeneity.  For a bias-free network, rescaling the data by
``c`` or a layer's weights by ``c`` rescales every pre-activation of a node by
the same factor, so the kinks, the KKT verdict, ``eps_rel`` and the kink
selections must equal the unscaled ones (computed independently at scale 1).
"""

from __future__ import annotations

import numpy as np
import pytest

import verifier
from verifier.kkt import check_kkt
from verifier.kkt.kinks import build_pieces, prune
from verifier.numeric.data import constraints
from verifier.numeric.engine import kinks, kinks_from, run_forward
from tests.unit.test_kkt_kinks import kink_point

NET = verifier.mlp([2, 2, 1])
P = {"W1": np.eye(2), "W2": np.array([[1.0, 1.0]])}
X = np.array([[1.0, -0.5], [0.0, 1.0]])
Y = np.array([1.0, 1.0])


def test_issue_point_is_kkt_with_selection_one_half():
    rep = check_kkt(NET, P, X, Y)
    assert rep.verdict == "kkt" and rep.relaxation == "exact"
    # closed form: stationarity of W1[1, :] needs s * lambda_0 * x_0[1] + lambda_1 * x_1[1] = 0 at the kink of unit 1
    assert [round(s["s"], 9) for s in rep.kink_selections] == [0.5]


@pytest.mark.parametrize("c", [1e-10, 1e-5, 1e5, 1e10])
def test_scaled_data_gives_the_unscaled_verdict(c):
    ref = check_kkt(NET, P, X, Y)
    rep = check_kkt(NET, P, X * c, Y)
    assert rep.verdict == ref.verdict == "kkt"
    assert rep.eps_rel == pytest.approx(ref.eps_rel, abs=1e-9)
    assert rep.relaxation == ref.relaxation
    assert [round(s["s"], 7) for s in rep.kink_selections] == [round(s["s"], 7) for s in ref.kink_selections]
    assert rep.kinks_found == ref.kinks_found


@pytest.mark.parametrize("c1,c2", [(1e-6, 1.0), (1.0, 1e8), (1e7, 1e-7), (3.0, 0.25), (1e-8, 1e-8), (1e9, 1e9)])
def test_scaled_layers_give_the_same_kinks(c1, c2):
    net, p, Xk, y, _ = kink_point()
    ref = {(k.node, k.sample, k.unit) for k in kinks(net, p, Xk)}
    assert ref  # the kink point has kinks
    q = {"W1": p["W1"] * c1, "W2": p["W2"] * c2}
    assert {(k.node, k.sample, k.unit) for k in kinks(net, q, Xk)} == ref
    fp, fq = run_forward(net, p, Xk), run_forward(net, q, Xk)
    cons = constraints(net, y)
    assert [(k.node, k.sample) for k in prune(fq, kinks_from(fq, 1e-9), 1e-9)] == \
           [(k.node, k.sample) for k in prune(fp, kinks_from(fp, 1e-9), 1e-9)]
    assert len(build_pieces(fq, cons, kinks_from(fq, 1e-9), 1e-9).slots) == \
           len(build_pieces(fp, cons, kinks_from(fp, 1e-9), 1e-9).slots)
    if c1 == c2:  # a uniform rescaling keeps the KKT point (theta_hat is scale-free); unbalanced ones do not
        assert check_kkt(net, q, Xk, y).verdict == "kkt"


def test_kink_values_and_scales_scale_together():
    rng = np.random.default_rng(0)
    net = verifier.mlp([3, 5, 4, 1])
    p = net.init_params(0)
    Xr = rng.normal(size=(6, 3))
    p["W1"][2] = 0.0  # unit 2 of layer 1: z = 0 for every sample, but its gradient x is not 0
    base = kinks(net, p, Xr)
    assert {(k.node, k.unit) for k in base} >= {("act1", (2,))}
    for c in (1e-9, 1e9):
        sc = kinks(net, p, Xr * c)
        assert [(k.node, k.sample, k.unit) for k in sc] == [(k.node, k.sample, k.unit) for k in base]
        for a, b in zip(sc, base):
            assert a.scale == pytest.approx(b.scale * c, rel=1e-12)


def test_tolerance_is_relative_to_the_node_scale():
    net = verifier.mlp([2, 2, 1])
    p = {"W1": np.array([[1.0, 1e-12], [1.0, 1.0]]), "W2": np.array([[1.0, 1.0]])}
    Xs = np.array([[0.0, 1.0]])  # z = (1e-12, 1): relative 1e-12 of the node's scale 1
    for c in (1.0, 1e-20, 1e20):
        assert [k.unit for k in kinks(net, p, Xs * c, tol=1e-9)] == [(0,)]
        assert kinks(net, p, Xs * c, tol=1e-13) == []
        assert kinks(net, p, Xs * c, tol=1e-9)[0].scale == pytest.approx(c)


def test_relu_power_one_keeps_its_kinks():
    # relu_power with k = 1 is relu: same kinks, same verdict (it used to lose them and say not_kkt)
    ref = check_kkt(*kink_point("relu")[:4])
    rep = check_kkt(*kink_point("relu_power:1")[:4])
    assert rep.verdict == ref.verdict == "kkt"
    assert rep.relaxation == "exact" and rep.kinks_found == ref.kinks_found
    assert rep.eps_rel == pytest.approx(ref.eps_rel, abs=1e-9)
    assert kinks(*kink_point("relu_power:2")[:2], kink_point()[2]) == []  # relu^2 is differentiable at 0
