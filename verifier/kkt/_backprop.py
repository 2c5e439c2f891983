"""Per-row parameter gradients with chosen derivatives at kinks.

The engine's backward pass uses one fixed derivative convention at kinks
(``relu'(0) = 0``, the first maximum of a pooling window).  To build Clarke /
chain-rule subgradients the KKT layer needs the same pass with *other*
selections: an ``override`` replaces, row by row, the derivative array of an
elementwise activation node (``("deriv", D)`` with ``D`` shaped
``(rows, *node_shape)``) or the arg-max of a max-pooling node
(``("arg", A)``).  Only the rows that need it are materialised (``rows x P``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..numeric.data import Constraints
from ..numeric.engine import ForwardPass, jacobian_from


def _gather(ctx: dict[str, Any], rows: np.ndarray) -> dict[str, Any]:
    return {k: (v if k.startswith("_") else v[rows]) for k, v in ctx.items()}


def row_gradients(
    fp: ForwardPass,
    sample: np.ndarray,
    coef: np.ndarray | None,
    overrides: dict[str, tuple[str, np.ndarray]] | None = None,
    seeds: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """Gradients ``d <coef_r, Phi(x_{sample_r})> / d theta`` (rows x P), with kink overrides.

    With ``seeds`` (node -> ``(rows, *node_shape)``) the pass starts from those
    node outputs instead of the network output (``coef`` is then ignored).
    """
    net = fp.net
    sample = np.asarray(sample, dtype=np.int64)
    R = sample.shape[0]
    J = np.zeros((R, net.num_params))
    if R == 0:
        return J
    overrides = overrides or {}
    if seeds is not None:
        grads: dict[str, np.ndarray] = {k: np.array(v, dtype=np.float64) for k, v in seeds.items()}
    else:
        grads = {net.output: np.array(coef, dtype=np.float64)}
    for name in reversed(net.order):
        g = grads.pop(name, None)
        node = net.nodes[name]
        if g is None or node.op == "input":
            continue
        ctx = _gather(fp.ctx[name], sample)
        nps = {role: fp.params[p] for role, p in node.params.items()}
        if node.params:
            for role, arr in node.impl.param_grads(ctx, g, nps, node.attrs).items():
                a, b = net.offsets[node.params[role]]
                J[:, a:b] = arr.reshape(R, -1)
        if not node.inputs:
            continue
        ov = overrides.get(name)
        if ov is None:
            gis = node.impl.vjp(ctx, g, nps, node.attrs)
        elif ov[0] == "deriv":
            gis = [g * ov[1]]
        elif ov[0] == "arg":
            ctx = dict(ctx)
            ctx["arg"] = ov[1]
            gis = node.impl.vjp(ctx, g, nps, node.attrs)
        else:  # pragma: no cover - programming error
            raise RuntimeError(ov[0])
        for src, gi in zip(node.inputs, gis):
            if net.nodes[src].op == "input":
                continue
            grads[src] = grads[src] + gi if src in grads else gi
    return J


def jacobian_times(fp: ForwardPass, cons: Constraints, D: np.ndarray, *, budget: int = 10_000_000) -> np.ndarray:
    """``J @ D.T`` (m x K) computed in row chunks so that at most ``budget`` floats of ``J`` exist at once."""
    m, P = cons.m, fp.net.num_params
    out = np.zeros((m, D.shape[0]))
    if D.shape[0] == 0 or m == 0:
        return out
    chunk = max(1, min(m, budget // max(P, 1)))
    for a in range(0, m, chunk):
        idx = np.arange(a, min(m, a + chunk))
        sub = Constraints(cons.sample[idx], cons.coef[idx], cons.other[idx], cons.n)
        out[idx] = jacobian_from(fp, sub) @ D.T
    return out


def jacobian_rows(fp: ForwardPass, cons: Constraints, rows: np.ndarray) -> np.ndarray:
    """Rows ``rows`` of the margin Jacobian (default derivative convention)."""
    rows = np.asarray(rows, dtype=np.int64)
    sub = Constraints(cons.sample[rows], cons.coef[rows], cons.other[rows], cons.n)
    return jacobian_from(fp, sub)
