"""Shared pieces of the theorem library: assumptions, instance builders, embedding glue."""

from __future__ import annotations

from fractions import Fraction
from typing import Any, Mapping, Sequence

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st

import verifier
import verifier.strategies as vst
from verifier.graph import Network
from verifier.numeric import kinks, margins

from .base import Assumption, Check, Instance, sub_check

# -- predicates ------------------------------------------------------------------------------------------

def activation_exponents(net: Network) -> list[tuple[str, str, int | None]]:
    """``(node, op, p)`` for every parameter-free node with ``f(c z) = c^p f(z)`` (``None``: no such p)."""
    out = []
    for name in net.order:
        node = net.nodes[name]
        if node.params or node.op in ("input", "output", "flatten", "add"):
            continue
        out.append((name, node.op, node.impl.scaling_exponent(dict(node.attrs))))
    return out


def _one_homogeneous(inst: Instance) -> tuple[bool, str]:
    bad = [(n, op, p) for n, op, p in activation_exponents(inst.net) if p != 1]
    if bad:
        n, op, p = bad[0]
        how = "is not positively homogeneous" if p is None else f"scales as z^{p}"
        return False, f"node {n!r} ({op}) {how}; splitting needs sigma(a z) = a sigma(z) for a > 0"
    return True, "every activation and pooling is positively 1-homogeneous"


ONE_HOMOGENEOUS = Assumption(
    "one-homogeneous",
    "Every activation (and pooling) is positively 1-homogeneous: sigma(a z) = a sigma(z) for a > 0 "
    "(ReLU, leaky ReLU, abs, identity, max/avg pooling).",
    r"\sigma(a z) = a\,\sigma(z)\ \ \forall a > 0",
    _one_homogeneous,
)


def _feasible(inst: Instance) -> tuple[bool, str]:
    q = margins(inst.net, inst.params, inst.X, inst.y)
    i = int(np.argmin(q))
    if q[i] > 0:
        return True, f"min margin {q[i]:.3g} > 0"
    return False, f"sample {i} has margin {q[i]:.3g} <= 0: theta does not separate the data"


FEASIBLE = Assumption("feasible", "theta separates the data: every margin q_i(theta) > 0.",
                      r"\min_i q_i(\theta) > 0", _feasible)


def _l2(inst: Instance) -> tuple[bool, str]:
    norm = inst.options.get("norm", "l2")
    return norm == "l2", f"the margin problem is posed in the {norm} norm"


L2_MARGIN = Assumption("l2-margin", "The max-margin problem minimises the Euclidean norm 1/2 ||theta||_2^2 "
                       "(the norm T preserves).", r"\min \tfrac12\|\theta\|_2^2", _l2)


def ratios_of(split: Mapping[str, Any]) -> tuple[tuple[Fraction, ...], tuple[Fraction, ...]]:
    """Incoming and outgoing ratios of a split option, as Fractions."""
    if "ratios" in split:
        a = tuple(Fraction(str(r)) for r in split["ratios"])
        return a, a
    return tuple(Fraction(str(r)) for r in split["in_ratios"]), tuple(Fraction(str(r)) for r in split["out_ratios"])


def _isometric(inst: Instance) -> tuple[bool, str]:
    a, b = ratios_of(inst.options["split"])
    s = sum(x * x for x in a)
    if any(x <= 0 for x in a + b):
        return False, "ratios must be positive"
    if a != b:
        return False, (f"incoming ratios {tuple(map(str, a))} differ from outgoing {tuple(map(str, b))}: "
                       "an output-preserving rescale, not an isometric split")
    if s != 1:
        return False, f"sum alpha_k^2 = {s} != 1"
    return True, f"ratios ({', '.join(map(str, a))}) with sum alpha_k^2 = 1 exactly"


ISOMETRIC_RATIOS = Assumption(
    "isometric-ratios",
    "The split ratios are positive with sum alpha_k^2 = 1, and each copy scales its incoming and outgoing "
    "weights by the same alpha_k (so T^T T = I).",
    r"\alpha_k > 0,\ \sum_k \alpha_k^2 = 1",
    _isometric,
)


# -- instance builders -----------------------------------------------------------------------------------

def point_instance(pt: vst.Point, **options: Any) -> Instance:
    opts = dict(options)
    if pt.multipliers is not None:
        opts.setdefault("multipliers", [float(v) for v in pt.multipliers])
    if pt.kind != "feasible":
        opts.setdefault("construction", pt.kind)
    return Instance(pt.net, pt.params, pt.X, pt.y, opts)


def generic_points(nets: st.SearchStrategy[Network], *, min_samples: int = 1, max_samples: int = 4,
                   labels: str = "network", avoid_kinks: bool = True) -> st.SearchStrategy[vst.Point]:
    """Points with generic (seeded Gaussian) parameters and inputs: no exact ties or kinks.

    ``labels="network"``: ``y = sign Phi(theta; x)`` (a feasible point, samples with
    ``|Phi| < 1e-3 max|Phi|`` dropped); ``"random"``: random labels.
    """

    @st.composite
    def build(draw: Any) -> vst.Point:
        net = draw(nets)
        seed = draw(st.integers(0, 2**20))
        n = draw(st.integers(min_samples, max_samples))
        rng = np.random.default_rng(seed)
        params = net.init_params(seed)
        X = np.round(rng.normal(size=(n, *net.input_shape)), 3)
        out = verifier.forward(net, params, X)
        C = net.num_outputs
        if labels == "network":
            o = out[:, 0] if C == 1 else out
            if C == 1:
                keep = np.abs(o) > 1e-3 * max(float(np.abs(o).max()), 1e-12)
                assume(keep.any() and float(np.abs(o).max()) > 1e-9)
                X, y = X[keep], np.where(o[keep] > 0, 1.0, -1.0)
            else:
                srt = np.sort(o, axis=1)
                keep = srt[:, -1] - srt[:, -2] > 1e-3
                assume(keep.any())
                X, y = X[keep], np.argmax(o[keep], axis=1).astype(float)
        else:
            y = rng.choice([-1.0, 1.0], size=n) if C == 1 else rng.integers(0, C, size=n).astype(float)
        if avoid_kinks:
            assume(not kinks(net, params, X, 1e-6))
        return vst.Point(net, params, X, y)

    return build()


def split_option(draw: Any, net: Network, *, kind: str = "neuron", isometric: bool = True) -> dict[str, Any]:
    layer, unit = draw(vst.split_sites(net, kind=kind))
    if isometric:
        ratios = draw(vst.splits(max_parts=3))
        return {"kind": kind, "layer": layer, "unit": unit, "ratios": [str(r) for r in ratios]}
    a, b = draw(vst.rescaled_splits(max_parts=3))
    return {"kind": kind, "layer": layer, "unit": unit, "in_ratios": [str(r) for r in a],
            "out_ratios": [str(r) for r in b]}


def unit_is_active(params: Mapping[str, np.ndarray], split: Mapping[str, Any]) -> bool:
    """Whether the split unit of an MLP has a non-zero incoming row and outgoing column (not a dead unit)."""
    layer, unit = int(split["layer"]), int(split["unit"])
    w_in, w_out = params.get(f"W{layer}"), params.get(f"W{layer + 1}")
    if w_in is None or w_out is None:
        return True
    return bool(np.any(w_in[unit] != 0) and np.any(w_out[:, unit] != 0))


def make_embedding(inst: Instance):
    """The embedding an instance's ``split`` option describes (built with :mod:`verifier.embed`)."""
    from verifier import embed

    sp = inst.options["split"]
    fn = embed.neuron_split if sp.get("kind", "neuron") == "neuron" else embed.channel_split
    if "ratios" in sp:
        return fn(inst.net, inst.params, sp["layer"], sp["unit"], ratios=list(sp["ratios"]), strict=False)
    return fn(inst.net, inst.params, sp["layer"], sp["unit"], in_ratios=list(sp["in_ratios"]),
              out_ratios=list(sp["out_ratios"]), strict=False)


def embedding_checks(report: Any, names: Sequence[str] | None = None) -> list[Check]:
    """:class:`verifier.embed.Check` objects -> theorem sub-checks (same names, figures, details)."""
    out = []
    for name, c in report.checks.items():
        if names is not None and name not in names:
            continue
        figure = float(c.figure)
        data = getattr(c, "data", None) or {}
        if name == "kkt" and c.passed and "d_eps" in data:
            # passed with different but equally good multipliers (non-unique dual optimum): the figure that
            # matters is the (eps, delta) agreement, not the multiplier difference
            figure = max(float(data["d_eps"]), float(data["d_delta"]), float(data.get("d_delta_max", 0.0)))
        out.append(sub_check(name, bool(c.passed), figure, c.tol, c.detail,
                             "error" if getattr(c, "status", "") == "error" else ""))
    return out


def local_checks(emb: Any, inst: Instance, tol: Mapping[str, float], *, probes: int = 32) -> list[Check]:
    """``isometry``, ``function``, ``gradient`` of :func:`verifier.check_embedding` on the data and random probes.

    (Inputs at a kink, where the gradient is set-valued, are left out of the gradient comparison by
    :func:`verifier.embed.checks.check_gradient` itself, which says so in the check's detail.)
    """
    from verifier.embed import check_embedding

    rep = check_embedding(emb, inst.params, inst.X, None, checks=("isometry", "function", "gradient"),
                          tol=tol["function"], probes=probes)
    return embedding_checks(rep)


def certify_instance(inst: Instance) -> tuple[dict[str, Any], Any]:
    """An exactly re-checkable certificate of an instance's point: ``(certificate, check result)``.

    With a ``split`` option: :func:`verifier.certificates.certify_embedding` (isometry, output
    preservation and gradient intertwining decided exactly, the wide point's ``(eps, delta)`` bounds);
    otherwise :func:`verifier.certificates.certify_kkt`.  The certificate is re-checked by the
    independent exact checker :func:`verifier.certificates.check_certificate`.
    """
    from verifier.certificates import certify_embedding, certify_kkt, check_certificate

    if "split" in inst.options:
        cert = certify_embedding(inst.net, inst.params, inst.X, inst.y, embedding=make_embedding(inst),
                                 self_check=False, refutation=True)
    else:
        cert = certify_kkt(inst.net, inst.params, inst.X, inst.y, self_check=False)
    return cert, check_certificate(cert)


def separating_start(pt: vst.Point) -> vst.Point:
    """Rescale a feasible point so that the exponential loss is ``< 1/e`` (every later descent step separates)."""
    net = pt.net
    q = margins(net, pt.params, pt.X, pt.y)
    L = float(verifier.degree(net))
    c = ((np.log(len(pt.y)) + 1.0) / float(q.min())) ** (1.0 / L)
    return vst.Point(net, {k: c * v for k, v in pt.params.items()}, pt.X, pt.y, pt.multipliers, pt.kind)


def _separating(inst: Instance) -> tuple[bool, str]:
    q = margins(inst.net, inst.params, inst.X, inst.y)
    loss = float(np.exp(-q).sum())
    return loss < 1.0, f"exponential loss at theta_0 = {loss:.3g}" + (" < 1: every margin is positive along any "
                                                                        "loss-decreasing trajectory" if loss < 1 else " >= 1")


SEPARATING_START = Assumption("separating-start", "Training starts where the exponential loss is < 1, so every "
                              "margin is positive from then on (Lyu & Li's assumption).",
                              r"\sum_i e^{-q_i(\theta_0)} < 1", _separating)
