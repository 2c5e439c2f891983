"""Data validation and margin constraints (docs/math.md section 2).

Binary (1 output unit): labels ``+1``/``-1``, one constraint per sample,
``q_i = y_i Phi(x_i)``.  Multiclass (``C >= 2`` units): labels ``0..C-1``, one
constraint per (sample, wrong class), ``q_ij = Phi_{y_i}(x_i) - Phi_j(x_i)``.
Every constraint is stored as a row ``(sample, coef)`` with
``q = <coef, Phi(x_sample)>``, so the engine treats both cases alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import DataError


def check_inputs(net, X: Any, *, where: str = "X") -> np.ndarray:
    """Validate inputs against the network's input shape; return float64 ``(n, *shape)``."""
    try:
        Xa = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{where}: inputs are not numeric") from None
    shape = tuple(net.input_shape)
    if Xa.ndim == len(shape) and Xa.shape == shape:
        Xa = Xa[None]
    if Xa.ndim != len(shape) + 1 or Xa.shape[1:] != shape:
        raise DataError(
            f"{where}: inputs have shape {Xa.shape}, expected (n, {', '.join(map(str, shape))}) "
            f"for input node {net.input!r}"
        )
    if Xa.shape[0] == 0:
        raise DataError(f"{where}: no samples (n = 0)")
    bad = np.argwhere(~np.isfinite(Xa.reshape(Xa.shape[0], -1)))
    if len(bad):
        i, j = (int(v) for v in bad[0])
        raise DataError(f"{where}: sample {i} has a non-finite value at flat feature {j}; inputs must be finite")
    return Xa


def check_labels(net, y: Any, n: int, *, where: str = "y") -> np.ndarray:
    """Validate labels: ``+-1`` for one output unit, ``0..C-1`` for ``C >= 2`` units."""
    try:
        ya = np.asarray(y, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise DataError(f"{where}: labels are not numeric") from None
    if ya.shape[0] != n:
        raise DataError(f"{where}: {ya.shape[0]} labels for {n} samples; need one label per sample")
    C = net.num_outputs
    if C == 1:
        bad = np.flatnonzero(~np.isin(ya, (-1.0, 1.0)))
        if len(bad):
            raise DataError(
                f"{where}: label {ya[bad[0]]:g} at sample {int(bad[0])} is not allowed; "
                "a network with one output unit takes labels +1 or -1"
            )
        return ya
    bad = np.flatnonzero(~np.isin(ya, np.arange(C)))
    if len(bad):
        raise DataError(
            f"{where}: label {ya[bad[0]]:g} at sample {int(bad[0])} is not allowed; "
            f"a network with {C} output units takes class indices 0..{C - 1}"
        )
    return ya.astype(np.int64)


@dataclass(frozen=True)
class Constraints:
    """The margin constraints as rows: ``q_r = <coef[r], Phi(x[sample[r]])>``."""

    sample: np.ndarray  # (m,) sample index of each row
    coef: np.ndarray  # (m, C)
    other: np.ndarray  # (m,) the competing class j (multiclass) or -1 (binary)
    n: int

    @property
    def m(self) -> int:
        return int(self.sample.shape[0])

    @property
    def one_per_sample(self) -> bool:
        return self.m == self.n and bool(np.all(self.sample == np.arange(self.n)))

    def label(self, r: int) -> str:
        """Human name of row ``r``: ``"sample 3"`` or ``"sample 3 vs class 1"``."""
        s = int(self.sample[r])
        return f"sample {s}" if self.other[r] < 0 else f"sample {s} vs class {int(self.other[r])}"


def constraints(net, y: np.ndarray) -> Constraints:
    """Rows for validated labels ``y`` (see :func:`check_labels`)."""
    n = y.shape[0]
    C = net.num_outputs
    if C == 1:
        return Constraints(np.arange(n), y.reshape(n, 1).astype(np.float64), -np.ones(n, dtype=np.int64), n)
    # sample-major: the rows of sample i are (i, j) for the classes j != y_i in increasing order
    classes = np.broadcast_to(np.arange(C, dtype=np.int64), (n, C))
    wrong = classes != np.asarray(y, dtype=np.int64)[:, None]
    sample = np.broadcast_to(np.arange(n, dtype=np.int64)[:, None], (n, C))[wrong]
    other = classes[wrong]
    m = sample.shape[0]
    coef = np.zeros((m, C))
    coef[np.arange(m), y[sample]] = 1.0
    coef[np.arange(m), other] = -1.0
    return Constraints(sample, coef, other, n)
