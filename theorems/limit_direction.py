"""Limit directions map under an isometric split: ``theta~(t)/||theta~(t)|| = T theta(t)/||theta(t)||``.

Since the wide trajectory started at ``T theta_0`` is ``T theta(t)`` and ``T``
preserves norms, the normalised directions -- hence their limit set, which
by Lyu & Li / Ji & Telgarsky consists of KKT directions -- correspond, and so
do the normalised margins and the ``(eps, delta)`` of the late iterates.

The checker trains the narrow network from a separating start (loss ``< 1``)
with :func:`verifier.train` (loss-adaptive schedule, Armijo line search) and
the wide one from ``T theta_0`` with the same settings, then compares at the
end of training:

* ``direction``: ``||T theta_N/||theta_N|| - theta~_N/||theta~_N||||``;
* ``normalized-margin``: ``|gamma(theta_N) - gamma~(theta~_N)| / gamma(theta_N)``;
* ``kkt``: ``|eps_rel - eps_rel~| + |delta_rel - delta_rel~|`` of :func:`verifier.check_kkt` at both ends.

Negated (``gradient-descent`` dropped): the same run with sign descent
(steepest descent for l_inf) -- the directions part.

>>> from theorems import limit_direction
>>> ev = limit_direction.THEOREM.check(limit_direction.example())
>>> ev.verdict, ev.checks["direction"].figure < 1e-9
('holds', True)
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np
from hypothesis import strategies as st

import verifier
import verifier.strategies as vst

from ._common import (ISOMETRIC_RATIOS, ONE_HOMOGENEOUS, SEPARATING_START, generic_points, make_embedding,
                      point_instance, separating_start, split_option)
from .base import Check, Instance, Theorem, within
from .trajectories import GRADIENT_DESCENT


def _check(inst: Instance, tol: Mapping[str, float]) -> Iterable[Check]:
    o = inst.options
    emb = make_embedding(inst)
    kw = {"steps": int(o["steps"]), "lr": float(o["lr"]), "method": o.get("method", "gd"), "progress": False}
    a = verifier.train(inst.net, inst.params, inst.X, inst.y, **kw)
    b = verifier.train(emb.wide_net, emb.apply(inst.params), inst.X, inst.y, **kw)
    ta, tb = a.theta, b.theta
    da = emb.wide_net.flatten(emb.apply(ta)) / np.linalg.norm(ta)
    db = tb / np.linalg.norm(tb)
    yield within("direction", float(np.linalg.norm(da - db)), tol["direction"],
                 f"after {kw['steps']} {kw['method']} steps: T theta/||theta|| vs theta~/||theta~|| "
                 f"(||theta|| = {np.linalg.norm(ta):.4g}, ||theta~|| = {np.linalg.norm(tb):.4g})")
    ga, gb = a.history[-1]["normalized_margin"], b.history[-1]["normalized_margin"]
    yield within("normalized-margin", abs(ga - gb) / abs(ga), tol["direction"],
                 f"normalised margin {ga:.10g} (narrow) vs {gb:.10g} (wide)")
    ra = verifier.check_kkt(inst.net, ta, inst.X, inst.y)
    rb = verifier.check_kkt(emb.wide_net, tb, inst.X, inst.y)
    fig = abs(ra.eps_rel - rb.eps_rel) + abs(ra.delta_rel - rb.delta_rel)
    yield within("kkt", fig, tol["kkt"], f"end of training: narrow eps_rel {ra.eps_rel:.4g}, delta_rel "
                 f"{ra.delta_rel:.3g}; wide eps_rel {rb.eps_rel:.4g}, delta_rel {rb.delta_rel:.3g}")


def _instances(drop: str | None = None, *, method: str = "sign") -> st.SearchStrategy[Instance]:
    nets = vst.mlps(min_depth=2, max_depth=3, max_width=3, input_dim=None,
                    activations=["relu", "leaky_relu:0.25", "abs", "identity"])

    @st.composite
    def build(draw: Any) -> Instance:
        pt = separating_start(draw(generic_points(nets, min_samples=2, max_samples=5)))
        return point_instance(pt, split=split_option(draw, pt.net, isometric=drop != "isometric-ratios"),
                              steps=draw(st.sampled_from([300, 100, 600])), lr=0.5,
                              method=method if drop == "gradient-descent" else "gd")

    return build()


def example() -> Instance:
    net = verifier.mlp([2, 2, 1])
    params = {"W1": np.array([[1.0, 0.5], [-0.5, 1.0]]), "W2": np.array([[1.0, -1.0]])}
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    y = np.sign(verifier.forward(net, params, X)[:, 0])
    pt = separating_start(vst.Point(net, params, X, y))
    return point_instance(pt, split={"kind": "neuron", "layer": 1, "unit": 1, "ratios": ["1/3", "2/3", "2/3"]},
                          steps=300, lr=0.5, method="gd")


THEOREM = Theorem(
    "limit-direction-embedding",
    title="Directions, normalised margins and late (eps, delta) map under an isometric split",
    statement=("Let T be an isometric neuron split of a network with positively 1-homogeneous activations. Gradient "
               "descent on the exponential loss from T theta_0 (same step-size rule) stays at T theta_k, so "
               "theta~_k/||theta~_k|| = T theta_k/||theta_k||: the limit set of directions of the wide network is "
               "the image under T of the narrow one (KKT directions by Lyu & Li), with the same normalised "
               "margins and the same (eps, delta) along the way."),
    latex=(r"\frac{\tilde\theta_k}{\|\tilde\theta_k\|} = T\frac{\theta_k}{\|\theta_k\|}\ \Longrightarrow\ "
           r"\lim\text{-set}\Big(\frac{\tilde\theta}{\|\tilde\theta\|}\Big) = T\,\lim\text{-set}\Big(\frac{\theta}{\|\theta\|}\Big)"),
    assumptions=[ONE_HOMOGENEOUS, ISOMETRIC_RATIOS, GRADIENT_DESCENT, SEPARATING_START],
    check_fn=_check,
    strategy=_instances,
    tolerances={"direction": 1e-7, "kkt": 1e-6},
    negatable={"gradient-descent": "sign descent (steepest descent in l_inf) with the same schedule"},
    default_examples=20,
    references=["Zhang, Zhang & Luo 2025 (arXiv 2505.12419)", "Lyu & Li 2020", "Ji & Telgarsky 2020",
                "docs/math.md section 10"],
)

THEOREMS = [THEOREM]
