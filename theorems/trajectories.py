"""Training trajectories commute with an isometric split: ``theta~_k = T theta_k`` and ``theta~(t) = T theta(t)``.

If ``T`` is an isometry with ``Phi~(T theta) = Phi(theta)`` and
``grad Phi~(T theta) = T grad Phi(theta)``, the loss satisfies
``ell~(T theta) = ell(theta)`` and ``grad ell~(T theta) = T grad ell(theta)``,
so a gradient step from ``T theta_k`` lands on ``T theta_{k+1}`` for every
step size, and the gradient flow from ``T theta_0`` is ``T theta(t)``
(docs/math.md section 10).  Coordinate-wise methods do not commute with ``T``:
sign descent, coordinate descent and Adam (the known-false claims
``sign-descent-trajectory`` and ``adam-trajectory`` in :mod:`theorems.false_claims`).

* ``gd-trajectory-embedding``: ``steps`` fixed steps of size ``lr`` from ``theta_0`` and from
  ``T theta_0`` with :func:`verifier.dynamics.iterates`; sub-check ``gd_trajectory``
  (``max_k ||theta~_k - T theta_k|| / max_k ||theta_k||``), plus ``isometry`` and ``gradient``.
* ``flow-trajectory-embedding``: :func:`verifier.dynamics.gradient_flow` on both networks to
  ``t_end``; sub-check ``flow_trajectory``.  An instance whose flow slides along a ReLU kink (no ODE
  solver resolves it) is reported not-applicable.

>>> from theorems import trajectories
>>> ev = trajectories.GD.check(trajectories.example())
>>> ev.verdict, ev.checks["gd_trajectory"].passed
('holds', True)
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from hypothesis import assume
from hypothesis import strategies as st

import verifier
import verifier.strategies as vst

from ._common import (ISOMETRIC_RATIOS, ONE_HOMOGENEOUS, embedding_checks, generic_points, make_embedding,
                      point_instance, split_option, unit_is_active)
from .base import Assumption, Check, Instance, NotApplicable, Theorem

ACTS = ("relu", "leaky_relu:0.25", "abs", "identity")
#: gradient evaluations one flow integration may spend (a count, not a clock: the same verdict on a loaded
#: machine); beyond it the flow is taken to slide along a kink, where no ODE solver applies (not applicable)
FLOW_EVALS = 10_000


def _gd(inst: Instance) -> tuple[bool, str]:
    m = inst.options.get("method", "gd")
    return m == "gd", f"the optimiser is {m!r}" + ("" if m == "gd" else " (coordinate-wise, not gradient descent)")


GRADIENT_DESCENT = Assumption("gradient-descent", "The iterates are plain gradient descent theta <- theta - lr "
                              "grad loss (the steepest descent of the l2 norm, which T preserves).",
                              r"\theta_{k+1} = \theta_k - \eta\nabla\ell(\theta_k)", _gd)


def _check_gd(inst: Instance, tol: Mapping[str, float]) -> Iterable[Check]:
    from verifier.embed import check_embedding

    o = inst.options
    rep = check_embedding(make_embedding(inst), inst.params, inst.X, inst.y,
                          checks=("isometry", "gradient", "gd_trajectory"), gd_steps=int(o["steps"]), lr=float(o["lr"]),
                          method=o.get("method", "gd"), traj_tol=tol["trajectory"], probes=8)
    gd = rep.checks["gd_trajectory"]
    if getattr(gd, "status", "") == "error":  # e.g. the loss overflows float64 after a too-large step
        raise NotApplicable("finite-iterates", gd.detail)
    yield from embedding_checks(rep)


def _check_flow(inst: Instance, tol: Mapping[str, float]) -> Iterable[Check]:
    from verifier.embed import check_embedding

    o = inst.options
    rep = check_embedding(make_embedding(inst), inst.params, inst.X, inst.y,
                          checks=("isometry", "gradient", "flow_trajectory"), flow_time=float(o["t_end"]),
                          n_eval=int(o.get("n_eval", 20)), flow_tol=tol["trajectory"], probes=8,
                          flow_max_evals=FLOW_EVALS)
    fl = rep.checks["flow_trajectory"]
    if getattr(fl, "status", "") == "error":
        raise NotApplicable("flow-integrable", fl.detail)
    yield from embedding_checks(rep)


def _nets(acts: Iterable[str]) -> st.SearchStrategy[verifier.Network]:
    return vst.mlps(min_depth=2, max_depth=3, max_width=3, input_dim=None, activations=list(acts))


def _gd_instances(drop: str | None = None, *, method: str | None = None) -> st.SearchStrategy[Instance]:
    @st.composite
    def build(draw: Any) -> Instance:
        if drop is None:
            pt = draw(generic_points(_nets(ACTS), labels=draw(st.sampled_from(["network", "random"]))))
        else:  # the failure is gross: grid points shrink to readable counterexamples
            pt = draw(vst.feasible_points(nets=_nets(ACTS), max_samples=3))
        split = split_option(draw, pt.net, isometric=drop != "isometric-ratios")
        if drop is not None:  # a live split unit: the failure is about the optimiser, not a dead neuron
            assume(unit_is_active(pt.params, split))
        opts: dict[str, Any] = {
            "split": split,
            "method": (method or draw(st.sampled_from(["sign", "adam", "coordinate"]))) if drop == "gradient-descent"
            else "gd",
            "steps": draw(st.integers(1, 40)),
            "lr": draw(st.sampled_from([0.05, 0.1, 0.01, 0.2])),
        }
        return point_instance(pt, **opts)

    return build()


def _flow_instances(drop: str | None = None) -> st.SearchStrategy[Instance]:
    @st.composite
    def build(draw: Any) -> Instance:
        pt = draw(generic_points(_nets(ACTS), max_samples=3, labels=draw(st.sampled_from(["network", "random"]))))
        return point_instance(pt, split=split_option(draw, pt.net, isometric=drop != "isometric-ratios"),
                              t_end=draw(st.sampled_from([1.0, 0.5, 2.0])), n_eval=20)

    return build()


def example(method: str = "gd") -> Instance:
    """A two-layer ReLU network, two samples, neuron 0 split (3/5, 4/5), 20 steps of size 0.1."""
    net = verifier.mlp([2, 2, 1])
    return Instance(net, {"W1": [[1.0, -0.5], [0.5, 1.0]], "W2": [[1.0, -1.0]]}, [[1.0, 0.5], [-0.5, 1.0]], [1.0, -1.0],
                    {"split": {"kind": "neuron", "layer": 1, "unit": 0, "ratios": ["3/5", "4/5"]},
                     "method": method, "steps": 20, "lr": 0.1})


GD = Theorem(
    "gd-trajectory-embedding",
    title="Gradient-descent iterates commute with an isometric split",
    statement=("Let T be an isometric neuron split (ratios alpha_k > 0, sum alpha_k^2 = 1) of a network with positively "
               "1-homogeneous activations. For any loss of the outputs, any step size lr and any theta_0, the "
               "gradient-descent iterates theta~_k of the wide network started at T theta_0 satisfy "
               "theta~_k = T theta_k for every k."),
    latex=(r"\tilde\theta_0 = T\theta_0,\ \tilde\theta_{k+1}=\tilde\theta_k-\eta\nabla\tilde\ell(\tilde\theta_k)"
           r"\ \Longrightarrow\ \tilde\theta_k = T\theta_k\ \ \forall k"),
    assumptions=[ONE_HOMOGENEOUS, ISOMETRIC_RATIOS, GRADIENT_DESCENT],
    check_fn=_check_gd,
    strategy=_gd_instances,
    tolerances={"trajectory": 1e-8},
    negatable={"gradient-descent": "sign descent, Adam or coordinate descent with the same step",
               "isometric-ratios": "output-preserving but non-isometric rescales"},
    default_examples=100,
    references=["Zhang, Zhang & Luo 2025 (arXiv 2505.12419)", "docs/math.md section 10"],
)

FLOW = Theorem(
    "flow-trajectory-embedding",
    title="Gradient-flow trajectories commute with an isometric split",
    statement=("Under the same assumptions, the gradient flow d theta~/dt = -grad ell~(theta~) started at T theta_0 "
               "is theta~(t) = T theta(t) for all t >= 0, where theta(t) is the narrow network's gradient flow."),
    latex=r"\tilde\theta(0)=T\theta(0)\ \Longrightarrow\ \tilde\theta(t) = T\theta(t)\ \ \forall t\ge 0",
    assumptions=[ONE_HOMOGENEOUS, ISOMETRIC_RATIOS],
    check_fn=_check_flow,
    strategy=_flow_instances,
    tolerances={"trajectory": 1e-6},
    negatable={"isometric-ratios": "output-preserving but non-isometric rescales"},
    default_examples=30,
    references=["Zhang, Zhang & Luo 2025 (arXiv 2505.12419)", "docs/math.md section 10"],
)

THEOREM = GD
THEOREMS = [GD, FLOW]
