"""Exponential and logistic (cross-entropy) losses of the margins, computed in log space.

With margins ``q_r`` (docs/math.md section 2; one row per constraint, multiclass has
one row per wrong class) the losses are

* ``"exp"``:      ``loss = sum_r exp(-q_r)`` (Lyu & Li's exponential loss, multiclass
  included);
* ``"logistic"``: ``loss = sum_i log(1 + sum_{r of sample i} exp(-q_r))``, i.e.
  ``sum_i log(1 + exp(-q_i))`` for binary labels and the cross-entropy of the
  softmax for class labels.

Late in training the loss is far below the smallest float64 (``exp(-800)``), so
everything is computed from ``log(loss)`` and the *normalised weights*
``w_r = -(d loss / d q_r) / loss >= 0``: the gradient of ``log(loss)`` is
``-sum_r w_r grad q_r`` and never underflows; the gradient of the loss itself
is ``loss`` times that.  ``log(loss)`` uses log-sum-exp and a ``log(log1p(u))``
that stays exact when ``u = exp(-q)`` underflows.

>>> import numpy as np, verifier
>>> from verifier.dynamics import loss_and_grad, log_loss_and_grad
>>> net = verifier.mlp([2, 1], activation="identity")
>>> X, y = np.array([[1.0, 0.0]]), np.array([1.0])
>>> value, grad = loss_and_grad(net, np.array([2.0, 5.0]), X, y)     # exp(-2), -exp(-2) * x
>>> bool(np.isclose(value, np.exp(-2))), bool(np.allclose(grad, [-np.exp(-2), 0]))
(True, True)
>>> log_value, g = log_loss_and_grad(net, np.array([900.0, 0.0]), X, y)   # exp(-900) underflows
>>> float(log_value), g.tolist()
(-900.0, [-1.0, -0.0])
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import logsumexp

from ..errors import TrainingError
from ..graph import Network
from ..numeric import Constraints, check_inputs, check_labels, constraints, margins_from, weighted_gradient_from
from ..numeric.engine import forward_unchecked

LOSSES = ("exp", "logistic")

#: log of the largest finite float64: above it ``loss`` itself overflows.
_LOG_MAX = float(np.log(np.finfo(np.float64).max))


def check_loss(loss: Any) -> str:
    if loss not in LOSSES:
        raise TrainingError(f"loss={loss!r} is not supported; use one of {list(LOSSES)}")
    return str(loss)


def _log_softplus(a: np.ndarray) -> np.ndarray:
    """``log(log(1 + exp(a)))`` elementwise, exact for very negative ``a`` (no underflow)."""
    a = np.asarray(a, dtype=np.float64)
    out = np.empty_like(a)
    big = a > -30.0
    out[big] = np.log(np.logaddexp(0.0, a[big]))
    small = ~big
    # log1p(u) = u (1 - u/2 + ...), u = exp(a) tiny: log(log1p(u)) = a + log1p(-u/2 + u^2/3)
    u = np.exp(a[small])
    out[small] = a[small] + np.log1p(-u / 2 + u * u / 3)
    return out


def _group_logsumexp(v: np.ndarray, sample: np.ndarray, n: int) -> np.ndarray:
    """``log sum_{r: sample[r] = i} exp(v_r)`` for each sample ``i``."""
    mx = np.full(n, -np.inf)
    np.maximum.at(mx, sample, v)
    s = np.zeros(n)
    np.add.at(s, sample, np.exp(v - mx[sample]))
    return mx + np.log(s)


def log_loss_from_margins(q: np.ndarray, cons: Constraints, loss: str = "exp") -> tuple[float, np.ndarray]:
    """``(log(loss), w)`` from margins ``q`` (rows of ``cons``).

    ``w_r = -(d loss/d q_r) / loss`` are the normalised weights: ``grad log(loss) = -sum_r w_r grad q_r``.

    >>> from verifier.numeric import Constraints
    >>> cons = Constraints(np.arange(2), np.ones((2, 1)), -np.ones(2, dtype=int), 2)
    >>> lg, w = log_loss_from_margins(np.array([0.0, np.log(3.0)]), cons, "exp")   # 1 + 1/3
    >>> bool(np.isclose(lg, np.log(4 / 3))), w.round(4).tolist()
    (True, [0.75, 0.25])
    """
    q = np.asarray(q, dtype=np.float64)
    if loss == "exp":
        log_loss = float(logsumexp(-q))
        w = np.exp(-q - log_loss)
        return log_loss, w
    if loss == "logistic":
        # per sample: a_i = log sum_r exp(-q_r);  loss_i = softplus(a_i);  log loss_i = log softplus(a_i)
        a = _group_logsumexp(-q, cons.sample, cons.n)
        log_li = _log_softplus(a)
        log_loss = float(logsumexp(log_li))
        # d loss_i / d q_r = -sigmoid(a_i) softmax_r(-q) = -exp(log sigmoid(a_i) - q_r - a_i)
        log_sig = -np.logaddexp(0.0, -a)
        w = np.exp(log_sig[cons.sample] - q - a[cons.sample] - log_loss)
        return log_loss, w
    check_loss(loss)
    raise AssertionError  # pragma: no cover


#: size of the block :func:`_warm_allocator` frees (just under glibc's 32 MiB cap on its dynamic mmap threshold)
_WARM_BYTES = 30 << 20
_warmed = False


def _warm_allocator() -> None:
    """Once per process: allocate and free one untouched ``_WARM_BYTES`` block.

    glibc's malloc serves blocks above its *mmap threshold* (128 KiB at start) with fresh
    ``mmap`` pages, which are page-faulted in when first written and unmapped when freed.  When
    such a block is freed the threshold rises to its size and the heap's trim threshold to twice
    that (mallopt(3), "dynamic mmap threshold").  A training step allocates and frees the same
    few-MiB temporaries (pre-activations, back-propagated rows) at every step; without a large
    free first each of them is mapped and faulted in afresh, step after step (at 784-256-256-1,
    n = 2000: ~6,000 page faults and ~20 % of the step).  Freeing one 30 MiB block, which is
    what glibc would do after any large array, lets those temporaries be reused from the heap.
    Nothing is written (no memory becomes resident); under another allocator it changes nothing.
    """
    global _warmed
    if not _warmed:
        _warmed = True
        np.empty(_WARM_BYTES // 8)


class Problem:
    """Validated ``(net, X, y)`` with the loss, reused across many gradient evaluations."""

    def __init__(self, net: Network, X: Any, y: Any, loss: str = "exp"):
        _warm_allocator()
        self.net = net
        self.loss = check_loss(loss)
        self.X = check_inputs(net, X)
        self.y = check_labels(net, y, self.X.shape[0])
        self.cons = constraints(net, self.y)

    def evaluate(self, theta: Any, *, grad: bool = True) -> tuple[float, np.ndarray | None, np.ndarray]:
        """``(log loss, grad of log loss or None, margins)`` at ``theta`` (flat or dict), validated."""
        log_loss, g, q = self._run(self.net.check_params(theta), grad)
        return log_loss, (g if grad else None), q

    def _views(self, theta: np.ndarray) -> dict[str, np.ndarray]:
        net = self.net
        return {p: theta[a:b].reshape(net.param_shapes[p]) for p, (a, b) in net.offsets.items()}

    def _evaluate(self, theta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """``(log loss, grad of log loss, margins)`` at a flat float64 vector the caller has already
        checked (right size, finite): the parameters are views into ``theta``, nothing is validated
        or copied (the training loops)."""
        return self._run(self._views(theta), True)

    def _log_loss(self, theta: np.ndarray) -> float:
        """``log(loss)`` alone at a checked flat vector (see :meth:`_evaluate`): no backward pass."""
        return self._run(self._views(theta), False)[0]

    def _run(self, ps: dict[str, np.ndarray], grad: bool) -> tuple[float, np.ndarray, np.ndarray]:
        """One forward pass (``X`` was validated once, in ``__init__``) and, with ``grad``, one weighted
        backward pass; without ``grad`` the gradient returned is an empty array."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # callers check finiteness
            fp = forward_unchecked(self.net, ps, self.X)
            q = margins_from(fp, self.cons)
            log_loss, w = log_loss_from_margins(q, self.cons, self.loss)
            if not grad:
                return log_loss, np.zeros(0), q
            return log_loss, -weighted_gradient_from(fp, self.cons, w), q

    def value_and_grad(self, theta: Any) -> tuple[float, np.ndarray]:
        """The loss and its gradient (raises when the loss overflows float64)."""
        log_loss, g, q = self.evaluate(theta)
        assert g is not None
        if not (np.isfinite(log_loss) and np.all(np.isfinite(g))):
            bad = np.flatnonzero(~np.isfinite(q))
            where = f" ({self.cons.label(int(bad[0]))} has margin {float(q[bad[0]])!r})" if len(bad) else ""
            raise TrainingError(f"the {self.loss} loss or its gradient is not finite{where}; "
                                "the parameters are too large for float64")
        if log_loss > _LOG_MAX:
            raise TrainingError(
                f"the {self.loss} loss exp({log_loss:.6g}) overflows float64; "
                "use log_loss_and_grad (the gradient of log(loss) is finite) or smaller parameters"
            )
        value = float(np.exp(log_loss))
        return value, value * g


def loss_and_grad(net: Network, theta: Any, X: Any, y: Any, loss: str = "exp") -> tuple[float, np.ndarray]:
    """The training loss at ``theta`` (flat vector or dict of named tensors) and its flat gradient.

    ``loss="exp"``: ``sum_r exp(-q_r)``; ``loss="logistic"``: ``sum_i log(1 + sum_r exp(-q_r))``
    (binary: ``log(1 + exp(-q_i))``).  Computed from ``log(loss)`` (no overflow in
    intermediate terms, no underflow of small terms); raises :class:`TrainingError`
    only when the loss itself exceeds the float64 range.  Clarke convention for kinks
    is the engine's (``relu'(0) = 0``).

    >>> import numpy as np, verifier
    >>> net = verifier.mlp([1, 1], activation="identity")
    >>> v, g = loss_and_grad(net, np.array([0.0]), np.array([[2.0]]), np.array([-1.0]), loss="logistic")
    >>> bool(np.isclose(v, np.log(2))), g.tolist()     # d/dt log(1+exp(2t)) at 0 = 2 * 1/2
    (True, [1.0])
    """
    return Problem(net, X, y, loss).value_and_grad(theta)


def log_loss_and_grad(net: Network, theta: Any, X: Any, y: Any, loss: str = "exp") -> tuple[float, np.ndarray]:
    """``log(loss)`` and its gradient ``grad loss / loss`` (finite however small the loss is)."""
    log_loss, g, _ = Problem(net, X, y, loss).evaluate(theta)
    assert g is not None
    return log_loss, g


__all__ = ["LOSSES", "Problem", "TrainingError", "check_loss", "log_loss_and_grad", "log_loss_from_margins",
           "loss_and_grad"]
