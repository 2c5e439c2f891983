"""Structural ops: the input, the output, flatten and add (residual / branch sums)."""

from __future__ import annotations

import numpy as np
import sympy as sp

from ..errors import ShapeError
from .base import Attr, Op, register, require_flat


@register
class Input(Op):
    """The data ``x``: degree 0, per-sample ``shape`` e.g. ``[d]`` or ``[C, H, W]``."""

    name = "input"
    arity = (0, 0)
    attrs = {
        "shape": Attr(
            "shape", required=True, check=lambda s: len(s) >= 1 and min(s) >= 1,
            valid="a non-empty list of positive integers, e.g. [2] or [1, 8, 8]",
        )
    }
    examples = ({"shape": [2]},)

    def out_shape(self, node, in_shapes, attrs):
        return tuple(attrs["shape"])

    def degree(self, node, in_degs, param_degs, attrs, equal):
        return sp.Integer(0)


@register
class Output(Op):
    """The network output: 1 unit (binary, labels +-1) or C >= 2 units (classes 0..C-1)."""

    name = "output"

    def out_shape(self, node, in_shapes, attrs):
        require_flat(node, self.name, in_shapes[0])
        return in_shapes[0]

    def forward(self, xs, ps, attrs):
        return xs[0], {}

    def constant_outputs(self, ctx, xs, consts, attrs, tol):
        return consts[0]

    def vjp(self, ctx, g, ps, attrs):
        return [g]

    def jvp(self, ctx, dxs, dps, ps, attrs):
        return dxs[0]

    def sympy_forward(self, xs, ps, attrs, fns):
        return xs[0]


@register
class Flatten(Op):
    """Per-sample reshape to ``(prod(shape),)``, row-major like ``torch.flatten(x, 1)``."""

    name = "flatten"

    def split_role(self, attrs):
        return "reshape"

    def split_block(self, in_shape, block):
        return int(np.prod(in_shape[1:])) if len(in_shape) > 1 else block

    def out_shape(self, node, in_shapes, attrs):
        return (int(np.prod(in_shapes[0])),)

    def forward(self, xs, ps, attrs):
        x = xs[0]
        return x.reshape(x.shape[0], -1), {"_x_shape": x.shape}

    def constant_outputs(self, ctx, xs, consts, attrs, tol):
        return None if consts[0] is None else consts[0].reshape(consts[0].shape[0], -1)

    def vjp(self, ctx, g, ps, attrs):
        return [g.reshape((g.shape[0], *ctx["_x_shape"][1:]))]

    def jvp(self, ctx, dxs, dps, ps, attrs):
        return None if dxs[0] is None else dxs[0].reshape(dxs[0].shape[0], -1)

    def sympy_forward(self, xs, ps, attrs, fns):
        return xs[0].reshape(-1)


@register
class Add(Op):
    """Sum of two or more branches of equal shape; homogeneous only if their degrees agree."""

    name = "add"
    arity = (2, None)

    def out_shape(self, node, in_shapes, attrs):
        if any(s != in_shapes[0] for s in in_shapes):
            raise ShapeError(f"node {node!r} (add): summands have different shapes {in_shapes}")
        return in_shapes[0]

    def degree(self, node, in_degs, param_degs, attrs, equal):
        for d in in_degs[1:]:
            equal(in_degs[0], d, lambda d=d: f"add has summands of degree {in_degs[0]} and {d}")
        return in_degs[0]

    def constant_outputs(self, ctx, xs, consts, attrs, tol):
        if any(c is None for c in consts):
            return None
        out = consts[0].copy()
        for c in consts[1:]:
            out &= c
        return out

    def forward(self, xs, ps, attrs):
        out = xs[0].copy()
        for x in xs[1:]:
            out += x
        return out, {"_n": len(xs)}

    def vjp(self, ctx, g, ps, attrs):
        return [g] * ctx["_n"]

    def jvp(self, ctx, dxs, dps, ps, attrs):
        live = [d for d in dxs if d is not None]
        if not live:
            return None
        out = live[0].copy()
        for d in live[1:]:
            out += d
        return out

    def sympy_forward(self, xs, ps, attrs, fns):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out
