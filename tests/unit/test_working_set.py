"""The working-set loop on explicit concave QPs: the restricted optimum it returns is the full optimum
(oracle: cvxpy/Clarabel on the whole problem), the working set follows the support instead of doubling,
and only the support has to fit under ``max_size``."""

from types import SimpleNamespace

import cvxpy as cp
import numpy as np
import pytest

from verifier.kkt.errors import KKTError
from verifier.kkt.working_set import solve_working_set


def _problem(seed, m=300, P=20):
    """A linear max-margin dual: rows ``h_r = y_r x_r`` of two separated Gaussian clouds, ``c_r = 1`` plus a
    little noise (the tangent dual's ``c = 1 + (L - 1) q``); few rows carry multipliers."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(P)
    X = rng.standard_normal((m, P))
    y = np.sign(X @ w)
    X += 1.5 * y[:, None] * w / np.linalg.norm(w)  # a margin between the clouds
    A = y[:, None] * X  # rows h_r; G = A A^T
    c = 1.0 + 0.05 * rng.random(m)
    q = A @ w / np.linalg.norm(w)  # margins: only order the initial working set
    return A, c, q


def _qp(A, c):
    lam = cp.Variable(A.shape[0], nonneg=True)
    prob = cp.Problem(cp.Maximize(c @ lam - 0.5 * cp.sum_squares(A.T @ lam)))
    prob.solve(solver=cp.CLARABEL)
    assert prob.status == "optimal", prob.status
    return np.maximum(lam.value, 0.0), prob.value


def _loop(A, c, q, **kw):
    def solve(W, warm):
        lam, _ = _qp(A[W], c[W])
        lam[lam < 1e-7 * lam.max()] = 0.0  # an interior-point answer: exact zeros off the support
        return SimpleNamespace(lam=lam, v=A[W].T @ lam)

    return solve_working_set(q, c, solve, lambda s: A @ s.v, price_rtol=1e-7, **kw)


def _dual(A, c, lam):
    return float(c @ lam - 0.5 * np.sum((A.T @ lam) ** 2))


@pytest.mark.parametrize("seed", range(3))
def test_restricted_optimum_is_the_full_optimum_and_the_set_follows_the_support(seed):
    A, c, q = _problem(seed)
    full_lam, full_val = _qp(A, c)
    seen = []
    sol, W, info = _loop(A, c, q, init_size=5, progress=seen.append)
    lam = np.zeros(A.shape[0])
    lam[W] = sol.lam
    assert _dual(A, c, lam) == pytest.approx(full_val, rel=1e-6)
    assert np.allclose(A.T @ lam, A.T @ full_lam, rtol=1e-4, atol=1e-6)  # v = sum lambda_r h_r is unique
    assert np.all(c - A @ (A.T @ lam) <= 1e-5)  # dual optimality on every row, not only on W
    assert len(seen) >= 2 and info.sizes[0] == 5
    # every round's working set is within 2 (|support of the previous round| + rows added), never a doubling
    for prev, size, added in zip(seen, info.sizes[1:], info.added):
        assert size <= max(2 * (prev["support"] + added), 2 * 5)
    assert info.max_violation <= info.price_tol


def test_a_memory_limit_that_holds_the_support_is_enough():
    A, c, q = _problem(7, m=400, P=25)
    full_lam, full_val = _qp(A, c)
    s = int(np.sum(full_lam > 1e-6 * full_lam.max()))
    sol, W, info = _loop(A, c, q, init_size=5, max_size=s + 10)
    lam = np.zeros(A.shape[0])
    lam[W] = sol.lam
    assert _dual(A, c, lam) == pytest.approx(full_val, rel=1e-6)
    assert max(info.sizes) <= s + 10


def test_a_support_larger_than_the_limit_is_a_clear_error():
    A, c, q = _problem(7, m=400, P=25)
    full_lam, _ = _qp(A, c)
    s = int(np.sum(full_lam > 1e-6 * full_lam.max()))
    with pytest.raises(KKTError, match=r"the support \(\d+ constraints\) plus one violated row needs a working set "
                                       r"of \d+ constraints \(limit \d+, from the memory limit\)"):
        _loop(A, c, q, init_size=5, max_size=s // 2)
    with pytest.raises(KKTError, match=r"the initial working set .* needs a working set of 5 constraints \(limit 4"):
        _loop(A, c, q, init_size=5, max_size=4)
