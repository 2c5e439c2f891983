"""General norms (docs/math.md section 9) on the linear model, against linear programs.

For ``Phi = <w, x>`` the l1 / l_inf max-margin problems are linear programs
(``min ||w||_1`` or ``min ||w||_inf`` s.t. ``y_i <x_i, w> >= 1``), solved here
by scipy's HiGHS, independent of the verifier.  A linear model's max-margin
problem is convex, so its KKT points are exactly its minimisers.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linprog

import verifier
from verifier.kkt import check_kkt
from verifier.kkt.norms import dual_distance, fenchel_young, subgradient_distance
from tests.unit.test_kkt_linear import separable, svm_primal


def lp_solution(X, y, norm):
    n, d = X.shape
    A = -(y[:, None] * X)
    if norm == "l1":  # w = a - b, a, b >= 0
        res = linprog(np.ones(2 * d), A_ub=np.hstack([A, -A]), b_ub=-np.ones(n), bounds=[(0, None)] * (2 * d),
                      method="highs")
        return res.x[:d] - res.x[d:], -res.ineqlin.marginals
    # linf: variables (w, t), -t <= w_i <= t
    c = np.zeros(d + 1)
    c[-1] = 1
    A_ub = np.vstack([np.hstack([A, np.zeros((n, 1))]),
                      np.hstack([np.eye(d), -np.ones((d, 1))]), np.hstack([-np.eye(d), -np.ones((d, 1))])])
    b_ub = np.concatenate([-np.ones(n), np.zeros(2 * d)])
    res = linprog(c, A_ub=A_ub, b_ub=b_ub, bounds=[(None, None)] * d + [(0, None)], method="highs")
    return res.x[:d], -res.ineqlin.marginals[:n]


@pytest.mark.parametrize("norm", ["l1", "linf"])
@pytest.mark.parametrize("seed", [0, 1])
def test_lp_solution_is_generalised_kkt(norm, seed):
    X, y = separable(15, 3, seed)
    w, mu = lp_solution(X, y, norm)
    net = verifier.mlp([3, 1], activation="identity")
    rep = check_kkt(net, {"W1": 2.0 * w[None]}, X, y, norm=norm)
    assert rep.verdict == "kkt", (rep.eps_rel, rep.delta_rel)
    N = np.linalg.norm(w, 1 if norm == "l1" else np.inf)
    assert np.isclose(rep.theta_norm, N, rtol=1e-7)
    # multipliers of 1/2 N^2 are N times those of the LP (min N); their sum is N^2 / L
    assert np.isclose(rep.sum_multipliers, N * mu.sum(), rtol=1e-5)
    assert np.isclose(rep.sum_multipliers, N**2, rtol=1e-6)
    assert rep.gap >= rep.delta - 1e-9 and rep.identity_ok

    # the l2 SVM is (generically) not a KKT point of the l1 / l_inf problem, and vice versa
    w2, _ = svm_primal(X, y)
    if np.linalg.norm(w2 / np.linalg.norm(w2) - w / np.linalg.norm(w)) > 1e-3:
        assert check_kkt(net, {"W1": w2[None]}, X, y, norm=norm).verdict == "not_kkt"
        assert check_kkt(net, {"W1": w[None]}, X, y, norm="l2").verdict == "not_kkt"


def test_relu_network_general_norms_identity_and_gap():
    rng = np.random.default_rng(3)
    net = verifier.mlp([3, 5, 1])
    p = net.init_params(3)
    X = rng.normal(size=(10, 3))
    out = verifier.forward(net, p, X)[:, 0]
    X, y = X[np.abs(out) > 1e-3], np.sign(out[np.abs(out) > 1e-3])
    for norm in ("l1", "linf"):
        r = check_kkt(net, p, X, y, norm=norm)
        assert r.identity_ok and r.gap >= r.delta - 1e-12
        assert r.fenchel_young >= -1e-12
        assert r.verdict == "not_kkt"


def test_subgradient_distance_closed_forms_against_brute_force():
    rng = np.random.default_rng(0)
    theta = np.array([2.0, -2.0, 1.0, 0.0])
    for _ in range(20):
        v = rng.normal(size=4) * 3
        # l_inf: d(1/2||.||_inf^2)(theta) = 2 * conv{e_1, -e_2}; l1 distance minimised over a grid of the segment
        a = np.linspace(0, 1, 20001)
        g = 2.0 * np.stack([a, -(1 - a), 0 * a, 0 * a], axis=1)
        brute = np.abs(v - g).sum(1).min()
        assert np.isclose(dual_distance(v, theta, "linf"), brute, atol=1e-3)
        fy_inf = 0.5 * 4.0 + 0.5 * np.abs(v).sum() ** 2 - theta @ v  # FY by hand: ||theta||_inf = 2, dual l1
        assert np.isclose(subgradient_distance(v, theta, "linf"), min(brute, np.sqrt(2 * max(fy_inf, 0))), atol=1e-3)
        # l1: N = 5, g = 5 * (1, -1, 1, [-1, 1]); l_inf distance
        t = np.linspace(-1, 1, 20001)
        g1 = 5.0 * np.stack([0 * t + 1, 0 * t - 1, 0 * t + 1, t], axis=1)
        brute1 = np.abs(v - g1).max(1).min()
        assert np.isclose(dual_distance(v, theta, "l1"), brute1, atol=1e-3)
        fy_1 = 0.5 * 25.0 + 0.5 * np.abs(v).max() ** 2 - theta @ v  # ||theta||_1 = 5, dual l_inf
        assert np.isclose(subgradient_distance(v, theta, "l1"), min(brute1, np.sqrt(2 * max(fy_1, 0))), atol=1e-3)
        # Fenchel-Young is >= 0 and vanishes on the subdifferential
        assert fenchel_young(v, theta, "l1") >= -1e-12 and fenchel_young(v, theta, "linf") >= -1e-12
    assert abs(fenchel_young(np.array([5.0, -5.0, 5.0, 1.0]), theta, "l1")) < 1e-12
    assert abs(fenchel_young(np.array([1.0, -1.0, 0.0, 0.0]), theta, "linf")) < 1e-12
