"""The neuron-splitting identities of docs/math.md section 10, shown symbolically.

Split hidden neuron ``j`` of a dense layer into ``m`` copies: copy ``k`` gets
the incoming row ``a_k W_l[j, :]`` (and bias ``a_k b_l[j]``) and the outgoing
column ``b_k W_{l+1}[:, j]``; the isometric split takes ``a_k = b_k = alpha_k``
with positive symbols ``alpha_1..alpha_m`` and ``sum alpha_k^2 = 1``.  This
module builds the wide network and the linear map ``T`` itself and shows,
with parameters and inputs as symbols:

1. ``Phi~(T theta; x) - Phi(theta; x) = 0``;
2. ``||T theta||^2 - ||theta||^2 = 0`` and ``T^T T = I``;
3. ``grad Phi~(T theta; x) - T grad Phi(theta; x) = 0`` (``relu' = step`` and
   ``step(alpha z) = step(z)``: the chain-rule selections correspond).

Every residual is reduced modulo ``sum alpha_k^2 - 1`` (a normal form:
powers of ``alpha_m`` above 1 are rewritten with
``alpha_m^2 = 1 - sum_{k<m} alpha_k^2``; a residual is in the ideal exactly
when its normal form is 0).  For an activation with ``sigma(a z) = a^p sigma(z)``,
``p != 1`` (``power:2``, ``relu_power:2``), the copies add up to
``sum_k b_k a_k^p`` times the neuron; with ``sum alpha^2 = 1`` and ``m >= 2``
positive ratios ``sum alpha^(p+1) < 1``, so the identity fails, and the result
says so and why.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import sympy as sp

from ..analysis.symbolic_eval import param_symbols, symbolic_forward
from ..errors import GraphError, VerifierError
from ..graph import Network
from ._common import check_limit, to_rational
from .expressions import input_symbols
from .functions import HomogeneousFns

__all__ = ["SplitIdentity", "prove_split_identity", "split_network"]


def _consumers(net, name: str) -> list[str]:
    return [n for n in net.order if name in net.nodes[n].inputs]


def _chain(net, d: str) -> tuple[str, str | None, str, str]:
    """``d -> [bias] -> activation -> dense`` or a GraphError saying what breaks the pattern (op facts, no names)."""

    def role(name: str, fact: str) -> Any:
        nd = net.nodes[name]
        return getattr(nd.impl, fact)(nd.attrs)

    def only_consumer(name: str) -> str:
        cons = _consumers(net, name)
        if len(cons) != 1:
            raise GraphError(f"node {name!r} feeds {len(cons)} nodes {cons}; the split needs exactly one consumer")
        return cons[0]

    if role(d, "unit_params") != "row":
        raise GraphError(f"node {d!r} is a {net.nodes[d].op!r} node, not 'dense'")
    cur = only_consumer(d)
    bias = None
    if role(cur, "unit_params") == "bias":
        bias, cur = cur, only_consumer(cur)
    if role(cur, "split_role") != "elementwise":
        raise GraphError(f"node {cur!r} after {d!r} is {net.nodes[cur].op!r}, not an elementwise activation")
    nxt = only_consumer(cur)
    if role(nxt, "unit_params") != "row":
        raise GraphError(f"node {nxt!r} after activation {cur!r} is {net.nodes[nxt].op!r}, not 'dense'")
    return d, bias, cur, nxt


def _locate(net, node: str | None) -> tuple[str, str | None, str, str]:
    """(dense, bias or None, activation, next dense) for the split; the error says what is supported."""
    dense = [n for n in net.order if net.nodes[n].impl.unit_params(net.nodes[n].attrs) == "row"]
    if node is not None and node not in net.nodes:
        raise GraphError(f"prove_split_identity: node {node!r} does not exist; dense nodes: {dense}")
    why = "the network has no dense node"
    for d in ([node] if node is not None else dense):
        try:
            return _chain(net, d)
        except GraphError as e:
            why = str(e)
    raise GraphError("prove_split_identity supports dense -> [bias] -> elementwise activation -> dense "
                     f"(a hidden layer of an MLP); {why}")


def split_network(net, node: str, m: int) -> Network:
    """``net`` with dense node ``node`` widened by ``m - 1`` units (copies appended at the end)."""
    d = net.to_dict()
    for nd in d["nodes"]:
        if nd["name"] == node:
            nd["attrs"] = dict(nd.get("attrs", {}))
            nd["attrs"]["out_features"] = int(nd["attrs"]["out_features"]) + m - 1
    return Network(d["nodes"])


def _normal_form(expr: sp.Expr, alphas: Sequence[sp.Symbol] | None) -> sp.Expr:
    """Remainder of ``expr`` modulo ``sum alpha_k^2 - 1`` (``alpha_m^e`` reduced to degree <= 1)."""
    e = sp.expand(expr)
    if alphas is None or e == 0:
        return e
    am = alphas[-1]
    rest = 1 - sp.Add(*[a**2 for a in alphas[:-1]])
    for _ in range(64):
        new = e.replace(lambda t: t.is_Pow and t.base == am and t.exp.is_Integer and t.exp >= 2,
                        lambda t: am ** (t.exp % 2) * rest ** (t.exp // 2))
        new = sp.expand(new)
        if new == e:
            break
        e = new
    return e


@dataclass
class SplitIdentity:
    """Result of :func:`prove_split_identity` (all residuals in normal form modulo ``sum alpha^2 = 1``).

    ``holds`` is True when the function, norm/isometry and gradient residuals
    are all 0; ``reason`` explains the outcome (which condition failed and why).
    """

    node: str
    neuron: int
    m: int
    activation: str
    scaling_exponent: int | None
    alphas: list[sp.Expr]
    incoming: list[sp.Expr]
    outgoing: list[sp.Expr]
    constraint: Any
    wide: Network
    T: sp.Matrix
    function_residual: list[sp.Expr]
    norm_residual: sp.Expr
    isometry_residual: sp.Matrix
    gradient_residual: list[sp.Expr]
    power_sum: sp.Expr
    reason: str
    example: dict[str, Any] = field(default_factory=dict)
    function_difference: list[sp.Expr] = field(default_factory=list)  # Phi~(T theta) - Phi(theta) before reduction

    @property
    def function_holds(self) -> bool:
        return all(r == 0 for r in self.function_residual)

    @property
    def norm_holds(self) -> bool:
        return self.norm_residual == 0 and self.isometry_residual.is_zero_matrix is True

    @property
    def gradient_holds(self) -> bool:
        return all(r == 0 for r in self.gradient_residual)

    @property
    def holds(self) -> bool:
        return self.function_holds and self.norm_holds and self.gradient_holds

    def __str__(self) -> str:
        lines = [f"split of neuron {self.neuron} of {self.node!r} ({self.activation}) into {self.m} copies, "
                 f"incoming {self.incoming}, outgoing {self.outgoing}, constraint {self.constraint}",
                 "  Phi~(T theta) - Phi(theta)            = "
                 + ("0" if self.function_holds else
                    ", ".join(str(_factor(d)) for d in self.function_difference) + "  (not 0 modulo the constraint)"),
                 f"  ||T theta||^2 - ||theta||^2           = {self.norm_residual}",
                 f"  T^T T - I                             = {'0' if self.isometry_residual.is_zero_matrix else self.isometry_residual.tolist()}",
                 "  grad Phi~(T theta) - T grad Phi(theta) = "
                 + ("0" if self.gradient_holds else
                    f"non-zero in {sum(r != 0 for r in self.gradient_residual)} of {len(self.gradient_residual)} "
                    f"entries, e.g. {_factor(next(r for r in self.gradient_residual if r != 0))}"),
                 f"  {'HOLDS' if self.holds else 'FAILS'}: {self.reason}"]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"node": self.node, "neuron": self.neuron, "m": self.m, "activation": self.activation,
                "incoming": [str(a) for a in self.incoming], "outgoing": [str(b) for b in self.outgoing],
                "constraint": str(self.constraint),
                "function_residual": [str(r) for r in self.function_residual],
                "norm_residual": str(self.norm_residual), "isometry": self.isometry_residual.is_zero_matrix is True,
                "gradient_holds": self.gradient_holds, "power_sum": str(self.power_sum), "holds": self.holds,
                "reason": self.reason, "example": {k: str(v) for k, v in self.example.items()}}


def prove_split_identity(net, node: str | None = None, neuron: int = 0, m: int = 2, *,
                         ratios: Sequence[Any] | None = None, outgoing: Sequence[Any] | None = None,
                         max_params: int | None = 64) -> SplitIdentity:
    """Show the splitting identities for neuron ``neuron`` of dense node ``node`` (default: the first hidden layer).

    ``ratios=None`` uses positive symbols ``alpha_1..alpha_m`` with
    ``sum alpha^2 = 1``; numbers (e.g. ``(3/5, 4/5)``) are checked exactly as
    given.  ``outgoing`` (numbers) gives a non-isometric rescale
    ``a_k = ratios[k]``, ``b_k = outgoing[k]``.

    >>> import verifier
    >>> r = prove_split_identity(verifier.mlp([2, 2, 1]))
    >>> r.holds, r.function_residual, r.norm_residual
    (True, [0], 0)
    >>> bad = prove_split_identity(verifier.mlp([2, 2, 1], activation="power:2"))
    >>> bad.holds, bad.function_holds, bad.norm_holds, bad.power_sum
    (False, False, True, alpha_1**3 + alpha_2**3)
    """
    check_limit("the number of parameters", net.num_params, max_params, "max_params")
    if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 2:
        raise VerifierError(f"prove_split_identity: m={m!r} must be an integer >= 2 (the number of copies)")
    m = int(m)
    dense, bias, act, nxt = _locate(net, node)
    width = net.shapes[dense][0]
    if isinstance(neuron, bool) or not isinstance(neuron, (int, np.integer)) or not 0 <= neuron < width:
        raise VerifierError(f"prove_split_identity: neuron={neuron!r} must be an integer in 0..{width - 1} "
                            f"(node {dense!r} has {width} units)")
    j = int(neuron)
    if ratios is None:
        if outgoing is not None:
            raise VerifierError("prove_split_identity: outgoing=... needs explicit ratios=... (incoming factors)")
        alphas = [sp.Symbol(f"alpha_{k + 1}", positive=True) for k in range(m)]
        a_in, b_out = list(alphas), list(alphas)
        constraint = sp.Eq(sp.Add(*[a**2 for a in alphas]), 1)
        reduce_by = alphas
    else:
        if len(ratios) != m or (outgoing is not None and len(outgoing) != m):
            raise VerifierError(f"prove_split_identity: ratios/outgoing must have m={m} entries, got {len(ratios)}"
                                + ("" if outgoing is None else f" and {len(outgoing)}"))
        a_in = [to_rational(r) for r in ratios]
        b_out = [to_rational(r) for r in (outgoing if outgoing is not None else ratios)]
        for name, vals in (("ratios", a_in), ("outgoing", b_out)):
            bad = [v for v in vals if not (v.is_real and v > 0)]
            if bad:
                raise VerifierError(f"prove_split_identity: {name} must be positive numbers, got {bad[0]}")
        alphas = list(a_in)
        constraint = sp.Eq(sp.Add(*[a**2 for a in a_in]), 1, evaluate=False)
        reduce_by = None
    act_node = net.nodes[act]
    p_exp = act_node.impl.scaling_exponent(act_node.attrs)
    activation = act_node.op + "".join(f":{v}" for v in act_node.attrs.values() if v is not None)

    wide = split_network(net, dense, m)
    small = param_symbols(net)
    W_l = net.nodes[dense].params["weight"]
    W_n = net.nodes[nxt].params["weight"]
    b_l = net.nodes[bias].params["bias"] if bias is not None else None
    n_old = width
    rows = [j] + [n_old + k for k in range(m - 1)]
    # T theta: the wide tensors as expressions of the small symbols
    big: dict[str, np.ndarray] = {}
    for p in wide.param_names:
        shape = wide.param_shapes[p]
        arr = np.empty(shape, dtype=object)
        src = small[p]
        if p == W_l or p == b_l:
            arr[:n_old] = src
            for k, r in enumerate(rows):
                arr[r] = a_in[k] * src[j]
        elif p == W_n:
            arr[:, :n_old] = src
            for k, r in enumerate(rows):
                arr[:, r] = b_out[k] * src[:, j]
        else:
            arr[...] = src
        big[p] = arr
    theta = [s for p in net.param_names for s in small[p].ravel()]
    Ttheta = [sp.expand(e) for p in wide.param_names for e in big[p].ravel()]
    T = sp.Matrix([[sp.diff(e, t) for t in theta] for e in Ttheta])
    fns = HomogeneousFns()
    x = input_symbols(net)
    phi = list(symbolic_forward(net, x, small, fns).ravel())
    phi_wide_at_T = list(symbolic_forward(wide, x, big, fns).ravel())
    f_raw = [sp.expand(a - b) for a, b in zip(phi_wide_at_T, phi)]
    f_res = [_normal_form(r, reduce_by) for r in f_raw]
    n_res = _normal_form(sp.Add(*[e**2 for e in Ttheta]) - sp.Add(*[t**2 for t in theta]), reduce_by)
    iso = (T.T * T - sp.eye(len(theta))).applyfunc(lambda e: _normal_form(e, reduce_by))
    # gradients: wide gradient at generic wide symbols, then substitute T theta
    wide_syms = param_symbols(wide)
    wflat = [s for p in wide.param_names for s in wide_syms[p].ravel()]
    sub = dict(zip(wflat, Ttheta))
    phi_wide = list(symbolic_forward(wide, x, wide_syms, fns).ravel())
    g_res: list[sp.Expr] = []
    for o_w, o in zip(phi_wide, phi):
        gw = sp.Matrix([sp.diff(o_w, s) for s in wflat]).xreplace(sub)
        g = T * sp.Matrix([sp.diff(o, t) for t in theta])
        g_res += [_normal_form(a - b, reduce_by) for a, b in zip(gw, g)]
    psum = sp.nan if p_exp is None else sp.Add(*[b * a**p_exp for a, b in zip(a_in, b_out)])
    example: dict[str, Any] = {}
    res = SplitIdentity(dense, j, m, activation, p_exp, alphas, a_in, b_out, constraint, wide, T, f_res, n_res, iso,
                        g_res, psum, "", example, f_raw)
    res.reason = _explain(res, p_exp, ratios is None, m)
    return res


def _factor(e: sp.Expr) -> sp.Expr:
    try:
        return sp.factor(e)
    except (sp.polys.polyerrors.PolynomialError, NotImplementedError):  # pragma: no cover
        return e


def _explain(r: SplitIdentity, p: int | None, symbolic: bool, m: int) -> str:
    if r.holds:
        return ("sigma(alpha z) = alpha sigma(z) for alpha > 0, so the copies add up to (sum alpha_k^2) times the old "
                "neuron and their squared weights add up to (sum alpha_k^2) times the old ones; with sum alpha_k^2 = 1 "
                "T is an isometry, Phi~(T theta) = Phi(theta) and gradients intertwine (step(alpha z) = step(z))")
    parts = []
    if not r.function_holds:
        if p is None:
            parts.append(f"Phi~(T theta) != Phi(theta): the activation {r.activation} is not positively homogeneous, "
                         "so sigma(a z) is not a multiple of sigma(z)")
        elif p != 1:
            mx = "max|a_k|" if p == 2 else f"max|a_k|^{p - 1}"
            ex = ""
            if symbolic:
                vals = {2: (sp.Rational(3, 5), sp.Rational(4, 5)), 3: (sp.Rational(1, 3), sp.Rational(2, 3), sp.Rational(2, 3))}
                if m in vals:
                    a = vals[m]
                    s_ = sp.Add(*[v ** (p + 1) for v in a])
                    r.example = {"ratios": a, "sum_alpha^(p+1)": s_}
                    ex = f"; e.g. alpha = {tuple(map(str, a))} gives {s_}"
            parts.append(
                f"Phi~(T theta) != Phi(theta): {r.activation} scales as sigma(a z) = a^{p} sigma(z), so the copies add "
                f"up to sum_k b_k a_k^{p} = {r.power_sum} times the old neuron, which is not 1 modulo sum alpha_k^2 = 1; with sum alpha_k^2 = 1 and "
                f"m >= 2 positive ratios every alpha_k < 1, hence sum alpha_k^{p + 1} < sum alpha_k^2 = 1{ex}. "
                "No non-trivial isometric output-preserving split exists (for any a_k, b_k with sum a_k^2 = sum b_k^2 = 1: "
                f"sum b_k a_k^{p} <= {mx} sum |a_k b_k| <= {mx}, which is 1 only if one copy "
                "takes everything); adding a zero neuron does work")
        else:
            parts.append(f"Phi~(T theta) != Phi(theta): sum_k b_k a_k = {r.power_sum}, must be 1")
    if not r.norm_holds:
        sa = sp.Add(*[a**2 for a in r.incoming])
        sb = sp.Add(*[b**2 for b in r.outgoing])
        parts.append(f"||T theta|| != ||theta||: sum a_k^2 = {sa} and sum b_k^2 = {sb}; an isometry needs both = 1 "
                     "(same function, different norm: in general not a KKT point)")
    if not r.gradient_holds and r.function_holds:
        parts.append("gradients do not intertwine: grad Phi~(T theta) != T grad Phi(theta)")
    return "; ".join(parts)
