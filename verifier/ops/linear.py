"""Parameterised linear ops: dense, conv2d, scale (diagonal networks), bias."""

from __future__ import annotations

from typing import Any, Callable, Mapping, TypedDict

import numpy as np
import sympy as sp
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import ShapeError
from .base import Attr, Op, Shape, const_mask, require_flat, require_image, register


class _Check(TypedDict):
    """The ``check``/``valid`` keywords of an :class:`Attr`, shared by several attributes."""

    check: Callable[[Any], bool]
    valid: str


_pos: _Check = dict(check=lambda v: v >= 1, valid="a positive integer")
_pair_pos: _Check = dict(check=lambda v: min(v) >= 1, valid="a positive integer or a pair of them")
_pair_nonneg: _Check = dict(check=lambda v: min(v) >= 0, valid="a non-negative integer or a pair of them")


@register
class Dense(Op):
    """``z = W h`` with ``W`` shaped ``(out_features, in_features)`` like ``torch.nn.Linear``."""

    name = "dense"
    roles = ("weight",)
    attrs = {"out_features": Attr("int", required=True, **_pos)}
    examples = ({"out_features": 3},)

    def out_shape(self, node: str, in_shapes: list[Shape], attrs: Mapping[str, Any]) -> Shape:
        require_flat(node, self.name, in_shapes[0])
        return (attrs["out_features"],)

    def split_role(self, attrs):
        return "reader"

    def unit_params(self, attrs):
        return "row"

    def split_units(self, attrs) -> int:
        """Units this layer produces (what a split can split)."""
        return attrs["out_features"]

    def widen(self, attrs: Mapping[str, Any], units: int) -> dict[str, Any]:
        """``attrs`` of the same layer producing ``units`` units (the wide network of a split)."""
        return {**attrs, "out_features": units}

    def split_reader_block(self, block: int | None) -> int:
        """Columns of ``weight`` per unit of the input (a flat unit spans ``block`` features)."""
        assert block is not None
        return block

    def param_shapes(self, node, in_shapes, attrs):
        return {"weight": (attrs["out_features"], require_flat(node, self.name, in_shapes[0]))}

    def degree(self, node, in_degs, param_degs, attrs, equal):
        return param_degs["weight"] + in_degs[0]

    def forward(self, xs, ps, attrs):
        h = xs[0]
        return h @ ps["weight"].T, {"h": h}

    def constant_outputs(self, ctx, xs, consts, attrs, tol):
        # d z_u / d W[u, :] = h: constant only if every input is 0 and constant itself
        h = xs[0]
        ok = ~np.any((h != 0) | ~const_mask(consts[0], h.shape), axis=1)
        return np.repeat(ok[:, None], attrs["out_features"], axis=1)

    def vjp(self, ctx, g, ps, attrs):
        return [g @ ps["weight"]]

    def param_grads(self, ctx, g, ps, attrs):
        return {"weight": g[:, :, None] * ctx["h"][:, None, :]}

    def param_grad_sum(self, ctx, g, ps, attrs):
        return {"weight": g.T @ ctx["h"]}

    def jvp(self, ctx, dxs, dps, ps, attrs):
        out = None if dxs[0] is None else dxs[0] @ ps["weight"].T
        if "weight" in dps:
            t = ctx["h"] @ dps["weight"].T
            out = t if out is None else out + t
        return out

    def gram_factor(self, ctx, g, ps, attrs):
        # <g_i h_i^T, g_j h_j^T> = <g_i, g_j> <h_i, h_j>: no per-row gradient is formed.  The inputs h
        # belong to samples, not rows: with several rows per sample (multiclass) H H^T is formed once
        # per pair of samples and expanded.
        rows = ctx.get("_rows")
        if rows is None:
            return (g, ctx["h"], None)
        uniq, inv = np.unique(rows, return_inverse=True)
        return (g, ctx["_base"]["h"][uniq], inv)

    def gram_cross(self, fa, fb):
        ga, ha, ia = fa
        gb, hb, ib = fb
        hh = ha @ hb.T
        if ia is not None or ib is not None:
            hh = hh[np.arange(ha.shape[0]) if ia is None else ia][:, np.arange(hb.shape[0]) if ib is None else ib]
        return (ga @ gb.T) * hh

    def gram_factor_rows(self, fa, rows):
        g, h, inv = fa
        if inv is None:
            return (g[rows], h[rows], None)
        return (g[rows], h, inv[rows])

    def sympy_forward(self, xs, ps, attrs, fns):
        return ps["weight"].dot(xs[0])


def _conv_geometry(node: str, in_shape: Shape, attrs: Mapping[str, Any]) -> tuple[int, int]:
    c, h, w = require_image(node, "conv2d", in_shape)
    kh, kw = attrs["kernel_size"]
    sh, sw = attrs["stride"]
    ph, pw = attrs["padding"]
    ho = (h + 2 * ph - kh) // sh + 1
    wo = (w + 2 * pw - kw) // sw + 1
    if ho < 1 or wo < 1:
        raise ShapeError(
            f"node {node!r} (conv2d): kernel {(kh, kw)} with padding {(ph, pw)} does not fit "
            f"an input of spatial size {(h, w)}"
        )
    return ho, wo


def im2col(x: np.ndarray, k: tuple[int, int], s: tuple[int, int], p: tuple[int, int], pad_value: float = 0.0) -> np.ndarray:
    """``(n, C, H, W) -> (n, C, kh, kw, Ho, Wo)`` windows (a view where possible)."""
    kh, kw = k
    sh, sw = s
    ph, pw = p
    if ph or pw:
        x = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=pad_value)
    win = sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]  # (n,C,Ho,Wo,kh,kw)
    return win.transpose(0, 1, 4, 5, 2, 3)


def col2im(gc: np.ndarray, in_shape: tuple[int, ...], k, s, p) -> np.ndarray:
    """Adjoint of :func:`im2col`: scatter-add ``(n, C, kh, kw, Ho, Wo)`` back to the input."""
    n, c, h, w = in_shape
    kh, kw = k
    sh, sw = s
    ph, pw = p
    ho, wo = gc.shape[4], gc.shape[5]
    out = np.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=gc.dtype)
    for i in range(kh):
        for j in range(kw):
            out[:, :, i : i + sh * ho : sh, j : j + sw * wo : sw] += gc[:, :, i, j]
    return out[:, :, ph : ph + h, pw : pw + w]


def patches(x: np.ndarray, k: tuple[int, int], s: tuple[int, int], p: tuple[int, int]) -> np.ndarray:
    """The transposed im2col matrix ``(n, C*kh*kw, Ho*Wo)``: one contiguous copy of the :func:`im2col` view,
    whose inner blocks are (strided) image rows, so the copy streams; every product on it is a GEMM and
    ``W2 @ patches`` is already in the output layout ``(n, C_out, Ho*Wo)``."""
    cols = im2col(x, k, s, p)  # (n, C, kh, kw, Ho, Wo) view
    n, c, kh, kw, ho, wo = cols.shape
    return np.ascontiguousarray(cols).reshape(n, c * kh * kw, ho * wo)


def patches_adjoint(gp: np.ndarray, in_shape: tuple[int, ...], k, s, p, hw: tuple[int, int]) -> np.ndarray:
    """Adjoint of :func:`patches`: scatter-add ``(n, C*kh*kw, Ho*Wo)`` back to ``(n, C, H, W)``."""
    n, c = in_shape[0], in_shape[1]
    return col2im(gp.reshape(n, c, k[0], k[1], hw[0], hw[1]), tuple(in_shape), k, s, p)


@register
class Conv2d(Op):
    """2-D convolution, weight ``(C_out, C_in, kh, kw)`` like ``torch.nn.Conv2d`` (no bias)."""

    name = "conv2d"
    roles = ("weight",)
    attrs = {
        "out_channels": Attr("int", required=True, **_pos),
        "kernel_size": Attr("pair", required=True, **_pair_pos),
        "stride": Attr("pair", default=(1, 1), **_pair_pos),
        "padding": Attr("pair", default=(0, 0), **_pair_nonneg),
    }
    examples = ({"out_channels": 2, "kernel_size": 2}, {"out_channels": 1, "kernel_size": 3, "stride": 2, "padding": 1})

    def out_shape(self, node, in_shapes, attrs):
        ho, wo = _conv_geometry(node, in_shapes[0], attrs)
        return (attrs["out_channels"], ho, wo)

    def split_role(self, attrs):
        return "reader"

    def split_units(self, attrs) -> int:
        return attrs["out_channels"]

    def widen(self, attrs: Mapping[str, Any], units: int) -> dict[str, Any]:
        return {**attrs, "out_channels": units}

    def split_reader_block(self, block: int | None) -> int:
        return 1  # weight axis 1 is the input channel

    def param_shapes(self, node, in_shapes, attrs):
        c = require_image(node, self.name, in_shapes[0])[0]
        return {"weight": (attrs["out_channels"], c, *attrs["kernel_size"])}

    def degree(self, node, in_degs, param_degs, attrs, equal):
        return param_degs["weight"] + in_degs[0]

    # Every product is a GEMM on the transposed im2col matrix A (n, C*kh*kw, Ho*Wo) and W2 = weight as
    # (C_out, C*kh*kw): W2 @ A is the output (n, C_out, Ho*Wo) without a transpose.
    def forward(self, xs, ps, attrs):
        x = xs[0]
        w = ps["weight"]
        A = patches(x, attrs["kernel_size"], attrs["stride"], attrs["padding"])
        ho, wo = _conv_geometry("?", x.shape[1:], attrs)
        z = (w.reshape(w.shape[0], -1) @ A).reshape(x.shape[0], w.shape[0], ho, wo)
        return z, {"A": A, "_x_shape": x.shape, "_hw": (ho, wo)}

    @staticmethod
    def _g(g: np.ndarray) -> np.ndarray:
        """``(n, C_out, Ho, Wo) -> (n, C_out, Ho*Wo)``."""
        return g.reshape(g.shape[0], g.shape[1], -1)

    def constant_outputs(self, ctx, xs, consts, attrs, tol):
        # d z / d W = the patch: constant only where the whole patch is 0 and constant
        x = xs[0]
        bad = ((x != 0) | ~const_mask(consts[0], x.shape)).astype(np.float64)
        win = im2col(bad, attrs["kernel_size"], attrs["stride"], attrs["padding"])  # (n,C,kh,kw,Ho,Wo)
        ok = ~np.any(win > 0.5, axis=(1, 2, 3))
        return np.repeat(ok[:, None], attrs["out_channels"], axis=1)

    def vjp(self, ctx, g, ps, attrs):
        w = ps["weight"]
        gp = w.reshape(w.shape[0], -1).T @ self._g(g)  # (n, C*kh*kw, Ho*Wo)
        shape = (g.shape[0], *ctx["_x_shape"][1:])
        return [patches_adjoint(gp, shape, attrs["kernel_size"], attrs["stride"], attrs["padding"], ctx["_hw"])]

    def jvp(self, ctx, dxs, dps, ps, attrs):
        w = ps["weight"]
        t = None
        if dxs[0] is not None:
            t = w.reshape(w.shape[0], -1) @ patches(dxs[0], attrs["kernel_size"], attrs["stride"], attrs["padding"])
        if "weight" in dps:
            u = dps["weight"].reshape(w.shape[0], -1) @ ctx["A"]
            t = u if t is None else t + u
        if t is None:
            return None
        return t.reshape(t.shape[0], w.shape[0], *ctx["_hw"])

    def param_grads(self, ctx, g, ps, attrs):
        return {"weight": (self._g(g) @ ctx["A"].transpose(0, 2, 1)).reshape(g.shape[0], *ps["weight"].shape)}

    def param_grad_sum(self, ctx, g, ps, attrs):
        # sum_n g_n A_n^T: one small GEMM per sample, summed (both factors stay in their layouts)
        return {"weight": (self._g(g) @ ctx["A"].transpose(0, 2, 1)).sum(axis=0).reshape(ps["weight"].shape)}

    def sympy_forward(self, xs, ps, attrs, fns):
        x = xs[0]
        w = ps["weight"]
        co, ci, kh, kw = w.shape
        (sh, sw), (ph, pw) = attrs["stride"], attrs["padding"]
        xp = np.full((x.shape[0], x.shape[1] + 2 * ph, x.shape[2] + 2 * pw), sp.Integer(0), dtype=object)
        xp[:, ph : ph + x.shape[1], pw : pw + x.shape[2]] = x
        ho, wo = _conv_geometry("?", x.shape, attrs)
        out = np.empty((co, ho, wo), dtype=object)
        for o in range(co):
            for a in range(ho):
                for b in range(wo):
                    patch = xp[:, a * sh : a * sh + kh, b * sw : b * sw + kw]
                    out[o, a, b] = sp.Add(*(w[o] * patch).ravel())
        return out


@register
class Scale(Op):
    """Elementwise product with a parameter tensor of the input's shape (diagonal networks)."""

    name = "scale"
    roles = ("scale",)

    def param_shapes(self, node, in_shapes, attrs):
        return {"scale": in_shapes[0]}

    def degree(self, node, in_degs, param_degs, attrs, equal):
        return param_degs["scale"] + in_degs[0]

    def forward(self, xs, ps, attrs):
        return xs[0] * ps["scale"], {"h": xs[0]}

    def constant_outputs(self, ctx, xs, consts, attrs, tol):
        return (xs[0] == 0) & const_mask(consts[0], xs[0].shape)

    def vjp(self, ctx, g, ps, attrs):
        return [g * ps["scale"]]

    def jvp(self, ctx, dxs, dps, ps, attrs):
        out = None if dxs[0] is None else dxs[0] * ps["scale"]
        if "scale" in dps:
            t = ctx["h"] * dps["scale"]
            out = t if out is None else out + t
        return out

    def param_grads(self, ctx, g, ps, attrs):
        return {"scale": g * ctx["h"]}

    def sympy_forward(self, xs, ps, attrs, fns):
        return xs[0] * ps["scale"]


@register
class Bias(Op):
    """``z = h + b``; ``b`` has the input's shape, or one entry per channel for images."""

    name = "bias"
    roles = ("bias",)

    def split_role(self, attrs):
        return "grow"

    def unit_params(self, attrs):
        return "bias"

    def param_shapes(self, node, in_shapes, attrs):
        s = in_shapes[0]
        return {"bias": s if len(s) == 1 else (s[0],)}

    def degree(self, node, in_degs, param_degs, attrs, equal):
        equal(
            in_degs[0],
            param_degs["bias"],
            lambda: f"bias adds a parameter of degree {param_degs['bias']} to an input of degree {in_degs[0]}",
        )
        return in_degs[0]

    @staticmethod
    def _expand(b: np.ndarray, ndim: int) -> np.ndarray:
        return b if ndim == 2 else b.reshape((1, -1) + (1,) * (ndim - 2))

    def forward(self, xs, ps, attrs):
        return xs[0] + self._expand(ps["bias"], xs[0].ndim), {"_n": xs[0].shape[0], "_shape": xs[0].shape[1:]}

    def vjp(self, ctx, g, ps, attrs):
        return [g]

    def jvp(self, ctx, dxs, dps, ps, attrs):
        if "bias" not in dps:
            return dxs[0]
        db = self._expand(dps["bias"], len(ctx["_shape"]) + 1)
        return db + np.zeros((ctx["_n"], *ctx["_shape"])) if dxs[0] is None else dxs[0] + db

    def param_grads(self, ctx, g, ps, attrs):
        return {"bias": g if g.ndim == 2 else g.sum(axis=tuple(range(2, g.ndim)))}

    def sympy_forward(self, xs, ps, attrs, fns):
        x = xs[0]
        b = ps["bias"]
        return x + (b if x.ndim == 1 else b.reshape((-1,) + (1,) * (x.ndim - 1)))
