"""Solvers for the tangent dual (docs/math.md sections 4-5).

    maximize  D(lambda) = sum_i lambda_i c_i - 1/2 lambda^T G lambda,   lambda >= 0,

with ``c_i = 1 + (L - 1) q_i`` and ``G = J J^T``.  It is the dual of the
tangent max-margin problem ``min 1/2||v||^2 s.t. J v >= c``, a *least distance
problem* (LDP).  Two routes:

* **NNLS fast path** (Lawson & Hanson, *Solving Least Squares Problems*,
  ch. 23): an LDP ``min ||v|| s.t. J v >= c`` is solved by the NNLS problem
  ``min_{u >= 0} ||E u - f||`` with ``E = [J^T; c^T]`` and ``f = e_{P+1}``;
  then ``rho = 1 - c.u > 0`` and ``lambda = u / rho`` are the LDP
  multipliers (``v = J^T lambda``).  Only ``E^T E = G + c c^T`` and
  ``E^T f = c`` enter, so the NNLS problem is solved on its normal equations
  ``(G + c c^T) u = c`` by Lawson & Hanson's active-set method with Cholesky
  up-dates of the passive block (:mod:`verifier.kkt.nnls`; rank-deficient
  ``G`` is fine: the passive columns of ``E`` stay independent).  The
  constraints are scaled by ``1/||theta||`` first so that ``rho`` is of
  order 1.  No ``J`` is formed, and no factor of the whole matrix.
* **cvxpy** (CLARABEL, fallback OSQP; never ECOS): the dual written with a
  factor of ``G`` (or of the Gram matrix of ``[J; pieces]`` with kinks), or,
  for the l1 / l_inf flavours, with ``J`` itself and the dual norm.

Both are followed by :func:`refine`, a Newton step on the support that is
kept only if it lowers the duality gap.

At kinks the convex dual is solved by cvxpy only; an interior-point solver
(CLARABEL) then stops strictly inside the selection intervals (``s ~ 1e-6``
where the exact answer is an interval end).  The *polish* step of
:func:`verifier.kkt.check.check_kkt` fixes the selections (snapped to the
interval ends when close), so that the subgradients ``h_i`` are fixed
vectors with Gram matrix :func:`fixed_gram`, and re-solves that plain dual
with the NNLS fast path.
"""

from __future__ import annotations

import warnings as _warnings
from typing import Any

import numpy as np
import scipy.linalg as sla
from scipy.linalg import lapack

from .errors import KKTError


def factor_psd(K: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Cholesky ``K = R^T R`` with rank detection: plain ``dpotrf`` when ``K`` is safely positive
    definite (2-3x faster), the pivoted ``dpstrf`` only when it is not.

    Returns ``(R, U_rr, piv, rank)``: ``R`` is ``rank x n`` in the original
    column order, ``U_rr`` the leading triangular block and ``piv`` the pivot
    order (0-based), for solving ``R^T b = rhs``.

    >>> K = np.array([[4.0, 2.0], [2.0, 1.0]])   # rank 1
    >>> R, _, _, r = factor_psd(K)
    >>> r, np.allclose(R.T @ R, K)
    (1, True)
    >>> factor_psd(np.array([[4.0, 2.0], [2.0, 3.0]]))[3]   # positive definite: dpotrf
    2
    """
    n = K.shape[0]
    if n == 0:
        return np.zeros((0, 0)), np.zeros((0, 0)), np.zeros(0, dtype=int), 0
    K = 0.5 * (K + K.T)
    if not np.any(K):
        return np.zeros((0, n)), np.zeros((0, 0)), np.arange(n), 0
    cf, info = lapack.dpotrf(K, lower=0, clean=1)
    if info == 0:
        d = np.diag(cf)
        # a pivot far below the diagonal's scale means K is numerically singular: use the pivoted factor
        if d.min() > POTRF_RTOL * np.sqrt(np.abs(np.diag(K)).max()):
            return cf, cf, np.arange(n), n
    cf, piv, rank, info = lapack.dpstrf(K, lower=0, tol=-1.0)
    if info < 0:  # pragma: no cover - LAPACK argument error
        raise KKTError(f"pivoted Cholesky failed (info={info})")
    piv = piv - 1
    U = np.triu(cf[:rank, :])
    R = np.zeros((rank, n))
    R[:, piv] = U
    return R, U[:, :rank], piv, int(rank)


#: ``dpotrf``'s factor is used only when every pivot exceeds this times ``sqrt(max diag K)``.
POTRF_RTOL = 1e-7


def dual_gap(G: np.ndarray, c: np.ndarray, lam: np.ndarray, theta_sq: float) -> float:
    """``1/2 ||theta||^2 - D(lambda)`` from the Gram matrix."""
    return 0.5 * theta_sq - float(c @ lam) + 0.5 * float(lam @ G @ lam)


def solve_nnls(G: np.ndarray, c: np.ndarray, theta_sq: float, *,
               warm: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Dual optimum by the LDP -> NNLS reduction (see the module docstring).

    The NNLS problem is solved on its normal equations ``(G + c~ c~^T) u = c~``
    by :func:`verifier.kkt.nnls.nnls_gram` (Lawson-Hanson with Cholesky
    up-dates; no factor of the whole matrix); ``warm`` (indices) starts from a
    previous support.

    >>> G = np.array([[1.0]]); c = np.array([1.0])      # one constraint <h, v> >= 1, ||h|| = 1
    >>> lam, info = solve_nnls(G, c, theta_sq=1.0)
    >>> float(np.round(lam[0], 12))
    1.0
    """
    from .nnls import nnls_gram

    sig = float(np.sqrt(theta_sq)) if theta_sq > 0 else 1.0
    cs = c / sig
    M = G + np.outer(cs, cs)
    u, ninfo = nnls_gram(M, cs, passive=warm)
    rho = 1.0 - float(cs @ u)
    if not rho > 1e-14:
        raise KKTError(f"NNLS reduction broke down (rho = {rho:.3g}); the tangent problem looks infeasible")
    lam = sig * u / rho
    return lam, {"rho": rho, "iterations": ninfo.iterations, "refused": ninfo.refused,
                 "refactorizations": ninfo.refactorizations}


def refine(G: np.ndarray, c: np.ndarray, lam: np.ndarray, theta_sq: float, *, rounds: int = 20) -> np.ndarray:
    """Finish with active-set Newton steps on the support (``G_SS lam_S = c_S``).

    Negative components leave the support, the most violated dual condition
    (``c_i - (G lam)_i > 0`` with ``lam_i = 0``) enters it; a candidate is
    kept only if it lowers the duality gap, so this never makes ``lam`` worse.
    """
    best = np.maximum(lam, 0.0)
    top = best.max(initial=0.0)
    if top <= 0:
        return best
    grad = c - G @ best  # dual optimality: grad <= 0, and = 0 where lam > 0
    scale = float(np.abs(c).max(initial=1.0))
    on = best > 1e-12 * top
    if max(np.abs(grad[on]).max(initial=0.0), grad[~on].max(initial=0.0)) <= 1e-13 * scale:
        return best  # already optimal to rounding (the usual case after NNLS)
    best_gap = dual_gap(G, c, best, theta_sq)
    S = set(np.flatnonzero(on).tolist())
    for _ in range(rounds):
        if not S:
            break
        idx = np.array(sorted(S))
        GSS = G[np.ix_(idx, idx)]
        try:
            sol = sla.cho_solve(sla.cho_factor(GSS, check_finite=False), c[idx], check_finite=False)
        except (np.linalg.LinAlgError, ValueError):  # singular support block: minimum-norm solution
            sol, *_ = np.linalg.lstsq(GSS, c[idx], rcond=None)
        if np.any(sol < 0):
            S -= {int(i) for i in idx[sol < 0]}
            continue
        cand = np.zeros_like(best)
        cand[idx] = sol
        gap = dual_gap(G, c, cand, theta_sq)
        if gap < best_gap:
            best, best_gap = cand, gap
        viol = c - G @ cand
        viol[idx] = -np.inf
        j = int(np.argmax(viol))
        if not viol[j] > 1e-12 * scale:
            break
        S.add(j)
    return best


def fixed_gram(G: np.ndarray, C: np.ndarray, DDt: np.ndarray, S: Any) -> np.ndarray:
    """Gram matrix of the fixed subgradients ``H = J + S D`` (selections fixed).

    ``G = J J^T`` (m x m), ``C = J D^T`` (m x K), ``DDt = D D^T`` (K x K) are
    the blocks of the kinked Gram matrix and ``S`` (m x K, sparse or dense)
    holds the fixed selections (:func:`verifier.kkt.kinks.selection_matrix`):
    ``H H^T = G + C S^T + S C^T + S DDt S^T``.

    >>> J = np.array([[1.0, 0.0], [0.0, 2.0]]); D = np.array([[1.0, 1.0]]); S = np.array([[0.5], [0.0]])
    >>> H = J + S @ D
    >>> np.allclose(fixed_gram(J @ J.T, J @ D.T, D @ D.T, S), H @ H.T)
    True
    """
    SC = np.asarray(S @ C.T)  # (m, m): row r is sum_k S_rk <d_k, h_j>
    SDS = np.asarray(S @ np.asarray(S @ DDt).T)
    Gf = G + SC + SC.T + SDS
    return 0.5 * (Gf + Gf.T)


def solve_cvxpy(
    c: np.ndarray,
    L: float,
    theta_sq: float,
    *,
    solver: str,
    K: int = 0,
    F: np.ndarray | None = None,
    B: np.ndarray | None = None,
    norm: str = "l2",
    A: Any = None,
) -> tuple[np.ndarray, np.ndarray, str, list[str]]:
    """Solve the (possibly kinked, possibly non-l2) dual with cvxpy.

    Variables ``z = [lambda; w]`` (``w``: kink piece weights, ``K`` of them),
    ``lambda >= 0`` and ``A z >= 0`` (kink slots).  The quadratic term is
    ``1/2 ||F z||^2`` (l2, ``F^T F`` = Gram matrix of the rows) or
    ``1/2 ||B^T z||_*^2`` (rows ``B`` of gradients and pieces, dual norm of
    ``norm``).  Variables are scaled by ``||theta||^2 / L``.  ``solver`` is
    ``"clarabel"`` (falls back to OSQP on failure) or ``"osqp"``.
    Returns ``(lambda, w, solver_used, warnings)``.
    """
    import cvxpy as cp

    m = c.shape[0]
    a = theta_sq / L
    z = cp.Variable(m + K)
    cons = [z[:m] >= 0]
    if A is not None and A.shape[0]:
        cons.append(A @ z >= 0)
    lin = np.concatenate([c, np.zeros(K)]) / L
    w2 = theta_sq / (2.0 * L * L)
    if F is not None:
        quad = cp.sum_squares(F @ z) if F.shape[0] else 0
    else:
        if B is None:
            raise KKTError("solve_cvxpy needs a factor F (l2) or the rows B (l1 / l_inf)")
        v = B.T @ z
        quad = cp.square(cp.norm_inf(v) if norm == "l1" else cp.norm1(v) if norm == "linf" else cp.norm2(v))
    prob = cp.Problem(cp.Maximize(lin @ z - w2 * quad), cons)
    order = ["clarabel", "osqp"] if solver == "clarabel" else ["osqp"]
    notes: list[str] = []
    for name in order:
        try:
            with _warnings.catch_warnings():
                _warnings.simplefilter("ignore")
                if name == "clarabel":
                    prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-11, tol_gap_rel=1e-11, tol_feas=1e-11, max_iter=400)
                else:
                    prob.solve(solver=cp.OSQP, eps_abs=1e-10, eps_rel=1e-10, max_iter=200_000, polish=True)
        except (cp.error.SolverError, ValueError, ArithmeticError) as e:
            notes.append(f"{name} failed ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''})")
            continue
        if prob.status in (cp.OPTIMAL, cp.OPTIMAL_INACCURATE, cp.USER_LIMIT) and z.value is not None:
            if prob.status != cp.OPTIMAL:
                # still a valid certificate: any lambda >= 0 bounds (eps, delta); it may just not be the best one
                notes.append(f"{name} stopped with status {prob.status!r}: the multipliers may be suboptimal "
                             "(eps, delta are upper bounds for them)")
            zv = np.asarray(z.value, dtype=np.float64) * a
            return zv[:m], zv[m:], name, notes
        notes.append(f"{name} ended with status {prob.status!r}")
    raise KKTError("the tangent dual could not be solved: " + "; ".join(notes))
