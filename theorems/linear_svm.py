"""For the linear model ``Phi(w; x) = <w, x>`` the KKT points of (P_Phi) are exactly the hard-margin SVM.

(P_Phi) for a linear model *is* the hard-margin SVM without intercept,
``min 1/2 ||w||^2 s.t. y_i <w, x_i> >= 1``: a convex problem, whose KKT
points are its unique solution.  The verifier's :func:`~verifier.check_kkt`
(tangent dual from the Gram matrix) is compared with an independent route:
the *primal* QP solved with cvxpy/CLARABEL, then polished exactly on its
support (the min-norm ``w`` with ``y_i <w, x_i> = 1`` on the support).

Sub-checks
* ``svm-is-kkt``: ``check_kkt`` at the SVM solution says ``kkt`` (figure ``max(eps_rel, delta_rel)``);
* ``multipliers``: its multipliers reproduce the SVM: ``||w - sum lambda_i y_i x_i|| / ||w||`` and
  ``|sum lambda - ||w||^2| / ||w||^2`` (the sum is unique even when lambda is not);
* ``kkt-is-svm``: at the instance's own feasible point ``theta`` the verdict is ``kkt`` exactly when
  ``theta / scale`` is the SVM solution (figure: the distance when the verdict is ``kkt``, else 0;
  a ``not_kkt`` verdict at the SVM point itself counts as a failure);
* ``construction`` (instances built by construction only): the SVM solver finds the constructed ``w``.

>>> from theorems import linear_svm
>>> ev = linear_svm.THEOREM.check(linear_svm.example())
>>> ev.verdict, sorted(ev.checks)
('holds', ['construction', 'kkt-is-svm', 'multipliers', 'svm-is-kkt'])
"""

from __future__ import annotations

import warnings
from typing import Any, Iterable, Mapping

import numpy as np
from hypothesis import strategies as st

import verifier
import verifier.strategies as vst

from ._common import point_instance
from .base import Assumption, Check, Instance, Theorem, sub_check, within


def svm(X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Hard-margin SVM without intercept: cvxpy primal (CLARABEL), then polished and *verified* on a support.

    A candidate support ``S`` (from the QP's dual variables, else from near-active
    margins) gives the min-norm ``w`` with ``y_i <w, x_i> = 1`` on ``S``; it is
    accepted only when it is feasible and ``w = sum_S lambda_i y_i x_i`` with
    ``lambda >= 0`` (NNLS), i.e. when the SVM's KKT conditions hold to rounding.

    >>> [round(float(v), 12) for v in svm(np.array([[2.0, 1.0], [-2.0, 1.0]]), np.array([1.0, -1.0]))]
    [0.5, 0.0]
    """
    import cvxpy as cp
    from scipy.optimize import nnls

    X = X.reshape(len(y), -1)
    n, d = X.shape
    w = cp.Variable(d)
    cons = [cp.multiply(y, X @ w) >= 1]
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(w)), cons)
    attempts = [(cp.CLARABEL, {"tol_gap_abs": 1e-12, "tol_gap_rel": 1e-12, "tol_feas": 1e-12}), (cp.CLARABEL, {}),
                (cp.OSQP, {"eps_abs": 1e-10, "eps_rel": 1e-10, "max_iter": 200000, "polish": True})]
    for solver, opts in attempts:  # tight tolerances first; the polish below verifies whatever comes out
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "solution may be inaccurate": checked below
                prob.solve(solver=solver, **opts)
        except cp.error.SolverError:
            continue
        if w.value is not None:
            break
    if w.value is None:
        raise RuntimeError(f"the SVM QP did not solve with CLARABEL or OSQP: {prob.status}")
    w0 = np.asarray(w.value, dtype=float)
    A = y[:, None] * X
    dual = np.asarray(cons[0].dual_value if cons[0].dual_value is not None else np.zeros(n), dtype=float).reshape(-1)
    candidates = [dual > 1e-7 * max(float(dual.max()), 1e-300)]
    candidates += [A @ w0 <= 1 + t for t in (1e-8, 1e-6, 1e-4, 1e-3)]
    for S in candidates:
        if not S.any():
            continue
        w1 = np.linalg.lstsq(A[S], np.ones(int(S.sum())), rcond=None)[0]
        lam, res = nnls(A[S].T, w1)
        if np.all(A @ w1 >= 1 - 1e-12) and res <= 1e-10 * max(1.0, float(np.linalg.norm(w1))):
            return w1
    return w0


def _linear(inst: Instance) -> tuple[bool, str]:
    net = inst.net
    ok = (len(net.param_names) == 1 and net.param_shapes[net.param_names[0]][0] == 1
          and [n.op for n in net.nodes.values()] == ["input", "dense", "output"])
    return ok, "Phi(w; x) = <w, x> (one dense layer, one output, no bias)" if ok else "not a linear model <w, x>"


def _separable(inst: Instance) -> tuple[bool, str]:
    import cvxpy as cp

    X, y = inst.X.reshape(len(inst.y), -1), inst.y
    w = cp.Variable(X.shape[1])
    prob = cp.Problem(cp.Minimize(0), [cp.multiply(y, X @ w) >= 1])
    prob.solve(solver=cp.CLARABEL)
    return prob.status == "optimal", f"linear feasibility problem: {prob.status}"


LINEAR = Assumption("linear-model", "Phi(w; x) = <w, x>: a single dense layer with one output and no bias.",
                    r"\Phi(w;x)=\langle w,x\rangle", _linear)
SEPARABLE = Assumption("separable", "The data are linearly separable through the origin: some w has "
                       "y_i <w, x_i> > 0 for all i.", r"\exists w:\ y_i\langle w,x_i\rangle>0", _separable)


def _check(inst: Instance, tol: Mapping[str, float]) -> Iterable[Check]:
    net, X, y = inst.net, inst.X, inst.y
    w = svm(X, y)
    wn2 = float(w @ w)
    rep = verifier.check_kkt(net, {"W1": w[None, :]}, X, y, tol=tol["kkt"])
    fig = max(abs(float(rep.eps_rel)), abs(float(rep.delta_rel)))
    yield sub_check("svm-is-kkt", rep.verdict == "kkt", fig, tol["kkt"],
                    f"check_kkt at the SVM solution: {rep.verdict} (eps_rel {rep.eps_rel:.2g}, delta_rel {rep.delta_rel:.2g}, "
                    f"solver {rep.solver})")
    lam = np.asarray(rep.multipliers, dtype=float)
    w_hat = np.asarray(rep.theta_hat, dtype=float)
    stat = float(np.linalg.norm(w_hat - (lam * y) @ X) / np.linalg.norm(w_hat))
    total = abs(float(lam.sum()) - wn2) / wn2
    yield within("multipliers", max(stat, total), tol["multipliers"],
                 f"||w - sum lambda_i y_i x_i|| / ||w|| = {stat:.2g}; sum lambda = {lam.sum():.10g} vs ||w_svm||^2 = {wn2:.10g}")
    rep2 = verifier.check_kkt(net, inst.params, X, y, tol=tol["kkt"])
    if rep2.verdict == "infeasible":
        yield sub_check("kkt-is-svm", True, 0.0, tol["direction"], "the instance's point does not separate the data "
                        "(verdict infeasible): it is neither KKT nor the SVM")
    else:
        dist = float(np.linalg.norm(np.asarray(rep2.theta_hat, dtype=float) - w) / np.sqrt(wn2))
        is_svm = dist <= tol["direction"]
        if rep2.verdict == "kkt":
            yield sub_check("kkt-is-svm", is_svm, dist, tol["direction"],
                            f"check_kkt says kkt at theta_hat, at distance {dist:.3g} (relative) from the SVM solution")
        else:  # not KKT: theta_hat must differ from the SVM solution (beyond rounding)
            is_svm = dist <= 1e-9
            yield sub_check("kkt-is-svm", not is_svm, 0.0 if not is_svm else 1.0, tol["direction"],
                            f"check_kkt says {rep2.verdict} (eps_rel {rep2.eps_rel:.2g}) at theta_hat, which is at distance "
                            f"{dist:.3g} from the SVM solution")
    if "svm" in inst.options:
        w_true = np.array([float(v) for v in inst.options["svm"]])
        err = float(np.linalg.norm(w - w_true) / np.linalg.norm(w_true))
        yield within("construction", err, tol["multipliers"], f"SVM solver vs the constructed solution: relative "
                     f"error {err:.2g}")


def _instances(drop: str | None) -> st.SearchStrategy[Instance]:
    @st.composite
    def constructed(draw: Any) -> Instance:
        pt = draw(vst.kkt_points(kinds=["linear"], max_dim=3))
        return point_instance(pt, svm=[float(v) for v in pt.params["W1"][0]])

    @st.composite
    def random_data(draw: Any) -> Instance:
        d = draw(st.integers(1, 3))
        X, y = draw(vst.separable_data(dim=d, min_samples=1, max_samples=8))
        theta = (y[:, None] * X).mean(axis=0)  # the mean-difference classifier: feasible or not, rarely the SVM
        return Instance(verifier.mlp([d, 1], activation="identity"), {"W1": theta[None, :]}, X, y)

    return st.one_of(constructed(), random_data())


def example() -> Instance:
    """Support pair ``+-(1/2, 0)`` around the SVM ``w = (2, 0)``, plus a point of margin 3."""
    net = verifier.mlp([2, 1], activation="identity")
    return Instance(net, {"W1": [[2.0, 0.0]]}, [[0.5, 1.0], [-0.5, 1.0], [1.5, -2.0]], [1.0, -1.0, 1.0],
                    {"svm": [2.0, 0.0]})


THEOREM = Theorem(
    "linear-kkt-is-svm",
    title="Linear model: the KKT points of the max-margin problem are the hard-margin SVM",
    statement=("For the linear model Phi(w; x) = <w, x> on linearly separable data, w is a KKT point of "
               "min 1/2 ||w||^2 s.t. y_i <w, x_i> >= 1 if and only if w is the hard-margin SVM solution "
               "(without intercept); the KKT multipliers are SVM dual variables, with sum lambda = ||w||^2."),
    latex=(r"w \in \mathrm{KKT}(P_\Phi) \iff w = \arg\min\{\tfrac12\|w\|^2 : y_i\langle w,x_i\rangle \ge 1\},"
           r"\quad w = \sum_i \lambda_i y_i x_i,\ \sum_i\lambda_i = \|w\|^2"),
    assumptions=[LINEAR, SEPARABLE],
    check_fn=_check,
    strategy=_instances,
    tolerances={"kkt": 1e-6, "multipliers": 1e-6, "direction": 1e-4},
    default_examples=100,
    references=["docs/math.md sections 2-5"],
)

THEOREMS = [THEOREM]
