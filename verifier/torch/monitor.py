"""``KKTMonitor``: Lyu & Li's quantities and the KKT check from inside a PyTorch training loop.

The model is imported once with :func:`verifier.from_torch` (a float64 copy in
eval mode fixes the graph); every recorded step re-reads the live model's
weights (a float64 copy, the model is not touched) and computes, on the
monitor's data ``(X, y)``:

* ``min_margin``, ``normalized_margin`` (``min q / ||theta||^L``),
  ``smoothed_margin`` (``log(1/ell) / ||theta||^L`` for ``loss="exp"``,
  ``log(1/(exp(ell) - 1)) / ||theta||^L`` for ``"logistic"``, ``ell`` the
  summed loss of the margins), ``margin_over_prod_norms``
  (``min q / prod_l ||W_l||_F``, Lyu & Li's code), ``n_near_min`` (how many
  constraints have ``q <= (1 + near) min q``);
* ``eps``, ``eps_rel``, ``delta``, ``delta_rel``, ``delta_max``, ``verdict``,
  the support (constraint rows ``support``, their ``multipliers``, the samples
  ``support_samples`` and ``sample_multipliers``, the sum over a sample's rows), from
  :func:`verifier.check_kkt` (docs/math.md sections 3-5);
* ``layer_norms`` (``||W_l||_F`` per weight tensor), ``balancedness``
  (``||W_l||^2 - ||W_{l+1}||^2`` for consecutive weight tensors, conserved by
  gradient flow on a homogeneous network), ``norm`` (``||theta||_2``);
* ``beta = cos(theta, -grad ell)`` (Lyu & Li's alignment; tends to 1 along
  gradient flow), with the verifier's loss ``loss`` on ``(X, y)``: the sum
  over constraints of ``exp(-q)`` or the cross-entropy.  A mean instead of a
  sum rescales the gradient, which does not change ``beta``;
* ``seconds``: the cost of this call, so that ``every`` can be chosen.

Entries use the keys of :func:`verifier.train`'s history and
:meth:`KKTMonitor.to_dict` has its layout (``kkt-verifier/train-history``
version 1: a ``meta`` block, then ``history``), so ``verifier plot`` and the
HTML report read both.

>>> import torch, numpy as np, verifier
>>> from verifier.torch import KKTMonitor
>>> from verifier.datasets import linearly_separable
>>> X, y = linearly_separable(20, 2, margin=0.2, seed=0)
>>> model = torch.nn.Sequential(torch.nn.Linear(2, 8, bias=False), torch.nn.ReLU(), torch.nn.Linear(8, 1, bias=False))
>>> mon = KKTMonitor(model, X, y, every=50, verbose=False)
>>> opt = torch.optim.SGD(model.parameters(), lr=0.1)
>>> Xt, yt = torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
>>> for step in range(101):
...     opt.zero_grad(); loss = torch.exp(-yt * model(Xt)[:, 0]).mean(); loss.backward(); opt.step()
...     _ = mon.step(step)
>>> [e["step"] for e in mon.history], mon.history[-1]["source_dtype"]
([0, 50, 100], 'float32')
"""

from __future__ import annotations

import copy
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..analysis.homogeneity import degree
from ..errors import DataError, FormatError, VerifierError
from ..importers._common import require

#: default relative band of "near the minimum margin" constraints (Lyu & Li count them)
NEAR_MIN = 1e-2


class MonitorError(VerifierError):
    """Bad arguments to :class:`KKTMonitor` (names the argument and what is valid)."""


def _as_numpy(a: Any, what: str) -> np.ndarray:
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    try:
        return np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{what}: not numeric (got {type(a).__name__})") from None


def read_params(model: Any, names: list[str]) -> tuple[dict[str, np.ndarray], str]:
    """Float64 copies of the model's parameters ``names`` and the dtype they had (``"float32"``, ...).

    The names are torch's (``"fc1.weight"``), as :func:`verifier.from_torch` gives them.
    """
    torch = require("torch", "torch")
    named = dict(model.named_parameters(remove_duplicate=False))
    missing = [n for n in names if n not in named]
    if missing:
        raise FormatError(f"the model has no parameter(s) {missing} (it has {list(named)[:12]})")
    out: dict[str, np.ndarray] = {}
    dtypes: set[str] = set()
    with torch.no_grad():
        for n in names:
            t = named[n].detach()
            dtypes.add(str(t.dtype).replace("torch.", ""))
            out[n] = t.to(device="cpu", dtype=torch.float64).numpy().copy()
    dtype = "float64" if dtypes == {"float64"} else sorted(dtypes - {"float64"})[0]
    return out, dtype


def weight_tensors(net) -> list[str]:
    """The ``weight`` tensors of the network in graph order (dense and conv layers): the ``W_l``."""
    out = []
    for n in net.order:
        w = net.nodes[n].params.get("weight")
        if w is not None and w not in out:
            out.append(w)
    return out


class KKTMonitor:
    """Record Lyu & Li's margin quantities and the KKT check while a torch model trains.

    ``model``: a ``torch.nn.Module`` the importer accepts (bias-free ReLU nets are
    homogeneous); ``X``, ``y``: the data to measure on (arrays or tensors; labels
    ``+-1`` for one output, class indices for ``C >= 2`` outputs).  ``every``: record when
    ``step % every == 0`` (default 100).  ``log``: a JSON path rewritten after every
    record with :meth:`to_dict`.  ``loss``: ``"exp"`` (default) or ``"logistic"`` (the
    cross-entropy for class labels), used for ``smoothed_margin`` and ``beta``.
    ``kkt``: run :func:`verifier.check_kkt` (default True) with ``kkt_options``.
    ``tensorboard``: a log directory (needs the ``tensorboard`` package) or any object
    with ``add_scalar(tag, value, step)`` (a ``SummaryWriter``).  ``verbose``: print one
    line per record, with its cost, to ``stream`` (default stderr).  ``near``: the band
    of ``n_near_min`` (default ``1e-2``, relative).
    """

    def __init__(self, model: Any, X: Any, y: Any, *, every: int = 100, log: str | Path | None = None,
                 loss: str = "exp", kkt: bool = True, kkt_options: Mapping[str, Any] | None = None,
                 tensorboard: Any = None, verbose: bool = True, stream: Any = None, near: float = NEAR_MIN) -> None:
        torch = require("torch", "torch")
        from ..dynamics.losses import Problem, check_loss
        from ..importers import from_torch

        if not isinstance(model, torch.nn.Module):
            raise MonitorError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise MonitorError(f"every={every!r} must be an integer >= 1")
        if not (isinstance(near, (int, float)) and 0 <= near < 1):
            raise MonitorError(f"near={near!r} must be a number in [0, 1)")
        self.loss = check_loss(loss)
        self.model = model
        self.every = int(every)
        self.near = float(near)
        self.kkt = bool(kkt)
        self.kkt_options = dict(kkt_options or {})
        self.verbose = bool(verbose)
        self.stream = stream
        self.log = Path(log) if log is not None else None
        if self.log is not None and not self.log.parent.exists():
            raise MonitorError(f"log={str(self.log)!r}: folder {str(self.log.parent)!r} does not exist")
        self.X = _as_numpy(X, "X")
        self.y = _as_numpy(y, "y").reshape(-1)
        if self.X.ndim < 2:
            raise DataError(f"X has shape {self.X.shape}; expected (n, features) or (n, C, H, W)")
        t0 = time.perf_counter()
        probe = copy.deepcopy(model).eval()  # the graph of the deterministic network (dropout off)
        self.net, _ = from_torch(probe, torch.as_tensor(self.X[: min(8, len(self.X))]))
        del probe
        self.degree = degree(self.net)  # NotHomogeneousError names the node
        self.L = float(self.degree)
        self.problem = Problem(self.net, self.X, self.y, self.loss)  # validates X, y against the network
        self.weights = weight_tensors(self.net)
        self.import_seconds = time.perf_counter() - t0
        self.history: list[dict[str, Any]] = []
        self.writer = self._writer(tensorboard)

    # ------------------------------------------------------------------
    def _writer(self, tb: Any) -> Any:
        if tb is None or hasattr(tb, "add_scalar"):
            return tb
        if isinstance(tb, (str, Path)):
            require("tensorboard", "tensorboard")
            from torch.utils.tensorboard import SummaryWriter

            return SummaryWriter(log_dir=str(tb))
        raise MonitorError(f"tensorboard={tb!r} must be None, a log directory or an object with add_scalar()")

    @property
    def meta(self) -> dict[str, Any]:
        """The configuration written in the history file's ``meta`` block."""
        return {"source": "verifier.torch.KKTMonitor",
                "model": type(self.model).__name__, "loss": self.loss, "degree": str(self.degree),
                "num_params": int(self.net.num_params), "n_samples": int(self.X.shape[0]),
                "input_shape": list(self.net.input_shape), "every": self.every, "near": self.near,
                "kkt": ({"norm": "l2", **self.kkt_options} if self.kkt else None),
                "import_seconds": round(self.import_seconds, 4), "weights": self.weights}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the training-history format (the common header with :attr:`meta`, then ``history``)."""
        from .._json import header
        from ..dynamics.training import HISTORY_FORMAT, HISTORY_VERSION

        return {**header(HISTORY_FORMAT, HISTORY_VERSION, **self.meta), "history": [dict(h) for h in self.history]}

    def save(self, path: str | Path | None = None) -> Path:
        """Write :meth:`to_dict` as JSON to ``path`` (default: ``log``)."""
        from .._json import jsonable

        p = Path(path) if path is not None else self.log
        if p is None:
            raise MonitorError("save() needs a path (or give log=... to the monitor)")
        try:
            p.write_text(json.dumps(jsonable(self.to_dict()), indent=1) + "\n")
        except OSError as e:
            raise FormatError(f"cannot write the history to {str(p)!r}: {e.strerror}") from None
        return p

    # ------------------------------------------------------------------
    def step(self, step: int, *, force: bool = False) -> dict[str, Any] | None:
        """Record at ``step`` when ``step % every == 0`` (or ``force``); returns the entry or None."""
        if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
            raise MonitorError(f"step={step!r} must be an integer >= 0")
        if not force and step % self.every:
            return None
        return self.record(int(step))

    def record(self, step: int) -> dict[str, Any]:
        """Measure the model as it is now; append to :attr:`history` and return the entry."""
        from ..dynamics.training import smoothed_margin

        t0 = time.perf_counter()
        params, dtype = read_params(self.model, self.net.param_names)
        theta = self.net.flatten(params)
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            log_loss, g, q = self.problem.evaluate(theta)
        nrm = float(np.linalg.norm(theta))
        qmin = float(q.min())
        norms = {w: float(np.linalg.norm(params[w])) for w in self.weights}
        prod = float(np.prod(list(norms.values()))) if norms else 0.0
        gnorm = float(np.linalg.norm(g)) if g is not None else 0.0
        entry: dict[str, Any] = {
            "step": int(step),
            "loss": float(math.exp(log_loss)) if log_loss < 709 else math.inf,
            "log_loss": float(log_loss),
            "min_margin": qmin,
            "normalized_margin": qmin / nrm ** self.L if nrm > 0 else None,
            "smoothed_margin": (smoothed_margin(log_loss, self.loss) / nrm ** self.L) if nrm > 0 else None,
            "margin_over_prod_norms": qmin / prod if prod > 0 else None,
            "n_near_min": int(np.sum(q <= qmin + self.near * abs(qmin))),
            "norm": nrm,
            "layer_norms": norms,
            "balancedness": {f"{a} - {b}": norms[a] ** 2 - norms[b] ** 2
                             for a, b in zip(self.weights, self.weights[1:])},
            # beta = cos(theta, -grad ell); g is grad log(ell) = grad ell / ell, the same direction
            "beta": float(-(theta @ g) / (nrm * gnorm)) if nrm > 0 and gnorm > 0 and np.isfinite(gnorm) else None,
            "source_dtype": dtype,
        }
        if self.kkt:
            from ..kkt import check_kkt

            rep = check_kkt(self.net, params, self.X, self.y, **self.kkt_options)
            rep.note_source_dtype(dtype)
            for f in ("eps", "eps_rel", "delta", "delta_rel", "delta_max", "sum_multipliers"):
                v = getattr(rep, f)
                entry[f] = None if v is None else float(v)
            entry["verdict"] = rep.verdict
            sup = [] if rep.support is None else [int(r) for r in rep.support]
            entry["support"] = sup
            entry["support_size"] = len(sup)
            entry["support_samples"] = sorted({int(self.problem.cons.sample[r]) for r in sup})
            entry["multipliers"] = [float(rep.multipliers[r]) for r in sup] if rep.multipliers is not None else []
            per_sample: dict[str, float] = {}
            for r, lam in zip(sup, entry["multipliers"]):  # a sample's weight: the sum over its constraint rows
                key = str(int(self.problem.cons.sample[r]))
                per_sample[key] = per_sample.get(key, 0.0) + lam
            entry["sample_multipliers"] = per_sample
            if rep.verdict == "infeasible":
                entry["n_infeasible"] = len(rep.infeasible_samples)
            self.last_report = rep
        entry["seconds"] = time.perf_counter() - t0
        self.history.append(entry)
        if self.log is not None:
            self.save()
        if self.writer is not None:
            self._tensorboard(entry)
        if self.verbose:
            self._print(entry)
        return entry

    def _tensorboard(self, e: Mapping[str, Any]) -> None:
        for k in ("log_loss", "min_margin", "normalized_margin", "smoothed_margin", "margin_over_prod_norms",
                  "n_near_min", "norm", "beta", "eps", "eps_rel", "delta", "delta_rel", "delta_max",
                  "support_size", "seconds"):
            v = e.get(k)
            if v is not None and np.isfinite(v):
                self.writer.add_scalar(f"kkt/{k}", float(v), e["step"])
        for k, v in e["layer_norms"].items():
            self.writer.add_scalar(f"kkt/layer_norm/{k}", v, e["step"])

    def _print(self, e: Mapping[str, Any]) -> None:
        def f(v: Any, spec: str) -> str:
            return "-" if v is None else format(v, spec)

        line = (f"[kkt] step {e['step']}: min margin {f(e['min_margin'], '.4g')}, norm. margin "
                f"{f(e['normalized_margin'], '.4g')}, beta {f(e['beta'], '.4f')}")
        if self.kkt:
            line += (f", eps_rel {f(e.get('eps_rel'), '.3g')}, delta_rel {f(e.get('delta_rel'), '.3g')}, "
                     f"support {e.get('support_size')} ({e.get('verdict')})")
        line += f"  [{e['seconds']:.3f} s]"
        print(line, file=self.stream if self.stream is not None else sys.stderr)


__all__ = ["KKTMonitor", "MonitorError", "NEAR_MIN", "read_params", "weight_tensors"]
