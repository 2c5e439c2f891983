"""The fast numeric engine (numpy, float64).

One small interpreter loop evaluates the graph forward (keeping each op's
context), and one backward loop propagates ``dq/d(node)`` for every margin
constraint at once (rows = constraints).  At each parameterised node the rows'
gradients are handed to a *sink*: the Jacobian sink writes per-row gradients
into ``J`` (m x P); the Gram sink adds the op's contribution to ``G = J J^T``
without forming ``J`` (dense layers use ``(g g^T) * (h h^T)``, docs/math.md
section 4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping

import numpy as np

from .data import Constraints, check_inputs, check_labels, constraints


@dataclass
class ForwardPass:
    """Values and saved contexts of every node for a batch of inputs."""

    net: Any
    params: dict[str, np.ndarray]
    X: np.ndarray
    values: dict[str, np.ndarray]
    ctx: dict[str, dict[str, Any]]

    @property
    def output(self) -> np.ndarray:
        return self.values[self.net.output]


@dataclass(frozen=True)
class Kink:
    """A pre-activation within ``tol * scale`` of a non-differentiable point.

    ``scale`` is the node's per-sample scale the tolerance was relative to
    (:meth:`verifier.ops.Op.kink_scale`: the largest ``|z|`` of the node for
    that sample; for max-pooling the largest ``|window entry|``).
    """

    node: str
    sample: int
    unit: tuple[int, ...]
    value: float
    scale: float = 0.0


def run_forward(net, params: Mapping[str, Any] | np.ndarray, X: Any) -> ForwardPass:
    """Validate ``params`` and ``X`` and evaluate every node."""
    return forward_unchecked(net, net.check_params(params), check_inputs(net, X))


def forward_unchecked(net, ps: dict[str, np.ndarray], X: np.ndarray) -> ForwardPass:
    """The forward loop on already validated parameters and inputs (the one interpreter loop)."""
    values: dict[str, np.ndarray] = {}
    ctxs: dict[str, dict[str, Any]] = {}
    for name in net.order:
        node = net.nodes[name]
        if node.op == "input":
            values[name] = X
            continue
        nps = {role: ps[p] for role, p in node.params.items()}
        values[name], ctxs[name] = node.impl.forward([values[i] for i in node.inputs], nps, node.attrs)
    return ForwardPass(net, ps, X, values, ctxs)


def forward(net, params, X) -> np.ndarray:
    """Outputs ``Phi(theta; X)``, shape ``(n, C)``."""
    return run_forward(net, params, X).output


def prepare(net, params, X, y) -> tuple[ForwardPass, Constraints]:
    fp = run_forward(net, params, X)
    ya = check_labels(net, y, fp.X.shape[0])
    return fp, constraints(net, ya)


def margins_from(fp: ForwardPass, cons: Constraints) -> np.ndarray:
    return np.einsum("rc,rc->r", cons.coef, fp.output[cons.sample])


def margins(net, params, X, y) -> np.ndarray:
    """Margins ``q`` per constraint (binary: ``y_i Phi(x_i)``; multiclass: one per wrong class)."""
    return margins_from(*prepare(net, params, X, y))


def _gather(ctx: dict[str, Any], rows: np.ndarray | None) -> dict[str, Any]:
    """The saved context per constraint row (``rows``: the sample of each row; ``None``: one row per sample).

    The gathered context also carries ``_rows`` and the per-sample ``_base`` context, so that an op can
    work per sample where rows share one (dense's ``H H^T`` in multiclass)."""
    if rows is None:
        return ctx
    out = {k: (v if k.startswith("_") else v[rows]) for k, v in ctx.items()}
    out["_rows"] = rows
    out["_base"] = ctx
    return out


Sink = Callable[[str, Any, dict[str, Any], np.ndarray, dict[str, np.ndarray]], None]


#: A derivative override for one node, used to build Clarke / chain-rule subgradients at kinks:
#: ``("deriv", D)`` replaces an elementwise activation's derivative by ``D`` (``(rows, *node_shape)``);
#: ``("arg", A)`` replaces a max-pooling node's arg-max by ``A``.
Override = tuple[str, np.ndarray]


def _node_vjp(node, ctx: dict[str, Any], g: np.ndarray, nps: dict[str, np.ndarray], override: Override | None) -> list[np.ndarray]:
    if override is None:
        return node.impl.vjp(ctx, g, nps, node.attrs)
    kind, value = override
    if kind == "deriv":
        return [g * value]
    if kind == "arg":
        return node.impl.vjp({**ctx, "arg": value}, g, nps, node.attrs)
    raise ValueError(f"unknown derivative override {kind!r} at node {node.name!r}; use 'deriv' or 'arg'")


def _needs_gradient(net) -> set[str]:
    """The nodes whose value depends on a parameter: the only ones a backward pass must reach (the VJP
    into the data, e.g. the first layer's ``g W``, is a full GEMM that no parameter gradient uses)."""
    out: set[str] = set()
    for name in net.order:
        node = net.nodes[name]
        if node.params or any(i in out for i in node.inputs):
            out.add(name)
    return out


def backward(fp: ForwardPass, cons: Constraints, sink: Sink, *, overrides: dict[str, Override] | None = None,
             seeds: dict[str, np.ndarray] | None = None) -> None:
    """Propagate ``dq_r/d(node)`` for all rows; call ``sink(name, node, ctx_rows, g, ps)`` at parameterised nodes.

    ``overrides`` (node -> :data:`Override`) replace the default derivative convention at
    kinks; ``seeds`` (node -> ``(rows, *node_shape)``) start the pass at those nodes'
    outputs instead of at the network output (``cons.coef`` is then ignored, ``cons.sample``
    still says which sample each row belongs to).
    """
    net = fp.net
    rows = None if cons.one_per_sample else cons.sample
    overrides = overrides or {}
    if seeds is not None:
        grads: dict[str, np.ndarray] = {k: np.array(v, dtype=np.float64) for k, v in seeds.items()}
    else:
        grads = {net.output: cons.coef.copy()}
    needed = _needs_gradient(net)
    for name in reversed(net.order):
        g = grads.pop(name, None)
        node = net.nodes[name]
        if g is None or node.op == "input":
            continue
        ctx = _gather(fp.ctx[name], rows)
        nps = {role: fp.params[p] for role, p in node.params.items()}
        if node.params:
            sink(name, node, ctx, g, nps)
        if not any(src in needed for src in node.inputs):
            continue  # the inputs (the data, or functions of the data alone) carry no parameter: no VJP
        for src, gi in zip(node.inputs, _node_vjp(node, ctx, g, nps, overrides.get(name))):
            if src not in needed:
                continue
            if src in grads:
                grads[src] = grads[src] + gi
            else:
                grads[src] = gi


def jacobian_from(fp: ForwardPass, cons: Constraints, *, overrides: dict[str, Override] | None = None,
                  seeds: dict[str, np.ndarray] | None = None) -> np.ndarray:
    """``J`` (m x P): row ``r`` is ``grad_theta q_r`` in the flat parameter order (see :func:`backward`
    for ``overrides`` and ``seeds``)."""
    net = fp.net
    J = np.zeros((cons.m, net.num_params))

    def sink(name, node, ctx, g, nps):
        for role, arr in node.impl.param_grads(ctx, g, nps, node.attrs).items():
            a, b = net.offsets[node.params[role]]
            J[:, a:b] = arr.reshape(cons.m, -1)

    if cons.m:
        backward(fp, cons, sink, overrides=overrides, seeds=seeds)
    return J


def weighted_gradient_from(fp: ForwardPass, cons: Constraints, w: np.ndarray) -> np.ndarray:
    """``sum_r w_r grad_theta q_r`` as a flat vector, without per-row gradients (training).

    ``grad q_r = coef_r^T dPhi(x_{s_r})``, so the rows of one sample are summed before the
    backward pass: one row per sample, ``sum_{r of s} w_r coef_r`` (multiclass: ``C - 1`` times
    fewer rows to propagate than constraints)."""
    net = fp.net
    w = np.asarray(w, dtype=np.float64).reshape(-1)
    coef = cons.coef * w[:, None]
    if cons.one_per_sample:
        scaled = Constraints(cons.sample, coef, cons.other, cons.n)
    else:
        per_sample = np.stack([np.bincount(cons.sample, weights=coef[:, c], minlength=cons.n)
                               for c in range(coef.shape[1])], axis=1)
        scaled = Constraints(np.arange(cons.n), per_sample, -np.ones(cons.n, dtype=np.int64), cons.n)
    out = np.zeros(net.num_params)

    def sink(name, node, ctx, g, nps):
        for role, arr in node.impl.param_grad_sum(ctx, g, nps, node.attrs).items():
            a, b = net.offsets[node.params[role]]
            out[a:b] += arr.ravel()

    backward(fp, scaled, sink)
    return out


#: ``G`` is accumulated in row blocks of at most this many entries (a tile of ``G`` and each temporary of a
#: tile): no ``m x m`` temporary besides ``G`` itself, and no ``g @ g.T`` symmetric product (multi-threaded
#: OpenBLAS ``dsyrk`` crashed at ``g`` of shape 18500 x 256 here).
GRAM_TILE_ENTRIES = 2_000_000


def gram_from(fp: ForwardPass, cons: Constraints, *, tile_entries: int | None = None) -> np.ndarray:
    """``G = J J^T`` (m x m) without materialising ``J`` (dense layers: ``(g g^T) * (h h^T)``), tiled in row blocks."""
    m = cons.m
    G = np.zeros((m, m))
    bt = max(1, min(m, (tile_entries or GRAM_TILE_ENTRIES) // max(m, 1)))

    def sink(name, node, ctx, g, nps):
        f = node.impl.gram_factor(ctx, g, nps, node.attrs)
        if f is None:
            return
        for a in range(0, m, bt):
            G[a : a + bt] += node.impl.gram_cross(node.impl.gram_factor_rows(f, slice(a, a + bt)), f)

    if m:
        backward(fp, cons, sink)
    return G


def gram_factors(fp: ForwardPass, cons: Constraints) -> dict[str, Any]:
    """Per parameterised node, what :meth:`~verifier.ops.base.Op.gram_factor` needs for ``G[rows, :]``."""
    out: dict[str, Any] = {}

    def sink(name, node, ctx, g, nps):
        f = node.impl.gram_factor(ctx, g, nps, node.attrs)
        if f is not None:
            out[name] = f

    if cons.m:
        backward(fp, cons, sink)
    return out


def gram_cross_from(fp: ForwardPass, cons: Constraints, factors: dict[str, Any]) -> np.ndarray:
    """``G[rows of cons, rows of factors]``: the cross Gram block against factors from :func:`gram_factors`
    (same network and parameters; the other rows may come from other samples)."""
    k = next((_factor_rows(f) for f in factors.values()), 0)
    out = np.zeros((cons.m, k))
    if not factors or cons.m == 0:
        return out

    def sink(name, node, ctx, g, nps):
        fb = factors.get(name)
        if fb is None:
            return
        fa = node.impl.gram_factor(ctx, g, nps, node.attrs)
        if fa is not None:
            out[...] += node.impl.gram_cross(fa, fb)

    backward(fp, cons, sink)
    return out


def _factor_rows(f: Any) -> int:
    first = f[0] if isinstance(f, tuple) else f
    return int(first.shape[0])


def jvp_from(fp: ForwardPass, dparams: dict[str, np.ndarray]) -> np.ndarray:
    """Forward mode: ``d Phi(theta; x) [dtheta]`` for every sample, shape ``(n, C)``.

    With the margins' coefficient rows this is ``J dtheta`` for all constraints at the cost of about
    one forward pass (multiclass constraints share their sample's tangent)."""
    net = fp.net
    tans: dict[str, np.ndarray | None] = {}
    for name in net.order:
        node = net.nodes[name]
        if node.op == "input":
            tans[name] = None
            continue
        dps = {role: dparams[p] for role, p in node.params.items() if p in dparams}
        nps = {role: fp.params[p] for role, p in node.params.items()}
        tans[name] = node.impl.jvp(fp.ctx[name], [tans[i] for i in node.inputs], dps, nps, node.attrs)
    out = tans[net.output]
    return np.zeros(fp.output.shape) if out is None else out


def margin_jacobian(net, params, X, y) -> np.ndarray:
    """Per-constraint gradients of the margins, shape ``(m, P)``."""
    return jacobian_from(*prepare(net, params, X, y))


def gram(net, params, X, y) -> np.ndarray:
    """The empirical tangent kernel of the margins ``G_rs = <grad q_r, grad q_s>``."""
    return gram_from(*prepare(net, params, X, y))


def kinks_from(fp: ForwardPass, tol: float) -> list[Kink]:
    """Kinks that matter at the forward pass ``fp``; ``tol`` is relative to each node's per-sample scale.

    A unit of node ``v`` for sample ``i`` is at a kink when its value (the
    pre-activation; for max-pooling the gap between the two largest window
    entries) is at most ``tol * s_v(i)``, ``s_v(i) = kink_scale`` (the largest
    magnitude among node ``v``'s pre-activations, or window entries, of sample
    ``i``; reported as :attr:`Kink.scale`).  Rescaling the data or any layer's
    parameters by ``c > 0`` rescales value and scale alike: the set of kinks is
    invariant.  Kinks whose input has gradient exactly 0 under every selection
    (the ops' ``constant_outputs`` composed from the data on: an all-zero image
    patch, ReLU zeros below the kink) cannot change any gradient and are not
    reported; neither are ties among such entries.
    """
    out: list[Kink] = []
    net = fp.net
    const: dict[str, np.ndarray | None] = {net.input: np.ones(fp.X.shape, dtype=bool)}
    for name in net.order:
        if name == net.input:
            continue
        node = net.nodes[name]
        ctx = fp.ctx[name]
        kinked = node.impl.is_kinked(node.attrs)
        scale = node.impl.kink_scale(ctx, node.attrs) if kinked else np.zeros(fp.X.shape[0])
        consts = [const.get(i) for i in node.inputs]
        const[name] = node.impl.constant_outputs(ctx, [fp.values[i] for i in node.inputs], consts, node.attrs,
                                                 tol * scale)
        if not kinked:
            continue
        shape = net.shapes[name]
        for s, u, v in node.impl.kinks(ctx, node.attrs, tol * scale, consts[0] if consts else None):
            out.append(Kink(name, s, tuple(int(i) for i in np.unravel_index(u, shape)), v, float(scale[s])))
    return out


def kinks(net, params, X, tol: float = 1e-9) -> list[Kink]:
    """Which (sample, node, unit) pre-activations lie within ``tol`` (relative) of a kink.

    For ReLU/leaky ReLU/abs the value is the pre-activation; for max-pooling it
    is the gap between the two largest entries of the window.  ``tol`` is
    relative to the node's per-sample scale (see :func:`kinks_from`), so the
    answer does not change when the data or the parameters are rescaled.
    """
    if not np.isfinite(tol) or tol < 0:
        from ..errors import DataError

        raise DataError(f"kink tolerance tol={tol!r} must be a finite number >= 0")
    return kinks_from(run_forward(net, params, X), tol)
