"""Issue 13, item 5: the l_inf / l1 stationarity measure tends to 0 along sign / coordinate descent.

Oracles: the l_inf and l1 max-margin problems of a linear model solved as linear
programs (``scipy.optimize.linprog``, independent of cvxpy), weak duality of that
convex problem (``1/2||theta_hat||^2 - OPT <= gap``), and the Fenchel-Young gap
recomputed by hand with numpy from the reported multipliers.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.optimize import linprog

import verifier
from verifier.kkt.norms import dual_distance, fenchel_young, subgradient_distance

N_SAMPLES, DIM = 6, 12


def data():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(N_SAMPLES, DIM))
    y = np.where(rng.normal(size=N_SAMPLES) >= 0, 1.0, -1.0)
    return X, y


def lp_min_norm(X, y, norm):
    """min ||w|| s.t. y_i <w, x_i> >= 1 as an LP; returns (w, ||w||)."""
    n, d = X.shape
    Z = y[:, None] * X
    if norm == "linf":  # variables (w, t): min t, -t <= w_j <= t
        A = np.vstack([np.c_[-Z, np.zeros(n)], np.c_[np.eye(d), -np.ones(d)], np.c_[-np.eye(d), -np.ones(d)]])
        res = linprog(np.r_[np.zeros(d), 1.0], A_ub=A, b_ub=np.r_[-np.ones(n), np.zeros(2 * d)],
                      bounds=[(None, None)] * (d + 1), method="highs")
        return res.x[:d], res.fun
    res = linprog(np.ones(2 * d), A_ub=np.c_[-Z, Z], b_ub=-np.ones(n), bounds=[(0, None)] * (2 * d), method="highs")
    return res.x[:d] - res.x[d:], res.fun


def by_hand(report, X, y, norm):
    """(eps, FY) from the report's multipliers, numpy only: v = sum lambda_i y_i x_i for the linear model."""
    th = report.theta_hat
    v = (report.multipliers * y) @ X
    N = np.abs(th).max() if norm == "linf" else np.abs(th).sum()
    Nd = np.abs(v).sum() if norm == "linf" else np.abs(v).max()
    fy = 0.5 * N**2 + 0.5 * Nd**2 - th @ v
    return fy


@pytest.mark.parametrize("method,norm,lr,bound", [("sign", "linf", 0.01, 0.12), ("coordinate", "l1", 0.05, 0.2)])
def test_stationarity_measure_tends_to_zero_along_steepest_descent(method, norm, lr, bound):
    X, y = data()
    net = verifier.mlp([DIM, 1], activation="identity")
    w_lp, opt = lp_min_norm(X, y, norm)
    # the LP solution is a KKT point of the flavoured problem
    r_lp = verifier.check_kkt(net, {"W1": w_lp[None]}, X, y, norm=norm)
    assert r_lp.verdict == "kkt" and r_lp.eps_rel < 1e-6
    assert r_lp.theta_norm == pytest.approx(opt, rel=1e-7)

    res = verifier.train(net, None, X, y, method=method, steps=4000, lr=lr, checkpoint_every=[1000, 4000],
                         progress=False)
    eps_rel, dist_rel = [], []
    for step in (1000, 4000):
        th = res.checkpoints[step]
        r = verifier.check_kkt(net, th, X, y, norm=norm)
        tn = r.theta_norm
        # weak duality of the (convex) linear problem against the LP optimum
        assert -1e-9 <= 0.5 * tn**2 - 0.5 * opt**2 <= r.gap + 1e-9 * tn**2
        fy = by_hand(r, X, y, norm)
        assert fy == pytest.approx(r.fenchel_young, rel=1e-6, abs=1e-12 * tn**2)
        assert r.eps <= np.sqrt(2 * max(fy, 0)) * (1 + 1e-9) + 1e-12 * tn
        eps_rel.append(r.eps_rel)
        v = (r.multipliers * y) @ X
        dist_rel.append(dual_distance(v, r.theta_hat, norm) / tn)
    # the margin approaches the LP optimum and the measure goes down with it
    q = verifier.margins(net, res.theta, X, y)
    margin = q.min() / (np.abs(res.theta).max() if norm == "linf" else np.abs(res.theta).sum())
    assert margin == pytest.approx(1 / opt, rel=0.03)
    assert eps_rel[1] < 0.75 * eps_rel[0] and eps_rel[1] < bound
    # the plain dual-norm distance (the old measure) does not go to 0 on these runs
    assert min(dist_rel) > 0.5


def test_near_ties_closed_form():
    """theta = (1, 1 - e): v = (1/2, 1/2) has FY = e/2 (eps = sqrt(e)), but distance 1 to the vertex 1 * e_1."""
    v = np.array([0.5, 0.5])
    for e in (1e-2, 1e-4, 1e-8):
        th = np.array([1.0, 1.0 - e])
        assert fenchel_young(v, th, "linf") == pytest.approx(e / 2, rel=1e-6)
        assert subgradient_distance(v, th, "linf") == pytest.approx(np.sqrt(e), rel=1e-5)
        assert dual_distance(v, th, "linf") == pytest.approx(1.0)
    # l1 analogue: theta = (1, e): the subgradients are (N, N) with N = 1 + e; v = (1, 0) has FY = (1 + e)^2/2 + 1/2 - 1
    for e in (1e-3, 1e-6):
        th = np.array([1.0, e])
        fy = 0.5 * (1 + e) ** 2 + 0.5 - 1.0
        assert fenchel_young(np.array([1.0, 0.0]), th, "l1") == pytest.approx(fy, rel=1e-6)
        assert subgradient_distance(np.array([1.0, 0.0]), th, "l1") == pytest.approx(np.sqrt(2 * fy), rel=1e-5)


def test_l2_measure_unchanged():
    rng = np.random.default_rng(1)
    for _ in range(5):
        th, v = rng.normal(size=7), rng.normal(size=7)
        assert subgradient_distance(v, th, "l2") == pytest.approx(np.linalg.norm(th - v))
        assert np.sqrt(2 * fenchel_young(v, th, "l2")) == pytest.approx(np.linalg.norm(th - v))
