"""The checker's rule table: one exact rule per op.

Each :class:`Rule` says, for one op of the network format, everything the
checker needs and nothing else: arity and parameter roles, how its attributes
are read and bounded, the output shape, the degree of positive homogeneity,
the exact forward value, the exact vector-Jacobian product, and, for kinked
ops, the kink and its Clarke interval.  The evaluation loop
(:mod:`.evaluate`) is op-agnostic; adding an op means adding a rule here.

This is deliberately a second implementation of the ops (the first is
``verifier/ops``): it must not import it.  ``RULES`` maps op name -> rule.

>>> sorted(RULES)[:5]
['abs', 'add', 'avgpool2d', 'bias', 'conv2d']
>>> RULES["two_slope"].clarke({"a": Fraction(1), "b": Fraction(-1, 2)})
(Fraction(-1, 2), Fraction(1, 1))
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import numpy as np

from .. import exact as E
from ..exact import Q
from .limits import current, parse_rational, too_big


class NotHomogeneous(Exception):
    """Raised by a degree rule: the reason the network is not positively homogeneous."""


@dataclass
class Node:
    """One node of the checker's IR: raw fields plus the attributes its rule parsed (``a``)."""

    index: int
    name: str
    op: str
    inputs: list[str]
    params: dict[str, str]
    attrs: dict[str, Any]
    a: dict[str, Any] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"nodes[{self.index}]"


class Rule:
    """Base rule: one input, no parameters, shape and degree pass through, no kinks."""

    op = ""
    arity: tuple[int, int | None] = (1, 1)
    roles: frozenset[str] = frozenset()
    #: attribute names the op takes (others are refused)
    attrs: frozenset[str] = frozenset()
    #: "s" (a derivative in the Clarke interval) or "weights" (a convex combination over a window) or None
    selection: str | None = None

    def kinked(self, a: dict[str, Any]) -> bool:
        return False

    def clarke(self, a: dict[str, Any]) -> tuple[Fraction, Fraction]:
        """The Clarke interval of the derivative at a kink (rules with ``selection == "s"``)."""
        raise NotImplementedError(f"{self.op} has no derivative interval")

    def shape(self, node: Node, ins: list[tuple[int, ...]], err) -> tuple[tuple[int, ...], dict[str, tuple[int, ...]]]:
        return ins[0], {}

    def degree(self, node: Node, ins: list[Fraction]) -> Fraction:
        return ins[0]

    def forward(self, ev, node: Node, xs: list[Q]) -> Q:
        return xs[0]

    def backward(self, ev, node: Node, g: Q, xs: list[Q], sels) -> tuple[list[Q | None], dict[str, Q]]:
        return [g], {}


# ---------------------------------------------------------------------------
# attribute helpers
# ---------------------------------------------------------------------------
def _pos_int(node: Node, key: str, err, default: Any = None) -> int:
    v = node.attrs.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise err(f"attribute {key}={str(v)[:30]} must be a positive integer")
    if v > current().max_entries:
        raise too_big(f"network.{node.where}.attrs.{key}", f"node {node.name!r}: {key} =", f"{v:,}", "max_entries")
    return v


def _pair(node: Node, key: str, default: Any, err) -> tuple[int, int]:
    v = node.attrs.get(key, default)
    if v is None:
        v = default
    if isinstance(v, int) and not isinstance(v, bool):
        v = [v, v]
    if not (isinstance(v, list) and len(v) == 2 and all(isinstance(t, int) and not isinstance(t, bool) for t in v)):
        raise err(f"attribute {key}={str(v)[:30]} must be an integer or a pair of integers")
    if max(abs(v[0]), abs(v[1])) > current().max_entries:
        raise too_big(f"network.{node.where}.attrs.{key}", f"node {node.name!r}: {key} =", v, "max_entries")
    return int(v[0]), int(v[1])


def _rational_attr(node: Node, key: str, default: Any, err) -> Fraction:
    v = node.attrs.get(key, default)
    if v is None:
        raise err(f"attribute {key} is required")
    if isinstance(v, float):
        if not math.isfinite(v):
            raise err(f"attribute {key}={v} must be finite")
        return Fraction(v)  # the exact float64 the network uses
    return parse_rational(v, f"network.{node.where}.attrs.{key}")


def _k(node: Node, err) -> int:
    k = node.attrs.get("k")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise err(f"attribute k={str(k)[:30]} must be an integer >= 1")
    if k > current().max_power:
        raise too_big(f"network.{node.where}.attrs.k", f"node {node.name!r}: exponent k =", k, "max_power")
    return k


def _lcm_num(fracs: list[Fraction]) -> tuple[int, list[int]]:
    D = E.lcm(*(f.denominator for f in fracs))
    return D, [f.numerator * (D // f.denominator) for f in fracs]


# ---------------------------------------------------------------------------
# structural ops
# ---------------------------------------------------------------------------
class Input(Rule):
    op = "input"
    attrs = frozenset({"shape"})
    arity = (0, 0)

    def shape(self, node, ins, err):
        s = node.attrs.get("shape")
        if (not isinstance(s, list) or not s or len(s) > 4
                or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in s)):
            raise err(f"attribute shape={str(s)[:40]} must be a list of 1 to 4 positive integers")
        if E.prod(s) > current().max_entries:
            raise too_big(f"network.{node.where}.attrs.shape", f"node {node.name!r}: input size", f"{E.prod(s):,}",
                          "max_entries")
        return tuple(s), {}

    def degree(self, node, ins):
        return Fraction(0)


class Output(Rule):
    op = "output"

    def shape(self, node, ins, err):
        if len(ins[0]) != 1:
            raise err(f"needs a flat input, got {list(ins[0])}")
        return ins[0], {}


class Identity(Rule):
    op = "identity"


class Flatten(Rule):
    op = "flatten"

    def shape(self, node, ins, err):
        return (E.prod(ins[0]),), {}

    def forward(self, ev, node, xs):
        return xs[0].reshape(xs[0].shape[0], -1)

    def backward(self, ev, node, g, xs, sels):
        return [g.reshape(g.shape[0], *xs[0].shape[1:])], {}


class Add(Rule):
    op = "add"
    arity = (2, None)

    def shape(self, node, ins, err):
        if any(s != ins[0] for s in ins):
            raise err(f"summands have different shapes {[list(s) for s in ins]}")
        return ins[0], {}

    def degree(self, node, ins):
        if any(x != ins[0] for x in ins):
            raise NotHomogeneous(f"node {node.name!r}: add has summands of degrees {[str(x) for x in ins]}")
        return ins[0]

    def forward(self, ev, node, xs):
        nums, D = E.align(*xs)
        acc = nums[0]
        for v in nums[1:]:
            acc = acc + v
        return Q(acc, D)

    def backward(self, ev, node, g, xs, sels):
        return [g] * len(xs), {}


# ---------------------------------------------------------------------------
# linear ops with parameters
# ---------------------------------------------------------------------------
class Dense(Rule):
    op = "dense"
    attrs = frozenset({"out_features"})
    roles = frozenset({"weight"})

    def shape(self, node, ins, err):
        if len(ins[0]) != 1:
            raise err(f"needs a flat input, got shape {list(ins[0])}")
        k = _pos_int(node, "out_features", err)
        if k * ins[0][0] > current().max_entries:
            raise too_big(f"network.{node.where}.attrs.out_features", f"node {node.name!r}: a weight of",
                          f"{k * ins[0][0]:,} entries", "max_entries")
        return (k,), {"weight": (k, ins[0][0])}

    def degree(self, node, ins):
        return ins[0] + 1

    def forward(self, ev, node, xs):
        W = ev.params[node.params["weight"]]
        out = E.qmatmul(xs[0], W.T)
        if node.inputs[0] not in ev.net.param_dep:  # z = W x is identically 0 in theta where x = 0
            allzero = xs[0].zero_mask().all(axis=1)
            ev.const_zero[node.name] = np.repeat(allzero[:, None], out.shape[1], axis=1)
        return out

    def backward(self, ev, node, g, xs, sels):
        W = ev.params[node.params["weight"]]
        grads = {node.params["weight"]: E.qmatmul(g.T, xs[0])}
        back = E.qmatmul(g, W) if node.inputs[0] in ev.net.param_dep else None
        return [back], grads


def _windows(num: np.ndarray, k: tuple[int, int], s: tuple[int, int]) -> np.ndarray:
    """(n, C, H, W) -> (n, C, Ho, Wo, kh*kw) windows (no padding)."""
    from numpy.lib.stride_tricks import sliding_window_view

    win = sliding_window_view(num, k, axis=(2, 3))[:, :, ::s[0], ::s[1]]
    n, c, ho, wo = win.shape[:4]
    return win.reshape(n, c, ho, wo, k[0] * k[1])


def _scatter_windows(gw: np.ndarray, in_shape: tuple[int, ...], k, s) -> np.ndarray:
    """Adjoint of :func:`_windows`: add ``(n, C, Ho, Wo, kh*kw)`` back onto ``(n, C, H, W)``."""
    out = E.zeros(in_shape)
    n, c, ho, wo, kk = gw.shape
    for i in range(k[0]):
        for j in range(k[1]):
            out[:, :, i:i + s[0] * ho:s[0], j:j + s[1] * wo:s[1]] += gw[..., i * k[1] + j]
    return out


def _im2col(num: np.ndarray, k, s, p) -> tuple[np.ndarray, int, int]:
    n, c, h, w = num.shape
    if p[0] or p[1]:
        padded = E.zeros((n, c, h + 2 * p[0], w + 2 * p[1]))
        padded[:, :, p[0]:p[0] + h, p[1]:p[1] + w] = num
        num = padded
    win = _windows(num, k, s)  # (n, c, ho, wo, kh*kw)
    ho, wo = win.shape[2], win.shape[3]
    cols = win.transpose(0, 2, 3, 1, 4).reshape(n * ho * wo, c * k[0] * k[1])
    return cols, ho, wo


class Conv2d(Rule):
    op = "conv2d"
    attrs = frozenset({"out_channels", "kernel_size", "stride", "padding"})
    roles = frozenset({"weight"})

    def shape(self, node, ins, err):
        if len(ins[0]) != 3:
            raise err(f"needs an input (C, H, W), got {list(ins[0])}")
        c, h, w = ins[0]
        co = _pos_int(node, "out_channels", err)
        kh, kw = _pair(node, "kernel_size", None, err)
        sh, sw = _pair(node, "stride", 1, err)
        ph, pw = _pair(node, "padding", 0, err)
        if min(kh, kw, sh, sw) < 1 or min(ph, pw) < 0:
            raise err("kernel_size and stride must be >= 1, padding >= 0")
        ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
        if ho < 1 or wo < 1:
            raise err("kernel does not fit the input")
        if co * c * kh * kw > current().max_entries or co * ho * wo > current().max_entries:
            raise too_big(f"network.{node.where}.attrs", f"node {node.name!r}: a tensor of",
                          f"{max(co * c * kh * kw, co * ho * wo):,} entries", "max_entries")
        node.a.update(k=(kh, kw), s=(sh, sw), p=(ph, pw))
        return (co, ho, wo), {"weight": (co, c, kh, kw)}

    def degree(self, node, ins):
        return ins[0] + 1

    def forward(self, ev, node, xs):
        W = ev.params[node.params["weight"]]
        cols, ho, wo = _im2col(xs[0].num, node.a["k"], node.a["s"], node.a["p"])
        z = E.imatmul(cols, W.num.reshape(W.num.shape[0], -1).T)  # (n*ho*wo, co)
        n = xs[0].shape[0]
        out = Q(z.reshape(n, ho, wo, -1).transpose(0, 3, 1, 2).copy(), xs[0].den * W.den)
        if node.inputs[0] not in ev.net.param_dep:  # a zero input patch (e.g. padding): z = 0 for every W
            allzero = np.all((cols == 0).astype(bool), axis=1).reshape(n, 1, ho, wo)
            ev.const_zero[node.name] = np.broadcast_to(allzero, out.shape)
        return out

    def backward(self, ev, node, g, xs, sels):
        W = ev.params[node.params["weight"]]
        k, s, p = node.a["k"], node.a["s"], node.a["p"]
        cols, ho, wo = _im2col(xs[0].num, k, s, p)
        n, co = g.shape[0], g.shape[1]
        gm = g.num.transpose(0, 2, 3, 1).reshape(n * ho * wo, co)
        gw = E.imatmul(gm.T, cols)  # (co, c*kh*kw)
        grads = {node.params["weight"]: Q(gw.reshape(W.shape), g.den * xs[0].den)}
        if node.inputs[0] not in ev.net.param_dep:
            return [None], grads
        gc = E.imatmul(gm, W.num.reshape(co, -1))  # (n*ho*wo, c*kh*kw)
        c, h, w = xs[0].shape[1:]
        gc = gc.reshape(n, ho, wo, c, k[0] * k[1]).transpose(0, 3, 1, 2, 4)
        full = _scatter_windows(gc, (n, c, h + 2 * p[0], w + 2 * p[1]), k, s)
        return [Q(full[:, :, p[0]:p[0] + h, p[1]:p[1] + w].copy(), g.den * W.den)], grads


class Scale(Rule):
    op = "scale"
    roles = frozenset({"scale"})

    def shape(self, node, ins, err):
        return ins[0], {"scale": ins[0]}

    def degree(self, node, ins):
        return ins[0] + 1

    def forward(self, ev, node, xs):
        return E.mul(xs[0], ev.params[node.params["scale"]])

    def backward(self, ev, node, g, xs, sels):
        S = ev.params[node.params["scale"]]
        return [E.mul(g, S)], {node.params["scale"]: Q((g.num * xs[0].num).sum(axis=0), g.den * xs[0].den)}


class Bias(Rule):
    op = "bias"
    roles = frozenset({"bias"})

    def shape(self, node, ins, err):
        return ins[0], {"bias": ins[0] if len(ins[0]) == 1 else (ins[0][0],)}

    def degree(self, node, ins):
        if ins[0] != 1:
            raise NotHomogeneous(f"node {node.name!r}: bias of degree 1 added to an input of degree {ins[0]}")
        return ins[0]

    def forward(self, ev, node, xs):
        b = ev.params[node.params["bias"]]
        (h, bb), D = E.align(xs[0], b)
        if h.ndim > 2:
            bb = bb.reshape((1, -1) + (1,) * (h.ndim - 2))
        return Q(h + bb, D)

    def backward(self, ev, node, g, xs, sels):
        gb = g.num.sum(axis=0)
        if gb.ndim > 1:
            gb = gb.reshape(gb.shape[0], -1).sum(axis=1)
        return [g], {node.params["bias"]: Q(gb, g.den)}


# ---------------------------------------------------------------------------
# elementwise activations
# ---------------------------------------------------------------------------
class Elementwise(Rule):
    """``z -> f(z)`` entrywise.  Kinked ones are piecewise linear: slope ``pos`` for z > 0, ``neg`` for z < 0."""

    #: f is identically 0 on that side (then a unit there is locally constant in theta)
    def flat_sides(self, a) -> tuple[bool, bool]:
        return False, False

    def forward(self, ev, node, xs):
        z = xs[0]
        ident0 = ev.const_zero.get(node.inputs[0])
        flat_pos, flat_neg = self.flat_sides(node.a)
        cz = ident0
        if flat_pos or flat_neg:
            side = z.sign_mask(positive=True) if flat_pos else None
            if flat_neg:
                neg = z.sign_mask(positive=False)
                side = neg if side is None else (side | neg)
            cz = side if cz is None else (side | cz)
        if cz is not None:
            ev.const_zero[node.name] = cz
        if self.kinked(node.a):
            zmask = z.zero_mask()
            if ident0 is not None:
                zmask = zmask & ~ident0
            ev.record_kinks(node.name, zmask)
        return self.apply(z, node.a)

    def apply(self, z: Q, a) -> Q:
        raise NotImplementedError

    def derivative(self, z: Q, a) -> Q:
        raise NotImplementedError

    def backward(self, ev, node, g, xs, sels):
        return [E.mul(g, self.derivative_with(xs[0], node, sels, ev))], {}

    def derivative_with(self, z: Q, node: Node, sels, ev) -> Q:
        return self.derivative(z, node.a)


class PiecewiseLinear(Elementwise):
    """``pos * z`` for z > 0, ``neg * z`` for z < 0; at 0 the derivative is a selection in the Clarke interval."""

    selection = "s"

    def slopes(self, a) -> tuple[Fraction, Fraction, Fraction]:
        """(pos, neg, default derivative at 0)."""
        raise NotImplementedError

    def kinked(self, a) -> bool:
        pos, neg, _ = self.slopes(a)
        return pos != neg

    def clarke(self, a) -> tuple[Fraction, Fraction]:
        pos, neg, _ = self.slopes(a)
        return min(pos, neg), max(pos, neg)

    def flat_sides(self, a):
        pos, neg, _ = self.slopes(a)
        return pos == 0, neg == 0

    def degree(self, node, ins):
        return ins[0]

    def apply(self, z, a):
        pos, neg, _ = self.slopes(a)
        if pos == 1 and neg == 0:
            return z.relu()
        D, (p, n) = _lcm_num([pos, neg])
        zn = z.num
        return Q(np.where(z.sign_mask(positive=True), zn * p, zn * n), z.den * D)

    def derivative_with(self, z, node, sels, ev):
        pos, neg, default = self.slopes(node.a)
        mine = sels.get(node.name, {})
        D, (p, n, d0, *ss) = _lcm_num([pos, neg, default, *(e.s for e in mine.values())])
        pm = z.sign_mask(positive=True)
        zero = z.zero_mask()
        small = max(abs(p), abs(n), abs(d0), *(abs(v) for v in ss)) < 2 ** 62
        if small:
            d = np.where(pm, p, n).astype(np.int64)
            d[zero] = d0
        else:
            d = np.where(pm, p, n).astype(object)
            d[zero] = d0
        if zero.any():
            for ((v, unit), e), s in zip(mine.items(), ss):
                if zero[(v, *unit)]:
                    d[(v, *unit)] = s
                    ev.used.add(e.index)
        return Q(d, D)


class ReLU(PiecewiseLinear):
    op = "relu"

    def slopes(self, a):
        return Fraction(1), Fraction(0), Fraction(0)


class LeakyReLU(PiecewiseLinear):
    op = "leaky_relu"
    attrs = frozenset({"slope"})

    def shape(self, node, ins, err):
        node.a["slope"] = _rational_attr(node, "slope", 0.01, err)
        return ins[0], {}

    def slopes(self, a):
        return Fraction(1), a["slope"], a["slope"]


class Abs(PiecewiseLinear):
    op = "abs"

    def slopes(self, a):
        return Fraction(1), Fraction(-1), Fraction(0)


class TwoSlope(PiecewiseLinear):
    """``a z`` for z >= 0, ``b z`` for z < 0 (relu = (1, 0), leaky = (1, slope), abs = (1, -1))."""

    op = "two_slope"
    attrs = frozenset({"a", "b"})

    def shape(self, node, ins, err):
        node.a["a"] = _rational_attr(node, "a", None, err)
        node.a["b"] = _rational_attr(node, "b", None, err)
        return ins[0], {}

    def slopes(self, a):
        return a["a"], a["b"], a["b"]


class Power(Elementwise):
    """``z^k`` (smooth; degree ``k`` times the input's)."""

    op = "power"
    attrs = frozenset({"k"})

    def shape(self, node, ins, err):
        node.a["k"] = _k(node, err)
        return ins[0], {}

    def degree(self, node, ins):
        return node.a["k"] * ins[0]

    def base(self, z: Q) -> np.ndarray:
        return z.num

    def apply(self, z, a):
        k = a["k"]
        return z if k == 1 else Q(self.base(z) ** k, z.den ** k)

    def derivative(self, z, a):
        k = a["k"]
        if k == 1:
            return Q(np.ones(z.shape, dtype=np.int64), 1)
        b = self.base(z)
        return Q(k * b ** (k - 1) if k > 2 else k * b, z.den ** (k - 1))


class ReLUPower(Power):
    """``max(0, z)^k``: ``k = 1`` is ReLU (kinked), ``k >= 2`` is differentiable."""

    op = "relu_power"
    selection = "s"

    def kinked(self, a):
        return a["k"] == 1

    def clarke(self, a):
        return Fraction(0), Fraction(1)

    def flat_sides(self, a):
        return False, True

    def base(self, z):
        return z.relu().num

    def apply(self, z, a):
        return z.relu() if a["k"] == 1 else super().apply(z, a)

    def derivative_with(self, z, node, sels, ev):
        if node.a["k"] == 1:
            return RULES["relu"].derivative_with(z, node, sels, ev)
        return self.derivative(z, node.a)


# ---------------------------------------------------------------------------
# pooling
# ---------------------------------------------------------------------------
class Pool(Rule):
    attrs = frozenset({"kernel_size", "stride"})
    def shape(self, node, ins, err):
        if len(ins[0]) != 3:
            raise err(f"needs an input (C, H, W), got {list(ins[0])}")
        c, h, w = ins[0]
        kh, kw = _pair(node, "kernel_size", None, err)
        sh, sw = _pair(node, "stride", [kh, kw], err)  # a missing (or null) stride is the kernel size
        if min(kh, kw, sh, sw) < 1 or kh > h or kw > w:
            raise err("invalid pooling window")
        node.a.update(k=(kh, kw), s=(sh, sw))
        return (c, (h - kh) // sh + 1, (w - kw) // sw + 1), {}


class MaxPool2d(Pool):
    op = "maxpool2d"
    selection = "weights"

    def forward(self, ev, node, xs):
        k, s = node.a["k"], node.a["s"]
        win = _windows(xs[0].num, k, s)
        mx = win.max(axis=-1)
        ties = (win == mx[..., None]).astype(bool)
        ev.argmax[node.name] = ties.argmax(axis=-1)
        multi = ties.sum(axis=-1) > 1
        cz = ev.const_zero.get(node.inputs[0])
        if multi.any() and cz is not None:
            # a tie of values that are all locally constant zeros (ReLU of strictly negative, or of
            # identically zero, pre-activations) is locally constant: not a kink
            czw = _windows(np.ascontiguousarray(cz), k, s)
            flat_zero = (mx == 0).astype(bool) & np.all(~ties | czw, axis=-1)
            multi &= ~flat_zero
        ev.record_kinks(node.name, multi)
        return Q(mx, xs[0].den)

    def backward(self, ev, node, g, xs, sels):
        k, s = node.a["k"], node.a["s"]
        kk = k[0] * k[1]
        arg = ev.argmax_rows(node.name)
        mine = sels.get(node.name, {})
        D = E.lcm(*(f.denominator for e in mine.values() for f in e.weights)) if mine else 1
        onehot = np.arange(kk)[None, None, None, None, :] == arg[..., None]
        wts = np.where(onehot, D, 0).astype(object)
        if mine:
            win = _windows(xs[0].num, k, s)
            for (v, unit), e in mine.items():
                cell = win[(v, *unit)]
                top = max(cell)
                if sum(1 for t in range(kk) if cell[t] == top) > 1:
                    wts[(v, *unit)] = [f.numerator * (D // f.denominator) for f in e.weights]
                    ev.used.add(e.index)
        gw = g.num[..., None] * wts
        return [Q(_scatter_windows(gw, xs[0].shape, k, s), g.den * D)], {}


class AvgPool2d(Pool):
    op = "avgpool2d"

    def forward(self, ev, node, xs):
        k, s = node.a["k"], node.a["s"]
        win = _windows(xs[0].num, k, s)
        return Q(win.sum(axis=-1), xs[0].den * k[0] * k[1])

    def backward(self, ev, node, g, xs, sels):
        k, s = node.a["k"], node.a["s"]
        kk = k[0] * k[1]
        gw = np.repeat(g.num[..., None], kk, axis=-1)
        return [Q(_scatter_windows(gw, xs[0].shape, k, s), g.den * kk)], {}


RULES: dict[str, Rule] = {r.op: r for r in (
    Input(), Output(), Identity(), Flatten(), Add(), Dense(), Conv2d(), Scale(), Bias(), ReLU(), LeakyReLU(), Abs(),
    TwoSlope(), Power(), ReLUPower(), MaxPool2d(), AvgPool2d())}
#: ops the checker evaluates exactly
OPS = tuple(RULES)
