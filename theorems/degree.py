"""The degree of homogeneity of the built architectures, against closed forms.

An MLP without deep biases with ``L`` weight layers and activation ``z^k``
(``k = 1`` for ReLU, leaky ReLU, abs, identity) after each of the first
``L - 1`` layers has degree ``1 + k + k^2 + ... + k^(L-1)``; a CNN counts its
convolution and dense layers the same way (pooling and flatten keep the
degree); a diagonal linear network of depth ``D`` has degree ``D``.

The closed form is computed from the architecture *specification* (the
builder arguments stored in the instance), never from the graph; three
sub-checks compare it with
* ``calculus``: ``verifier.degree(net)`` (the rule table walked over the graph);
* ``scaling``: the forward pass, ``Phi(c theta) = c^L Phi(theta)`` for ``c = 2, 1/2``;
* ``sympy``: the output as a sympy polynomial on the activation region of
  ``theta`` (piecewise pieces replaced by the active branch), restricted to a
  random rational ray ``theta = t r``: every monomial must be ``t^L`` (exact
  univariate expansion; sympy's ``homogeneous_order`` factors the polynomial
  and is far too slow for degree-13 networks).

>>> from theorems import degree
>>> inst = degree.instance_for({"kind": "mlp", "widths": [2, 2, 2, 1], "activation": "relu_power:2"})
>>> ev = degree.THEOREM.check(inst); ev.verdict, ev.checks["calculus"].detail
('holds', 'verifier.degree(net) = 7, closed form 1 + k + ... + k^(L-1) with k = 2, L = 3: 7')
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import numpy as np
import sympy as sp
from hypothesis import assume
from hypothesis import strategies as st

import verifier
from verifier.analysis.symbolic_eval import param_symbols, symbolic_forward
from verifier.ops.base import SymFns
from verifier.errors import VerifierError

from .base import Assumption, Check, Instance, Theorem, TheoremError, sub_check, within

ACTIVATIONS = ("relu", "identity", "abs", "leaky_relu:0.5", "power:2", "power:3", "relu_power:2", "relu_power:3")


def _exponent(activation: str) -> int:
    """``k`` from the activation *name* (independent of the op table)."""
    name, _, arg = activation.partition(":")
    if name in ("relu", "identity", "abs", "leaky_relu"):
        return 1
    if name in ("power", "relu_power"):
        return int(arg)
    raise TheoremError(f"activation={activation!r} has no closed-form degree (not homogeneous)")


def closed_form(spec: Mapping[str, Any]) -> tuple[int, str]:
    """The degree a specification should have, with the formula used.

    >>> closed_form({"kind": "cnn", "channels": [2, 2], "hidden": [3], "activation": "relu"})
    (4, '1 + k + ... + k^(L-1) with k = 1, L = 4')
    """
    kind = spec["kind"]
    if kind == "diagonal":
        return int(spec["depth"]), f"depth D = {spec['depth']}"
    if kind == "mlp":
        L = len(spec["widths"]) - 1
    elif kind == "cnn":
        L = len(spec["channels"]) + len(spec.get("hidden", [])) + 1
    else:
        raise TheoremError(f"unknown architecture kind {kind!r}; use mlp, cnn or diagonal")
    k = _exponent(spec["activation"])
    return sum(k ** i for i in range(L)), f"1 + k + ... + k^(L-1) with k = {k}, L = {L}"


def build(spec: Mapping[str, Any]) -> verifier.Network:
    kind = spec["kind"]
    if kind == "mlp":
        return verifier.mlp(spec["widths"], activation=spec["activation"], bias=spec.get("bias", "none"))
    if kind == "cnn":
        return verifier.cnn(spec["input_shape"], spec["channels"], kernel_size=spec["kernel_size"], stride=1,
                            padding=spec["kernel_size"] // 2, pool=spec.get("pool"), pool_size=2,
                            hidden=spec.get("hidden", []), activation=spec["activation"])
    if kind == "diagonal":
        return verifier.diagonal_linear(spec["d"], depth=spec["depth"])
    raise TheoremError(f"unknown architecture kind {kind!r}; use mlp, cnn or diagonal")


def _matches(inst: Instance) -> tuple[bool, str]:
    spec = inst.options.get("architecture")
    if not isinstance(spec, Mapping):
        return False, "the instance has no 'architecture' specification"
    if spec.get("bias", "none") not in ("none", "first"):
        return False, f"bias={spec.get('bias')!r}: a bias after the first layer breaks homogeneity"
    try:
        same = build(spec).to_dict()["nodes"] == inst.net.to_dict()["nodes"]
    except VerifierError as e:
        return False, f"the specification does not build: {e}"
    return same, "the network is the one the specification builds" if same else "network differs from its specification"


BUILT = Assumption(
    "built-architecture",
    "The network is an MLP (bias none or first layer only), a CNN (no bias) or a diagonal linear network, built "
    "from the stored specification, with activations ReLU, leaky ReLU, abs, identity, z^k or relu(z)^k.",
    r"\Phi \in \{\mathrm{MLP}, \mathrm{CNN}, \mathrm{diag}\}",
    _matches,
)


def _check(inst: Instance, tol: Mapping[str, float]) -> Iterable[Check]:
    spec = inst.options["architecture"]
    want, formula = closed_form(spec)
    net = inst.net
    try:
        got = verifier.degree(net)
        ok = got == want
        yield sub_check("calculus", ok, float(abs(got - want)), 0.0, f"verifier.degree(net) = {got}, closed form {formula}: {want}")
    except VerifierError as e:
        yield sub_check("calculus", False, float("nan"), 0.0, f"verifier.degree(net) raised: {e}", "error")
    theta = inst.theta
    out = verifier.forward(net, theta, inst.X)
    worst = 0.0
    for c in (2.0, 0.5):
        oc = verifier.forward(net, c * theta, inst.X)
        worst = max(worst, float(np.max(np.abs(oc - c ** want * out) / (1.0 + np.abs(c ** want * out)))))
    yield within("scaling", worst, tol["scaling"], f"Phi(c theta) vs c^{want} Phi(theta) for c = 2, 1/2")
    syms = [s for a in param_symbols(net).values() for s in a.ravel()]
    x0 = np.array([sp.Rational(float(v)) for v in np.asarray(inst.X[0], dtype=float).ravel()], dtype=object)
    expr = sp.sympify(symbolic_forward(net, x0.reshape(net.input_shape), fns=_Region(net, inst.params or {}))[0])
    # restrict the region polynomial P to random rational rays theta = t r: P(t r) = P(r) t^L for all t iff every
    # monomial of P has degree L (for generic r); a univariate expansion, exact
    t = sp.Symbol("t")
    rng = np.random.default_rng(len(syms))
    degrees: set[int] = set()
    for _ in range(3):
        ray = {s: t * sp.Rational(int(rng.integers(1, 4)) * int(rng.choice([-1, 1])), int(rng.integers(1, 4)))
               for s in syms}
        poly = sp.Poly(sp.expand(expr.xreplace(ray)), t)
        if not poly.is_zero:
            degrees = {m[0] for m in poly.monoms()}
            break
    if not degrees:
        yield sub_check("sympy", False, float("nan"), 0.0, "the output polynomial vanishes on three random rays: "
                        "no degree to read", "error")
        return
    ok = degrees == {want}
    yield sub_check("sympy", ok, float(max(abs(d - want) for d in degrees)), 0.0,
                    f"the output polynomial on theta's activation region, restricted to a random rational ray t r, "
                    f"has monomials t^{sorted(degrees)}; closed form {want}")


class _Region(SymFns):
    """Branch selector at the numeric point ``params`` (exact rationals of the floats)."""

    def __init__(self, net: verifier.Network, params: Mapping[str, np.ndarray]):
        syms = param_symbols(net)
        self.point = {syms[p][idx]: sp.Rational(float(params[p][idx])) for p in net.param_names
                      for idx in np.ndindex(net.param_shapes[p])}

    def _val(self, z: Any) -> sp.Rational:
        return sp.sympify(z).xreplace(self.point)

    def relu(self, z: Any) -> Any:
        return z if self._val(z) > 0 else sp.Integer(0)

    def abs(self, z: Any) -> Any:
        return z if self._val(z) >= 0 else -z

    def leaky_relu(self, z: Any, slope: Any) -> Any:
        return z if self._val(z) > 0 else slope * z

    def max(self, zs: Any) -> Any:
        vals = [self._val(z) for z in zs]
        return zs[max(range(len(vals)), key=lambda i: vals[i])]


def instance_for(spec: Mapping[str, Any], seed: int = 0) -> Instance:
    """An instance for an architecture specification, with generic parameters and inputs."""
    net = build(spec)
    rng = np.random.default_rng(seed)
    return Instance(net, net.init_params(seed), np.round(rng.normal(size=(2, *net.input_shape)), 3), None,
                    {"architecture": dict(spec)})


def _instances(drop: str | None) -> st.SearchStrategy[Instance]:
    @st.composite
    def specs(draw: Any) -> dict[str, Any]:
        kind = draw(st.sampled_from(["mlp", "cnn", "diagonal"]))
        if kind == "mlp":
            act = draw(st.sampled_from(ACTIVATIONS))
            depth = draw(st.integers(1, 4 if _exponent(act) == 1 else 3))
            widths = [draw(st.integers(1, 3))] + [draw(st.integers(1, 2)) for _ in range(depth - 1)] + [1]
            return {"kind": "mlp", "widths": widths, "activation": act,
                    "bias": draw(st.sampled_from(["none", "first"]))}
        if kind == "cnn":
            k = draw(st.sampled_from([1, 3]))
            return {"kind": "cnn", "input_shape": [1, 3, 3], "channels": [draw(st.integers(1, 2))
                                                                          for _ in range(draw(st.integers(1, 2)))],
                    "kernel_size": k, "pool": draw(st.sampled_from([None, "max", "avg"])) if k == 1 else None,
                    "hidden": [draw(st.integers(1, 2)) for _ in range(draw(st.integers(0, 1)))],
                    "activation": draw(st.sampled_from(["relu", "abs", "leaky_relu:0.5", "relu_power:2"]))}
        return {"kind": "diagonal", "d": draw(st.integers(1, 3)), "depth": draw(st.integers(2, 4))}

    @st.composite
    def build_inst(draw: Any) -> Instance:
        spec = draw(specs())
        try:
            inst = instance_for(spec, seed=draw(st.integers(0, 2**16)))
        except VerifierError:
            assume(False)
            raise
        assume(inst.net.num_params <= 40)
        assume(abs(float(verifier.forward(inst.net, inst.params, inst.X[:1])[0, 0])) > 1e-6)
        return inst

    return build_inst()


THEOREM = Theorem(
    "degree-of-architectures",
    title="Degree of homogeneity of the built architectures",
    statement=("An MLP (no bias, or a bias in the first layer only) or CNN with L weight layers and activation "
               "z^k (k = 1 for ReLU, leaky ReLU, abs, identity; relu(z)^k likewise) after every layer but the "
               "last is positively homogeneous of degree 1 + k + ... + k^(L-1); a diagonal linear network of "
               "depth D has degree D."),
    latex=r"\deg \Phi = \sum_{i=0}^{L-1} k^i \quad(\text{MLP/CNN}),\qquad \deg \Phi = D \quad(\text{diagonal})",
    assumptions=[BUILT],
    check_fn=_check,
    strategy=_instances,
    tolerances={"scaling": 1e-9},
    default_examples=100,
    references=["docs/math.md section 1"],
)

THEOREMS = [THEOREM]
