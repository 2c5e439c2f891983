"""``check_kkt``: is ``theta`` a KKT point of the max-margin problem, and how far is it?"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

import numpy as np

from ..errors import ResourceError
from ..analysis.homogeneity import degree, input_degree
from ..numeric.batched import Batched
from ..numeric.data import Constraints
from ..numeric.engine import ForwardPass, Kink, forward_unchecked, gram_from, jacobian_from, kinks_from, weighted_gradient_from
from . import norms as _norms
from ._backprop import jacobian_times
from .dual import factor_psd, fixed_gram, refine, solve_cvxpy, solve_nnls
from .errors import KKTError
from .kinks import build_pieces, fixed_selection, project
from .kinks import relaxation as kink_relaxation
from .kinks import selection_matrix, selections, slot_constraints
from .report import KKTReport
from .second_order import kink_second_order_check, second_order_check
from .working_set import INIT_SIZE, WorkingSetInfo, solve_working_set

SOLVERS = ("auto", "nnls", "clarabel", "osqp", "working-set")
#: ``solver="auto"`` solves the dual on all constraints at once up to this many (the small-problem route,
#: fastest there); above it, the working-set route (:mod:`verifier.kkt.working_set`).
DENSE_MAX_ROWS = 2000
#: Bytes per entry of an ``m x m`` dual: ``G``, ``G + c c^T``, the Cholesky factor and a tile of temporaries.
DENSE_BYTES_PER_ENTRY = 8 * 4
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


def default_memory_limit() -> int:
    """Half of this machine's physical memory (bytes), the default ``memory_limit`` of :func:`check_kkt`."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) * 1024 // 2
    except OSError:  # pragma: no cover - not Linux
        pass
    return 4 * 2**30  # pragma: no cover


def _gib(b: float) -> str:
    return f"{b / 2**30:.2f} GiB"


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
    memory_limit: int | None = None,
    working_set_size: int = INIT_SIZE,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> KKTReport:
    """Check whether ``params`` is a KKT point of ``min 1/2||theta||^2 s.t. q_i(theta) >= 1``.

    The point is first normalised (``theta_hat = theta / (min q)^(1/L)``);
    the tangent dual (docs/math.md sections 4-5) is solved for multipliers
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
        ``"l2"`` (default; only Gram blocks are formed), ``"l1"`` or
        ``"linf"`` (docs/math.md section 9; these form the ``m x P`` Jacobian).
    tol
        Verdict ``"kkt"`` iff ``eps_rel <= tol`` and ``delta_rel <= tol``.
    kink_tol
        Pre-activations with ``|z| <= kink_tol * s`` at ``theta_hat``, ``s`` the
        largest ``|z|`` of that node for that sample (relative, so rescaling
        data or layers changes nothing; :func:`verifier.numeric.kinks_from`),
        are kinks with Clarke / chain-rule subgradient intervals; only kinks
        whose selection can change a gradient count (``report.kinks_found``);
        ``None`` switches kink handling off (the engine's derivative
        convention ``relu'(0) = 0`` is used everywhere).
    solver
        ``"auto"`` (l2: all constraints at once up to :data:`DENSE_MAX_ROWS`
        constraints, the working-set route above; NNLS for the smooth dual,
        CLARABEL at kinks), ``"working-set"`` (always the working-set route),
        ``"nnls"`` (smooth l2 only, all constraints at once),
        ``"clarabel"`` (falls back to OSQP), ``"osqp"``.  At kinks the cvxpy
        solution is then polished (selections fixed, snapped to interval
        ends within :data:`SNAP_TOL`, plain dual re-solved by NNLS; kept when
        its gap is not larger) and ``report.solver`` reads e.g.
        ``"clarabel+polish"``.
    second_order
        Also run the second-order check (:mod:`verifier.kkt.second_order`) at
        smooth KKT points with strict complementarity (l2 only).
    memory_limit
        Bytes the check may allocate for its largest arrays (the ``m x m``
        dual of the small-problem route, the working set's Gram block, the
        ``m x P`` Jacobian of l1/l_inf); default :func:`default_memory_limit`
        (half the machine's memory).  A problem that needs more is refused
        with a :class:`~verifier.errors.ResourceError` naming the size.
    working_set_size
        Initial working set of the working-set route (the constraints with the
        smallest margins; every round adds at most ``max(this, |W|)`` violators).
    progress
        Called with a dict after each working-set round (``round``,
        ``working_set``, ``support``, ``violators``, ``max_violation``) and
        at each phase (``{"phase": ...}``); the CLI prints them on stderr.

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
    >>> check_kkt(net, {"W1": np.array([[1.0, 1.0]])}, X, y, solver="working-set").working_set["rounds"]
    1
    """
    norm, tol_f, kt = _check_options(norm, tol, kink_tol, solver, second_order)
    mem = _check_memory_limit(memory_limit)
    if isinstance(working_set_size, bool) or not isinstance(working_set_size, (int, np.integer)) or working_set_size < 1:
        raise KKTError(f"working_set_size={working_set_size!r} must be a positive integer")
    deg = degree(net)
    L = float(deg)
    deg_out: int | float = int(deg) if float(deg).is_integer() else L
    if not L > 0:
        raise KKTError(f"the network has degree {deg}; the max-margin problem needs degree L > 0")
    say = progress or (lambda info: None)
    B0 = Batched(net, params, X, y)  # parameters, inputs and labels validated once
    cons = B0.cons
    m = cons.m
    theta_in = net.flatten(B0.ps)
    # Scale symmetries (docs/math.md, "Scale invariance"): Phi(c theta; x) = c^L Phi(theta; x) and, when the
    # network is homogeneous of degree Lx in its input, Phi(theta; b x) = b^Lx Phi(theta; x).  The check runs at
    # theta_0 = 2^-e theta and X' = 2^-f X (exact: powers of two), where nothing overflows or underflows; the
    # normalised point of the given problem is theta_hat = a * theta_hat' with a = 2^(-f Lx / L).
    top = float(np.abs(theta_in).max(initial=0.0))
    e = int(np.frexp(top)[1]) if top > 0 else 0
    Lx = Lx_of(net)
    f, a_exp = _data_exponent(Lx, B0.X, L)
    B = B0.with_params(net.unflatten(np.ldexp(theta_in, -e)))
    if f:
        B = B.with_data(np.ldexp(B0.X, -f))
    theta = net.flatten(B.ps)
    say({"phase": "margins", "samples": B.n, "constraints": m})
    q = B.margins()
    qmin0 = float(q.min())
    log2_factor = e * L + f * float(Lx or 0)  # q(theta; X) = 2^log2_factor * q(theta_0; X')
    qmin = _ldexp_float(qmin0, log2_factor)
    base: dict[str, Any] = dict(norm=norm, tol=tol_f, kink_tol=kt, degree=deg_out, n_samples=int(cons.n),
                n_constraints=int(m), num_params=int(net.num_params), min_margin=qmin)
    tn0 = _norms.primal(theta, norm)
    scale0 = qmin0 ** (1.0 / L) if qmin0 > 0 else 0.0
    if tn0 == 0 or qmin0 <= 0 or not (np.isfinite(scale0) and scale0 > 0 and np.all(np.isfinite(theta / scale0))):
        bad = np.flatnonzero(q <= 0) if qmin0 <= 0 else np.flatnonzero(q <= qmin0)
        warn = []
        if tn0 == 0:
            warn.append("all parameters are zero: every margin is 0")
        elif qmin0 > 0:
            warn.append(f"smallest margin {qmin:.3g} is too close to 0 to normalise the point")
        return KKTReport(verdict="infeasible", margins=_ldexp_array(q, log2_factor),
                         infeasible_samples=sorted({int(cons.sample[r]) for r in bad}),
                         infeasible_constraints=[cons.label(int(r)) for r in bad], warnings=warn, **base)

    warnings: list[str] = []
    if not np.isfinite(qmin) or qmin == 0:
        warnings.append(f"the smallest margin at the given point is not representable in float64 "
                        f"(2^{log2_factor:.0f} x {qmin0:.6g}); the check ran on the exactly rescaled point")
    theta_hat = theta / scale0
    Bh = B.with_params(net.unflatten(theta_hat))
    qh = q / qmin0  # homogeneity: q(theta / qmin^(1/L)) = q(theta) / qmin, no second forward pass
    tn = _norms.primal(theta_hat, norm)
    tsq = tn * tn
    c = 1.0 + (L - 1.0) * qh

    route = _route(solver, norm, m, net.num_params, mem)
    ws_info: WorkingSetInfo | None = None
    if route == "dense":
        fp = forward_unchecked(net, Bh.ps, Bh.X)
        ks = _find_kinks(fp, kt)
        sol = _solve_dual(fp, cons, qh, c, tsq, L, norm, kt, ks, solver, warnings, warm=None)
        lam = sol.lam
        support_fp = (fp, cons)
    else:
        say({"phase": "kinks"})
        ks_all = Bh.kinks(kt) if kt is not None else []
        kinked = np.flatnonzero(np.isin(cons.sample, np.unique([k.sample for k in ks_all]))) if ks_all else None
        max_size = int(np.sqrt(mem / DENSE_BYTES_PER_ENTRY))
        if kinked is not None and kinked.shape[0] > max_size:
            raise ResourceError(
                f"{kinked.shape[0]} constraints have samples at kinks (kink_tol={kt:g}); the working set must hold "
                f"all of them but the memory limit ({_gib(mem)}) allows {max_size}: use a smaller kink_tol, "
                "kink_tol=None, or raise memory_limit")
        by_sample: dict[int, list[Kink]] = {}
        for k in ks_all:
            by_sample.setdefault(k.sample, []).append(k)

        def solve(W: np.ndarray, warm: np.ndarray | None) -> _DualSolution:
            fp_w, cons_w, samples = Bh.subset(W)
            local = {int(s): j for j, s in enumerate(samples)}
            ks_w = [replace(k, sample=local[k.sample]) for s in samples for k in by_sample.get(int(s), [])]
            warm_local = np.searchsorted(W, warm) if warm is not None else None
            notes: list[str] = []
            out = _solve_dual(fp_w, cons_w, qh[W], c[W], tsq, L, norm, kt, ks_w, solver, notes, warm=warm_local)
            out.notes = notes
            return out

        sol, W, ws_info = solve_working_set(qh, c, solve, lambda s: Bh.jvp_margins(s.v), required=kinked,
                                            init_size=working_set_size, max_size=max_size, progress=progress)
        warnings += sol.notes
        lam = np.zeros(m)
        lam[W] = sol.lam
        sol.globalize(W, cons, Bh)
        ks = ks_all
        support_fp = None

    v = sol.v
    eps = _norms.subgradient_distance(v, theta_hat, norm)
    fy = _norms.fenchel_young(v, theta_hat, norm)
    delta = sol.delta
    prod = lam * (qh - 1.0)
    delta_max = float(prod.max(initial=0.0)) if m else 0.0
    gap = sol.gap
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
        sq = sol.eps_gram_sq
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

    # back to the given problem: theta_hat = a theta_hat', lambda = a^2 lambda', eps = a eps', delta = a^2 delta'
    a1, a2 = (lambda v: _ldexp_float(v, a_exp)), (lambda v: _ldexp_float(v, 2 * a_exp))
    scale = _ldexp_float(scale0, e - a_exp)
    report = KKTReport(
        verdict=verdict, scale=scale, normalized_margin=float(np.exp(-L * (np.log(tn) + a_exp * np.log(2.0)))),
        theta_norm=a1(tn), theta_hat=_ldexp_array(theta_hat, a_exp), margins=qh,
        multipliers=_ldexp_array(lam, 2 * a_exp), support=support, sum_multipliers=a2(sum_l),
        sum_multipliers_expected=a2(float(expected)), euler_residual=float(sum_l / expected - 1.0),
        eps=a1(eps), eps_rel=float(eps_rel), delta=a2(delta), delta_rel=float(delta_rel), delta_max=a2(delta_max),
        gap=a2(gap), dual_objective=a2(sol.dual), fenchel_young=a2(fy), identity_residual=a2(resid),
        identity_ok=ident_ok, eps_gram=None if eps_gram is None else a1(eps_gram), eps_gram_clipped=clipped,
        kink_selections=sol.kink_selections,
        kinks_found=sol.relevant_kinks, relaxation=sol.relaxation, solver=sol.solver, warnings=warnings,
        working_set=ws_info.to_dict() if ws_info is not None else None, **base,
    )
    if second_order:
        if norm != "l2":
            report.second_order = {"checked": False, "reason": f"the second-order check is for norm='l2' (got {norm!r})"}
        elif verdict != "kkt":
            report.second_order = {"checked": False, "reason": "not a KKT point (verdict not_kkt)"}
        elif sol.relaxation == "chain-rule":
            report.second_order = {"checked": False, "reason": "not a smooth point, and the kinks used are not all in "
                                   "a first hidden layer (chain-rule relaxation): pieces are not enumerated there"}
        else:
            top = lam.max(initial=0.0)
            if support_fp is None:  # working-set route: the check is local, so the nearly active rows decide
                near = np.union1d(support, np.flatnonzero(qh <= 1.0 + max(tol_f, 1e-9)))
                fp_s, cons_s, samples = Bh.subset(near)
                local = {int(s_): j for j, s_ in enumerate(samples)}
                ks_s = [replace(k, sample=local[k.sample]) for k in ks if k.sample in local]
                lam_s, qh_s = lam[near], qh[near]
            else:
                fp_s, cons_s = support_fp
                ks_s, lam_s, qh_s = ks, lam, qh
            sup_s = np.flatnonzero(lam_s > SUPPORT_RTOL * top)
            if sol.relaxation == "exact" or {k.sample for k in ks_s} & {int(cons_s.sample[r]) for r in sup_s}:
                report.second_order = kink_second_order_check(fp_s, cons_s, lam_s, qh_s, theta_hat, L, kinks=ks_s,
                                                              active_tol=max(tol_f, 1e-9))
            else:
                kinked_s = {k.sample for k in (ks_s if kt is not None else kinks_from(fp_s, 1e-9))}
                report.second_order = second_order_check(
                    fp_s, cons_s, lam_s, qh_s, theta_hat, L, support=sup_s, active_tol=max(tol_f, 1e-9),
                    kinked_samples=kinked_s)
    return report


def Lx_of(net) -> Any:
    """The network's degree in its input (``None`` when it is not homogeneous in ``x``)."""

    return input_degree(net)


def _data_exponent(Lx: Any, X: np.ndarray, L: float) -> tuple[int, int]:
    """``(f, a_exp)``: rescale the data by ``2^-f`` (``f = 0`` when the network is not homogeneous in ``x``,
    ``Lx is None``, or ``f Lx / L`` would not be an integer) so that its largest entry is of order 1;
    ``a_exp = -f Lx / L``."""
    top = float(np.abs(X).max(initial=0.0))
    if top == 0 or Lx is None or not float(L).is_integer() or not float(Lx).is_integer() or float(Lx) <= 0:
        return 0, 0
    Li, Lxi = int(L), int(Lx)
    step = Li // np.gcd(Li, Lxi)  # f must be a multiple of this for f * Lx / L to be an integer
    f = step * int(round(np.frexp(top)[1] / step))
    return f, -(f * Lxi) // Li


def _ldexp_float(v: float, k: float) -> float:
    """``v * 2^k`` (``k`` an integer), inf/0 when it leaves float64 (no exception)."""
    with np.errstate(over="ignore", under="ignore"):
        return float(np.ldexp(float(v), int(k)))


def _ldexp_array(v: np.ndarray, k: float) -> np.ndarray:
    with np.errstate(over="ignore", under="ignore"):
        return np.ldexp(np.asarray(v, dtype=np.float64), int(k))


def _check_memory_limit(memory_limit: Any) -> int:
    if memory_limit is None:
        return default_memory_limit()
    if isinstance(memory_limit, bool) or not isinstance(memory_limit, (int, float, np.integer, np.floating)) \
            or not (np.isfinite(memory_limit) and memory_limit > 0):
        raise KKTError(f"memory_limit={memory_limit!r} must be a positive number of bytes")
    return int(memory_limit)


def _route(solver: str, norm: str, m: int, P: int, mem: int) -> str:
    """``"dense"`` (all constraints at once) or ``"working-set"``; refuse what would not fit in ``mem``."""
    if norm != "l2":
        if m * P * 8 > min(mem, MAX_JACOBIAN_FLOATS * 8):
            raise ResourceError(
                f"norm={norm!r} needs the {m} x {P} margin Jacobian ({_gib(m * P * 8.0)}; limit "
                f"{_gib(min(mem, MAX_JACOBIAN_FLOATS * 8))}); use norm='l2' (which never forms it) or fewer samples"
            )
        return "dense"
    if solver == "working-set" or (solver == "auto" and m > DENSE_MAX_ROWS):
        return "working-set"
    need = DENSE_BYTES_PER_ENTRY * float(m) * m
    if need > mem:
        raise ResourceError(
            f"solver={solver!r} solves the dual on all {m} constraints at once and needs about {_gib(need)} "
            f"(limit memory_limit={_gib(mem)}); use solver='auto' or 'working-set' (memory O(m + |W|^2))"
        )
    return "dense"


def _find_kinks(fp: ForwardPass, kt: float | None) -> list[Kink]:
    return kinks_from(fp, kt) if kt is not None else []


@dataclass
class _DualSolution:
    """The dual solved on a set of constraints (all of them, or a working set)."""

    lam: np.ndarray
    v: np.ndarray
    delta: float
    dual: float
    gap: float
    eps_gram_sq: float
    kink_selections: list[dict[str, Any]]
    relaxation: str
    solver: str
    relevant_kinks: int  # kinks whose selection can change a gradient (after pruning)
    notes: list[str] = field(default_factory=list)

    def globalize(self, W: np.ndarray, cons: Constraints, Bh: Batched) -> None:
        """Rewrite working-set-local row / sample indices of the kink selections as global ones."""
        for sel in self.kink_selections:
            r = int(W[sel["row"]])
            sel["row"] = r
            sel["sample"] = int(cons.sample[r])
            sel["constraint"] = cons.label(r)


def _solve_dual(fp: ForwardPass, cons: Constraints, qh: np.ndarray, c: np.ndarray, tsq: float, L: float, norm: str,
                kt: float | None, ks: list[Kink], solver: str, warnings: list[str], *,
                warm: np.ndarray | None) -> _DualSolution:
    """The tangent dual on the constraints ``cons`` of the forward pass ``fp`` (at ``theta_hat``).

    Kinks ``ks`` get subgradient pieces (:mod:`verifier.kkt.kinks`); the smooth l2 dual goes to NNLS
    (warm-started from ``warm``), the kinked or non-l2 one to cvxpy and the polish step.
    """
    net = fp.net
    m = cons.m
    pieces = build_pieces(fp, cons, ks, kt) if (ks and kt is not None) else None
    K = pieces.K if pieces is not None else 0
    D = pieces.D if pieces is not None else np.zeros((0, net.num_params))
    A = slot_constraints(pieces.slots, m, K) if (pieces is not None and K) else None

    smooth_l2 = norm == "l2" and K == 0
    if solver == "nnls" and not smooth_l2:
        nk = len(pieces.slots) if pieces is not None else 0
        why = f"norm={norm!r}" if norm != "l2" else f"{nk} kinked constraint(s) need subgradient selections"
        raise KKTError(f"solver='nnls' solves only the smooth l2 dual ({why}); use solver='auto', 'clarabel' or 'osqp'")
    use = "nnls" if smooth_l2 and solver in ("auto", "nnls", "working-set") else ("osqp" if solver == "osqp" else "clarabel")

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
                lam, info = solve_nnls(G, c, tsq, warm=warm)
                if info["refused"]:
                    warnings.append(f"NNLS refused {info['refused']} numerically dependent column(s)")
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
        B = np.vstack([jacobian_from(fp, cons), D]) if K else jacobian_from(fp, cons)
        lam, w, use, notes = solve_cvxpy(c, L, tsq, solver=use, K=K, B=B, norm=norm, A=A)
        warnings += notes

    # -- clean up and evaluate -------------------------------------------------
    lam = np.maximum(np.asarray(lam, dtype=np.float64), 0.0)
    if pieces is not None and K:
        w = project(pieces.slots, lam, w)
    if smooth_l2 and G is not None:
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
            out["eps_gram_sq"] = tsq - 2.0 * L * float(lv @ qh) + quad
        else:
            out["dual"] = float(c @ lv) - 0.5 * _norms.dual(v, norm) ** 2
            out["eps_gram_sq"] = float("nan")
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

    # -- kinks used -------------------------------------------------------------
    kink_sel: list[dict[str, Any]] = []
    relaxation = "none"
    if pieces is not None and K:
        kink_sel = selections(pieces.slots, ev["lam"], ev["w"], cons, 0.0, fixed=ev["fixed"])
        relaxation = kink_relaxation(net, pieces, ev["lam"], 0.0)

    return _DualSolution(lam=ev["lam"], v=ev["v"], delta=ev["delta"], dual=ev["dual"], gap=ev["gap"],
                         eps_gram_sq=ev["eps_gram_sq"], kink_selections=kink_sel, relaxation=relaxation, solver=use,
                         relevant_kinks=len(pieces.relevant) if pieces is not None else 0)
