"""KKT embedding under channel splitting in convolutional networks (docs/math.md section 10).

Splitting output channel ``c`` of a convolution into copies with ratios
``alpha_k > 0``, ``sum alpha_k^2 = 1`` (filter ``alpha_k W_l[c]``, and the next
layer's input-channel slice ``alpha_k W_{l+1}[:, c]`` -- after pooling and
flatten, the block of dense columns of channel ``c``) is an isometry with
``Phi~(T theta) = Phi(theta)``: ReLU-type activations and max/avg pooling
commute with positive scaling.  KKT points and ``(eps, delta)`` are preserved.

The checker is :func:`verifier.channel_split` + :func:`verifier.check_embedding`
(``isometry``, ``function``, ``gradient``, ``kkt``).  Instances: CNNs on 1x4x4
(or 2x3x3) images with one or two convolution layers, kernel 1-3, max/avg/no
pooling, ReLU / leaky ReLU / abs, generic feasible points without kinks or
pooling ties, exact rational ratios.

>>> from theorems import channel_splitting
>>> ev = channel_splitting.THEOREM.check(channel_splitting.example())
>>> ev.verdict, ev.failed
('holds', [])
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np
from hypothesis import strategies as st

import verifier
import verifier.strategies as vst

from ._common import (FEASIBLE, ISOMETRIC_RATIOS, L2_MARGIN, ONE_HOMOGENEOUS, embedding_checks, generic_points,
                      local_checks, make_embedding, point_instance, split_option)
from .base import Check, Instance, Theorem


def _check(inst: Instance, tol: Mapping[str, float]) -> Iterable[Check]:
    from verifier.embed import check_embedding

    emb = make_embedding(inst)
    yield from local_checks(emb, inst, tol, probes=8)
    rep = check_embedding(emb, inst.params, inst.X, inst.y, checks=("kkt",), kkt_tol=tol["kkt"],
                          kkt_kwargs={"norm": inst.options.get("norm", "l2")})
    yield from embedding_checks(rep)


def _instances(drop: str | None = None) -> st.SearchStrategy[Instance]:
    acts = ["power:2"] if drop == "one-homogeneous" else ["relu", "leaky_relu:0.25", "abs"]
    nets = st.one_of(
        vst.cnns(input_shape=(1, 4, 4), max_conv_layers=2, max_channels=2, max_hidden_layers=1, max_hidden_width=2,
                 activations=acts),
        vst.cnns(input_shape=(2, 3, 3), max_conv_layers=1, max_channels=2, kernel_sizes=(1, 3), max_hidden_layers=0,
                 activations=acts),
    )

    @st.composite
    def build(draw: Any) -> Instance:
        if drop is None:
            pt = draw(generic_points(nets, min_samples=1, max_samples=3))
        else:  # the failure is gross: small grid points shrink fast to readable counterexamples
            small = vst.cnns(input_shape=(1, 3, 3), max_conv_layers=1, max_channels=2, kernel_sizes=(1, 3),
                             max_hidden_layers=0, activations=acts)
            pt = draw(vst.feasible_points(nets=small, max_samples=1))
        opts: dict[str, Any] = {"split": split_option(draw, pt.net, kind="channel", isometric=drop != "isometric-ratios")}
        if drop == "l2-margin":
            opts["norm"] = "linf"
        return point_instance(pt, **opts)

    return build()


def example() -> Instance:
    """A 1x4x4 CNN (2 channels, ReLU, max pooling) at a generic feasible point, channel 1 split (3/5, 4/5)."""
    net = verifier.cnn((1, 4, 4), channels=[2], pool="max")
    rng = np.random.default_rng(0)
    params = net.init_params(3)
    X = np.round(rng.normal(size=(3, 1, 4, 4)), 3)
    y = np.sign(verifier.forward(net, params, X)[:, 0])
    return Instance(net, params, X, y, {"split": {"kind": "channel", "layer": 1, "unit": 1, "ratios": ["3/5", "4/5"]}})


THEOREM = Theorem(
    "kkt-embedding-channel-split",
    title="Channel splitting in CNNs preserves KKT points and (eps, delta)",
    statement=("Let Phi be a CNN whose activations and poolings are positively 1-homogeneous, and let T split output "
               "channel c of a convolution into m copies with ratios alpha_k > 0, sum alpha_k^2 = 1 (filter "
               "alpha_k W_l[c], next layer's input slice alpha_k W_{l+1}[:, c]). Then T^T T = I, "
               "Phi~(T theta) = Phi(theta), grad Phi~(T theta) = T grad Phi(theta), and theta is a KKT point of the "
               "l2 max-margin problem iff T theta is, with the same multipliers and the same (eps, delta)."),
    latex=(r"W_l[c]\mapsto(\alpha_k W_l[c])_k,\ W_{l+1}[:,c]\mapsto(\alpha_k W_{l+1}[:,c])_k,\ \sum_k\alpha_k^2=1"
           r"\ \Longrightarrow\ \theta\in\mathrm{KKT}(P_\Phi)\iff T\theta\in\mathrm{KKT}(P_{\tilde\Phi})"),
    assumptions=[ONE_HOMOGENEOUS, L2_MARGIN, ISOMETRIC_RATIOS, FEASIBLE],
    check_fn=_check,
    strategy=_instances,
    tolerances={"function": 1e-9, "kkt": 1e-6},
    negatable={"isometric-ratios": "output-preserving channel rescales (a_k, b_k), sum a_k b_k = 1",
               "one-homogeneous": "z^2 activations after the convolutions",
               "l2-margin": "the l_inf max-margin problem"},
    default_examples=50,
    references=["Zhang, Zhang & Luo 2025 (arXiv 2505.12419)", "docs/math.md section 10"],
)

THEOREMS = [THEOREM]
