"""Built-in data sets, generated (nothing is downloaded).

>>> X, y = linearly_separable(20, 2, margin=0.2, seed=0)
>>> X.shape, sorted(set(y.tolist()))
((20, 2), [-1.0, 1.0])
"""

from __future__ import annotations

import numpy as np

from .errors import DataError


def _check(n: int, d: int, margin: float) -> None:
    if not isinstance(n, (int, np.integer)) or n < 2:
        raise DataError(f"n={n!r} must be an integer >= 2")
    if not isinstance(d, (int, np.integer)) or d < 1:
        raise DataError(f"d={d!r} must be an integer >= 1")
    if not (np.isfinite(margin) and margin >= 0):
        raise DataError(f"margin={margin!r} must be a finite number >= 0")


def linearly_separable(n: int, d: int = 2, *, margin: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points in the unit ball of R^d, labelled by a random hyperplane through 0,
    with every point at distance ``>= margin`` from it (both classes present)."""
    _check(n, d, margin)
    if margin >= 1:
        raise DataError(f"margin={margin!r} must be < 1 (points lie in the unit ball)")
    rng = np.random.default_rng(seed)
    w = rng.normal(size=d)
    w /= np.linalg.norm(w)
    X = np.empty((0, d))
    while X.shape[0] < n:
        cand = rng.uniform(-1, 1, size=(4 * n, d))
        cand = cand[(np.linalg.norm(cand, axis=1) <= 1) & (np.abs(cand @ w) >= margin)]
        X = np.vstack([X, cand])
    X = X[:n]
    y = np.sign(X @ w)
    if len(set(y)) < 2:  # force both classes
        X[0] = -X[0]
        y[0] = -y[0]
    return X, y


def two_clusters_xor(n: int, *, noise: float = 0.15, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """2-D XOR-like data (four clusters): separable by a small ReLU network, not by a line."""
    _check(n, 2, 0.0)
    rng = np.random.default_rng(seed)
    centers = np.array([[1, 1], [-1, -1], [1, -1], [-1, 1]], dtype=float)
    labels = np.array([1, 1, -1, -1], dtype=float)
    idx = np.arange(n) % 4
    X = centers[idx] + noise * rng.normal(size=(n, 2))
    return X, labels[idx]


def images(n: int, shape: tuple[int, int, int] = (1, 6, 6), *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Tiny images: label +1 when the bright bar is horizontal, -1 when vertical (plus noise)."""
    _check(n, 1, 0.0)
    c, h, w = shape
    rng = np.random.default_rng(seed)
    X = 0.1 * rng.normal(size=(n, c, h, w))
    y = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    for i in range(n):
        k = rng.integers(0, min(h, w))
        if y[i] > 0:
            X[i, :, k, :] += 1.0
        else:
            X[i, :, :, k] += 1.0
    return X, y
