"""A second-order look at a KKT point (smooth, strict complementarity).

At a KKT point ``theta`` with multipliers ``lambda`` (support ``S``), the
Lagrangian of ``min 1/2||theta||^2 s.t. q_i(theta) >= 1`` is
``Lag = 1/2||theta||^2 - sum_i lambda_i (q_i - 1)``, with Hessian
``H = I - sum_i lambda_i Hess q_i``.  Under strict complementarity
(``lambda_i > 0`` exactly on the active constraints) the critical cone is the
subspace ``C = {v : <h_i, v> = 0, i in S}``.  Second-order necessary
condition for a local minimum: ``v^T H v >= 0`` on ``C``.  If it fails, the
eigenvector ``v`` of the most negative eigenvalue keeps every active margin
to first order and lowers the norm at second order (rescaling to smallest
margin 1 afterwards lowers ``||theta_hat||``): the point is a saddle.

Hessian-vector products are finite differences of the engine's *exact*
gradients ``g(theta) = sum_i lambda_i grad q_i(theta)``: a central stencil
with ``p`` points per side, ``p = ceil((L - 1) / 2)``.  Inside one activation
region of a piecewise-polynomial homogeneous network ``g(theta + e v)`` is a
polynomial of degree ``L - 1`` in ``e``, so the stencil is exact up to
rounding (the step is halved until all stencil points share the activation
pattern of ``theta``).  The reduced Hessian is formed densely when the
critical subspace has at most :data:`DENSE_LIMIT` dimensions, otherwise its
smallest eigenvalue is found by Lanczos (``scipy.sparse.linalg.eigsh``).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import scipy.linalg as sla

from ..numeric.data import Constraints
from ..numeric.engine import ForwardPass, run_forward, weighted_gradient_from
from ._backprop import jacobian_rows

#: Dimension of the critical subspace up to which the reduced Hessian is built densely.
DENSE_LIMIT = 1500
#: Second-order necessary conditions "hold" when the smallest eigenvalue is >= -SECOND_ORDER_TOL.
SECOND_ORDER_TOL = 1e-7


def _stencil(L: float) -> np.ndarray:
    p = max(1, math.ceil((L - 1) / 2))
    k = np.arange(1, p + 1, dtype=float)
    V = np.array([[2.0 * kk ** (2 * j - 1) for kk in k] for j in range(1, p + 1)])
    e = np.zeros(p)
    e[0] = 1.0
    return np.linalg.solve(V, e)


def _pattern(fp: ForwardPass) -> list[np.ndarray]:
    out = []
    for name in fp.net.order:
        node = fp.net.nodes[name]
        if not node.impl.is_kinked(node.attrs):
            continue
        ctx = fp.ctx[name]
        out.append(np.sign(ctx["z"]) if "z" in ctx else ctx["arg"])
    return out


class _HVP:
    """``v -> H v = v - d/de g(theta + e v)`` with an exact-polynomial stencil."""

    def __init__(self, fp: ForwardPass, cons: Constraints, lam: np.ndarray, theta: np.ndarray, L: float):
        self.fp, self.cons, self.lam, self.theta = fp, cons, lam, theta
        self.net = fp.net
        self.coef = _stencil(L)
        self.base = _pattern(fp)
        self.count = 0

    def _grad(self, th: np.ndarray) -> tuple[np.ndarray, bool]:
        fp = run_forward(self.net, th, self.fp.X)
        same = all(np.array_equal(a, b) for a, b in zip(_pattern(fp), self.base))
        return weighted_gradient_from(fp, self.cons, self.lam), same

    def __call__(self, v: np.ndarray) -> np.ndarray:
        nv = float(np.linalg.norm(v))
        if nv == 0:
            return np.zeros_like(v)
        eps = 1e-2 * float(np.linalg.norm(self.theta)) / nv
        for _ in range(40):
            acc = np.zeros_like(v)
            ok = True
            for k, ck in enumerate(self.coef, start=1):
                gp, s1 = self._grad(self.theta + k * eps * v)
                gm, s2 = self._grad(self.theta - k * eps * v)
                ok = ok and s1 and s2
                acc += ck * (gp - gm)
            self.count += 1
            if ok:
                return v - acc / eps
            eps /= 2.0
        return v - acc / eps  # pragma: no cover - pattern keeps changing: best effort


def second_order_check(
    fp: ForwardPass,
    cons: Constraints,
    lam: np.ndarray,
    margins: np.ndarray,
    theta: np.ndarray,
    L: float,
    *,
    support: np.ndarray,
    active_tol: float,
    kinked_samples: set[int],
) -> dict[str, Any]:
    """The second-order report (see the module docstring); ``checked`` False with a reason otherwise."""
    support = np.asarray(support, dtype=np.int64)
    active = np.flatnonzero(margins - 1.0 <= active_tol)
    if len(support) == 0:
        return {"checked": False, "reason": "no positive multiplier"}
    bad = sorted({int(cons.sample[r]) for r in support} & kinked_samples)
    if bad:
        return {"checked": False, "reason": f"not a smooth point: support sample(s) {bad[:5]} have a pre-activation at a kink"}
    missing = sorted(set(active.tolist()) - set(support.tolist()))
    if missing:
        return {"checked": False,
                "reason": f"strict complementarity fails: active constraint(s) {[cons.label(r) for r in missing[:5]]} have lambda = 0"}
    P = theta.shape[0]
    JS = jacobian_rows(fp, cons, support)
    hvp = _HVP(fp, cons, lam, theta, L)
    info: dict[str, Any] = {"checked": True, "method": "", "support_size": int(len(support))}
    if P - len(support) <= DENSE_LIMIT:
        Z = sla.null_space(JS) if JS.shape[0] else np.eye(P)
        k = Z.shape[1]
        info["critical_dim"] = int(k)
        if k == 0:
            info.update(min_eigenvalue=None, holds=True, direction=None,
                        method="critical subspace is {0}: second-order conditions hold trivially")
            return info
        HZ = np.column_stack([hvp(Z[:, j]) for j in range(k)])
        Hr = Z.T @ HZ
        Hr = 0.5 * (Hr + Hr.T)
        w, U = np.linalg.eigh(Hr)
        lam_min, vec = float(w[0]), Z @ U[:, 0]
        info["method"] = f"dense reduced Hessian ({k} x {k}) from finite differences of exact gradients"
        info["eigenvalues_smallest"] = [float(x) for x in w[:5]]
    else:
        from scipy.sparse.linalg import LinearOperator, eigsh

        GS = JS @ JS.T
        GSp = np.linalg.pinv(GS)

        def proj(v):
            return v - JS.T @ (GSp @ (JS @ v))

        op = LinearOperator((P, P), matvec=lambda v: proj(hvp(proj(np.ravel(v)))), dtype=float)
        big = float(eigsh(op, k=1, which="LM", return_eigenvectors=False, maxiter=300, tol=1e-6)[0])
        shift = abs(big) + 1.0
        op2 = LinearOperator((P, P), matvec=lambda v: op.matvec(v) + shift * (np.ravel(v) - proj(np.ravel(v))), dtype=float)
        w, U = eigsh(op2, k=1, which="SA", maxiter=2000, tol=1e-8)
        lam_min, vec = float(w[0]), proj(U[:, 0])
        info["critical_dim"] = int(P - len(support))
        info["method"] = "Lanczos on the projected Hessian (finite differences of exact gradients)"
    nv = float(np.linalg.norm(vec))
    vec = vec / nv if nv > 0 else vec
    holds = lam_min >= -SECOND_ORDER_TOL
    info.update(min_eigenvalue=lam_min, holds=bool(holds), hvp_evaluations=hvp.count,
                direction=None if holds else vec,
                direction_note=None if holds else
                "unit vector v with <grad q_i, v> = 0 on the support and v^T H v < 0: moving along v keeps the "
                "active margins to first order and lowers the norm at second order (theta is not a local minimum)")
    return info
