"""KKT checks on linear and deep linear models against independent SVM solvers.

Oracles: the hard-margin SVM without intercept solved as a *primal* QP
(cvxpy/CLARABEL, whose constraint duals are the multipliers) and, for the
point, also by scipy SLSQP; the multiclass SVM (one constraint per wrong
class) likewise.  None of these touch the verifier's dual code.
"""

from __future__ import annotations

import cvxpy as cp
import numpy as np
import pytest
from scipy.optimize import minimize

import verifier
from verifier.kkt import check_kkt


def separable(n: int, d: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w = rng.normal(size=d)
    X = rng.normal(size=(4 * n, d))
    s = X @ w / np.linalg.norm(w)
    X = X[np.abs(s) > 0.3][:n]
    return X, np.sign(X @ w)


def svm_primal(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hard-margin SVM without intercept: (w, multipliers) from the primal QP."""
    w = cp.Variable(X.shape[1])
    con = [cp.multiply(y, X @ w) >= 1]
    cp.Problem(cp.Minimize(0.5 * cp.sum_squares(w)), con).solve(solver=cp.CLARABEL, tol_gap_abs=1e-12,
                                                                tol_gap_rel=1e-12, tol_feas=1e-12)
    return np.asarray(w.value), np.maximum(np.asarray(con[0].dual_value), 0.0)


def svm_slsqp(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    res = minimize(lambda w: 0.5 * w @ w, np.ones(X.shape[1]) * 0.1, jac=lambda w: w, method="SLSQP",
                   constraints=[{"type": "ineq", "fun": lambda w: y * (X @ w) - 1, "jac": lambda w: y[:, None] * X}],
                   options={"ftol": 1e-14, "maxiter": 500})
    return res.x


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linear_svm_is_kkt_with_svm_multipliers(seed):
    X, y = separable(15, 3, seed)
    w, alpha = svm_primal(X, y)
    assert np.allclose(w, svm_slsqp(X, y), atol=1e-6)  # two independent oracles agree
    net = verifier.mlp([3, 1], activation="identity")
    rep = check_kkt(net, {"W1": 3.0 * w[None]}, X, y)  # any positive multiple: normalised to margin 1
    assert rep.verdict == "kkt"
    assert rep.relaxation == "none" and rep.solver == "nnls"
    assert np.isclose(rep.scale, 3.0, rtol=1e-8)
    assert np.allclose(rep.theta_hat, w, atol=1e-7)
    assert np.allclose(rep.multipliers, alpha, atol=1e-6 * max(1.0, alpha.max()))
    assert set(rep.support.tolist()) == set(np.flatnonzero(alpha > 1e-6).tolist())
    # Euler consistency and the gap identity
    assert np.isclose(rep.sum_multipliers, w @ w, rtol=1e-7)
    assert rep.identity_ok and abs(rep.identity_residual) < 1e-10 * (w @ w)
    assert rep.eps_rel < 1e-9 and rep.delta_rel < 1e-9
    assert np.isclose(rep.normalized_margin, 1.0 / np.linalg.norm(w), rtol=1e-9)


@pytest.mark.parametrize("seed", [0, 1])
def test_perturbed_linear_point_is_not_kkt(seed):
    X, y = separable(15, 3, seed)
    w, _ = svm_primal(X, y)
    rng = np.random.default_rng(10 + seed)
    wp = w + 0.05 * np.linalg.norm(w) * rng.normal(size=3)
    net = verifier.mlp([3, 1], activation="identity")
    rep = check_kkt(net, {"W1": wp[None]}, X, y)
    assert rep.verdict == "not_kkt"
    assert rep.eps_rel > 1e-4 or rep.delta_rel > 1e-4
    assert rep.identity_ok
    # the normalised perturbed point has a larger norm than the SVM (it is feasible but not optimal)
    assert rep.theta_norm > np.linalg.norm(w)


def test_duplicated_samples_rank_deficient_gram():
    X, y = separable(10, 2, 3)
    X, y = np.vstack([X, X]), np.concatenate([y, y])  # G has rank 2, m = 20; multipliers not unique
    w, _ = svm_primal(X, y)
    net = verifier.mlp([2, 1], activation="identity")
    for solver in ("nnls", "clarabel"):
        rep = check_kkt(net, {"W1": w[None]}, X, y, solver=solver)
        assert rep.verdict == "kkt", solver
        assert np.isclose(rep.sum_multipliers, w @ w, rtol=1e-6)
        # multipliers of duplicated samples add up to a valid certificate: recompute v = sum lambda_i y_i x_i
        v = (rep.multipliers * y) @ X
        assert np.allclose(v, w, atol=1e-6 * np.linalg.norm(w))


def balanced(w: np.ndarray, widths: list[int], seed: int) -> dict[str, np.ndarray]:
    """A balanced factorisation W_L ... W_1 = w^T with ||W_l||_F = ||w||^(1/L) for every layer."""
    rng = np.random.default_rng(seed)
    L = len(widths) - 1
    rho = np.linalg.norm(w) ** (1.0 / L)
    dirs = [w / np.linalg.norm(w)] + [rng.normal(size=k) for k in widths[1:-1]] + [np.ones(1)]
    dirs = [d / np.linalg.norm(d) for d in dirs]
    return {f"W{l}": rho * np.outer(dirs[l], dirs[l - 1]) for l in range(1, L + 1)}


@pytest.mark.parametrize("widths", [[3, 4, 1], [3, 3, 2, 1]])
def test_deep_linear_balanced_is_kkt_unbalanced_is_not(widths):
    X, y = separable(15, 3, 4)
    w, alpha = svm_primal(X, y)
    net = verifier.mlp(widths, activation="identity")
    L = len(widths) - 1
    p = balanced(w, widths, seed=5)
    assert np.allclose(verifier.forward(net, p, X)[:, 0], X @ w)
    rep = check_kkt(net, p, X, y)
    assert rep.verdict == "kkt" and rep.degree == L
    # multipliers: lambda = alpha * ||w||^((2 - 2L) / L) (stationarity in W_1 plus the SVM identity)
    expect = alpha * np.linalg.norm(w) ** ((2.0 - 2.0 * L) / L)
    assert np.allclose(rep.multipliers, expect, atol=1e-6 * expect.max())
    assert np.isclose(rep.sum_multipliers, rep.theta_norm ** 2 / L, rtol=1e-8)

    q = dict(p)
    q["W1"] = 2.0 * p["W1"]
    q[f"W{L}"] = 0.5 * p[f"W{L}"]
    assert np.allclose(verifier.forward(net, q, X), verifier.forward(net, p, X))  # same predictor
    rep2 = check_kkt(net, q, X, y)
    assert rep2.verdict == "not_kkt"
    assert rep2.eps_rel > 1e-2
    assert rep2.identity_ok


def test_multiclass_linear_matches_multiclass_svm():
    rng = np.random.default_rng(7)
    C, d, n = 3, 4, 18
    Wt = rng.normal(size=(C, d))
    X = rng.normal(size=(4 * n, d))
    S = X @ Wt.T
    top2 = np.sort(S, axis=1)
    X = X[top2[:, -1] - top2[:, -2] > 0.3][:n]
    y = (X @ Wt.T).argmax(1)
    W = cp.Variable((C, d))
    cons, rows = [], []
    for i in range(n):
        for j in range(C):
            if j != y[i]:
                cons.append((W[y[i]] - W[j]) @ X[i] >= 1)
                rows.append((i, j))
    cp.Problem(cp.Minimize(0.5 * cp.sum_squares(W)), cons).solve(solver=cp.CLARABEL, tol_gap_abs=1e-12,
                                                                 tol_gap_rel=1e-12, tol_feas=1e-12)
    alpha = np.array([max(float(c.dual_value), 0.0) for c in cons])
    net = verifier.mlp([d, C], activation="identity")
    rep = check_kkt(net, {"W1": W.value}, X, y)
    assert rep.verdict == "kkt"
    assert rep.n_constraints == n * (C - 1)
    assert np.allclose(rep.multipliers, alpha, atol=1e-6 * alpha.max())
    assert np.isclose(rep.sum_multipliers, np.sum(W.value ** 2), rtol=1e-7)
    # a perturbed point is not
    rep2 = check_kkt(net, {"W1": W.value + 0.1 * rng.normal(size=(C, d))}, X, y)
    assert rep2.verdict == "not_kkt"
