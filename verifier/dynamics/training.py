"""Full-batch training in float64 with a loss-adaptive step, history and checkpoints.

Schedules
---------
``"constant"``: ``theta <- theta - lr * d(grad loss)`` with the method's update ``d``
(:mod:`verifier.dynamics.steps`): exactly the iterates of :func:`~verifier.dynamics.iterates`.

``"adaptive"`` (default): the late phase of Lyu & Li needs steps that grow as the loss
falls.  Write ``ell = loss(theta)`` and ``g = grad log(ell) = grad ell / ell`` (computed
without ever forming ``ell``, so nothing underflows at ``ell = exp(-1000)``).  The
nominal step on the loss is

    eta_t = lr / (ell * max(1, log(1/ell))^(2 - 2/L))        (L = degree of homogeneity)

so the update ``eta_t * d(grad ell)`` equals ``lr * d(g) / max(1, log(1/ell))^(2 - 2/L)``
(``d`` is positively homogeneous of degree 1 for gd/sign/coordinate).  Why this
exponent: along a separating trajectory ``log(1/ell) ~ gamma ||theta||^L`` and the
loss's Hessian is ``O(ell ||theta||^(2L-2)) = O(ell log(1/ell)^(2-2/L))``, so ``eta_t``
times the curvature stays bounded -- the step grows as fast as stability allows and no
faster.  (The naive ``lr / ell`` makes ``||theta||`` grow geometrically for ``L = 2``
and the iteration blows up.)  Early on (``ell >= 1/e``) the step is ``lr`` on
``log(ell)``, i.e. gradient descent on the log of the loss.

Safeguard: the nominal step is multiplied by a damping factor ``c <= 1`` and accepted
only with sufficient decrease (Armijo, ``ell_new <= ell (1 - 1e-4 * step * ||g||_*^2)``,
checked in log space); otherwise ``c`` is halved and the step retried.  After an accepted
step ``c`` grows by ``2^(1/5)`` up to 1 (Lyu & Li's experiments adapt their loss-based
rate the same way).  Decreasing the loss is what makes Lyu & Li's smoothed normalised
margin increase, so in the late phase the normalised margin rises monotonically (up to
the ReLU kinks crossed on the way).  Adam is not a descent method: with ``"adaptive"`` it
runs on ``g = grad log(ell)`` (which never underflows), with the fixed ``lr``, no
line search.

Cost
----
One forward and one backward pass per step (plus one forward pass per line-search retry): the data
are validated once, ``theta`` reaches the engine as views, the backward pass stops at the first
layer (no VJP into the data) and propagates one row per sample (multiclass rows are summed first).
The first :class:`~verifier.dynamics.losses.Problem` of a process frees one untouched 30 MiB block
so that glibc reuses the step's temporaries instead of page-faulting them in at every step
(``_warm_allocator``).  ``benchmarks/bench_train.py`` compares a step with torch.

History
-------
One dict per recorded step (step 0, and the steps chosen by ``history_every`` -- by default
about 100 entries --, ``kkt_every`` and ``checkpoint_every``; each is ``None``, an integer ``N``
meaning every ``N`` steps plus the first and the last, or a list of step numbers): ``step``, ``loss``,
``log_loss``, ``min_margin``, ``normalized_margin`` (``min q / ||theta||_2^L``, docs/math.md
section 2), ``smoothed_margin`` (Lyu & Li's ``log(1/ell) / ||theta||^L`` for exp,
``log(1/(exp(ell) - 1)) / ||theta||^L`` for logistic), ``norm`` (``||theta||_2``), ``step_size``
(the last accepted step on ``log(ell)``, i.e. ``eta_t * ell``), ``log_lr_loss`` (``log(eta_t)``, the
log of the step on the loss itself, which grows as the loss falls), ``halvings`` (line-search
halvings so far), for sign/coordinate
descent also ``normalized_margin_linf`` / ``normalized_margin_l1``; with ``kkt_every``:
``eps``, ``eps_rel``, ``delta``, ``delta_rel``, ``delta_max``, ``verdict`` from
:func:`verifier.check_kkt` in the method's norm (gd: l2; sign and Adam: l_inf; coordinate: l1).

>>> import verifier
>>> from verifier.datasets import linearly_separable
>>> X, y = linearly_separable(20, 2, margin=0.1, seed=0)
>>> net = verifier.mlp([2, 4, 1])
>>> res = verifier.train(net, net.init_params(seed=0), X, y, steps=300, lr=0.5, progress=False)
>>> res.history[-1]["min_margin"] > 0, res.history[-1]["normalized_margin"] > res.history[0]["normalized_margin"]
(True, True)
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import numpy as np

from .._json import header
from ..analysis.homogeneity import degree as homogeneity_degree
from ..errors import NotHomogeneousError
from ..graph import Network
from .losses import Problem, TrainingError, _LOG_MAX
from .steps import METHOD_NORM, Adam, check_method, check_positive, check_steps, steepest_direction

SCHEDULES = ("adaptive", "constant")

#: Armijo constant of the adaptive schedule's line search
ARMIJO = 1e-4
#: how many halvings of the step the line search tries before giving up
MAX_HALVINGS = 60
#: growth of the damping factor after an accepted step
DAMPING_GROWTH = 2.0 ** 0.2

HISTORY_FORMAT = "kkt-verifier/train-history"
HISTORY_VERSION = 2  # 1 -- format/version inside "meta"; 2 -- the common header: format, version, meta at the top


@dataclass
class TrainResult:
    """What :func:`train` returns: final ``params`` (dict), flat ``theta``, ``history``, ``checkpoints``."""

    params: dict[str, np.ndarray]
    theta: np.ndarray
    history: list[dict[str, Any]]
    checkpoints: dict[int, np.ndarray]
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the common header (``format``, ``version``, ``meta`` with the configuration) and the
        history (one entry per recorded step)."""
        return {**header(HISTORY_FORMAT, HISTORY_VERSION, **self.config), "history": [dict(h) for h in self.history]}


class _When:
    """When to do something: every ``N`` steps (plus the first and the last), at listed steps, or never."""

    def __init__(self, value: Any, name: str, steps: int):
        self.every: int | None = None
        self.at: frozenset[int] = frozenset()
        self.active = value is not None
        if value is None:
            return
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            if value < 1:
                raise TrainingError(f"{name}={value!r} must be None, an integer >= 1 or a list of steps")
            self.every = int(value)
            return
        try:
            items = list(value)
        except TypeError:
            raise TrainingError(f"{name}={value!r} must be None, an integer >= 1 or a list of steps") from None
        for v in items:
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not 0 <= v <= steps:
                raise TrainingError(f"{name}: step {v!r} must be an integer between 0 and steps={steps}")
        self.at = frozenset(int(v) for v in items)

    def __call__(self, k: int, steps: int) -> bool:
        if self.every is not None:
            return k % self.every == 0 or k == 0 or k == steps
        return k in self.at


class _Progress:
    """A one-line progress bar on stderr (no dependency); redrawn at most 10 times a second."""

    def __init__(self, total: int, enabled: bool, stream: Any = None):
        self.total = max(total, 1)
        self.enabled = enabled
        self.stream = stream if stream is not None else sys.stderr
        self.last = 0.0

    def update(self, k: int, log_loss: float, margin: float | None, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self.last < 0.1:
            return
        self.last = now
        frac = k / self.total
        bar = "#" * int(30 * frac) + "-" * (30 - int(30 * frac))
        m = "" if margin is None else f"  norm. margin {margin:+.4g}"
        self.stream.write(f"\r[{bar}] {100 * frac:5.1f}%  step {k}/{self.total}  log loss {log_loss:.4g}{m}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def smoothed_margin(log_loss: float, loss: str) -> float:
    """``log(1/ell)`` (exp) or ``log(1/(exp(ell) - 1))`` (logistic) from ``log(ell)``: Lyu & Li's smoothed
    margin times ``||theta||^L`` (divide by ``||theta||^L`` for the normalised version).

    >>> smoothed_margin(-5.0, "exp"), abs(smoothed_margin(math.log(math.log(2)), "logistic")) < 1e-12
    (5.0, True)
    """
    if loss == "exp":
        return -log_loss
    if log_loss > _LOG_MAX:
        return -math.inf
    ell = math.exp(log_loss)
    if log_loss < -30:  # expm1(ell) = ell (1 + ell/2 + ...)
        return -(log_loss + math.log1p(ell / 2))
    if ell > 30:  # log(exp(ell) - 1) = ell + log1p(-exp(-ell)); expm1 alone overflows past ell = 709.78
        return -(ell + math.log1p(-math.exp(-ell)))
    return -math.log(math.expm1(ell)) if ell > 0 else -log_loss


class _Batches:
    """Minibatches of a :class:`Problem`: a fresh random order each epoch (``numpy`` generator from ``seed``)."""

    def __init__(self, prob: Problem, size: int, seed: int) -> None:
        self.prob, self.size = prob, size
        self.rng = np.random.default_rng(int(seed))
        self.order = self.rng.permutation(prob.X.shape[0])
        self.pos = 0

    def next(self) -> Problem:
        from ..numeric import constraints

        if self.pos >= len(self.order):
            self.order, self.pos = self.rng.permutation(len(self.order)), 0
        idx = self.order[self.pos:self.pos + self.size]
        self.pos += self.size
        sub = Problem.__new__(Problem)  # already validated: slice, no second check
        sub.net, sub.loss = self.prob.net, self.prob.loss
        sub.X, sub.y = self.prob.X[idx], self.prob.y[idx]
        sub.cons = constraints(self.prob.net, sub.y)
        return sub


def _direction(g: np.ndarray, method: str) -> np.ndarray:
    """:func:`~verifier.dynamics.steps.steepest_direction`, without its copy for gd (``d = g``, read only here)."""
    return g if method == "gd" else steepest_direction(g, method)


def _armijo(theta: np.ndarray, d: np.ndarray, dn2: float, base: float, damp: float, log0: float,
            evaluate: Callable[[np.ndarray], Any], log_of: Callable[[Any], float | None]) -> tuple[Any, Any, float, float, int]:
    """Backtracking line search on the log loss: the first step ``base * damp / 2^j`` (``j < MAX_HALVINGS``)
    whose candidate is finite and satisfies the Armijo condition
    ``log l(cand) <= log0 + log(1 - min(ARMIJO step dn2, 1/2))`` (``dn2 = <g, d>``).  ``evaluate(cand)`` is
    the candidate's evaluation, ``log_of`` its log loss (``None`` when not finite).  Returns
    ``(cand, evaluation, step, damp, halvings)``; ``cand`` is ``None`` when no step was accepted."""
    halvings = 0
    for _ in range(MAX_HALVINGS):
        step = base * damp
        cand = theta - step * d
        if np.all(np.isfinite(cand)):
            new = evaluate(cand)
            value = log_of(new)
            if value is not None and value <= log0 + math.log1p(-min(ARMIJO * step * dn2, 0.5)):
                return cand, new, step, damp, halvings
        damp /= 2
        halvings += 1
    return None, None, base * damp, damp, halvings


def _minibatch_step(sub: Problem, theta: np.ndarray, k: int, *, method: str, schedule: str, lr: float,
                    adam: Any, damp: float, halvings: int, exponent: float,
                    loss_name: str) -> tuple[np.ndarray, float, int, float]:
    """One step on the batch ``sub``; returns ``(theta, damp, halvings, step size)``."""
    log_b, g_b, _ = sub._evaluate(theta)
    if not (math.isfinite(log_b) and np.all(np.isfinite(g_b))):
        raise TrainingError(f"step {k}: the batch loss or its gradient is not finite (log loss {log_b!r}); "
                            f"lower lr={lr!r}")
    if schedule == "constant":
        if log_b > _LOG_MAX:
            raise TrainingError(f"step {k}: the batch {loss_name} loss exp({log_b:.6g}) overflows float64; "
                                f"lower lr={lr!r} or use schedule='adaptive'")
        grad: np.ndarray = math.exp(log_b) * g_b
        d = adam.direction(grad) if adam is not None else _direction(grad, method)
        cand, size = theta - lr * d, lr * math.exp(log_b)
    elif adam is not None:
        cand, size = theta - lr * adam.direction(g_b), lr
    else:
        d = _direction(g_b, method)
        base = lr / max(1.0, -log_b) ** exponent
        found, _, size, damp, tried = _armijo(theta, d, float(g_b @ d), base, damp, log_b, sub._log_loss,
                                              lambda v: v if math.isfinite(v) else None)
        halvings += tried
        if found is None:
            raise TrainingError(f"step {k}: no step down to {base * damp:.3g} decreases the batch's {loss_name} "
                                "loss; the iterate may sit at a kink -- try another seed or schedule='constant'")
        cand = found
        damp = min(1.0, damp * DAMPING_GROWTH)
    if not np.all(np.isfinite(cand)):
        raise TrainingError(f"step {k}: the iterate is not finite; lower lr={lr!r}")
    return cand, damp, halvings, size


def train(net: Network, params: Mapping[str, Any] | np.ndarray | None, X: Any, y: Any, *, loss: str = "exp",
          method: str = "gd", steps: int = 1000, lr: float = 0.1, schedule: str = "adaptive",
          kkt_every: int | Iterable[int] | None = None, checkpoint_every: int | Iterable[int] | None = None,
          progress: bool | None = None, seed: int = 0, history_every: int | Iterable[int] | None = None,
          kkt_options: Mapping[str, Any] | None = None,
          callback: Callable[[int, np.ndarray, dict[str, Any]], None] | None = None,
          batch_size: int | None = None) -> TrainResult:
    """Train ``net`` in float64 from ``params`` (``None``: ``net.init_params(seed)``), full-batch by default.

    ``loss``: ``"exp"`` or ``"logistic"``; ``method``: ``"gd"``, ``"sign"``, ``"coordinate"``,
    ``"adam"``; ``schedule``: ``"adaptive"`` (loss-adaptive step with a line search, see the
    module docstring; needs a homogeneous network) or ``"constant"``.  ``kkt_every=N`` runs
    :func:`verifier.check_kkt` every ``N`` steps (and at the first and last) with
    ``kkt_options`` (default: the method's norm); ``checkpoint_every=N`` keeps ``theta`` every
    ``N`` steps (and at the first and last); ``history_every=N`` records the history every ``N``
    steps (default: about 100 entries).  Each of the three also takes a list of step numbers.
    ``progress``: ``None`` shows a bar when stderr is a terminal.  ``callback(step, theta, entry)``
    is called at every recorded step.

    ``batch_size=B`` trains with minibatches instead (stochastic steps, as researchers train): each
    epoch visits the samples in a random order drawn from ``seed`` (the same seed as the
    initialisation), in batches of ``B`` (the last one smaller); one step is one batch.  The step
    uses the batch's loss (summed over the batch, the same form as the full loss): ``"constant"``
    takes ``lr`` times the method's direction of its gradient; ``"adaptive"`` takes the nominal
    step of the batch's loss with the Armijo line search on the batch (a stochastic line search);
    Adam runs on the batch's ``grad log(ell)``.  The history (loss, margins, KKT) is always
    measured on the full data, at the recorded steps only.
    Raises :class:`~verifier.dynamics.TrainingError` for bad arguments and, naming the step,
    when the iterate or the loss becomes non-finite.
    """
    loss_name = loss
    method = check_method(method)
    if schedule not in SCHEDULES:
        raise TrainingError(f"schedule={schedule!r} is not supported; use one of {list(SCHEDULES)}")
    steps = check_steps(steps)
    lr = check_positive(lr, "lr")
    kkt_when = _When(kkt_every, "kkt_every", steps)
    checkpoint_when = _When(checkpoint_every, "checkpoint_every", steps)
    history_when = _When(max(1, steps // 100) if history_every is None else history_every, "history_every", steps)
    if progress is not None and not isinstance(progress, bool):
        raise TrainingError(f"progress={progress!r} must be None (auto), True or False")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TrainingError(f"seed={seed!r} must be an integer")
    prob = Problem(net, X, y, loss)
    n_samples = prob.X.shape[0]
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer))
                                   or not 1 <= batch_size):
        raise TrainingError(f"batch_size={batch_size!r} must be None (full batch) or an integer >= 1")
    bs = None if batch_size is None else int(batch_size)
    minibatch = bs is not None and bs < n_samples
    batches = _Batches(prob, bs, seed) if bs is not None and minibatch else None
    try:
        degree = homogeneity_degree(net)
        L: float | None = float(degree)
    except NotHomogeneousError as e:
        if schedule == "adaptive":
            raise TrainingError(f"schedule='adaptive' needs a homogeneous network ({e}); "
                                "use schedule='constant'") from None
        degree, L = None, None
    theta = net.flatten(net.init_params(seed) if params is None else net.check_params(params))
    kkt_opts = {"norm": METHOD_NORM[method], **dict(kkt_options or {})}
    exponent = max(0.0, 2.0 - 2.0 / L) if L else 0.0

    history: list[dict[str, Any]] = []
    checkpoints: dict[int, np.ndarray] = {}
    bar = _Progress(steps, sys.stderr.isatty() if progress is None else progress)
    adam = Adam(theta.size) if method == "adam" else None
    damp = 1.0
    last_step_size = 0.0
    halvings = 0

    log_loss, g, q = prob._evaluate(theta)
    if not (math.isfinite(log_loss) and np.all(np.isfinite(g))):
        raise TrainingError(f"step 0: the {loss_name} loss or its gradient is not finite at the initial point "
                            f"(log loss {log_loss!r})")

    def normalized(qmin: float, nrm: float) -> float | None:
        """``qmin / nrm^L`` in log space (``nrm^L`` alone overflows long before the ratio does)."""
        if L is None or nrm == 0:
            return None
        if qmin == 0 or not math.isfinite(qmin):
            return 0.0 if qmin == 0 else None
        with np.errstate(over="ignore", under="ignore"):
            return float(math.copysign(math.exp(min(math.log(abs(qmin)) - L * math.log(nrm), 700.0)), qmin))

    def record(k: int) -> None:
        top = float(np.abs(theta).max(initial=0.0))
        nrm = top * float(np.linalg.norm(theta / top)) if top > 0 else 0.0  # no overflow of sum theta_i^2
        qmin = float(q.min())
        entry: dict[str, Any] = {
            "step": k,
            "loss": float(math.exp(log_loss)) if log_loss <= _LOG_MAX else math.inf,
            "log_loss": float(log_loss),
            "min_margin": qmin,
            "normalized_margin": normalized(qmin, nrm),
            "smoothed_margin": normalized(smoothed_margin(log_loss, loss_name), nrm),
            "norm": nrm,
            "step_size": last_step_size,
            "log_lr_loss": (math.log(last_step_size) - log_loss) if last_step_size > 0 else None,
            "halvings": halvings,
        }
        if method in ("sign", "coordinate"):
            ord_ = np.inf if method == "sign" else 1
            key = "normalized_margin_linf" if method == "sign" else "normalized_margin_l1"
            entry[key] = normalized(qmin, float(np.linalg.norm(theta, ord=ord_)))
        if kkt_when(k, steps):
            from ..kkt import check_kkt  # lazy: the KKT layer is optional for training

            rep = check_kkt(net, net.unflatten(theta), prob.X, prob.y, **kkt_opts)
            for f in ("eps", "eps_rel", "delta", "delta_rel", "delta_max"):
                v = getattr(rep, f, None)
                entry[f] = None if v is None else float(v)
            entry["verdict"] = rep.verdict
        elif kkt_when.active:  # same keys in every entry; None where the check did not run
            entry.update(dict.fromkeys(("eps", "eps_rel", "delta", "delta_rel", "delta_max", "verdict")))
        if checkpoint_when(k, steps):
            checkpoints[k] = theta.copy()
        history.append(entry)
        if callback is not None:
            callback(k, theta.copy(), entry)

    def due(k: int) -> bool:
        return k == 0 or history_when(k, steps) or kkt_when(k, steps) or checkpoint_when(k, steps)

    record(0)
    try:
        for k in range(1, steps + 1):
            if batches is not None:
                theta, damp, halvings, last_step_size = _minibatch_step(
                    batches.next(), theta, k, method=method, schedule=schedule, lr=lr, adam=adam, damp=damp,
                    halvings=halvings, exponent=exponent, loss_name=loss_name)
                if due(k) or k == steps:
                    log_loss, g, q = prob._evaluate(theta)
                    if not math.isfinite(log_loss):
                        raise TrainingError(f"step {k}: the full {loss_name} loss is not finite; lower lr={lr!r}")
                    record(k)
                bar.update(k, log_loss, history[-1]["normalized_margin"] if history else None, force=(k == steps))
                continue
            if schedule == "constant":
                if log_loss > _LOG_MAX:
                    raise TrainingError(f"step {k}: the {loss_name} loss exp({log_loss:.6g}) overflows float64; "
                                        f"lower lr={lr!r} or use schedule='adaptive'")
                grad = math.exp(log_loss) * g
                d = adam.direction(grad) if adam is not None else _direction(grad, method)
                cand = theta - lr * d
                if not np.all(np.isfinite(cand)):
                    raise TrainingError(f"step {k}: the iterate is not finite; lower lr={lr!r}")
                new = prob._evaluate(cand)
                if not (math.isfinite(new[0]) and np.all(np.isfinite(new[1]))):
                    raise TrainingError(f"step {k}: the loss or its gradient is not finite (log loss {new[0]!r}); "
                                        f"lower lr={lr!r}")
                last_step_size = lr * math.exp(log_loss)
            elif adam is not None:
                cand = theta - lr * adam.direction(g)
                if not np.all(np.isfinite(cand)):
                    raise TrainingError(f"step {k}: the Adam iterate is not finite; lower lr={lr!r}")
                new = prob._evaluate(cand)
                if not (math.isfinite(new[0]) and np.all(np.isfinite(new[1]))):
                    raise TrainingError(f"step {k}: the loss or its gradient is not finite (log loss {new[0]!r}); "
                                        f"lower lr={lr!r}")
                last_step_size = lr
            else:
                d = _direction(g, method)
                base = lr / max(1.0, -log_loss) ** exponent
                found, new_eval, step, damp, tried = _armijo(
                    theta, d, float(g @ d), base, damp, log_loss, prob._evaluate,
                    lambda e: e[0] if math.isfinite(e[0]) and np.all(np.isfinite(e[1])) else None)
                halvings += tried
                if found is None:
                    raise TrainingError(
                        f"step {k}: no step down to {base * damp:.3g} decreases the {loss_name} loss "
                        f"(log loss {log_loss:.6g}, ||grad log loss|| {np.linalg.norm(g):.3g}); the iterate may "
                        "sit at a kink of the network -- try another seed or schedule='constant'")
                cand, new = found, new_eval
                last_step_size = step
                damp = min(1.0, damp * DAMPING_GROWTH)
            theta = cand
            log_loss, g, q = new
            if due(k):
                record(k)
            bar.update(k, log_loss, history[-1]["normalized_margin"] if history else None, force=(k == steps))
    finally:
        bar.close()
    config = {"loss": loss_name, "method": method, "schedule": schedule, "lr": lr, "steps": steps,
              "degree": None if degree is None else str(degree), "num_params": int(theta.size),
              "kkt": dict(kkt_opts) if kkt_when.active else None,
              "batch_size": bs if minibatch else None, "seed": int(seed)}
    return TrainResult(net.unflatten(theta), theta.copy(), history, checkpoints, config)


__all__ = ["SCHEDULES", "TrainResult", "smoothed_margin", "train"]
