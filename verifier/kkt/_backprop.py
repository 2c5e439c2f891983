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

import numpy as np

from ..numeric.data import Constraints
from ..numeric.engine import ForwardPass, Override, jacobian_from


def row_gradients(
    fp: ForwardPass,
    sample: np.ndarray,
    coef: np.ndarray | None,
    overrides: dict[str, Override] | None = None,
    seeds: dict[str, np.ndarray] | None = None,
) -> np.ndarray:
    """Gradients ``d <coef_r, Phi(x_{sample_r})> / d theta`` (rows x P), with kink overrides.

    With ``seeds`` (node -> ``(rows, *node_shape)``) the pass starts from those
    node outputs instead of the network output (``coef`` is then ignored).  The
    engine's own backward loop does the work (:func:`verifier.numeric.engine.backward`).
    """
    sample = np.asarray(sample, dtype=np.int64)
    R = sample.shape[0]
    if coef is None:
        coef = np.zeros((R, fp.net.num_outputs))
    rows = Constraints(sample, np.asarray(coef, dtype=np.float64).reshape(R, -1), -np.ones(R, dtype=np.int64),
                       int(fp.X.shape[0]))
    return jacobian_from(fp, rows, overrides=overrides, seeds=seeds)


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
