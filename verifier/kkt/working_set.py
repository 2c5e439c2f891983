"""The tangent dual at the size of real data sets: a working set of constraints (column generation).

The dual (docs/math.md sections 4-5, ``docs/math.md``)

    maximize  D(lambda) = c^T lambda - 1/2 lambda^T G lambda,   lambda >= 0

has one variable per margin constraint (``m = n (C - 1)``: 540,000 for an
MNIST-sized 10-class problem), but at a (near-)KKT point only the constraints
with the smallest margins carry multipliers.  The loop:

1. start from the ``init_size`` constraints with the smallest margins (plus
   every row the caller requires, e.g. rows at kinks);
2. solve the dual restricted to the working set ``W`` exactly (the same
   solver as the small-problem route, warm-started from the previous support);
3. *price* every constraint: the dual gradient ``c_r - (G lambda)_r =
   c_r - <h_r, v>`` with ``v = sum_{s in W} lambda_s h_s``, for all ``r`` by
   one forward-mode product ``J v`` (never the columns ``G[:, W]``);
4. stop when no constraint outside ``W`` has ``c_r - <h_r, v> > price_rtol *
   max|c|``; else build the next working set and go to 2: the support ``S``
   (rows with ``lambda_r > 0``), the most violated rows (at most
   ``max(init_size, |S|)`` of them, and never more than the memory allows
   beside ``S``), and, while ``W`` stays within ``2 (|S| + added)`` rows, the
   rows of the old ``W`` nearest to becoming active.  Rows that carry no
   multiplier and are far from active are dropped, so the working set follows
   the support instead of doubling; only the support has to fit in memory.

Why the restricted optimum is then the full one: ``lambda`` (zero outside
``W``) satisfies the dual's optimality conditions on ``W`` (the restricted
solve) and ``c_r - (G lambda)_r <= 0`` outside it (pricing): these are
exactly the KKT conditions of the full concave QP, so ``lambda`` is optimal
(to the pricing tolerance).  The loop terminates: the next working set keeps the
support, so the current ``lambda`` stays feasible, and it adds a violated row,
along which the restricted dual strictly increases; the restricted optima
strictly increase and no working set repeats.  Any ``lambda >= 0`` is anyway a valid
certificate: the report's ``eps`` and ``delta`` are computed from it
directly, whatever the tolerance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, NoReturn

import numpy as np

from .errors import KKTError

#: Initial working-set size (the constraints with the smallest margins).
INIT_SIZE = 1000
#: Pricing tolerance: a constraint outside the working set is violated when ``c_r - <h_r, v> > PRICE_RTOL * max|c|``.
PRICE_RTOL = 1e-9
#: Rounds before giving up (every round strictly increases the restricted dual optimum).
MAX_ROUNDS = 60


@dataclass
class WorkingSetInfo:
    """What the loop did: rounds, working-set sizes, the largest violation left."""

    rounds: int = 0
    sizes: list[int] = field(default_factory=list)  # |W| per round
    added: list[int] = field(default_factory=list)  # rows added after each round
    max_violation: float = 0.0  # max_r (c_r - <h_r, v>) outside W at the end
    price_tol: float = 0.0

    @property
    def final_size(self) -> int:
        return self.sizes[-1] if self.sizes else 0

    def to_dict(self) -> dict[str, Any]:
        return {"rounds": self.rounds, "working_set_sizes": list(self.sizes), "added_per_round": list(self.added),
                "final_working_set": self.final_size, "max_violation_outside": self.max_violation,
                "price_tol": self.price_tol}


def initial_working_set(q: np.ndarray, size: int, required: np.ndarray | None = None) -> np.ndarray:
    """The ``size`` constraints with the smallest margins, plus ``required``, sorted."""
    m = q.shape[0]
    k = min(m, max(1, size))
    base = np.argpartition(q, k - 1)[:k] if k < m else np.arange(m)
    if required is not None and len(required):
        base = np.union1d(base, np.asarray(required, dtype=np.int64))
    return np.sort(base.astype(np.int64))


def solve_working_set(
    q: np.ndarray,
    c: np.ndarray,
    solve: Callable[[np.ndarray, np.ndarray | None], Any],
    price: Callable[[Any], np.ndarray],
    *,
    required: np.ndarray | None = None,
    init_size: int = INIT_SIZE,
    price_rtol: float = PRICE_RTOL,
    max_rounds: int = MAX_ROUNDS,
    max_size: int | None = None,
    progress: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[Any, np.ndarray, WorkingSetInfo]:
    """Column generation over the constraints (see the module docstring).

    ``solve(W, warm)`` solves the dual restricted to the rows ``W`` (``warm``:
    the previous support, as row indices, or ``None``) and returns an object
    ``sol`` with ``sol.lam`` (multipliers on ``W``, in ``W``'s order);
    ``price(sol)`` returns ``<h_r, v>`` for every constraint ``r`` (``v`` the
    solution's combination of subgradients).  Returns ``(sol, W, info)``.
    ``progress`` (if given) is called after each round with a dict
    (``round``, ``working_set``, ``support``, ``violators``, ``max_violation``).
    """
    m = q.shape[0]
    info = WorkingSetInfo(price_tol=float(price_rtol * np.abs(c).max(initial=1.0)))
    W = initial_working_set(q, init_size, required)
    if max_size is not None and W.shape[0] > max_size:
        _too_big(W.shape[0], max_size, "the initial working set (the smallest margins and the rows at kinks)")
    keep = np.zeros(0, dtype=np.int64) if required is None else np.asarray(required, dtype=np.int64)
    warm: np.ndarray | None = None
    for rnd in range(1, max_rounds + 1):
        sol = solve(W, warm)
        info.rounds = rnd
        info.sizes.append(int(W.shape[0]))
        grad = c - price(sol)
        inside = grad[W]
        grad[W] = -np.inf
        viol = np.flatnonzero(grad > info.price_tol)
        info.max_violation = float(max(grad.max(initial=-np.inf), 0.0)) if m > W.shape[0] else 0.0
        lam = np.asarray(sol.lam)
        warm = W[lam > 0]
        if progress is not None:
            progress({"round": rnd, "working_set": int(W.shape[0]), "support": int(warm.shape[0]),
                      "violators": int(viol.shape[0]), "max_violation": info.max_violation})
        if viol.size == 0:
            return sol, W, info
        base = np.union1d(warm, keep)
        room = viol.size if max_size is None else max_size - base.shape[0]
        if room < 1:
            _too_big(base.shape[0] + 1, max_size, f"the support ({warm.shape[0]} constraints) plus one violated row")
        k = min(viol.size, max(init_size, warm.shape[0]), room)
        add = viol[np.argpartition(-grad[viol], k - 1)[:k]] if k < viol.size else viol
        info.added.append(int(add.shape[0]))
        # rows of the old W without a multiplier, nearest to active first, while W stays within 2 (|S| + k)
        cap = 2 * (base.shape[0] + k) if max_size is None else min(max_size, 2 * (base.shape[0] + k))
        rest = np.flatnonzero(lam <= 0)
        rest = rest[~np.isin(W[rest], base)]
        n_rest = max(0, min(rest.shape[0], cap - base.shape[0] - k))
        near = W[rest[np.argsort(-inside[rest], kind="stable")[:n_rest]]]
        W = np.union1d(np.union1d(base, add), near).astype(np.int64)
    raise KKTError(
        f"the working-set dual did not converge in {max_rounds} rounds (working set {W.shape[0]} of {m} "
        f"constraints, largest violation {info.max_violation:.3g}, tolerance {info.price_tol:.3g})"
    )


def _too_big(size: int, max_size: int | None, what: str) -> NoReturn:
    raise KKTError(
        f"{what} needs a working set of {size} constraints (limit {max_size}, from the memory limit): the point "
        "is far from a KKT point (many constraints carry multipliers); raise memory_limit, or check fewer samples"
    )
