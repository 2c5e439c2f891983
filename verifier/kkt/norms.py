"""Norms for the flavours of margin (MATH.md section 6).

For a norm ``||.||`` on parameters the generalised stationarity condition is
``v = sum_i lambda_i h_i in d(1/2 ||.||^2)(theta)``, the set of ``g`` with
``||g||_* = ||theta||`` and ``<g, theta> = ||theta||^2``.  We measure how far a
multiplier vector is from it by

    eps = dist_*(v, d(1/2||.||^2)(theta))   (distance in the dual norm),

which is ``||theta - v||_2`` for l2, a closed form for l1 (dual l_inf) and for
l_inf (dual l1).  The Fenchel-Young gap
``1/2||theta||^2 + 1/2||v||_*^2 - <theta, v> >= 0`` vanishes exactly on that
set; the tangent-dual gap equals it plus ``delta``.

>>> import numpy as np
>>> theta = np.array([3.0, -1.0, 0.0])
>>> subgradient_distance(np.array([4.0, -4.0, 1.0]), theta, "l1")   # ||theta||_1 = 4: on the set
0.0
>>> subgradient_distance(np.array([3.0, 0.0, 0.0]), theta, "linf")  # l_inf: g = 3 e_1 is the subgradient
0.0
"""

from __future__ import annotations

import numpy as np

from .errors import KKTError

NORMS = ("l2", "l1", "linf")
#: l1: a coordinate with ``|theta_i| <= ZERO_RTOL * ||theta||_1`` counts as zero.
ZERO_RTOL = 1e-12
#: linf: a coordinate with ``|theta_i| >= (1 - TIE_RTOL) ||theta||_inf`` counts as a maximum.
TIE_RTOL = 1e-9


def check_norm(norm: object) -> str:
    if not isinstance(norm, str) or norm not in NORMS:
        raise KKTError(f"norm={norm!r} is not supported; use one of 'l2', 'l1', 'linf'")
    return norm


def primal(x: np.ndarray, norm: str) -> float:
    return float(np.linalg.norm(x, {"l2": 2, "l1": 1, "linf": np.inf}[norm]))


def dual(x: np.ndarray, norm: str) -> float:
    return float(np.linalg.norm(x, {"l2": 2, "l1": np.inf, "linf": 1}[norm]))


def subgradient_distance(v: np.ndarray, theta: np.ndarray, norm: str) -> float:
    """Dual-norm distance from ``v`` to the subdifferential of ``1/2||.||^2`` at ``theta != 0``."""
    if norm == "l2":
        return float(np.linalg.norm(theta - v))
    N = primal(theta, norm)
    if norm == "l1":
        zero = np.abs(theta) <= ZERO_RTOL * N
        d = np.where(zero, np.maximum(np.abs(v) - N, 0.0), np.abs(v - N * np.sign(theta)))
        return float(d.max(initial=0.0))
    # linf: g = N sum_{i in A} a_i sign(theta_i) e_i, a in the simplex; l1 distance in closed form
    A = np.abs(theta) >= (1.0 - TIE_RTOL) * N
    u = v[A] * np.sign(theta[A])
    return float(np.abs(v[~A]).sum() + np.abs(np.minimum(u, 0.0)).sum() + abs(np.maximum(u, 0.0).sum() - N))


def fenchel_young(v: np.ndarray, theta: np.ndarray, norm: str) -> float:
    """``1/2||theta||^2 + 1/2||v||_*^2 - <theta, v>`` (``= 1/2||theta - v||^2`` for l2)."""
    if norm == "l2":
        return 0.5 * float(np.dot(theta - v, theta - v))
    return 0.5 * primal(theta, norm) ** 2 + 0.5 * dual(v, norm) ** 2 - float(theta @ v)
