"""Gradient flow ``d theta/dt = -grad loss(theta)`` integrated with :func:`scipy.integrate.solve_ivp`.

The right-hand side of a ReLU network is only piecewise smooth: its derivative jumps
when a pre-activation crosses 0.  An explicit Runge-Kutta pair with error control
handles that correctly -- at a crossing the local error estimate grows, the step is
rejected and shrunk until the crossing is resolved to the requested tolerance, and
between crossings the high order pays off.  The default ``method="DOP853"`` (8th order,
Dormand-Prince) with tight tolerances ``rtol=1e-10, atol=1e-12`` is the most accurate
per evaluation in that setting; ``"RK45"`` and ``"RK23"`` are accepted too.  Implicit
(stiff) solvers are not offered: they need the Jacobian of a non-smooth field.  If the
flow slides along a kink (a Filippov sliding mode) no ODE solver resolves it: the step
size collapses, and the call fails instead of returning a wrong trajectory -- with
scipy's message, or, when the solver keeps crawling, once ``max_evals`` right-hand-side
evaluations are spent (a budget, so a sliding mode never hangs the caller).

>>> import numpy as np, verifier
>>> net = verifier.mlp([1, 1], activation="identity")
>>> t, th = gradient_flow(net, np.array([0.0]), np.array([[1.0]]), np.array([1.0]), t_end=1.0, n_eval=3)
>>> t.tolist(), bool(np.allclose(th[:, 0], np.log(1 + t)))     # closed form log(1 + t)
([0.0, 0.5, 1.0], True)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from scipy.integrate import solve_ivp

from ..graph import Network
from .losses import Problem, TrainingError
from .steps import check_positive

FLOW_METHODS = ("DOP853", "RK45", "RK23")


def gradient_flow(net: Network, theta0: Any, X: Any, y: Any, *, t_end: float, loss: str = "exp", n_eval: int = 50,
                  rtol: float = 1e-10, atol: float = 1e-12, method: str = "DOP853",
                  max_step: float = math.inf, max_evals: int = 200_000) -> tuple[np.ndarray, np.ndarray]:
    """Integrate the gradient flow of ``loss`` from ``theta0`` over ``[0, t_end]``.

    Returns ``(t, thetas)``: ``n_eval`` equally spaced times from ``0`` to ``t_end`` and the
    flat parameter vectors there, shape ``(n_eval, P)``.  ``rtol``/``atol`` are the solver's
    relative/absolute tolerances (per component); ``method`` one of ``DOP853`` (default),
    ``RK45``, ``RK23``; ``max_step`` bounds the solver's step; ``max_evals`` (default 200,000)
    bounds the gradient evaluations: past it a :class:`TrainingError` says where the flow got
    stuck (typically sliding along a ReLU kink) instead of running on for hours.
    """
    t_end = check_positive(t_end, "t_end")
    rtol = check_positive(rtol, "rtol")
    atol = check_positive(atol, "atol")
    if isinstance(n_eval, bool) or not isinstance(n_eval, (int, np.integer)) or n_eval < 2:
        raise TrainingError(f"n_eval={n_eval!r} must be an integer >= 2 (the times 0 and t_end at least)")
    if method not in FLOW_METHODS:
        raise TrainingError(f"method={method!r} is not supported for gradient flow; use one of {list(FLOW_METHODS)}")
    if not (isinstance(max_step, (int, float)) and max_step > 0):
        raise TrainingError(f"max_step={max_step!r} must be a number > 0 (or inf)")
    if isinstance(max_evals, bool) or not isinstance(max_evals, (int, np.integer)) or max_evals < 1:
        raise TrainingError(f"max_evals={max_evals!r} must be a positive integer")
    prob = Problem(net, X, y, loss)
    theta = net.flatten(net.check_params(theta0, where="theta0"))
    evals = [0]

    def rhs(t: float, th: np.ndarray) -> np.ndarray:
        evals[0] += 1
        if evals[0] > max_evals:
            raise TrainingError(
                f"gradient flow: more than max_evals={max_evals} gradient evaluations by t={t:.6g} "
                f"(of t_end={t_end:g}); the flow may be sliding along a kink -- raise max_evals, loosen rtol/atol, "
                "or use a shorter t_end")
        if not np.all(np.isfinite(th)):
            raise TrainingError(f"gradient flow: the state became non-finite at t={t:.6g}; tighten rtol/atol")
        try:
            _, g = prob.value_and_grad(th)
        except TrainingError as e:
            raise TrainingError(f"gradient flow at t={t:.6g}: {e}") from None
        return -g

    t_eval = np.linspace(0.0, t_end, int(n_eval))
    sol = solve_ivp(rhs, (0.0, t_end), theta, method=method, t_eval=t_eval, rtol=rtol, atol=atol,
                    max_step=max_step)
    if sol.status != 0:
        reached = float(sol.t[-1]) if sol.t.size else 0.0
        raise TrainingError(f"gradient flow ({method}) stopped before t_end={t_end:g} (reached t={reached:.6g}): "
                            f"{sol.message}")
    return sol.t, sol.y.T.copy()


__all__ = ["FLOW_METHODS", "gradient_flow"]
