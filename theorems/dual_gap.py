"""The tangent-dual gap identity: ``1/2 ||theta||^2 - D(lambda) = 1/2 eps(lambda)^2 + delta(lambda)``.

At a feasible, normalised ``theta`` (smallest margin 1) with gradients ``h_i``
of the margins and *any* ``lambda >= 0``, with ``c_i = 1 - q_i + L q_i``,
``D(lambda) = sum lambda_i c_i - 1/2 lambda^T G lambda`` (``G = H H^T``),
``eps = ||theta - sum lambda_i h_i||`` and ``delta = sum lambda_i (q_i - 1)``
(docs/math.md sections 4-5; it needs Euler's identity ``<h_i, theta> = L q_i``).

Two independent routes meet: the left side from the Gram matrix built
without a Jacobian (:func:`~verifier.numeric.gram_from`), the right side from
the explicit Jacobian (:func:`~verifier.numeric.jacobian_from`).  The same
identity is then used to audit :func:`~verifier.check_kkt`'s report.

Sub-checks
* ``identity``: the two routes at a random ``lambda >= 0`` (relative to ``1 + 1/2 ||theta||^2 + |D|``);
* ``report-identity``: the report's ``gap`` vs its own ``eps^2/2 + delta``;
* ``report-certificate``: the report's multipliers, re-evaluated by the Jacobian route at our ``theta_hat``,
  give the report's gap (the multipliers are a certificate anyone can recompute);
* ``dual-optimality``: ``D(lambda_report) >= D(lambda)`` for the random ``lambda`` (the solver maximises D).

>>> from theorems import dual_gap
>>> ev = dual_gap.THEOREM.check(dual_gap.example())
>>> ev.verdict, ev.checks["identity"].passed
('holds', True)
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np
from hypothesis import strategies as st

import verifier
import verifier.strategies as vst
from verifier.numeric import gram_from, jacobian_from, margins_from, prepare

from ._common import FEASIBLE, generic_points, point_instance
from .base import Check, Instance, Theorem, within
from .euler import HOMOGENEOUS


def _parts(net: verifier.Network, theta: np.ndarray, X: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    fp, cons = prepare(net, theta, X, y)
    q = margins_from(fp, cons)
    L = float(verifier.degree(net))
    th = theta / q.min() ** (1.0 / L)
    fp, cons = prepare(net, th, X, y)
    return {"theta": th, "q": margins_from(fp, cons), "G": gram_from(fp, cons), "J": jacobian_from(fp, cons),
            "L": L, "cons": cons}


def dual_objective(p: Mapping[str, Any], lam: np.ndarray) -> float:
    c = 1.0 - p["q"] + p["L"] * p["q"]
    return float(lam @ c - 0.5 * lam @ p["G"] @ lam)


def eps_delta(p: Mapping[str, Any], lam: np.ndarray) -> tuple[float, float]:
    eps = float(np.linalg.norm(p["theta"] - p["J"].T @ lam))
    return eps, float(lam @ (p["q"] - 1.0))


def _check(inst: Instance, tol: Mapping[str, float]) -> Iterable[Check]:
    p = _parts(inst.net, inst.theta, inst.X, inst.y)
    lam = np.asarray(inst.options["lambda"], dtype=float)
    half = 0.5 * float(p["theta"] @ p["theta"])
    D = dual_objective(p, lam)
    eps, delta = eps_delta(p, lam)
    lhs, rhs = half - D, 0.5 * eps ** 2 + delta
    scale = 1.0 + half + abs(D)
    yield within("identity", abs(lhs - rhs) / scale, tol["identity"],
                 f"1/2||theta||^2 - D(lambda) = {lhs:.10g} (Gram route) vs eps^2/2 + delta = {rhs:.10g} (Jacobian route)")
    rep = verifier.check_kkt(inst.net, inst.theta, inst.X, inst.y, kink_tol=None)
    r_gap = float(rep.gap)
    yield within("report-identity", abs(r_gap - (0.5 * rep.eps ** 2 + rep.delta)) / scale, tol["report"],
                 f"report: gap {r_gap:.10g} vs eps^2/2 + delta = {0.5 * rep.eps ** 2 + rep.delta:.10g}")
    lam_r = np.asarray(rep.multipliers, dtype=float)
    e_r, d_r = eps_delta(p, lam_r)
    mine = 0.5 * e_r ** 2 + d_r
    yield within("report-certificate", abs(mine - r_gap) / scale, tol["report"],
                 f"the report's multipliers re-evaluated at theta_hat: eps^2/2 + delta = {mine:.10g} vs report gap "
                 f"{r_gap:.10g} ({rep.solver})")
    D_r = dual_objective(p, lam_r)
    yield within("dual-optimality", max(0.0, D - D_r) / scale, tol["report"],
                 f"D(lambda_report) = {D_r:.10g} >= D(lambda) = {D:.10g} for the instance's lambda")


def _instances(drop: str | None) -> st.SearchStrategy[Instance]:
    nets = st.one_of(
        vst.mlps(max_depth=3, max_width=3, input_dim=None, activations=["relu", "abs", "leaky_relu:0.25", "identity",
                                                                         "relu_power:2"]),
        vst.mlps(max_depth=2, max_width=3, outputs=3, activations=["relu", "abs"]),
        vst.cnns(input_shape=(1, 3, 3), max_conv_layers=1, max_channels=2, kernel_sizes=(1, 3)),
        vst.diagonal_nets(max_dim=3),
    )

    @st.composite
    def build(draw: Any) -> Instance:
        pt = draw(generic_points(nets, min_samples=1, max_samples=5))
        m = len(pt.y) * (1 if pt.net.num_outputs == 1 else pt.net.num_outputs - 1)
        lam = draw(st.lists(st.integers(0, 8).map(lambda k: k / 4), min_size=m, max_size=m))
        return point_instance(pt, **{"lambda": lam})

    return build()


def example() -> Instance:
    """A two-layer ReLU point with labels given by the network and multipliers ``(1/2, 1)``."""
    net = verifier.mlp([2, 2, 1])
    return Instance(net, {"W1": [[1.0, -0.5], [0.25, 1.0]], "W2": [[1.0, -0.5]]}, [[1.0, 0.5], [-0.5, 1.5]],
                    [1.0, -1.0], {"lambda": [0.5, 1.0]})


THEOREM = Theorem(
    "dual-gap-identity",
    title="Tangent-dual gap identity: 1/2||theta||^2 - D(lambda) = eps^2/2 + delta",
    statement=("Let theta be feasible and normalised (min_i q_i = 1) for a network homogeneous of degree L, "
               "h_i gradients of the margins, G_ij = <h_i, h_j>, c_i = 1 - q_i + L q_i and "
               "D(lambda) = sum lambda_i c_i - 1/2 lambda^T G lambda. For every lambda >= 0, "
               "1/2 ||theta||^2 - D(lambda) = 1/2 ||theta - sum lambda_i h_i||^2 + sum lambda_i (q_i - 1). "
               "So any multiplier vector certifies an upper bound on (eps, delta), and theta is KKT iff the "
               "dual optimum closes the gap."),
    latex=(r"\tfrac12\|\theta\|^2 - \Big(\sum_i\lambda_i c_i - \tfrac12\lambda^\top G\lambda\Big) "
           r"= \tfrac12\Big\|\theta-\sum_i\lambda_i h_i\Big\|^2 + \sum_i \lambda_i (q_i-1),\quad \lambda\ge 0"),
    assumptions=[HOMOGENEOUS, FEASIBLE],
    check_fn=_check,
    strategy=_instances,
    tolerances={"identity": 1e-9, "report": 1e-7},
    default_examples=100,
    references=["docs/math.md sections 4-5"],
)

THEOREMS = [THEOREM]
