"""Elementwise activations: the ReLU family, powers, and two non-homogeneous ones.

Derivative convention at a kink (``z == 0``) is torch's: ``relu'(0) = 0``,
``leaky_relu'(0) = slope``, ``abs'(0) = 0``.  The KKT layer treats
pre-activations within ``kink_tol`` (relative to :meth:`Elementwise.kink_scale`)
of 0 as Clarke intervals instead.

A piecewise-linear activation declares its two slopes (:meth:`Elementwise.slopes`,
exact); its kink, Clarke interval and homogeneity follow from them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import sympy as sp

from .base import Attr, Op, SymFns, const_mask, not_homogeneous, register


class Elementwise(Op):
    """``a = f(z)`` applied entrywise; subclasses give ``f``, ``df`` and the sympy form."""

    def f(self, z: np.ndarray, attrs: dict[str, Any]) -> np.ndarray:
        raise NotImplementedError

    def df(self, z: np.ndarray, attrs: dict[str, Any]) -> np.ndarray:
        raise NotImplementedError

    def sym(self, z: sp.Expr, attrs: dict[str, Any], fns: SymFns) -> sp.Expr:
        raise NotImplementedError

    def slopes(self, attrs: dict[str, Any]) -> tuple[sp.Rational, sp.Rational] | None:
        """``(pos, neg)``, exact, when ``f(z) = pos z`` for ``z >= 0`` and ``neg z`` for ``z < 0``; else ``None``."""
        return None

    def kink_kind(self, attrs):
        sl = self.slopes(attrs)
        return "elementwise" if sl is not None and sl[0] != sl[1] else None

    def clarke_interval(self, attrs):
        if self.kink_kind(attrs) != "elementwise":
            return None
        pos, neg = self.slopes(attrs)  # type: ignore[misc]
        return (min(pos, neg), max(pos, neg))

    def scaling_exponent(self, attrs):
        return 1 if self.slopes(attrs) is not None else None

    def split_role(self, attrs):
        return "elementwise"

    def kink_scale(self, ctx, attrs):
        z = ctx["z"].reshape(ctx["z"].shape[0], -1)
        return np.abs(z).max(axis=1, initial=0.0)

    def constant_outputs(self, ctx, xs, consts, attrs, tol):
        z = ctx["z"]
        out = const_mask(consts[0], z.shape).copy()  # f'(z) * 0 = 0, whatever the selection at a kink
        if self.scaling_exponent(attrs) is not None:  # sigmoid / tanh: a derivative rounding to 0 is not 0
            zero = self.df(z, attrs) == 0
            if self.is_kinked(attrs):
                t = np.asarray(tol, dtype=np.float64).reshape((-1,) + (1,) * (z.ndim - 1))
                zero &= np.abs(z) > t
            out |= zero
        return out

    def degree(self, node, in_degs, param_degs, attrs, equal):
        p = self.scaling_exponent(attrs)
        if p is None:
            raise not_homogeneous(node, f"{self.name} is not positively homogeneous")
        return p * in_degs[0]

    def forward(self, xs, ps, attrs):
        z = xs[0]
        return self.f(z, attrs), {"z": z}

    def vjp(self, ctx, g, ps, attrs):
        return [g * self.df(ctx["z"], attrs)]

    def jvp(self, ctx, dxs, dps, ps, attrs):
        return None if dxs[0] is None else dxs[0] * self.df(ctx["z"], attrs)

    def kinks(self, ctx, attrs, tol, frozen=None):
        if not self.is_kinked(attrs):
            return []
        z = ctx["z"].reshape(ctx["z"].shape[0], -1)
        t = np.asarray(tol, dtype=np.float64).reshape(-1, 1)
        at = np.abs(z) <= t
        if frozen is not None:
            at &= ~frozen.reshape(at.shape)  # a constant pre-activation: no selection changes a gradient
        rows, units = np.nonzero(at)
        return [(int(r), int(u), float(z[r, u])) for r, u in zip(rows, units)]

    def sympy_forward(self, xs, ps, attrs, fns):
        z = xs[0]
        out = np.empty(z.shape, dtype=object)
        for idx in np.ndindex(z.shape):
            out[idx] = self.sym(z[idx], attrs, fns)
        return out


@register
class Identity(Elementwise):
    name = "identity"

    def slopes(self, attrs):
        return (sp.Integer(1), sp.Integer(1))

    def f(self, z, attrs):
        return z

    def df(self, z, attrs):
        return np.ones_like(z)

    def sym(self, z, attrs, fns):
        return z


@register
class ReLU(Elementwise):
    name = "relu"

    def slopes(self, attrs):
        return (sp.Integer(1), sp.Integer(0))

    def f(self, z, attrs):
        return np.maximum(z, 0.0)

    def df(self, z, attrs):
        return (z > 0).astype(z.dtype)

    def sym(self, z, attrs, fns):
        return fns.relu(z)


@register
class LeakyReLU(Elementwise):
    name = "leaky_relu"
    attrs = {"slope": Attr("float", default=0.01, valid="a finite number (the negative-side slope)")}
    examples = ({"slope": 0.01}, {"slope": 0.25}, {"slope": 2.0}, {"slope": 1.0})

    def slopes(self, attrs):
        return (sp.Integer(1), sp.nsimplify(attrs["slope"], rational=True))

    def f(self, z, attrs):
        return np.where(z > 0, z, attrs["slope"] * z)

    def df(self, z, attrs):
        return np.where(z > 0, 1.0, attrs["slope"])

    def sym(self, z, attrs, fns):
        return fns.leaky_relu(z, sp.nsimplify(attrs["slope"], rational=True))


@register
class Abs(Elementwise):
    name = "abs"

    def slopes(self, attrs):
        return (sp.Integer(1), sp.Integer(-1))

    def f(self, z, attrs):
        return np.abs(z)

    def df(self, z, attrs):
        return np.sign(z)

    def sym(self, z, attrs, fns):
        return fns.abs(z)


_k = Attr("int", required=True, check=lambda k: k >= 1, valid="an integer k >= 1")


@register
class Power(Elementwise):
    """``z^k`` (polynomial networks); degree multiplies by ``k``."""

    name = "power"
    attrs = {"k": _k}
    examples = ({"k": 1}, {"k": 2}, {"k": 3})

    def slopes(self, attrs):
        return (sp.Integer(1), sp.Integer(1)) if attrs["k"] == 1 else None

    def scaling_exponent(self, attrs):
        return attrs["k"]

    def f(self, z, attrs):
        return z ** attrs["k"]

    def df(self, z, attrs):
        k = attrs["k"]
        return k * z ** (k - 1)

    def sym(self, z, attrs, fns):
        return z ** attrs["k"]


@register
class ReLUPower(Elementwise):
    """``max(0, z)^k``; ``k = 1`` is ReLU (kinked), ``k >= 2`` is differentiable."""

    name = "relu_power"
    attrs = {"k": _k}
    examples = ({"k": 1}, {"k": 2}, {"k": 3})

    def slopes(self, attrs):
        return (sp.Integer(1), sp.Integer(0)) if attrs["k"] == 1 else None

    def is_piecewise(self, attrs):
        return True  # relu(z)^k: two polynomial branches (differentiable at 0 for k >= 2)

    def scaling_exponent(self, attrs):
        return attrs["k"]

    def f(self, z, attrs):
        return np.maximum(z, 0.0) ** attrs["k"]

    def df(self, z, attrs):
        k = attrs["k"]
        return k * np.maximum(z, 0.0) ** (k - 1) if k > 1 else (z > 0).astype(z.dtype)

    def sym(self, z, attrs, fns):
        return fns.relu(z) ** attrs["k"]


@register
class Sigmoid(Elementwise):
    """Not homogeneous: representable (importers map it) but the calculus rejects it."""

    name = "sigmoid"

    def scaling_exponent(self, attrs):
        return None

    def f(self, z, attrs):
        return 0.5 * (1.0 + np.tanh(0.5 * z))

    def df(self, z, attrs):
        s = self.f(z, attrs)
        return s * (1.0 - s)

    def sym(self, z, attrs, fns):
        return fns.sigmoid(z)


@register
class Tanh(Elementwise):
    """Not homogeneous: representable but rejected by the calculus."""

    name = "tanh"

    def scaling_exponent(self, attrs):
        return None

    def f(self, z, attrs):
        return np.tanh(z)

    def df(self, z, attrs):
        return 1.0 - np.tanh(z) ** 2

    def sym(self, z, attrs, fns):
        return fns.tanh(z)
