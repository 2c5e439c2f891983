"""KKT embedding under neuron splitting (Zhang, Zhang & Luo 2025; docs/math.md section 10).

Splitting hidden neuron ``j`` of layer ``l`` into copies with ratios
``alpha_k > 0``, ``sum alpha_k^2 = 1`` (copy ``k``: incoming row
``alpha_k W_l[j, :]``, outgoing column ``alpha_k W_{l+1}[:, j]``) is a linear
isometry ``T`` with ``Phi~(T theta) = Phi(theta)`` and
``grad Phi~(T theta) = T grad Phi(theta)`` when the activation is positively
1-homogeneous.  Hence KKT points map to KKT points with the same
multipliers, and the best ``(eps, delta)`` of ``theta`` and ``T theta`` agree.

The checker builds ``T`` with :func:`verifier.neuron_split` and runs
:func:`verifier.check_embedding` (sub-checks ``isometry``, ``function``,
``gradient``, ``kkt``: narrow and wide :func:`~verifier.check_kkt` reports
agree in verdict, ``eps``, ``delta`` and multipliers).  For KKT points built
by construction it adds ``certificate``: the *known* narrow multipliers,
evaluated on the wide network at ``T theta``, close the wide duality gap.

Instances: exact KKT points (balanced deep linear networks, the two-layer
ReLU kink example) and generic feasible points of MLPs of depth 2 and 3 with
ReLU, leaky ReLU, abs or identity, without kinks, binary or with three classes
(multiclass margins); splits with exact rational ratios (Pythagorean pairs,
``(1/3, 2/3, 2/3)``, ...).

Negations (see :mod:`theorems.false_claims`): dropping ``isometric-ratios``
(an output-preserving rescale ``a_k``, ``b_k`` with ``sum a_k b_k = 1``) breaks
``isometry`` and ``kkt`` but not ``function``; dropping ``one-homogeneous``
(``z^2`` activations) breaks ``function``; dropping ``l2-margin`` (KKT for the
l_inf max-margin problem) breaks ``kkt``.

>>> from theorems import neuron_splitting
>>> ev = neuron_splitting.THEOREM.check(neuron_splitting.example())
>>> ev.verdict, sorted(ev.checks)
('holds', ['certificate', 'function', 'gradient', 'isometry', 'kkt'])
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Iterable, Mapping

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

import verifier
import verifier.strategies as vst
from verifier.numeric import jacobian_from, margins_from, prepare

from ._common import (FEASIBLE, ISOMETRIC_RATIOS, L2_MARGIN, ONE_HOMOGENEOUS, embedding_checks, generic_points,
                      local_checks, make_embedding, point_instance, split_option, unit_is_active)
from .base import Check, Instance, Theorem, within

HOMOGENEOUS_ACTS = ("relu", "leaky_relu:0.25", "abs", "identity")


def wide_gap(net: verifier.Network, theta: np.ndarray, X: np.ndarray, y: np.ndarray, lam: np.ndarray) -> tuple[float, float]:
    """``(eps, delta)`` of multipliers ``lam`` at ``theta`` (normalised to smallest margin 1), Jacobian route."""
    fp, cons = prepare(net, theta, X, y)
    q = margins_from(fp, cons)
    th = theta / q.min() ** (1.0 / float(verifier.degree(net)))
    fp, cons = prepare(net, th, X, y)
    q = margins_from(fp, cons)
    J = jacobian_from(fp, cons)
    return float(np.linalg.norm(th - J.T @ lam)), float(lam @ (q - 1.0))


def _check(inst: Instance, tol: Mapping[str, float]) -> Iterable[Check]:
    from verifier.embed import check_embedding

    emb = make_embedding(inst)
    norm = inst.options.get("norm", "l2")
    yield from local_checks(emb, inst, tol)
    rep = check_embedding(emb, inst.params, inst.X, inst.y, checks=("kkt",), kkt_tol=tol["kkt"],
                          kkt_kwargs={"norm": norm})
    yield from embedding_checks(rep)
    lam = inst.options.get("multipliers")
    if lam is not None and norm == "l2" and inst.options.get("construction") != "kink":
        lam = np.asarray(lam, dtype=float)
        wide_theta = emb.wide_net.flatten(emb.apply(inst.params))
        eps, delta = wide_gap(emb.wide_net, wide_theta, inst.X, inst.y, lam)
        fig = max(float(eps / np.linalg.norm(wide_theta)), abs(delta) / float(wide_theta @ wide_theta))
        yield within("certificate", fig, tol["kkt"], f"the narrow point's known multipliers at T theta on the wide "
                     f"network: eps = {eps:.3g}, delta = {delta:.3g}")


def _linf_kkt_points() -> st.SearchStrategy[vst.Point]:
    """Exact KKT points of the l_inf max-margin problem: ``mlp([d, 1, 1])``, all weights ``+-c``.

    ``Phi = v relu(<w, x>)`` with ``w = c 1_d``, ``v = s c``, support ``x = 1_d / (d c^2)`` with label ``s``:
    the margin gradient ``(v x, <w, x>) = (1/(d c) 1_d, 1/c)`` is a positive multiple of an element of
    the subdifferential ``||theta||_inf conv{sign(theta_j) e_j}`` of ``1/2 ||theta||_inf^2`` (all coordinates tie).
    """

    @st.composite
    def build(draw: Any) -> vst.Point:
        d = draw(st.integers(1, 2))
        c = draw(st.sampled_from([Fraction(1), Fraction(2), Fraction(1, 2)]))
        s = draw(st.sampled_from([1, -1]))
        x = [1 / (d * c * c)] * d
        X = [x] + [[k * v for v in x] for k in draw(st.lists(st.sampled_from([Fraction(3, 2), Fraction(2)]), max_size=2))]
        net = verifier.mlp([d, 1, 1])
        params = {"W1": np.array([[float(c)] * d]), "W2": np.array([[float(s * c)]])}
        return vst.Point(net, params, np.array(X, dtype=float), np.full(len(X), float(s)), None, "linf_kkt")

    return build()


def _instances(drop: str | None = None, *, depths: tuple[int, ...] = (2, 3)) -> st.SearchStrategy[Instance]:
    acts = ["power:2", "relu_power:2"] if drop == "one-homogeneous" else list(HOMOGENEOUS_ACTS)
    nets = st.sampled_from(depths).flatmap(lambda L: vst.mlps(min_depth=L, max_depth=L, max_width=3, input_dim=None,
                                                              activations=acts))
    kinds = []
    if drop != "one-homogeneous":
        kkt_kinds = [k for k, L in (("deep_linear", None), ("kink", 2)) if L is None or L in depths]
        kinds.append(vst.kkt_points(kinds=kkt_kinds, max_depth=max(depths)).filter(
            lambda p: len(p.net.param_names) in depths))
    if drop == "l2-margin" and 2 in depths:
        kinds.insert(0, _linf_kkt_points())
    if drop == "one-homogeneous":  # gross failure: grid points shrink to readable counterexamples
        kinds.append(vst.feasible_points(nets=nets, max_samples=3))
    else:
        kinds.append(generic_points(nets, min_samples=1, max_samples=4))
        multiclass = st.sampled_from(depths).flatmap(lambda L: vst.mlps(min_depth=L, max_depth=L, max_width=3,
                                                                        outputs=3, activations=acts))
        kinds.append(generic_points(multiclass, min_samples=1, max_samples=3))
    points = st.one_of(*kinds)

    @st.composite
    def build(draw: Any) -> Instance:
        pt = draw(points)
        split = split_option(draw, pt.net, isometric=drop != "isometric-ratios")
        if drop == "one-homogeneous":  # split a live unit, so that the failure shows at the instance's own theta
            assume(unit_is_active(pt.params, split))
        opts: dict[str, Any] = {"split": split}
        if drop == "l2-margin":
            opts["norm"] = "linf"
        return point_instance(pt, **opts)

    return build()


def example() -> Instance:
    """The balanced two-layer linear KKT point ``W1 = (1, 0)``, ``W2 = 1`` split with ratios (3/5, 4/5)."""
    net = verifier.mlp([2, 1, 1], activation="identity")
    return Instance(net, {"W1": [[1.0, 0.0]], "W2": [[1.0]]}, [[1.0, 0.0], [-1.0, 0.0], [2.0, 1.0]], [1.0, -1.0, 1.0],
                    {"split": {"kind": "neuron", "layer": 1, "unit": 0, "ratios": ["3/5", "4/5"]},
                     "multipliers": [0.5, 0.5, 0.0], "construction": "deep_linear"})


STATEMENT = ("Let Phi be a network whose activations are positively 1-homogeneous, and let T split hidden neuron j "
             "of layer l into m copies with ratios alpha_k > 0, sum alpha_k^2 = 1 (incoming row and outgoing column "
             "of copy k scaled by alpha_k). Then T is a linear isometry with Phi~(T theta) = Phi(theta) and "
             "grad Phi~(T theta) = T grad Phi(theta); for every feasible theta, theta is a KKT point of the l2 "
             "max-margin problem (P_Phi) iff T theta is one of (P_Phi~), with the same multipliers, and the best "
             "(eps, delta) of theta and T theta coincide.")
LATEX = (r"T^\top T = I,\ \ \tilde\Phi(T\theta;x)=\Phi(\theta;x),\ \ \nabla\tilde\Phi(T\theta;x)=T\nabla\Phi(\theta;x)"
         r"\ \Longrightarrow\ \theta\in\mathrm{KKT}(P_\Phi)\iff T\theta\in\mathrm{KKT}(P_{\tilde\Phi}),"
         r"\ (\varepsilon,\delta)(T\theta)=(\varepsilon,\delta)(\theta)")
NEGATABLE = {
    "isometric-ratios": "output-preserving rescales a_k = c_k alpha_k (incoming), b_k = alpha_k / c_k (outgoing), "
                        "sum a_k b_k = 1, some c_k != 1",
    "one-homogeneous": "z^2 and relu(z)^2 activations (generic feasible points), isometric ratios",
    "l2-margin": "the l_inf max-margin problem (check_kkt(norm='linf')), including exact l_inf KKT points",
}


def _make(name: str, title: str, depths: tuple[int, ...], examples: int) -> Theorem:
    return Theorem(
        name, title=title, statement=STATEMENT, latex=LATEX,
        assumptions=[ONE_HOMOGENEOUS, L2_MARGIN, ISOMETRIC_RATIOS, FEASIBLE],
        check_fn=_check,
        strategy=lambda drop=None, **kw: _instances(drop, depths=depths, **kw),
        tolerances={"function": 1e-9, "kkt": 1e-6},
        negatable=NEGATABLE, default_examples=examples,
        references=["Zhang, Zhang & Luo 2025 (arXiv 2505.12419)", "docs/math.md section 10"],
    )


THEOREM = _make("kkt-embedding-neuron-split", "Neuron splitting preserves KKT points and (eps, delta)", (2, 3), 100)
TWO_LAYER = _make("kkt-embedding-neuron-split-two-layer",
                  "Neuron splitting preserves KKT points (two-layer networks)", (2,), 100)
DEEP = _make("kkt-embedding-neuron-split-deep",
             "Neuron splitting preserves KKT points (depth-3 networks, split in any hidden layer)", (3,), 100)

THEOREMS = [THEOREM, TWO_LAYER, DEEP]
