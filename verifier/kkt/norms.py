"""Norms for the flavours of margin (docs/math.md section 9).

For a norm ``||.||`` on parameters the generalised stationarity condition is
``v = sum_i lambda_i h_i in d(1/2 ||.||^2)(theta)``, the set of ``g`` with
``||g||_* = ||theta||`` and ``<g, theta> = ||theta||^2``.  Two measures vanish
exactly on that set:

* the Fenchel-Young gap ``FY(theta, v) = 1/2||theta||^2 + 1/2||v||_*^2 - <theta, v> >= 0``
  (the smallest ``e`` for which ``v`` is an ``e``-subgradient of ``1/2||.||^2``
  at ``theta``; the tangent-dual gap equals ``FY + delta``); it is continuous
  in ``(theta, v)``, so it tends to 0 along any sequence converging to a KKT
  point -- in particular along sign descent (l_inf) and coordinate descent
  (l1), whose iterates never have exactly tied coordinates;
* the dual-norm distance ``dist_*(v, d(1/2||.||^2)(theta))`` (closed forms
  below), linear in rounding and solver errors but discontinuous in
  ``theta``: under l_inf the subdifferential at a point whose largest
  coordinates are nearly (not exactly) tied is a single vertex, so this
  distance stays large along sign descent (issue 13: ``eps_rel = 1.86`` on a
  converged run).

The stationarity measure reported as ``eps`` is

    eps = min( dist_*(v, d(1/2||.||^2)(theta)),  sqrt(2 FY(theta, v)) ),

which is ``||theta - v||_2`` for l2 (both terms are equal there:
``FY = 1/2||theta - v||^2``), 0 exactly at a generalised KKT point, tends to 0
along the steepest-descent algorithms of the norm, and keeps the linear
sensitivity of the distance near exact ties.  Because ``FY`` is continuous,
``eps -> 0`` on every converging sequence; conversely
``sqrt(2 FY) <= sqrt(4 ||theta|| d + d^2)`` with ``d`` the distance.

>>> import numpy as np
>>> theta = np.array([3.0, -1.0, 0.0])
>>> subgradient_distance(np.array([4.0, -4.0, 1.0]), theta, "l1")   # ||theta||_1 = 4: on the set
0.0
>>> subgradient_distance(np.array([3.0, 0.0, 0.0]), theta, "linf")  # l_inf: g = 3 e_1 is the subgradient
0.0
>>> th = np.array([1.0, 1.0 - 1e-6])                        # nearly tied: the distance is 1, FY = 5e-7
>>> round(dual_distance(np.array([0.5, 0.5]), th, "linf"), 9), round(subgradient_distance(np.array([0.5, 0.5]), th, "linf"), 6)
(1.0, 0.001)
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


def dual_distance(v: np.ndarray, theta: np.ndarray, norm: str) -> float:
    """Dual-norm distance from ``v`` to the subdifferential of ``1/2||.||^2`` at ``theta != 0`` (closed forms)."""
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


def subgradient_distance(v: np.ndarray, theta: np.ndarray, norm: str) -> float:
    """The stationarity measure ``eps``: ``min(dual_distance, sqrt(2 * fenchel_young))`` (module docstring).

    ``||theta - v||_2`` for l2.  (The name is kept for the callers; for l1 / l_inf
    it is no longer the plain distance, see :func:`dual_distance`.)
    """
    if norm == "l2":
        return float(np.linalg.norm(theta - v))
    fy = fenchel_young(v, theta, norm)
    return float(min(dual_distance(v, theta, norm), np.sqrt(2.0 * max(fy, 0.0))))


def fenchel_young(v: np.ndarray, theta: np.ndarray, norm: str) -> float:
    """``1/2||theta||^2 + 1/2||v||_*^2 - <theta, v>`` (``= 1/2||theta - v||^2`` for l2)."""
    if norm == "l2":
        return 0.5 * float(np.dot(theta - v, theta - v))
    return 0.5 * primal(theta, norm) ** 2 + 0.5 * dual(v, norm) ** 2 - float(theta @ v)
