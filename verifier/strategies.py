"""Hypothesis strategies for property tests of homogeneous networks.

Library-shipped strategies in the style of ``hypothesis.extra.numpy``: every
argument is keyword-only and validated when the strategy is *built* (not
when it is drawn from), with one message format,
``f"{name}={value!r} must be ..."`` (raised as :class:`StrategyArgumentError`,
which is both a :class:`~verifier.errors.VerifierError` and hypothesis'
``InvalidArgument``).  Everything shrinks towards small, readable instances:
few layers, narrow widths, few samples, coordinates and weights on a coarse
dyadic grid (multiples of ``1/4`` by default, exact in float64), simple split
ratios such as ``(3/5, 4/5)``.

Matching data to a network
--------------------------
The defaults agree: :func:`mlps` builds networks with ``input_dim=2`` and
:func:`separable_data` draws 2-D data, so independent draws fit together::

    @given(vst.mlps(max_depth=3), vst.separable_data(), vst.splits())
    def test_my_claim(net, data, ratios):
        X, y = data
        ...

When the input dimension varies (``mlps(input_dim=None)``, CNNs), draw the
data *for* the network, either inside the test with ``st.data()``::

    @given(vst.mlps(input_dim=None), st.data())
    def test_my_claim(net, data):
        X, y = data.draw(vst.separable_data(net=net))

or with the combined strategies, which return :class:`Point` tuples
``(net, params, X, y, multipliers, kind)``: :func:`feasible_points`
(labels given by the network itself, so ``min q > 0``), :func:`kkt_points`
(exact KKT points built by construction, with their multipliers) and
:func:`trained_points` (gradient descent, needs :mod:`verifier.dynamics`).
:func:`split_sites` draws a ``(layer, neuron)`` of a given network.

>>> from hypothesis import given, settings
>>> import verifier, verifier.strategies as vst
>>> @settings(max_examples=5, database=None)
... @given(vst.mlps(max_depth=3), vst.separable_data())
... def test(net, data):
...     X, y = data
...     assert verifier.forward(net, net.init_params(0), X).shape == (len(y), 1)
>>> test()
"""

from __future__ import annotations

from fractions import Fraction
from math import ceil
from typing import Any, NamedTuple, Sequence

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from .errors import GraphError, ShapeError, VerifierError
from .graph import Network, cnn, diagonal_linear, mlp
from .graph.builders import parse_activation
from .numeric.engine import forward

__all__ = [
    "HOMOGENEOUS_ACTIVATIONS", "PYTHAGOREAN_PAIRS", "Point", "StrategyArgumentError", "cnns", "diagonal_nets",
    "feasible_points", "kkt_points", "mlps", "networks", "params_for", "rescaled_splits", "separable_data",
    "split_sites", "splits", "trained_points", "unit_vectors",
]

#: positively 1-homogeneous activations (``sigma(c z) = c sigma(z)``, ``c > 0``): the ones splitting needs
HOMOGENEOUS_ACTIVATIONS = ("relu", "leaky_relu:0.1", "abs", "identity")

#: rational points ``(p, q)`` on the unit circle, ``p^2 + q^2 = 1`` (Pythagorean triples), simplest first
PYTHAGOREAN_PAIRS: tuple[tuple[Fraction, Fraction], ...] = tuple(
    (Fraction(a, c), Fraction(b, c)) for a, b, c in
    [(3, 4, 5), (4, 3, 5), (5, 12, 13), (12, 5, 13), (8, 15, 17), (15, 8, 17), (7, 24, 25), (24, 7, 25),
     (20, 21, 29), (21, 20, 29)]
)
#: rational unit vectors with three or four entries, all positive
_TRIPLES = tuple(tuple(Fraction(v, d) for v in vs) for vs, d in
                 [((1, 2, 2), 3), ((2, 1, 2), 3), ((2, 2, 1), 3), ((2, 3, 6), 7), ((6, 3, 2), 7), ((2, 6, 9), 11)])
_QUADS = ((Fraction(1, 2),) * 4, (Fraction(2, 5), Fraction(2, 5), Fraction(1, 5), Fraction(4, 5)))


class StrategyArgumentError(VerifierError, InvalidArgument):
    """A strategy was called with an invalid argument (message: ``name=value must be ...``)."""


class Point(NamedTuple):
    """A network, a parameter point and a data set (with multipliers when the point is a KKT point)."""

    net: Network
    params: dict[str, np.ndarray]
    X: np.ndarray
    y: np.ndarray
    multipliers: np.ndarray | None = None
    kind: str = "feasible"
    #: the starting point of training (:func:`trained_points` only)
    init: dict[str, np.ndarray] | None = None


# -- argument validation ---------------------------------------------------------------------------------

def _fail(name: str, value: Any, must: str) -> StrategyArgumentError:
    return StrategyArgumentError(f"{name}={value!r} must be {must}")


def _int(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo or (hi is not None and value > hi):
        rng = f"an integer >= {lo}" if hi is None else f"an integer in [{lo}, {hi}]"
        raise _fail(name, value, rng)
    return int(value)


def _order(lo_name: str, lo: int, hi_name: str, hi: int) -> None:
    if lo > hi:
        raise StrategyArgumentError(f"{lo_name}={lo!r} must be <= {hi_name}={hi!r}")


def _float(name: str, value: Any, lo: float, hi: float, *, lo_open: bool = False, hi_open: bool = False) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = float("nan")
    if isinstance(value, bool) or not np.isfinite(v) or v < lo or v > hi or (lo_open and v == lo) or (hi_open and v == hi):
        a, b = ("(" if lo_open else "["), (")" if hi_open else "]")
        raise _fail(name, value, f"a number in {a}{lo:g}, {hi:g}{b}")
    return v


def _activations(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = (value,)
    try:
        acts = tuple(value)
    except TypeError:
        raise _fail("activations", value, "a non-empty list of activation names such as ['relu', 'abs']") from None
    if not acts:
        raise _fail("activations", value, "a non-empty list of activation names such as ['relu', 'abs']")
    for a in acts:
        try:
            parse_activation(a)
        except GraphError:
            raise _fail("activations", value, "a list of activations relu, identity, abs, leaky_relu:<slope>, "
                        "power:<k>, relu_power:<k>, sigmoid, tanh") from None
    return acts


def _choices(name: str, value: Any, allowed: Sequence[Any]) -> tuple[Any, ...]:
    if isinstance(value, (str, type(None))):
        value = (value,)
    try:
        vals = tuple(value)
    except TypeError:
        vals = ()
    if not vals or any(v not in allowed for v in vals):
        raise _fail(name, value, f"a non-empty list drawn from {list(allowed)!r}")
    return vals


def _network(name: str, value: Any) -> Network:
    if not isinstance(value, Network):
        raise _fail(name, value, "a verifier.Network (e.g. verifier.mlp([2, 3, 1]))")
    return value


# -- networks --------------------------------------------------------------------------------------------

def mlps(
    *,
    min_depth: int = 2,
    max_depth: int = 3,
    min_width: int = 1,
    max_width: int = 4,
    input_dim: int | None = 2,
    max_input_dim: int = 3,
    outputs: int = 1,
    activations: Sequence[str] | str = ("relu",),
    bias: str = "none",
) -> st.SearchStrategy[Network]:
    """Fully connected networks with ``min_depth..max_depth`` weight layers (depth 2 = one hidden layer).

    ``input_dim=None`` draws the input dimension from ``1..max_input_dim``;
    hidden widths are drawn from ``min_width..max_width``; one activation
    (from ``activations``) per network.  Shrinks towards depth ``min_depth``,
    width ``min_width`` and the first activation listed.

    >>> import verifier
    >>> from hypothesis import find
    >>> net = find(mlps(max_depth=3, activations=["relu", "abs"]), lambda n: verifier.degree(n) == 3)
    >>> [net.param_shapes[p] for p in net.param_names]
    [(1, 2), (1, 1), (1, 1)]
    >>> mlps(max_depth=0)
    Traceback (most recent call last):
    ...
    verifier.strategies.StrategyArgumentError: max_depth=0 must be an integer >= 1
    """
    min_depth = _int("min_depth", min_depth, 1)
    max_depth = _int("max_depth", max_depth, 1)
    _order("min_depth", min_depth, "max_depth", max_depth)
    min_width = _int("min_width", min_width, 1)
    max_width = _int("max_width", max_width, 1)
    _order("min_width", min_width, "max_width", max_width)
    if input_dim is not None:
        input_dim = _int("input_dim", input_dim, 1)
    max_input_dim = _int("max_input_dim", max_input_dim, 1)
    outputs = _int("outputs", outputs, 1)
    acts = _activations(activations)
    if bias not in ("none", "first", "all"):
        raise _fail("bias", bias, "one of 'none', 'first', 'all'")

    @st.composite
    def build(draw: Any) -> Network:
        d = input_dim if input_dim is not None else draw(st.integers(1, max_input_dim))
        depth = draw(st.integers(min_depth, max_depth))
        hidden = [draw(st.integers(min_width, max_width)) for _ in range(depth - 1)]
        act = draw(st.sampled_from(acts))
        return mlp([d, *hidden, outputs], activation=act, bias=bias)

    return build()


def cnns(
    *,
    input_shape: Sequence[int] = (1, 4, 4),
    min_conv_layers: int = 1,
    max_conv_layers: int = 2,
    max_channels: int = 3,
    kernel_sizes: Sequence[int] = (1, 2, 3),
    pools: Sequence[str | None] = ("max", "avg", None),
    max_hidden_layers: int = 1,
    max_hidden_width: int = 3,
    outputs: int = 1,
    activations: Sequence[str] | str = ("relu",),
) -> st.SearchStrategy[Network]:
    """Small convolutional networks (conv/activation/pool blocks, then dense layers), stride 1.

    Padding is ``kernel_size // 2``; a pooling choice that would shrink a
    feature map below one pixel is dropped for that network.

    >>> import verifier
    >>> from hypothesis import find
    >>> net = find(cnns(max_conv_layers=2, pools=[None], max_hidden_layers=0), lambda n: verifier.degree(n) == 3)
    >>> [n.op for n in net.nodes.values()][:4]
    ['input', 'conv2d', 'relu', 'conv2d']
    """
    shape = tuple(input_shape) if not isinstance(input_shape, (str, bytes)) else ()
    if len(shape) != 3 or not all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in shape):
        raise _fail("input_shape", input_shape, "three positive integers (channels, height, width)")
    min_conv_layers = _int("min_conv_layers", min_conv_layers, 1)
    max_conv_layers = _int("max_conv_layers", max_conv_layers, 1)
    _order("min_conv_layers", min_conv_layers, "max_conv_layers", max_conv_layers)
    max_channels = _int("max_channels", max_channels, 1)
    ks = tuple(kernel_sizes) if not isinstance(kernel_sizes, (int, str)) else (kernel_sizes,)
    if not ks or not all(isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 1 for k in ks):
        raise _fail("kernel_sizes", kernel_sizes, "a non-empty list of positive integers")
    pool_opts = _choices("pools", pools, ("max", "avg", None))
    max_hidden_layers = _int("max_hidden_layers", max_hidden_layers, 0)
    max_hidden_width = _int("max_hidden_width", max_hidden_width, 1)
    outputs = _int("outputs", outputs, 1)
    acts = _activations(activations)

    @st.composite
    def build(draw: Any) -> Network:
        layers = draw(st.integers(min_conv_layers, max_conv_layers))
        channels = [draw(st.integers(1, max_channels)) for _ in range(layers)]
        k = draw(st.sampled_from(ks))
        pool = draw(st.sampled_from(pool_opts))
        hidden = [draw(st.integers(1, max_hidden_width)) for _ in range(draw(st.integers(0, max_hidden_layers)))]
        act = draw(st.sampled_from(acts))
        for p in (pool, None):
            try:
                return cnn(shape, channels, kernel_size=k, stride=1, padding=k // 2, pool=p, pool_size=2,
                           hidden=hidden, outputs=outputs, activation=act)
            except (GraphError, ShapeError):
                continue
        assume(False)  # kernel larger than the feature map: not a valid network
        raise AssertionError("unreachable")

    return build()


def diagonal_nets(*, min_dim: int = 1, max_dim: int = 4, min_depth: int = 2, max_depth: int = 3) -> st.SearchStrategy[Network]:
    """Diagonal linear networks ``<u_1 * ... * v, x>`` of degree ``min_depth..max_depth``.

    >>> import verifier
    >>> from hypothesis import find
    >>> find(diagonal_nets(min_dim=2), lambda n: True).param_names
    ['u', 'v']
    """
    min_dim = _int("min_dim", min_dim, 1)
    max_dim = _int("max_dim", max_dim, 1)
    _order("min_dim", min_dim, "max_dim", max_dim)
    min_depth = _int("min_depth", min_depth, 2)
    max_depth = _int("max_depth", max_depth, 2)
    _order("min_depth", min_depth, "max_depth", max_depth)
    return st.builds(lambda d, k: diagonal_linear(d, depth=k), st.integers(min_dim, max_dim), st.integers(min_depth, max_depth))


def networks(*, kinds: Sequence[str] = ("mlp", "cnn", "diagonal"), activations: Sequence[str] | str = ("relu",)) -> st.SearchStrategy[Network]:
    """Any of the built architectures (MLPs with 2-D input, CNNs on 1x4x4 images, diagonal nets).

    >>> import verifier
    >>> from hypothesis import find
    >>> verifier.degree(find(networks(kinds=["diagonal"]), lambda n: True))
    2
    """
    ks = _choices("kinds", kinds, ("mlp", "cnn", "diagonal"))
    acts = _activations(activations)
    table = {"mlp": lambda: mlps(activations=acts), "cnn": lambda: cnns(activations=acts), "diagonal": diagonal_nets}
    return st.one_of(*[table[k]() for k in ks])


# -- parameters and data -------------------------------------------------------------------------------

def _grid(denominator: int, max_abs: float) -> st.SearchStrategy[float]:
    top = int(max_abs * denominator)
    return st.integers(-top, top).map(lambda k: k / denominator)


#: axes up to this length are drawn padded to it by :func:`params_for` (shrink-friendly)
_PAD = 4


def params_for(net: Network, *, max_abs: float = 2.0, denominator: int = 4) -> st.SearchStrategy[dict[str, np.ndarray]]:
    """Parameters for ``net`` on the grid ``k / denominator``, ``|value| <= max_abs`` (exact dyadic floats).

    >>> import verifier
    >>> from hypothesis import find
    >>> import verifier
    >>> p = find(params_for(verifier.mlp([2, 1, 1])), lambda p: True)
    >>> p["W1"].tolist(), p["W2"].tolist()
    ([[0.0, 0.0]], [[0.0]])
    """
    _network("net", net)
    max_abs = _float("max_abs", max_abs, 0.0, 1e6, lo_open=True)
    denominator = _int("denominator", denominator, 1)
    cell = _grid(denominator, max_abs)

    def tensor(shape: tuple[int, ...]) -> st.SearchStrategy[np.ndarray]:
        # Draw a padded block (every axis of length <= _PAD drawn at length _PAD; matrices and vectors only,
        # convolution kernels are drawn as they are) and slice it: when the
        # shrinker narrows a layer, the surviving entries keep their values (same positions in the choice
        # sequence), so counterexamples shrink to narrow networks instead of getting stuck at a width.
        padded = tuple(_PAD if n <= _PAD else n for n in shape) if len(shape) <= 2 else shape  # dense, bias, scale
        size = int(np.prod(padded))
        index = tuple(slice(0, n) for n in shape)
        return st.lists(cell, min_size=size, max_size=size).map(
            lambda v: np.array(v, dtype=np.float64).reshape(padded)[index].copy())

    return st.fixed_dictionaries({p: tensor(net.param_shapes[p]) for p in net.param_names})


def unit_vectors(dim: int) -> st.SearchStrategy[np.ndarray]:
    """Rational unit vectors in ``R^dim`` (signed coordinate axes and Pythagorean combinations).

    >>> import verifier
    >>> from hypothesis import find
    >>> find(unit_vectors(3), lambda v: True).tolist()
    [1.0, 0.0, 0.0]
    """
    dim = _int("dim", dim, 1)
    return _exact_unit_vectors(dim).map(lambda v: np.array([float(c) for c in v]))


def _exact_unit_vectors(dim: int) -> st.SearchStrategy[tuple[Fraction, ...]]:
    @st.composite
    def build(draw: Any) -> tuple[Fraction, ...]:
        v = [Fraction(0)] * dim
        if dim >= 2 and draw(st.booleans()):
            i, j = draw(st.sampled_from([(a, b) for a in range(dim) for b in range(dim) if a != b]))
            p, q = draw(st.sampled_from(PYTHAGOREAN_PAIRS))
            v[i], v[j] = p, q
        else:
            v[draw(st.integers(0, dim - 1))] = Fraction(1)
        signs = [draw(st.sampled_from([1, -1])) for _ in range(dim)]
        return tuple(s * c for s, c in zip(signs, v))

    return build()


def separable_data(
    *,
    net: Network | None = None,
    dim: int | None = None,
    min_samples: int = 1,
    max_samples: int = 6,
    margin: float = 0.25,
    denominator: int = 4,
) -> st.SearchStrategy[tuple[np.ndarray, np.ndarray]]:
    """Binary data ``(X, y)`` separable through the origin with a margin.

    There is a unit vector ``w`` (drawn from :func:`unit_vectors`) with
    ``y_i <w, x_i> >= margin`` for every sample.  Points are drawn on the grid
    ``k / denominator`` in ``[-1, 1]^d``; a point on the wrong side or too close
    to the hyperplane is moved along ``w`` by the needed multiple of ``w``
    (so the data stay exact).  The shape comes from ``net`` (its input shape,
    e.g. ``(n, 1, 4, 4)`` for a CNN), else ``dim`` (default 2).  Shrinks to a
    single sample ``x = y margin' w`` with label ``+1``.

    >>> import verifier
    >>> from hypothesis import find
    >>> X, y = find(separable_data(min_samples=2), lambda d: True)
    >>> X.shape, y.tolist()
    ((2, 2), [1.0, 1.0])
    >>> separable_data(margin=2)
    Traceback (most recent call last):
    ...
    verifier.strategies.StrategyArgumentError: margin=2 must be a number in (0, 0.5]
    """
    if net is not None and dim is not None:
        raise StrategyArgumentError(f"dim={dim!r} must be None when net= is given (the net fixes the input shape)")
    if net is not None:
        _network("net", net)
        if net.num_outputs != 1:
            raise _fail("net", net, "a network with one output unit (binary labels +-1)")
        shape: tuple[int, ...] = tuple(net.input_shape)
    else:
        shape = (_int("dim", 2 if dim is None else dim, 1),)
    min_samples = _int("min_samples", min_samples, 1)
    max_samples = _int("max_samples", max_samples, 1)
    _order("min_samples", min_samples, "max_samples", max_samples)
    margin = _float("margin", margin, 0.0, 0.5, lo_open=True)
    denominator = _int("denominator", denominator, 1)
    d = int(np.prod(shape))

    @st.composite
    def build(draw: Any) -> tuple[np.ndarray, np.ndarray]:
        w = np.array([float(c) for c in draw(_exact_unit_vectors(d))])
        n = draw(st.integers(min_samples, max_samples))
        X = np.empty((n, d))
        y = np.empty(n)
        for i in range(n):
            x = np.array(draw(st.lists(_grid(denominator, 1.0), min_size=d, max_size=d)), dtype=np.float64)
            label = draw(st.sampled_from([1.0, -1.0]))
            s = label * float(x @ w)
            if s < margin:  # move along w by whole multiples of w/denominator (keeps the grid when w is an axis)
                step = 1.0 / denominator
                x = x + label * w * step * ceil((margin - s) / step)
            X[i], y[i] = x, label
        return X.reshape((n, *shape)), y

    return build()


def feasible_points(
    *,
    nets: st.SearchStrategy[Network] | None = None,
    min_samples: int = 1,
    max_samples: int = 5,
    min_output: float = 0.25,
    max_abs: float = 2.0,
    denominator: int = 4,
) -> st.SearchStrategy[Point]:
    """``Point(net, params, X, y)`` with labels ``y_i = sign Phi(theta; x_i)``, so every margin is ``>= min_output``.

    Inputs and parameters lie on the grid ``k / denominator``; samples whose
    output is within ``min_output`` of 0 are dropped (at least one must
    remain).  The margin problem is feasible at ``theta`` by construction.

    >>> import verifier
    >>> from hypothesis import find
    >>> import verifier
    >>> pt = find(feasible_points(nets=mlps(max_depth=2)), lambda p: True)
    >>> bool((verifier.margins(pt.net, pt.params, pt.X, pt.y) >= 0.25).all())
    True
    """
    nets = mlps() if nets is None else nets
    if not isinstance(nets, st.SearchStrategy):
        raise _fail("nets", nets, "a hypothesis strategy of networks, e.g. vst.mlps()")
    min_samples = _int("min_samples", min_samples, 1)
    max_samples = _int("max_samples", max_samples, 1)
    _order("min_samples", min_samples, "max_samples", max_samples)
    min_output = _float("min_output", min_output, 0.0, 1e6, lo_open=True)
    max_abs = _float("max_abs", max_abs, 0.0, 1e6, lo_open=True)
    denominator = _int("denominator", denominator, 1)

    @st.composite
    def build(draw: Any) -> Point:
        net = draw(nets)
        if net.num_outputs != 1:
            raise _fail("nets", nets, "a strategy of networks with one output unit")
        params = draw(params_for(net, max_abs=max_abs, denominator=denominator))
        n = draw(st.integers(min_samples, max_samples))
        d = int(np.prod(net.input_shape))
        X = np.array(draw(st.lists(st.lists(_grid(denominator, 1.0), min_size=d, max_size=d), min_size=n, max_size=n)),
                     dtype=np.float64).reshape((n, *net.input_shape))
        out = forward(net, params, X)[:, 0]
        keep = np.abs(out) >= min_output
        assume(keep.sum() >= min_samples)
        return Point(net, params, X[keep], np.where(out[keep] > 0, 1.0, -1.0))

    return build()


# -- splits ----------------------------------------------------------------------------------------------

def _check_parts(min_parts: int, max_parts: int, lo: int = 2) -> tuple[int, int]:
    min_parts = _int("min_parts", min_parts, lo, 6)
    max_parts = _int("max_parts", max_parts, lo, 6)
    _order("min_parts", min_parts, "max_parts", max_parts)
    return min_parts, max_parts


def _sphere(m: int) -> st.SearchStrategy[tuple[Fraction, ...]]:
    """Positive rational points on the unit sphere of R^m (m >= 1)."""
    if m == 1:
        return st.just((Fraction(1),))
    base: list[st.SearchStrategy[tuple[Fraction, ...]]] = []
    if m == 2:
        return st.sampled_from(PYTHAGOREAN_PAIRS)
    # refine a point of S^{m-2} by splitting one coordinate with a Pythagorean pair
    refined = st.tuples(_sphere(m - 1), st.integers(0, m - 2), st.sampled_from(PYTHAGOREAN_PAIRS)).map(
        lambda t: t[0][: t[1]] + (t[0][t[1]] * t[2][0], t[0][t[1]] * t[2][1]) + t[0][t[1] + 1:])
    if m == 3:
        base.append(st.sampled_from(_TRIPLES))
    if m == 4:
        base.append(st.sampled_from(_QUADS))
    return st.one_of(*base, refined)


def splits(*, min_parts: int = 2, max_parts: int = 3) -> st.SearchStrategy[tuple[Fraction, ...]]:
    """Exact split ratios ``alpha_1..alpha_m > 0`` with ``sum alpha_k^2 = 1`` (rational points of the sphere).

    Two parts come from Pythagorean triples (``(3/5, 4/5)``, ``(5/13, 12/13)``...),
    three from ``(1/3, 2/3, 2/3)``, ``(2/7, 3/7, 6/7)``... or by splitting one
    coordinate of a shorter point again.

    >>> import verifier
    >>> from hypothesis import find
    >>> find(splits(), lambda r: True)
    (Fraction(3, 5), Fraction(4, 5))
    >>> r = find(splits(min_parts=3), lambda r: True); r, sum(a * a for a in r)
    ((Fraction(1, 3), Fraction(2, 3), Fraction(2, 3)), Fraction(1, 1))
    """
    lo, hi = _check_parts(min_parts, max_parts)
    return st.integers(lo, hi).flatmap(_sphere)


#: rescale factors c != 1 used by :func:`rescaled_splits` (incoming c alpha, outgoing alpha / c)
_RESCALES = (Fraction(2), Fraction(1, 2), Fraction(3, 2), Fraction(2, 3), Fraction(3), Fraction(5, 4))


def rescaled_splits(*, min_parts: int = 1, max_parts: int = 3) -> st.SearchStrategy[tuple[tuple[Fraction, ...], tuple[Fraction, ...]]]:
    """Output-preserving but *non-isometric* splits: ``(a, b)`` with ``sum a_k b_k = 1``, ``a != b``.

    Built as ``a_k = c_k alpha_k``, ``b_k = alpha_k / c_k`` from an isometric
    split ``alpha`` and rescale factors ``c_k > 0`` not all 1: a copy's
    incoming weights are scaled by ``a_k``, its outgoing weights by ``b_k``,
    so ``sum_k b_k sigma(a_k z) = sigma(z)`` for a 1-homogeneous ``sigma`` but
    the norm changes.  ``min_parts=1`` allows the plain rescale ``(c, 1/c)``.

    >>> import verifier
    >>> from hypothesis import find
    >>> find(rescaled_splits(), lambda r: True)
    ((Fraction(2, 1),), (Fraction(1, 2),))
    """
    lo, hi = _check_parts(min_parts, max_parts, lo=1)

    @st.composite
    def build(draw: Any) -> tuple[tuple[Fraction, ...], tuple[Fraction, ...]]:
        alpha = draw(st.integers(lo, hi).flatmap(_sphere))
        cs = [draw(st.sampled_from((Fraction(1),) + _RESCALES)) for _ in alpha]
        if all(c == 1 for c in cs):
            cs[0] = draw(st.sampled_from(_RESCALES))
        return tuple(c * a for c, a in zip(cs, alpha)), tuple(a / c for c, a in zip(cs, alpha))

    return build()


def split_sites(net: Network, *, kind: str = "neuron") -> st.SearchStrategy[tuple[int, int]]:
    """``(layer, unit)`` of a hidden neuron (``kind="neuron"``, dense layers) or channel (``"channel"``, convolutions).

    ``layer`` counts weight layers from 1 (the units ``W_layer`` produces), as
    in :func:`verifier.neuron_split`; the last layer is never chosen.

    >>> import verifier
    >>> from hypothesis import find
    >>> import verifier
    >>> find(split_sites(verifier.mlp([2, 3, 2, 1])), lambda s: s[0] == 2)
    (2, 0)
    """
    _network("net", net)
    if kind not in ("neuron", "channel"):
        raise _fail("kind", kind, "'neuron' or 'channel'")
    weights = [p for p in net.param_names if net.param_owner[p][1] == "weight"]
    sites = []
    for layer, p in enumerate(weights[:-1], 1):
        node = net.nodes[net.param_owner[p][0]]
        # ask the op: a layer that reads split units (dense, conv2d); neurons are flat units, channels images
        if node.impl.split_role(node.attrs) == "reader" and (len(net.shapes[node.name]) == 1) == (kind == "neuron"):
            sites.append((layer, net.param_shapes[p][0]))
    if not sites:
        raise _fail("net", net, f"a network with a hidden {'dense' if kind == 'neuron' else 'convolution'} layer to split")
    return st.sampled_from(sites).flatmap(lambda s: st.tuples(st.just(s[0]), st.integers(0, s[1] - 1)))


# -- KKT points by construction -------------------------------------------------------------------------

def _f(v: Any) -> np.ndarray:
    return np.array(v, dtype=object).astype(np.float64) if not isinstance(v, np.ndarray) else v.astype(np.float64)


def _linear_svm(draw: Any, dim: int, max_extra: int) -> tuple[list[Fraction], list[list[Fraction]], list[int], list[Fraction]]:
    """Data with a known hard-margin SVM solution ``w`` (exact): pairs of support vectors + slack points.

    Support pairs ``x = +-w/|w|^2 + u`` (``u`` orthogonal to ``w``) with equal
    multipliers ``|w|^2 / (2 pairs)``: stationarity ``w = sum lambda_i y_i x_i``
    and every support margin is 1; extra points have margin ``> 1``.
    """
    u = draw(_exact_unit_vectors(dim))
    r = draw(st.sampled_from([Fraction(1), Fraction(2), Fraction(1, 2), Fraction(3, 2), Fraction(5, 4)]))
    w = [r * c for c in u]
    w2 = sum(c * c for c in w)
    # an orthogonal rational direction (exists for dim >= 2): rotate the Pythagorean plane of u
    nz = [i for i, c in enumerate(u) if c != 0]
    ortho: list[list[Fraction]] = [[Fraction(0)] * dim]
    if dim >= 2:
        o = [Fraction(0)] * dim
        if len(nz) == 2:
            i, j = nz
            o[i], o[j] = -u[j], u[i]
        else:
            o[(nz[0] + 1) % dim] = Fraction(1)
        ortho.append(o)
    pairs = draw(st.integers(1, 2))
    X: list[list[Fraction]] = []
    y: list[int] = []
    lam: list[Fraction] = []
    for _ in range(pairs):
        o = draw(st.sampled_from(ortho))
        t = draw(st.sampled_from([Fraction(0), Fraction(1, 2), Fraction(-1), Fraction(1)]))
        for label in (1, -1):
            X.append([label * c / w2 + t * oc for c, oc in zip(w, o)])
            y.append(label)
            lam.append(w2 / (2 * pairs))
    for _ in range(draw(st.integers(0, max_extra))):
        label = draw(st.sampled_from([1, -1]))
        extra = draw(st.sampled_from([Fraction(3, 2), Fraction(2), Fraction(3)]))  # margin y <w, x> = extra > 1
        o = draw(st.sampled_from(ortho))
        t = draw(st.sampled_from([Fraction(0), Fraction(1), Fraction(-1, 2)]))
        X.append([label * extra * c / w2 + t * oc for c, oc in zip(w, o)])
        y.append(label)
        lam.append(Fraction(0))
    return w, X, y, lam


def kkt_points(
    *,
    kinds: Sequence[str] = ("linear", "deep_linear", "kink"),
    max_dim: int = 3,
    max_depth: int = 3,
    max_width: int = 2,
    max_extra: int = 2,
) -> st.SearchStrategy[Point]:
    """Exact KKT points of the l2 max-margin problem, built by construction, with their multipliers.

    * ``"linear"``: ``mlp([d, 1], "identity")`` at the hard-margin SVM solution
      ``w`` of data made of support pairs ``+-w/|w|^2 + u`` (``u`` orthogonal
      to ``w``) and points of margin ``> 1``; multipliers ``|w|^2 / (#support)``.
    * ``"deep_linear"``: ``mlp([d, h_1, ..., h_{L-1}, 1], "identity")`` (depth
      2..max_depth, widths 1..max_width) at the balanced rank-one factorisation
      ``W_1 = a v_1 u^T``, ``W_l = a v_l v_{l-1}^T``, ``W_L = a v_{L-1}^T``
      (``u``, ``v_l`` rational unit vectors, ``a`` rational) of the SVM solution
      ``a^L u``; multipliers ``lambda_SVM a^{2-2L}``.
    * ``"kink"``: a two-layer ReLU network ``mlp([2, 2, 1])`` where each of
      the two support samples sits exactly at the kink of one hidden neuron and
      stationarity *needs* the subgradient ``s = t/rho in (0, 1)`` there
      (``W_1 = [[1, t], [0, 1]]``, ``v = (rho, 1)``, ``x_a = (1/rho, 0)``,
      ``x_b = (-t, 1)``, ``rho = sqrt(1 + t^2)`` rational), optionally
      rotated by a rational rotation and with extra points of margin ``> 1``.

    All numbers are rationals (floats of them); ``multipliers`` satisfy
    ``theta = sum_i lambda_i grad q_i`` with ``sum lambda = ||theta||^2 / L``.

    >>> import verifier
    >>> from hypothesis import find
    >>> import numpy as np, verifier
    >>> pt = find(kkt_points(kinds=["kink"]), lambda p: True)
    >>> pt.params["W1"].tolist(), pt.params["W2"].tolist(), pt.multipliers.tolist()
    ([[1.0, 0.75], [0.0, 1.0]], [[1.25, 1.0]], [1.5625, 1.0])
    >>> theta = pt.net.flatten(pt.params)
    >>> float(pt.multipliers.sum()), float(theta @ theta / 2)
    (2.5625, 2.5625)
    """
    ks = _choices("kinds", kinds, ("linear", "deep_linear", "kink"))
    max_dim = _int("max_dim", max_dim, 1)
    max_depth = _int("max_depth", max_depth, 2)
    max_width = _int("max_width", max_width, 1)
    max_extra = _int("max_extra", max_extra, 0)

    @st.composite
    def linear(draw: Any) -> Point:
        d = draw(st.integers(1, max_dim))
        w, X, y, lam = _linear_svm(draw, d, max_extra)
        net = mlp([d, 1], activation="identity")
        return Point(net, {"W1": _f([w])}, _f(X), _f(y), _f(lam), "linear")

    @st.composite
    def deep_linear(draw: Any) -> Point:
        d = draw(st.integers(1, max_dim))
        L = draw(st.integers(2, max_depth))
        a = draw(st.sampled_from([Fraction(1), Fraction(2), Fraction(1, 2), Fraction(3, 2)]))
        u = draw(_exact_unit_vectors(d))
        # SVM solution w = a^L u: build its data with the linear construction around w
        w_target = [a ** L * c for c in u]
        w2 = sum(c * c for c in w_target)
        X: list[list[Fraction]] = []
        y: list[int] = []
        lam: list[Fraction] = []
        for label in (1, -1):
            X.append([label * c / w2 for c in w_target])
            y.append(label)
            lam.append(w2 / 2)
        for _ in range(draw(st.integers(0, max_extra))):
            label = draw(st.sampled_from([1, -1]))
            extra = draw(st.sampled_from([Fraction(3, 2), Fraction(2)]))
            X.append([label * extra * c / w2 for c in w_target])
            y.append(label)
            lam.append(Fraction(0))
        # hidden directions v_l: rational unit vectors of width 1..max_width
        vs = [draw(_exact_unit_vectors(draw(st.integers(1, max_width)))) for _ in range(L - 1)]
        net = mlp([d] + [len(v) for v in vs] + [1], activation="identity")
        chain = [u] + vs + [(Fraction(1),)]
        params = {f"W{l}": _f([[a * o * i for i in chain[l - 1]] for o in chain[l]]) for l in range(1, L + 1)}
        mult = [m * a ** (2 - 2 * L) for m in lam]
        return Point(net, params, _f(X), _f(y), _f(mult), "deep_linear")

    @st.composite
    def kink(draw: Any) -> Point:
        t, rho = draw(st.sampled_from([(Fraction(3, 4), Fraction(5, 4)), (Fraction(4, 3), Fraction(5, 3)),
                                       (Fraction(5, 12), Fraction(13, 12)), (Fraction(12, 5), Fraction(13, 5))]))
        W1 = [[Fraction(1), t], [Fraction(0), Fraction(1)]]
        v = [rho, Fraction(1)]
        xa, xb = [1 / rho, Fraction(0)], [-t, Fraction(1)]
        X = [xa, xb]
        lam = [rho * rho, Fraction(1)]
        for _ in range(draw(st.integers(0, max_extra))):  # scaled copies of the supports: margins > 1, multiplier 0
            base = draw(st.sampled_from([xa, xb]))
            c = draw(st.sampled_from([Fraction(2), Fraction(3, 2)]))
            X.append([c * e for e in base])
            lam.append(Fraction(0))
        if draw(st.booleans()):  # rotate the inputs: x -> R x, W1 -> W1 R^T (R rational orthogonal)
            p, q = draw(st.sampled_from(PYTHAGOREAN_PAIRS[:4]))
            R = [[p, -q], [q, p]]
            X = [[R[0][0] * x[0] + R[0][1] * x[1], R[1][0] * x[0] + R[1][1] * x[1]] for x in X]
            W1 = [[row[0] * R[0][0] + row[1] * R[0][1], row[0] * R[1][0] + row[1] * R[1][1]] for row in W1]
        if draw(st.booleans()):  # swap the two hidden neurons
            W1, v = W1[::-1], v[::-1]
        net = mlp([2, 2, 1], activation="relu")
        return Point(net, {"W1": _f(W1), "W2": _f([v])}, _f(X), np.ones(len(X)), _f(lam), "kink")

    table = {"linear": linear, "deep_linear": deep_linear, "kink": kink}
    return st.one_of(*[table[k]() for k in ks])


# -- trained points --------------------------------------------------------------------------------------

def trained_points(
    *,
    nets: st.SearchStrategy[Network] | None = None,
    steps: int = 200,
    lr: float = 0.1,
    loss: str = "exp",
    method: str = "gd",
    min_samples: int = 2,
    max_samples: int = 5,
) -> st.SearchStrategy[Point]:
    """Networks trained on separable data with :func:`verifier.train` (fixed seed per draw).

    The returned point is the end of training (``init`` holds the start);
    ``kind`` is ``"trained"`` and the data are drawn with :func:`separable_data`
    for the network.  Training
    is the expensive part: keep ``steps`` and the example count small.

    >>> import verifier
    >>> from hypothesis import find
    >>> pt = find(trained_points(nets=mlps(max_depth=2, max_width=2), steps=20), lambda p: True)
    >>> pt.kind, pt.X.shape[1]
    ('trained', 2)
    """
    nets = mlps() if nets is None else nets
    if not isinstance(nets, st.SearchStrategy):
        raise _fail("nets", nets, "a hypothesis strategy of networks, e.g. vst.mlps()")
    steps = _int("steps", steps, 0)
    lr = _float("lr", lr, 0.0, 1e6, lo_open=True)
    if loss not in ("exp", "logistic"):
        raise _fail("loss", loss, "'exp' or 'logistic'")
    if method not in ("gd", "sign", "coordinate", "adam"):
        raise _fail("method", method, "one of 'gd', 'sign', 'coordinate', 'adam'")
    min_samples = _int("min_samples", min_samples, 1)
    max_samples = _int("max_samples", max_samples, 1)
    _order("min_samples", min_samples, "max_samples", max_samples)

    @st.composite
    def build(draw: Any) -> Point:
        from . import dynamics

        net = draw(nets)
        X, y = draw(separable_data(net=net, min_samples=min_samples, max_samples=max_samples))
        seed = draw(st.integers(0, 2**16))
        init = net.init_params(seed)
        res = dynamics.train(net, init, X, y, loss=loss, method=method, steps=steps, lr=lr, progress=False)
        return Point(net, net.unflatten(res.theta), X, y, None, "trained", init)

    return build()
