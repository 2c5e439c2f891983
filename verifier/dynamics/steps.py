"""Update rules with a fixed step: gradient, sign and coordinate descent (steepest descent
in the l2, l_inf and l1 norms) and Adam; :func:`iterates` runs them.

Steepest descent with respect to a norm ``||.||`` (Gunasekar et al. 2018; Tsilivis,
Vardi & Kempe 2024, docs/math.md section 9) moves along

    d(g) = argmin_u <g, u> + 1/2 ||u||^2  (negated)  =  ||g||_* . s(g),   s(g) in argmax_{||s|| <= 1} <s, g>,

and updates ``theta <- theta - lr * d(g)``.  So ``<g, d> = ||g||_*^2`` for every norm, and

* ``"gd"``   (l2):     ``d = g``;
* ``"sign"`` (l_inf):  ``d = ||g||_1 sign(g)`` -- sign descent scaled by the dual norm (this is the
  steepest-descent form whose implicit bias is the l_inf max-margin problem; the unscaled
  ``lr * sign(g)`` is the same direction with another step size);
* ``"coordinate"`` (l1): ``d = ||g||_inf sign(g_k) e_k`` on the coordinate ``k`` of largest ``|g_k|``
  (exact ties share the step equally, the minimum-norm element of the subdifferential);
* ``"adam"``: standard Adam (Kingma & Ba) with bias correction, ``beta1 = 0.9``, ``beta2 = 0.999``,
  ``eps = 1e-8``: ``theta <- theta - lr * m_hat / (sqrt(v_hat) + eps)``.

Gradient descent commutes with every linear isometry ``T`` (``d(T^T g~) = T^T d(g~)`` when
``g~ = T g``); the coordinate-wise rules do not (docs/math.md section 10).

>>> import numpy as np
>>> steepest_direction(np.array([3.0, -1.0]), "sign").tolist()
[4.0, -4.0]
>>> steepest_direction(np.array([3.0, -1.0]), "coordinate").tolist()
[3.0, 0.0]
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..graph import Network
from .losses import Problem, TrainingError

METHODS = ("gd", "sign", "coordinate", "adam")
#: the norm whose max-margin problem each method is biased towards (used for the KKT history)
METHOD_NORM = {"gd": "l2", "sign": "linf", "coordinate": "l1", "adam": "linf"}

ADAM_BETA1 = 0.9
ADAM_BETA2 = 0.999
ADAM_EPS = 1e-8


def check_method(method: Any) -> str:
    if method not in METHODS:
        raise TrainingError(f"method={method!r} is not supported; use one of {list(METHODS)}")
    return str(method)


def check_steps(steps: Any, name: str = "steps") -> int:
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise TrainingError(f"{name}={steps!r} must be an integer >= 0")
    return int(steps)


def check_positive(value: Any, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TrainingError(f"{name}={value!r} must be a finite number > 0") from None
    if isinstance(value, bool) or not math.isfinite(v) or v <= 0:
        raise TrainingError(f"{name}={value!r} must be a finite number > 0")
    return v


def steepest_direction(g: np.ndarray, method: str) -> np.ndarray:
    """``d(g) = ||g||_* s(g)`` for ``method`` in ``gd`` (l2), ``sign`` (l_inf), ``coordinate`` (l1)."""
    if method == "gd":
        return g.copy()
    if method == "sign":
        return np.abs(g).sum() * np.sign(g)
    if method == "coordinate":
        a = np.abs(g)
        top = a.max() if a.size else 0.0
        d = np.zeros_like(g)
        if top > 0:
            k = np.flatnonzero(a == top)
            d[k] = top * np.sign(g[k]) / len(k)
        return d
    raise TrainingError(f"method={method!r} has no steepest-descent direction; use gd, sign or coordinate")


def dual_norm(g: np.ndarray, method: str) -> float:
    """``||g||_*`` of the method's norm: l2 for gd/adam, l1 for sign (l_inf), l_inf for coordinate (l1)."""
    if method == "sign":
        return float(np.abs(g).sum())
    if method == "coordinate":
        return float(np.abs(g).max()) if g.size else 0.0
    return float(np.linalg.norm(g))


class Adam:
    """Adam's state; :meth:`direction` returns the update divided by ``lr``."""

    def __init__(self, size: int, beta1: float = ADAM_BETA1, beta2: float = ADAM_BETA2, eps: float = ADAM_EPS):
        self.m = np.zeros(size)
        self.v = np.zeros(size)
        self.t = 0
        self.beta1, self.beta2, self.eps = beta1, beta2, eps

    def direction(self, g: np.ndarray) -> np.ndarray:
        self.t += 1
        self.m = self.beta1 * self.m + (1 - self.beta1) * g
        self.v = self.beta2 * self.v + (1 - self.beta2) * g * g
        m_hat = self.m / (1 - self.beta1 ** self.t)
        v_hat = self.v / (1 - self.beta2 ** self.t)
        return m_hat / (np.sqrt(v_hat) + self.eps)


def iterates(net: Network, theta0: Any, X: Any, y: Any, *, steps: int, lr: float, loss: str = "exp",
             method: str = "gd") -> np.ndarray:
    """``steps`` updates with the fixed step ``lr`` on the loss (not its log); returns ``(steps + 1, P)``.

    Row 0 is ``theta0`` (flat vector or dict).  ``method``: ``gd``, ``sign``, ``coordinate``
    or ``adam`` (see the module docstring for the exact update of each).  A non-finite loss,
    gradient or iterate raises :class:`~verifier.dynamics.TrainingError` naming the step.

    >>> import numpy as np, verifier
    >>> net = verifier.mlp([2, 1], activation="identity")
    >>> th = iterates(net, np.zeros(2), np.array([[1.0, 2.0]]), np.array([1.0]), steps=1, lr=0.5)
    >>> th.tolist()                                  # theta_1 = 0 + 0.5 * exp(0) * x
    [[0.0, 0.0], [0.5, 1.0]]
    """
    steps = check_steps(steps)
    lr = check_positive(lr, "lr")
    method = check_method(method)
    prob = Problem(net, X, y, loss)
    theta = net.flatten(net.check_params(theta0, where="theta0"))
    out = np.empty((steps + 1, theta.size))
    out[0] = theta
    adam = Adam(theta.size) if method == "adam" else None
    for k in range(steps):
        try:
            _, g = prob.value_and_grad(theta)
        except TrainingError as e:
            raise TrainingError(f"step {k}: {e}") from None
        if not np.all(np.isfinite(g)):
            raise TrainingError(f"step {k}: the gradient is not finite; lower lr={lr!r}")
        d = adam.direction(g) if adam is not None else steepest_direction(g, method)
        theta = theta - lr * d
        if not np.all(np.isfinite(theta)):
            raise TrainingError(f"step {k + 1}: the iterate is not finite (lr={lr!r} too large?)")
        out[k + 1] = theta
    return out


__all__ = ["ADAM_BETA1", "ADAM_BETA2", "ADAM_EPS", "Adam", "METHODS", "METHOD_NORM", "check_method",
           "check_positive", "check_steps", "dual_norm", "iterates", "steepest_direction"]
