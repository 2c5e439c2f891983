"""``check_kkt``: is ``theta`` a KKT point of the max-margin problem, and how far is it?"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np

from ..numeric.engine import gram_from, jacobian_from, kinks_from, margins_from, prepare, weighted_gradient_from
from . import norms as _norms
from ._backprop import jacobian_times
from .dual import factor_psd, fixed_gram, refine, solve_cvxpy, solve_nnls
from .errors import KKTError
from .kinks import (build_pieces, exact_structure, fixed_selection, project, selection_matrix, selections,
                    slot_constraints)
from .report import KKTReport
from .second_order import kink_second_order_check, second_order_check

SOLVERS = ("auto", "nnls", "clarabel", "osqp")
#: Multipliers below ``SUPPORT_RTOL * max(lambda)`` are set to 0 (kept only if that lowers the gap).
SUPPORT_RTOL = 1e-9
#: The gap identity ``gap = fenchel_young + delta`` is flagged when violated by more than this times ``||theta_hat||^2``.
IDENTITY_RTOL = 1e-8
#: Largest ``m x P`` Jacobian the l1 / l_inf flavours materialise.
MAX_JACOBIAN_FLOATS = 50_000_000
#: Polish step at kinks: a selection within ``SNAP_TOL`` (relative to its interval's width; a simplex weight
#: within ``SNAP_TOL`` of 0) of an end is snapped to that end.  CLARABEL at its tolerance 1e-11 stops ~1e-6
#: inside the intervals; the snapped result is kept only if its gap is not larger, so any value is safe.
SNAP_TOL = 1e-4
#: A polished candidate counts as "not larger" when its gap exceeds the current one by at most this times
#: ``||theta_hat||^2`` (the rounding level of the gap formula ``1/2 ||theta||^2 - D(lambda)``).
POLISH_GAP_RTOL = 1e-15


def _check_options(norm: Any, tol: Any, kink_tol: Any, solver: Any, second_order: Any) -> tuple[str, float, float | None]:
    norm = _norms.check_norm(norm)
    try:
        tol_f = float(tol)
    except (TypeError, ValueError):
        raise KKTError(f"tol={tol!r} must be a finite number >= 0") from None
    if not (np.isfinite(tol_f) and tol_f >= 0):
        raise KKTError(f"tol={tol!r} must be a finite number >= 0")
    kt: float | None
    if kink_tol is None:
        kt = None
    else:
        try:
            kt = float(kink_tol)
        except (TypeError, ValueError):
            raise KKTError(f"kink_tol={kink_tol!r} must be a finite number >= 0, or None to use the default derivatives") from None
        if not (np.isfinite(kt) and kt >= 0):
            raise KKTError(f"kink_tol={kink_tol!r} must be a finite number >= 0, or None to use the default derivatives")
    if solver not in SOLVERS:
        raise KKTError(f"solver={solver!r} is not supported; use one of {', '.join(map(repr, SOLVERS))}")
    if not isinstance(second_order, (bool, np.bool_)):
        raise KKTError(f"second_order={second_order!r} must be True or False")
    return norm, tol_f, kt


def _polish(ev: dict[str, Any], pieces, m: int, K: int, G, C, DDt, c: np.ndarray, tsq: float, norm: str,
            evaluate, cleaned, warnings: list[str]) -> dict[str, Any] | None:
    """The polish step at kinks: fix the selections, re-solve, return the best candidate (or None).

    The convex kink dual (``t = lambda s``) is solved by cvxpy; an interior
    point solver stops strictly inside the selection intervals (e.g.
    ``s ~ 2.5e-6`` where the exact selection is the end ``0``), which shows
    up as a spurious ``eps``.  Here the selections ``s = t / lambda`` of
    ``ev`` are fixed -- once as they are and once snapped to the interval
    ends (:data:`SNAP_TOL`) -- so the subgradients ``h_i(s)`` become fixed
    vectors with Gram matrix :func:`~verifier.kkt.dual.fixed_gram`, and the
    plain tangent dual on them is re-solved with the NNLS fast path and
    :func:`~verifier.kkt.dual.refine`.  Any ``lambda >= 0`` with a valid
    selection is a certificate, so the candidate with the smallest gap is
    returned and the caller keeps it only if its gap is not larger than that
    of ``ev``.  The candidate carries its selection in ``"fixed"`` (what the
    report's ``kink_selections`` show).

    Simplex slots (max-pooling ties, and the vertex hull of a row with kinks
    in several layers) are polished too: fixing the vertex weights of the
    hull gives one fixed member of the chain-rule set, so the same argument
    holds (snapping drops weights below :data:`SNAP_TOL`).

    For ``norm="l1"`` / ``"linf"`` the NNLS path does not apply (the dual
    has a non-quadratic norm): only the snapped selection with the same
    ``lambda`` is evaluated.
    """
    slots = pieces.slots
    lam0 = ev["lam"]
    F_raw, _ = fixed_selection(slots, lam0, ev["w"], K)
    F_snap, n_snapped = fixed_selection(slots, lam0, ev["w"], K, snap_tol=SNAP_TOL)
    Fs = [F_snap] if n_snapped == 0 else [F_snap, F_raw]
    best = None
    for F in Fs:
        S = selection_matrix(slots, F, m, K)
        lams = []
        if norm == "l2":
            Gf = fixed_gram(G, C, DDt, S)
            try:
                lf, _ = solve_nnls(Gf, c, tsq)
            except KKTError as e:
                warnings.append(f"kink polish: NNLS on the fixed selections failed ({e}); kept the cvxpy multipliers")
                continue
            lams.append(refine(Gf, c, np.maximum(lf, 0.0), tsq))
            lc = cleaned(lams[-1])
            if lc is not None:
                lams.append(lc)
        else:
            lams.append(lam0)
        for lv in lams:
            cand = evaluate(lv, np.asarray(S.T @ lv).ravel())  # w = S^T lambda: inside every slot by construction
            cand["fixed"] = F
            if best is None or cand["gap"] < best["gap"]:
                best = cand
    return best


def check_kkt(
    net,
    params: Mapping[str, Any] | np.ndarray,
    X: Any,
    y: Any,
    *,
    norm: str = "l2",
    tol: float = 1e-6,
    kink_tol: float | None = 1e-9,
    solver: str = "auto",
    second_order: bool = False,
) -> KKTReport:
    """Check whether ``params`` is a KKT point of ``min 1/2||theta||^2 s.t. q_i(theta) >= 1``.

    The point is first normalised (``theta_hat = theta / (min q)^(1/L)``);
    the tangent dual (MATH.md section 4) is solved for multipliers
    ``lambda >= 0`` and the report gives ``(eps, delta)``, their relative
    versions, the duality gap and the checks ``gap = eps^2/2 + delta`` and
    ``sum lambda = ||theta_hat||^2 / L``.

    Parameters
    ----------
    net, params, X, y
        A homogeneous :class:`verifier.Network`, its parameters (dict of named
        arrays or a flat vector), inputs ``(n, *input_shape)`` and labels
        (``+-1`` for one output, ``0..C-1`` for ``C`` outputs).
    norm
        ``"l2"`` (default; only the Gram matrix is formed), ``"l1"`` or
        ``"linf"`` (MATH.md section 6; these form the ``m x P`` Jacobian).
    tol
        Verdict ``"kkt"`` iff ``eps_rel <= tol`` and ``delta_rel <= tol``.
    kink_tol
        Pre-activations with ``|z| <= kink_tol`` at ``theta_hat`` (absolute)
        are kinks with Clarke / chain-rule subgradient intervals;
        ``None`` switches kink handling off (the engine's derivative
        convention ``relu'(0) = 0`` is used everywhere).
    solver
        ``"auto"`` (NNLS fast path for the smooth l2 dual, else CLARABEL),
        ``"nnls"`` (smooth l2 only), ``"clarabel"`` (falls back to OSQP),
        ``"osqp"``.  At kinks the cvxpy solution is then polished
        (selections fixed, snapped to interval ends within :data:`SNAP_TOL`,
        plain dual re-solved by NNLS; kept when its gap is not larger) and
        ``report.solver`` reads e.g. ``"clarabel+polish"``.
    second_order
        Also run the second-order check (:mod:`verifier.kkt.second_order`) at
        smooth KKT points with strict complementarity (l2 only).

    Returns a :class:`KKTReport`; ``verdict == "infeasible"`` (not an
    exception) when some margin is ``<= 0``.  Bad input raises a
    :class:`~verifier.errors.VerifierError` with a one-line message.

    >>> import numpy as np, verifier
    >>> net = verifier.mlp([2, 1], activation="identity")
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]); y = np.array([1.0, 1.0, -1.0])
    >>> r = check_kkt(net, {"W1": np.array([[1.0, 1.0]])}, X, y)   # the SVM without intercept
    >>> r.verdict, r.solver, np.round(r.multipliers, 9).tolist()
    ('kkt', 'nnls', [1.0, 1.0, 0.0])
    >>> check_kkt(net, {"W1": np.array([[1.0, 2.0]])}, X, y).verdict
    'not_kkt'
    """
    norm, tol_f, kt = _check_options(norm, tol, kink_tol, solver, second_order)
    deg = net.degree()
    L = float(deg)
    deg_out: int | float = int(deg) if float(deg).is_integer() else L
    if not L > 0:
        raise KKTError(f"the network has degree {deg}; the max-margin problem needs degree L > 0")
    fp, cons = prepare(net, params, X, y)
    theta = net.flatten(fp.params)
    q = margins_from(fp, cons)
    qmin = float(q.min())
    base = dict(norm=norm, tol=tol_f, kink_tol=kt, degree=deg_out, n_samples=int(cons.n),
                n_constraints=int(cons.m), num_params=int(net.num_params), min_margin=qmin)
    tn0 = _norms.primal(theta, norm)
    scale = qmin ** (1.0 / L) if qmin > 0 else 0.0
    if tn0 == 0 or qmin <= 0 or not (np.isfinite(scale) and scale > 0 and np.all(np.isfinite(theta / scale))):
        bad = np.flatnonzero(q <= 0) if qmin <= 0 else np.flatnonzero(q <= qmin)
        warn = []
        if tn0 == 0:
            warn.append("all parameters are zero: every margin is 0")
        elif qmin > 0:
            warn.append(f"smallest margin {qmin:.3g} is too close to 0 to normalise the point")
        return KKTReport(verdict="infeasible", margins=q, infeasible_samples=sorted({int(cons.sample[r]) for r in bad}),
                         infeasible_constraints=[cons.label(int(r)) for r in bad], warnings=warn, **base)

    warnings: list[str] = []
    theta_hat = theta / scale
    fp, cons = prepare(net, theta_hat, X, y)
    qh = margins_from(fp, cons)
    tn = _norms.primal(theta_hat, norm)
    tsq = tn * tn
    c = 1.0 + (L - 1.0) * qh
    m = cons.m

    # -- kinks ---------------------------------------------------------------
    ks = kinks_from(fp, kt) if kt is not None else []
    pieces = build_pieces(fp, cons, ks, kt) if ks else None
    K = pieces.K if pieces is not None else 0
    D = pieces.D if pieces is not None else np.zeros((0, net.num_params))
    A = slot_constraints(pieces.slots, m, K) if K else None

    smooth_l2 = norm == "l2" and K == 0
    if solver == "nnls" and not smooth_l2:
        why = f"norm={norm!r}" if norm != "l2" else f"{len(pieces.slots)} kinked constraint(s) need subgradient selections"
        raise KKTError(f"solver='nnls' solves only the smooth l2 dual ({why}); use solver='auto', 'clarabel' or 'osqp'")
    use = "nnls" if smooth_l2 and solver in ("auto", "nnls") else ("osqp" if solver == "osqp" else "clarabel")

    # -- the dual ------------------------------------------------------------
    w = np.zeros(K)
    M = None
    G = None
    C = DDt = None
    if norm == "l2":
        G = gram_from(fp, cons)
        if K:
            C = jacobian_times(fp, cons, D)
            DDt = D @ D.T
            M = np.block([[G, C], [C.T, DDt]])
        else:
            M = G
        lam = None
        if use == "nnls":
            try:
                lam, info = solve_nnls(G, c, tsq)
                if info["factor_consistency"] > 1e-8:
                    warnings.append(f"NNLS factor consistency residual {info['factor_consistency']:.2e} (rank {info['rank']})")
            except KKTError as e:
                if solver == "nnls":
                    raise
                warnings.append(f"NNLS fast path failed ({e}); used cvxpy")
                use = "clarabel"
        if lam is None:
            F = factor_psd(M)[0]
            lam, w, use, notes = solve_cvxpy(c, L, tsq, solver=use, K=K, F=F, A=A)
            warnings += notes
    else:
        if (m + K) * net.num_params > MAX_JACOBIAN_FLOATS:
            raise KKTError(
                f"norm={norm!r} needs the {m} x {net.num_params} margin Jacobian "
                f"(> {MAX_JACOBIAN_FLOATS} floats); use norm='l2' or fewer samples"
            )
        B = np.vstack([jacobian_from(fp, cons), D]) if K else jacobian_from(fp, cons)
        lam, w, use, notes = solve_cvxpy(c, L, tsq, solver=use, K=K, B=B, norm=norm, A=A)
        warnings += notes

    # -- clean up and evaluate -------------------------------------------------
    lam = np.maximum(np.asarray(lam, dtype=np.float64), 0.0)
    if pieces is not None and K:
        w = project(pieces.slots, lam, w)
    if smooth_l2:
        lam = refine(G, c, lam, tsq)

    def evaluate(lv: np.ndarray, wv: np.ndarray) -> dict[str, Any]:
        wv = project(pieces.slots, lv, wv) if (pieces is not None and K) else wv
        v = weighted_gradient_from(fp, cons, lv)
        if K:
            v = v + D.T @ wv
        out: dict[str, Any] = {"lam": lv, "w": wv, "v": v, "fixed": None}
        out["delta"] = float(lv @ (qh - 1.0))
        if norm == "l2":
            z = np.concatenate([lv, wv])
            quad = float(z @ M @ z)
            out["dual"] = float(c @ lv) - 0.5 * quad
            sq = tsq - 2.0 * L * float(lv @ qh) + quad
            out["eps_gram_sq"] = sq
        else:
            out["dual"] = float(c @ lv) - 0.5 * _norms.dual(v, norm) ** 2
        out["gap"] = 0.5 * tsq - out["dual"]
        return out

    def cleaned(lv: np.ndarray) -> np.ndarray | None:
        top = lv.max(initial=0.0)
        if top > 0 and np.any((lv > 0) & (lv <= SUPPORT_RTOL * top)):
            return np.where(lv > SUPPORT_RTOL * top, lv, 0.0)
        return None

    ev = evaluate(lam, w)
    cl = cleaned(lam)
    if cl is not None:
        ev_cl = evaluate(cl, w)
        if ev_cl["gap"] <= ev["gap"] + 1e-12 * tsq:
            ev = ev_cl  # prefer the cleaned multipliers unless they are materially worse
    if pieces is not None and K:
        pol = _polish(ev, pieces, m, K, G, C, DDt, c, tsq, norm, evaluate, cleaned, warnings)
        if pol is not None and pol["gap"] <= ev["gap"] + POLISH_GAP_RTOL * tsq:
            ev = pol
            use = use + "+polish"
    lam, w, v = ev["lam"], ev["w"], ev["v"]

    eps = _norms.subgradient_distance(v, theta_hat, norm)
    fy = _norms.fenchel_young(v, theta_hat, norm)
    delta = ev["delta"]
    prod = lam * (qh - 1.0)
    delta_max = float(prod.max(initial=0.0)) if m else 0.0
    gap = ev["gap"]
    resid = gap - (fy + delta)
    ident_ok = bool(abs(resid) <= IDENTITY_RTOL * max(tsq, np.finfo(float).tiny))
    if not ident_ok:
        warnings.append(
            f"gap identity violated: gap {gap:.6e} vs fenchel_young + delta {fy + delta:.6e} (residual {resid:.2e}); "
            "the Gram matrix, the gradients or Euler's identity <grad q_i, theta> = L q_i disagree at this point"
        )
    eps_gram = None
    clipped = None
    if norm == "l2":
        sq = ev["eps_gram_sq"]
        clipped = bool(sq < 0)
        if sq < -IDENTITY_RTOL * tsq:
            warnings.append(f"eps^2 from the Gram formula is negative ({sq:.3e}); clipped to 0")
        eps_gram = float(np.sqrt(max(sq, 0.0)))

    support = np.flatnonzero(lam > SUPPORT_RTOL * lam.max(initial=0.0))
    sum_l = float(lam.sum())
    expected = tsq / L
    eps_rel = eps / tn
    delta_rel = delta * L / tsq
    verdict = "kkt" if (eps_rel <= tol_f and delta_rel <= tol_f) else "not_kkt"

    # -- kinks used -------------------------------------------------------------
    kink_sel: list[dict[str, Any]] = []
    relaxation = "none"
    if pieces is not None and K:
        thr = 0.0
        kink_sel = selections(pieces.slots, lam, w, cons, thr, fixed=ev["fixed"])
        used = [s for s in pieces.slots if lam[s.row] > thr]
        if used:
            nodes = {s.node for s in used}
            exact = (len(nodes) == 1 and all(s.kind == "interval" for s in used)
                     and exact_structure(net, next(iter(nodes))))
            relaxation = "exact" if exact else "chain-rule"

    report = KKTReport(
        verdict=verdict, scale=float(scale), normalized_margin=float(1.0 / tn ** L), theta_norm=float(tn),
        theta_hat=theta_hat, margins=qh, multipliers=lam, support=support, sum_multipliers=sum_l,
        sum_multipliers_expected=float(expected), euler_residual=float(sum_l / expected - 1.0),
        eps=float(eps), eps_rel=float(eps_rel), delta=float(delta), delta_rel=float(delta_rel), delta_max=delta_max,
        gap=float(gap), dual_objective=float(ev["dual"]), fenchel_young=float(fy), identity_residual=float(resid),
        identity_ok=ident_ok, eps_gram=eps_gram, eps_gram_clipped=clipped, kink_selections=kink_sel,
        kinks_found=len(ks), relaxation=relaxation, solver=use, warnings=warnings, **base,
    )
    if second_order:
        if norm != "l2":
            report.second_order = {"checked": False, "reason": f"the second-order check is for norm='l2' (got {norm!r})"}
        elif verdict != "kkt":
            report.second_order = {"checked": False, "reason": "not a KKT point (verdict not_kkt)"}
        elif relaxation == "chain-rule":
            report.second_order = {"checked": False, "reason": "not a smooth point, and the kinks used are not all in "
                                   "a first hidden layer (chain-rule relaxation): pieces are not enumerated there"}
        elif relaxation == "exact" or {k.sample for k in ks} & {int(cons.sample[r]) for r in support}:
            report.second_order = kink_second_order_check(fp, cons, lam, qh, theta_hat, L, kinks=ks,
                                                          active_tol=max(tol_f, 1e-9))
        else:
            kinked = {k.sample for k in (ks if kt is not None else kinks_from(fp, 1e-9))}
            report.second_order = second_order_check(
                fp, cons, lam, qh, theta_hat, L, support=support, active_tol=max(tol_f, 1e-9), kinked_samples=kinked)
    return report
