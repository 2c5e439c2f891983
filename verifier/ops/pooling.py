"""Pooling: max and average over ``(kh, kw)`` windows (no padding).

Both commute with positive scaling (degree unchanged).  Max-pooling is
piecewise linear: ties within ``tol`` (relative to the window values'
per-sample magnitude, :meth:`MaxPool2d.kink_scale`) are reported as kinks,
except ties among entries whose gradient is exactly 0 (the input node's
``constant_outputs``, e.g. ReLU zeros): routing the gradient to any of them
gives the same (zero) contribution.
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from ..errors import ShapeError
from .base import Attr, Op, register, require_image
from .linear import _pair_pos, col2im, im2col


class Pool(Op):
    attrs = {
        "kernel_size": Attr("pair", required=True, **_pair_pos),
        "stride": Attr("pair", default=None, **_pair_pos),
    }

    def split_role(self, attrs):
        return "pool"

    def check_attrs(self, node, attrs):
        out = super().check_attrs(node, attrs)
        if out["stride"] is None:
            out["stride"] = out["kernel_size"]
        return out

    def out_shape(self, node, in_shapes, attrs):
        c, h, w = require_image(node, self.name, in_shapes[0])
        (kh, kw), (sh, sw) = attrs["kernel_size"], attrs["stride"]
        if kh > h or kw > w:
            raise ShapeError(
                f"node {node!r} ({self.name}): window {(kh, kw)} is larger than the input {(h, w)}"
            )
        return (c, (h - kh) // sh + 1, (w - kw) // sw + 1)

    def _windows(self, x, attrs):
        """Windows ``(n, C, kh*kw, Ho, Wo)``: a view of a contiguous ``(n, C, Ho, Wo, kh*kw)`` array, so that
        reductions over the window run along the last (contiguous) axis."""
        win = im2col(x, attrs["kernel_size"], attrs["stride"], (0, 0))  # (n,C,kh,kw,Ho,Wo) view
        n, c, kh, kw, ho, wo = win.shape
        last = np.ascontiguousarray(win.transpose(0, 1, 4, 5, 2, 3)).reshape(n, c, ho, wo, kh * kw)
        return last.transpose(0, 1, 4, 2, 3)

    def _sym_windows(self, x, attrs):
        c, h, w = x.shape
        (kh, kw), (sh, sw) = attrs["kernel_size"], attrs["stride"]
        ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
        for ch in range(c):
            for a in range(ho):
                for b in range(wo):
                    yield (ch, a, b), list(x[ch, a * sh : a * sh + kh, b * sw : b * sw + kw].ravel())

    def _scatter(self, gw, x_shape, attrs):
        n, c, kk, ho, wo = gw.shape
        kh, kw = attrs["kernel_size"]
        return col2im(gw.reshape(n, c, kh, kw, ho, wo), tuple(x_shape), attrs["kernel_size"], attrs["stride"], (0, 0))


@register
class MaxPool2d(Pool):
    name = "maxpool2d"
    examples = ({"kernel_size": 2}, {"kernel_size": (2, 3), "stride": 1})

    def kink_kind(self, attrs):
        return "maxpool"

    def window_size(self, attrs) -> int:
        kh, kw = attrs["kernel_size"]
        return kh * kw

    @staticmethod
    def _offsets(x_shape, attrs):
        """The window entries ``t = i kw + j`` (row-major, the order of :meth:`_windows`) as the slices of the
        input that hold entry ``t`` of every window: ``x[:, :, sl]`` has the output's shape."""
        (kh, kw), (sh, sw) = attrs["kernel_size"], attrs["stride"]
        ho, wo = (x_shape[2] - kh) // sh + 1, (x_shape[3] - kw) // sw + 1
        return [(slice(i, i + sh * (ho - 1) + 1, sh), slice(j, j + sw * (wo - 1) + 1, sw))
                for i in range(kh) for j in range(kw)]

    def forward(self, xs, ps, attrs):
        # max and arg-max by one pass per window entry over output-sized strided slices (no window copy);
        # a strict '>' keeps the first maximum in window order, as argmax over the windows would
        x = xs[0]
        offs = self._offsets(x.shape, attrs)
        out = x[:, :, offs[0][0], offs[0][1]].copy()
        arg = np.zeros(out.shape, dtype=np.int64)
        upd = np.empty(out.shape, dtype=bool)
        for t, (si, sj) in enumerate(offs[1:], start=1):
            v = x[:, :, si, sj]
            np.greater(v, out, out=upd)
            np.copyto(out, v, where=upd)
            np.copyto(arg, t, where=upd)
        return out, {"arg": arg, "x": x, "_attrs": attrs, "_x_shape": x.shape}

    def _win(self, ctx) -> np.ndarray:
        """The windows ``(n, C, kh*kw, Ho, Wo)`` of the input, built on first use (only kink handling needs them)."""
        win = ctx.get("win")
        if win is None:
            win = ctx["win"] = self._windows(ctx["x"], ctx["_attrs"])
        return win

    def vjp(self, ctx, g, ps, attrs):
        arg = ctx["arg"]
        shape = ctx["_x_shape"]
        out = np.zeros((g.shape[0], *shape[1:]), dtype=g.dtype)
        for t, (si, sj) in enumerate(self._offsets(shape, attrs)):
            out[:, :, si, sj] += np.where(arg == t, g, 0.0)
        return [out]

    def jvp(self, ctx, dxs, dps, ps, attrs):
        if dxs[0] is None:
            return None
        arg = ctx["arg"]
        dx = dxs[0]
        out = np.zeros(arg.shape, dtype=dx.dtype)
        for t, (si, sj) in enumerate(self._offsets(dx.shape, attrs)):
            np.copyto(out, dx[:, :, si, sj], where=arg == t)
        return out

    def kink_scale(self, ctx, attrs):
        win = self._win(ctx)
        win = win.reshape(win.shape[0], -1)
        return np.abs(win).max(axis=1, initial=0.0)

    def _tied(self, win: np.ndarray, tol: np.ndarray | float) -> np.ndarray:
        t = np.asarray(tol, dtype=np.float64).reshape((-1,) + (1,) * (win.ndim - 1))
        return win >= win.max(axis=2, keepdims=True) - t

    def kinks(self, ctx, attrs, tol, frozen=None):
        win = self._win(ctx)
        if win.shape[2] < 2:
            return []
        tied = self._tied(win, tol)
        kink = tied.sum(axis=2) >= 2
        if frozen is not None:
            # a tie matters only if some tied entry's gradient can be non-zero
            kink &= ~self._all_const(frozen, tied, attrs)
        top2 = -np.sort(-win, axis=2)[:, :, :2]
        gap = (top2[:, :, 0] - top2[:, :, 1]).reshape(win.shape[0], -1)
        rows, units = np.nonzero(kink.reshape(win.shape[0], -1))
        return [(int(r), int(u), float(gap[r, u])) for r, u in zip(rows, units)]

    def _all_const(self, const: np.ndarray, tied: np.ndarray, attrs) -> np.ndarray:
        cw = self._windows(const.astype(np.float64), attrs) > 0.5
        return np.all(cw | ~tied, axis=2)

    def constant_outputs(self, ctx, xs, consts, attrs, tol):
        if consts[0] is None:
            return None
        return self._all_const(consts[0], self._tied(self._win(ctx), tol), attrs)

    def ties(self, ctx, sample: int, unit: tuple[int, ...], tol: float) -> tuple[list[int], int]:
        """Tied window entries (flat indices within the window, the arg-max included) and the arg-max."""
        win = self._win(ctx)[sample, unit[0], :, unit[1], unit[2]]
        arg = int(ctx["arg"][sample, unit[0], unit[1], unit[2]])
        ties = [int(i) for i in np.flatnonzero(win >= win.max() - tol)]
        if arg not in ties:  # pragma: no cover - arg is the max
            ties.append(arg)
        return ties, arg

    def tie_groups(self, ctx, attrs, samples: list[int], units: list[tuple[int, ...]],
                   tols: list[float]) -> list[list[tuple[int, ...]]]:
        """Vectorised :meth:`ties` + :meth:`tie_positions`: input positions of each kink's tied entries."""
        if not samples:
            return []
        s = np.asarray(samples)
        u = np.asarray(units)
        win = self._win(ctx)[s, u[:, 0], :, u[:, 1], u[:, 2]]  # (K, kk)
        tied = win >= win.max(axis=1, keepdims=True) - np.asarray(tols)[:, None]
        kw = attrs["kernel_size"][1]
        sh, sw = attrs["stride"]
        out: list[list[tuple[int, ...]]] = []
        for k, t in zip(units, tied):
            ent = np.flatnonzero(t)
            ch, a, b = k
            out.append([(int(ch), int(a * sh + e // kw), int(b * sw + e % kw)) for e in ent])
        return out

    def tie_positions(self, attrs, unit: tuple[int, ...], entries: list[int]) -> list[tuple[int, ...]]:
        """Positions in the op's input of the window entries ``entries`` of output ``unit``."""
        kw = attrs["kernel_size"][1]
        sh, sw = attrs["stride"]
        ch, a, b = unit
        return [(ch, a * sh + t // kw, b * sw + t % kw) for t in entries]

    def sympy_forward(self, xs, ps, attrs, fns):
        out = np.empty(self.out_shape("?", [xs[0].shape], attrs), dtype=object)
        for idx, vals in self._sym_windows(xs[0], attrs):
            out[idx] = fns.max(vals)
        return out


@register
class AvgPool2d(Pool):
    name = "avgpool2d"
    examples = ({"kernel_size": 2}, {"kernel_size": (2, 3), "stride": 1})

    def forward(self, xs, ps, attrs):
        return self._windows(xs[0], attrs).mean(axis=2), {"_x_shape": xs[0].shape}

    def jvp(self, ctx, dxs, dps, ps, attrs):
        return None if dxs[0] is None else self._windows(dxs[0], attrs).mean(axis=2)

    def constant_outputs(self, ctx, xs, consts, attrs, tol):
        if consts[0] is None:
            return None
        return np.all(self._windows(consts[0].astype(np.float64), attrs) > 0.5, axis=2)

    def vjp(self, ctx, g, ps, attrs):
        kh, kw = attrs["kernel_size"]
        n, c, ho, wo = g.shape
        gw = np.broadcast_to(g[:, :, None] / (kh * kw), (n, c, kh * kw, ho, wo))
        return [self._scatter(np.ascontiguousarray(gw), (n, *ctx["_x_shape"][1:]), attrs)]

    def sympy_forward(self, xs, ps, attrs, fns):
        kh, kw = attrs["kernel_size"]
        out = np.empty(self.out_shape("?", [xs[0].shape], attrs), dtype=object)
        for idx, vals in self._sym_windows(xs[0], attrs):
            out[idx] = sp.Add(*vals) / (kh * kw)
        return out
