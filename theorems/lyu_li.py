"""Lyu & Li: along gradient descent on the exponential loss, ``theta_hat(t)`` is ``(eps, delta)``-KKT with both -> 0.

A limit statement cannot be verified in finite time; what is checked is the
*measured trend* over a run of :func:`verifier.train` (the loss-adaptive
schedule of Lyu & Li's late phase) from a point where the loss is already
``< 1``, with :func:`verifier.check_kkt` at ``checkpoints`` evenly spaced steps.
Write ``r = max(eps_rel, sqrt(max(delta_rel, 0)))`` (both halves of the duality
gap ``eps^2/2 + delta`` on the same scale).  ``r`` need not fall monotonically
(the convergence is slow, ``O(1/log t)``, with plateaus and bumps when
activation patterns change), so only the trend over the run is checked.

Sub-checks
* ``kkt-trend``: ``r_last / r_first <= trend`` (default ``0.95``): the KKT residual falls;
* ``smoothed-margin``: Lyu & Li's smoothed normalised margin ``log(1/loss) / ||theta||^L`` rises over
  the run (figure ``first / last <= margin``, default 1).  It is monotone along the gradient *flow*;
  the discrete steps of the loss-adaptive schedule can dip by ~0.2% at single steps (measured), so
  the largest dip is reported, not asserted;
* ``separation``: every recorded margin stays positive (figure: ``max(0, -min q)``).

>>> from theorems import lyu_li
>>> ev = lyu_li.THEOREM.check(lyu_li.example())
>>> ev.verdict, ev.checks["kkt-trend"].figure < 0.5
('holds', True)
"""

from __future__ import annotations

import math
from typing import Any, Iterable, Mapping

import numpy as np
from hypothesis import strategies as st

import verifier
import verifier.strategies as vst

from ._common import SEPARATING_START, generic_points, point_instance, separating_start
from .euler import HOMOGENEOUS
from .base import Check, Instance, Theorem, within


def _residual(e: Mapping[str, Any]) -> float:
    return max(float(e["eps_rel"]), math.sqrt(max(float(e["delta_rel"]), 0.0)))


def _check(inst: Instance, tol: Mapping[str, float]) -> Iterable[Check]:
    o = inst.options
    steps, every = int(o["steps"]), max(1, int(o["steps"]) // int(o.get("checkpoints", 5)))
    res = verifier.train(inst.net, inst.params, inst.X, inst.y, steps=steps, lr=float(o["lr"]), kkt_every=every,
                         progress=False)
    kk = [e for e in res.history if e.get("eps_rel") is not None]
    r = [_residual(e) for e in kk]
    trail = ", ".join(f"{e['step']}: {v:.3g}" for e, v in zip(kk, r))
    yield within("kkt-trend", r[-1] / max(r[0], 1e-300), tol["trend"],
                 f"r = max(eps_rel, sqrt(delta_rel)) at steps {trail}")
    sm = [float(e["smoothed_margin"]) for e in res.history if e.get("smoothed_margin") is not None]
    decs = [(a - b) / abs(a) for a, b in zip(sm, sm[1:]) if a != 0]
    dip = max(decs + [0.0])
    yield within("smoothed-margin", sm[0] / sm[-1], tol["margin"],
                 f"smoothed normalised margin {sm[0]:.4g} -> {sm[-1]:.4g} over {len(sm)} recorded steps (figure: "
                 f"first / last); largest relative dip between records {dip:.2g} (discrete steps may dip)")
    qmin = min(float(e["min_margin"]) for e in res.history)
    yield within("separation", max(0.0, -qmin), 0.0, f"smallest recorded margin {qmin:.3g}")


def _instances(drop: str | None = None) -> st.SearchStrategy[Instance]:
    nets = vst.mlps(min_depth=2, max_depth=2, min_width=2, max_width=4, input_dim=None,
                    activations=["relu", "leaky_relu:0.25", "abs"])

    @st.composite
    def build(draw: Any) -> Instance:
        pt = separating_start(draw(generic_points(nets, min_samples=2, max_samples=6)))
        return point_instance(pt, steps=draw(st.sampled_from([1500, 2000])), lr=0.5, checkpoints=5)

    return build()


def example() -> Instance:
    """A two-layer ReLU network on four points, started where the loss is below 1."""
    net = verifier.mlp([2, 3, 1])
    params = {"W1": np.array([[1.0, 0.5], [-0.5, 1.0], [0.25, -1.0]]), "W2": np.array([[1.0, -1.0, 0.5]])}
    X = np.array([[1.0, 0.2], [0.8, -0.5], [-1.0, 0.3], [-0.6, -0.9]])
    y = np.sign(verifier.forward(net, params, X)[:, 0])
    pt = separating_start(vst.Point(net, params, X, y))
    return point_instance(pt, steps=1500, lr=0.5, checkpoints=5)


THEOREM = Theorem(
    "lyu-li-kkt-convergence",
    title="Lyu & Li: gradient descent drives (eps, delta) of theta_hat to 0 (measured trend)",
    statement=("For a positively homogeneous network (locally Lipschitz, definable) trained by gradient descent or "
               "flow on the exponential loss from a point with loss < 1, the smoothed normalised margin is "
               "non-decreasing (for the flow, and for gradient descent with small enough steps) and "
               "theta_hat(t) = theta(t) / q_min(t)^(1/L) is an (eps(t), delta(t))-KKT point of "
               "(P_Phi) with eps(t), delta(t) -> 0. Checked as a measured trend over a finite run: the KKT residual "
               "falls and the smoothed margin rises over the run."),
    latex=(r"\mathcal{L}(\theta_0)<1\ \Longrightarrow\ \tilde\gamma(\theta_t)\uparrow,\quad \hat\theta_t\ "
           r"\text{is }(\varepsilon_t,\delta_t)\text{-KKT},\ \ \varepsilon_t,\delta_t\to 0"),
    assumptions=[HOMOGENEOUS, SEPARATING_START],
    check_fn=_check,
    strategy=_instances,
    tolerances={"trend": 0.95, "margin": 1.0},
    default_examples=10,
    references=["Lyu & Li 2020 (arXiv 1906.05890), Theorems 4.1 and 4.4", "docs/math.md section 3"],
)

THEOREMS = [THEOREM]
