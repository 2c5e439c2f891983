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

import itertools
import math
from typing import Any

import numpy as np
import scipy.linalg as sla

from ..numeric.data import Constraints
from ..numeric.engine import ForwardPass, margins_from, run_forward, weighted_gradient_from
from ._backprop import jacobian_rows, row_gradients

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


# ----------------------------------------------------------------------------- non-smooth points (exact case)

#: Most sign patterns (pieces) enumerated at a kinked point: ``2^K`` for ``K`` kinked units of active samples.
MAX_PIECES = 1024
#: Largest critical subspace (directions keeping every kink at 0) whose Hessian is formed from values.
KINK_DENSE_LIMIT = 40
#: Step sizes ``t / ||theta||`` at which a proposed direction must lower the normalised norm (all of them).
VERIFY_STEPS = tuple(4.0 ** -j for j in range(1, 7))
#: A decrease counts when ``F(theta + t v) < F(theta) (1 - VERIFY_RTOL)`` (``F``: see :func:`normalised_norm_sq`).
VERIFY_RTOL = 1e-13


def normalised_norm_sq(fp: ForwardPass, cons: Constraints, theta: np.ndarray, L: float) -> float:
    """``F(theta) = ||theta||^2 / (min_r q_r(theta))^(2/L)``: ``||theta_hat||^2``, ``inf`` if some margin is ``<= 0``.

    ``F`` is invariant under positive rescaling; ``theta`` is a local minimum of
    (P_Phi) (up to scale) iff it is a local minimum of ``F``.
    """
    q = margins_from(run_forward(fp.net, theta, fp.X), cons)
    qmin = float(q.min())
    if not qmin > 0:
        return float("inf")
    return float(theta @ theta) / qmin ** (2.0 / L)


def verify_descent(fp: ForwardPass, cons: Constraints, theta: np.ndarray, L: float, v: np.ndarray) -> dict[str, Any] | None:
    """Evaluate the actual network along ``theta + t v``; the evidence when ``F`` drops at every step of
    :data:`VERIFY_STEPS`, else None."""
    nv = float(np.linalg.norm(v))
    if nv == 0:
        return None
    v = v / nv
    tn = float(np.linalg.norm(theta))
    F0 = normalised_norm_sq(fp, cons, theta, L)
    rows = []
    for rel in VERIFY_STEPS:
        Ft = normalised_norm_sq(fp, cons, theta + rel * tn * v, L)
        if not Ft < F0 * (1.0 - VERIFY_RTOL):
            return None
        rows.append({"t_rel": rel, "norm_sq_hat": Ft})
    return {"direction": v, "norm_sq_hat_at_point": F0, "along_direction": rows}


def _lp_descent(theta: np.ndarray, tsq: float, L: float, Gact: np.ndarray, Zs: np.ndarray) -> np.ndarray | None:
    """First order on one piece: ``v`` in the box with ``sigma_k <grad z_k, v> >= 0`` (rows of ``Zs``) and
    ``F'(v) = 2 <theta, v> - (2 tsq / L) min_r <g_r, v> < 0`` (``g_r``: rows of ``Gact``), or None."""
    from scipy.optimize import linprog

    P = theta.shape[0]
    c = np.concatenate([theta, [-tsq / L]])
    A = [np.concatenate([-g, [1.0]]) for g in Gact] + [np.concatenate([-z, [0.0]]) for z in Zs]
    A_ub = np.array(A) if A else None
    b_ub = np.zeros(len(A)) if A else None
    bnd = float(np.abs(Gact).sum(axis=1).max(initial=1.0))
    res = linprog(c, A_ub=A_ub, b_ub=b_ub, bounds=[(-1.0, 1.0)] * P + [(-bnd, bnd)], method="highs")
    if res.status != 0 or not res.fun < -1e-9 * float(np.sqrt(tsq)):
        return None
    return res.x[:P]


def kink_second_order_check(
    fp: ForwardPass,
    cons: Constraints,
    lam: np.ndarray,
    margins: np.ndarray,
    theta: np.ndarray,
    L: float,
    *,
    kinks: list,
    active_tol: float,
) -> dict[str, Any]:
    """Descent directions at a KKT point with kinks in the first hidden layer (the "exact" case).

    Near ``theta`` the network is smooth on finitely many *pieces*: one per
    sign pattern ``sigma`` of the kinked pre-activations ``z_k`` of the active
    samples (a kink of the first hidden layer has ``z_k(theta + v) =
    <grad z_k, v>`` exactly, so a piece is the polyhedral cone
    ``sigma_k <grad z_k, v> >= 0`` and on it each margin is the polynomial
    ``q_r^sigma`` with the unit's derivative fixed to its side).  ``theta``
    is a local minimum of (P_Phi) only if it is one on every piece.  The
    check:

    1. first order, per piece: a linear program looks for ``v`` in the cone
       with ``F'(v) = 2 <theta, v> - (2 ||theta||^2 / L) min_r <grad q_r^sigma, v> < 0``
       over the active rows (Clarke stationarity does not exclude this: it
       allows one selection per unit, a piece fixes one side for all of them);
    2. second order, on the subspace that keeps every kinked ``z_k = 0`` and
       every active margin to first order (there all pieces agree): the
       Hessian of the Lagrangian, formed from *values* of the network along
       lines (polarisation of exact polynomial second differences), and its
       most negative eigenvector.

    Every proposed direction is accepted only when the actual network,
    evaluated along ``theta + t v`` at every step of :data:`VERIFY_STEPS`,
    has a smaller normalised norm ``||theta_hat||^2`` (:func:`verify_descent`):
    ``holds = False`` comes with that evidence.  ``holds = True`` means no
    descent direction was found by either test (necessary conditions; the
    curved directions leaving the kinks at second order are not searched).
    """
    net = fp.net
    support = np.flatnonzero(lam > 0)
    active = np.flatnonzero(margins - 1.0 <= active_tol)
    if len(support) == 0:
        return {"checked": False, "reason": "no positive multiplier"}
    act_samples = {int(cons.sample[r]) for r in active}
    ks = [k for k in kinks if k.sample in act_samples]
    info: dict[str, Any] = {"checked": True, "kinks_at_point": len(ks)}
    from .kinks import exact_structure

    bad = sorted({k.node for k in ks if not exact_structure(net, k.node)})
    if bad:
        return {"checked": False, "reason": f"kinks in node(s) {bad} are not in a first hidden layer fed by "
                                             "input -> dense: the pieces are not polyhedral cones there"}
    n_pieces = 2 ** len(ks)
    if n_pieces > MAX_PIECES:
        return {"checked": False, "reason": f"{len(ks)} kinked units of active samples give {n_pieces} pieces "
                                             f"(limit {MAX_PIECES})"}
    tsq = float(theta @ theta)
    # grad z_k for every kink (seed the activation's input node at the unit)
    Zg = np.zeros((len(ks), net.num_params))
    for a, k in enumerate(ks):
        src = net.nodes[k.node].inputs[0]
        seed = np.zeros((1, *net.shapes[src]))
        seed[(0,) + tuple(k.unit)] = 1.0
        Zg[a] = row_gradients(fp, np.array([k.sample]), None, seeds={src: seed})[0]
    # per-node derivative arrays for the active rows, with the kinked entries switched per piece
    samp = cons.sample[active]
    sides = {}
    for node in {k.node for k in ks}:
        nd = net.nodes[node]
        sides[node] = [float(v) for v in nd.impl.df(np.array([-1.0, 1.0]), nd.attrs)]
    info["pieces"] = n_pieces
    for pat in itertools.product((1, -1), repeat=len(ks)):
        ov = {}
        for node in sides:
            nd = net.nodes[node]
            Dv = nd.impl.df(fp.ctx[node]["z"][samp], nd.attrs).copy()
            ov[node] = Dv
        for a, k in enumerate(ks):
            for jj in np.flatnonzero(samp == k.sample):
                ov[k.node][(jj,) + tuple(k.unit)] = sides[k.node][1 if pat[a] > 0 else 0]
        G = row_gradients(fp, samp, cons.coef[active], {n: ("deriv", D) for n, D in ov.items()})
        v = _lp_descent(theta, tsq, L, G, np.array(pat, dtype=float)[:, None] * Zg)
        if v is None:
            continue
        ev = verify_descent(fp, cons, theta, L, v)
        if ev is not None:
            info.update(holds=False, kind="first-order", piece=[int(s) for s in pat],
                        kinks=[{"node": k.node, "sample": k.sample, "unit": list(k.unit)} for k in ks],
                        method=f"LP per piece ({n_pieces} pieces), verified along the direction", **ev,
                        direction_note="moving along the direction (into the stated piece: sign of each kinked "
                                       "pre-activation) lowers ||theta_hat||^2 at first order; theta is not a local "
                                       "minimum (a KKT point only through its Clarke selections)")
            return info
    # second order on the subspace keeping the kinks and the active margins
    Jact = jacobian_rows(fp, cons, active)
    C = np.vstack([Zg, Jact]) if len(ks) else Jact
    Z = sla.null_space(C) if C.shape[0] else np.eye(net.num_params)
    k = Z.shape[1]
    info["critical_dim"] = int(k)
    if k == 0:
        info.update(holds=True, method=f"LP per piece ({n_pieces} pieces); critical subspace is {{0}}")
        return info
    if k > KINK_DENSE_LIMIT:
        return {"checked": False, "pieces": n_pieces, "critical_dim": int(k),
                "reason": f"no first-order descent direction on any of the {n_pieces} pieces (LP); the second-order "
                          f"part was not run: critical subspace of dimension {k} > {KINK_DENSE_LIMIT}"}
    p = max(1, math.ceil(L / 2))
    h = 1e-2 * float(np.sqrt(tsq))
    V = np.array([[(kk * h) ** (2 * j) for j in range(1, p + 1)] for kk in range(1, p + 1)])

    def lag(th):
        q = margins_from(run_forward(net, th, fp.X), cons)
        return 0.5 * float(th @ th) - float(lam @ (q - 1.0))

    l0 = lag(theta)

    def Q(u):  # u^T H u: twice the t^2 coefficient of the (even part of the) polynomial Lag(theta + t u)
        e = [0.5 * (lag(theta + kk * h * u) + lag(theta - kk * h * u)) - l0 for kk in range(1, p + 1)]
        return 2.0 * float(np.linalg.solve(V, np.array(e))[0])

    diag = [Q(Z[:, a]) for a in range(k)]
    H = np.diag(diag)
    for a in range(k):
        for b in range(a + 1, k):
            H[a, b] = H[b, a] = 0.5 * (Q(Z[:, a] + Z[:, b]) - diag[a] - diag[b])
    w, U = np.linalg.eigh(H)
    info["eigenvalues_smallest"] = [float(x) for x in w[:5]]
    info["min_eigenvalue"] = float(w[0])
    method = (f"LP per piece ({n_pieces} pieces): no first-order descent; Hessian of the Lagrangian on the "
              f"{k}-dimensional subspace keeping the kinks at 0 and the active margins (from network values)")
    if w[0] < -SECOND_ORDER_TOL:
        for sgn in (1.0, -1.0):
            ev = verify_descent(fp, cons, theta, L, sgn * (Z @ U[:, 0]))
            if ev is not None:
                info.update(holds=False, kind="second-order", method=method + ", verified along the direction", **ev,
                            direction_note="moving along the direction keeps every kink at 0 and the active margins "
                                           "to first order and lowers ||theta_hat||^2 at second order: theta is not "
                                           "a local minimum")
                return info
        return {"checked": False, "pieces": n_pieces, "critical_dim": int(k), "min_eigenvalue": float(w[0]),
                "reason": "no first-order descent on any piece; negative curvature on the kink-keeping subspace, but "
                          "the direction did not lower ||theta_hat||^2 when the network was evaluated along it"}
    info.update(holds=True, method=method)
    return info
