"""Max-pooling by strided slices against an explicit loop over windows (the oracle), ties included:
the first maximum in row-major window order is selected, as ``argmax`` over the window would."""

import itertools

import numpy as np
import pytest

from verifier.ops import REGISTRY


def _oracle(x, k, s):
    n, c, h, w = x.shape
    (kh, kw), (sh, sw) = k, s
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = np.zeros((n, c, ho, wo))
    arg = np.zeros((n, c, ho, wo), dtype=int)
    for i, ch, a, b in itertools.product(range(n), range(c), range(ho), range(wo)):
        vals = [x[i, ch, a * sh + di, b * sw + dj] for di in range(kh) for dj in range(kw)]
        best = max(vals)
        arg[i, ch, a, b] = vals.index(best)  # the first maximum
        out[i, ch, a, b] = best
    return out, arg


@pytest.mark.parametrize("k,s,shape", [((2, 2), (2, 2), (3, 2, 6, 6)), ((2, 3), (1, 1), (2, 1, 5, 6)),
                                       ((3, 2), (2, 1), (2, 3, 7, 5)), ((2, 2), (2, 2), (2, 1, 5, 7))])
def test_maxpool_forward_vjp_jvp_against_windows(k, s, shape):
    rng = np.random.default_rng(0)
    op = REGISTRY["maxpool2d"]
    attrs = op.check_attrs("pool", {"kernel_size": list(k), "stride": list(s)})
    x = rng.integers(-2, 3, size=shape).astype(float)  # many exact ties
    out, ctx = op.forward([x], {}, attrs)
    want, arg = _oracle(x, k, s)
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(ctx["arg"], arg)
    # vjp: the output gradient lands on the selected entry of each window (windows may overlap: summed)
    g = rng.standard_normal(out.shape)
    ref = np.zeros_like(x)
    (kh, kw), (sh, sw) = k, s
    for i, ch, a, b in itertools.product(*map(range, out.shape)):
        t = arg[i, ch, a, b]
        ref[i, ch, a * sh + t // kw, b * sw + t % kw] += g[i, ch, a, b]
    np.testing.assert_allclose(op.vjp(ctx, g, {}, attrs)[0], ref, rtol=0, atol=1e-15)
    # jvp: the tangent of the selected entry; and <vjp(g), dx> = <g, jvp(dx)> (adjoint pair)
    dx = rng.standard_normal(x.shape)
    jv = op.jvp(ctx, [dx], {}, {}, attrs)
    for i, ch, a, b in itertools.product(*map(range, out.shape)):
        t = arg[i, ch, a, b]
        assert jv[i, ch, a, b] == dx[i, ch, a * sh + t // kw, b * sw + t % kw]
    assert np.isclose(np.sum(op.vjp(ctx, g, {}, attrs)[0] * dx), np.sum(g * jv), rtol=1e-12)
    # the windows for kink handling are built on demand and agree with the input
    win = op._win(ctx)
    assert win.shape == (shape[0], shape[1], kh * kw, *out.shape[2:])
    np.testing.assert_array_equal(win.max(axis=2), want)
