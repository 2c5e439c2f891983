"""What runs on a worker: training runs and cells.  Plain functions of plain values (no dask here).

A cell returns a *record*: ``{"status": "ok" | "error", "error": one line or None, "row": flat
figures for the table, "report": the full JSON report, "extra": files to write beside it}``.
A cell that raises is turned into an ``"error"`` record naming the exception (the sweep goes on).

>>> import numpy as np
>>> from verifier.datasets import linearly_separable
>>> X, y = linearly_separable(10, 2, margin=0.2, seed=0)
>>> net = build_network({"builder": "mlp", "widths": [2, 1]})
>>> rec = run_cell({"kind": "kkt", "check": {}}, net, (X, y), {"W1": np.array([[1.0, 0.5]])})
>>> rec["status"], rec["row"]["verdict"] in ("kkt", "not_kkt", "infeasible")
('ok', True)
"""

from __future__ import annotations

import importlib
import os
import socket
import time
import traceback
from typing import Any, Callable, Mapping

import numpy as np

from .._json import jsonable

#: environment variables that pin BLAS/OpenMP pools to one thread (set on every worker we start)
ONE_THREAD_ENV = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                  "VECLIB_MAXIMUM_THREADS": "1", "NUMEXPR_NUM_THREADS": "1"}


# -- inputs (read on the client; the worker receives plain values) ----------------------------------------

def build_network(spec: Mapping[str, Any]) -> dict[str, Any]:
    """The network dict (``Network.to_dict``) of a ``[network]`` section: a builder call or a JSON file."""
    from ..graph import Network
    import verifier.graph as gr

    if "file" in spec:
        net = Network.from_json(spec["file"])
    else:
        kw = {k: v for k, v in spec.items() if k != "builder"}
        net = getattr(gr, spec["builder"])(**kw)
    return net.to_dict()


def load_data(spec: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` of a ``[data]`` section: a generator of :mod:`verifier.datasets` or an ``.npz`` file."""
    from .. import datasets, io

    if "file" in spec:
        X, y = io.load_data(spec["file"])
    else:
        kw = {k: v for k, v in spec.items() if k != "generator"}
        if "shape" in kw:
            kw["shape"] = tuple(kw["shape"])
        X, y = getattr(datasets, spec["generator"])(**kw)
    return np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)


def load_params(spec: Mapping[str, Any], net_dict: Mapping[str, Any]) -> dict[str, np.ndarray]:
    from .. import io
    from ..graph import Network

    return io.load_params(spec["file"], Network.from_dict(net_dict))


# -- worker side ----------------------------------------------------------------------------------------

def _net(net_dict: Mapping[str, Any]):
    from ..graph import Network

    return Network.from_dict(net_dict)


def train_run(net_dict: Mapping[str, Any], data: tuple[np.ndarray, np.ndarray], train: Mapping[str, Any],
              steps: list[int]) -> dict[int, dict[str, np.ndarray]]:
    """Train once to ``max(steps)`` from ``net.init_params(seed)``; the parameters at every step in ``steps``."""
    from ..dynamics import train as _train

    net = _net(net_dict)
    X, y = data
    opts = {k: v for k, v in train.items() if k not in ("steps", "seed")}
    seed = int(train.get("seed", 0))
    steps = sorted(set(int(s) for s in steps))
    res = _train(net, net.init_params(seed), X, y, steps=max(steps), checkpoint_every=steps, progress=False,
                 history_every=[max(steps)], seed=seed, **opts)
    out = {}
    for s in steps:
        if s not in res.checkpoints:  # pragma: no cover - train() keeps every requested step
            raise RuntimeError(f"training kept no checkpoint at step {s}")
        out[s] = {k: np.array(v) for k, v in net.unflatten(res.checkpoints[s]).items()}
    return out


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def run_cell(cell: Mapping[str, Any], net_dict: Mapping[str, Any] | None, data: Any, params: Any,
             step: int | None = None) -> dict[str, Any]:
    """Run one cell (``cell["kind"]``, ``cell["check"]``); never raises, an exception becomes an error record.

    ``params`` is a parameter dict, or (with ``step``) the checkpoints of :func:`train_run`.
    """
    t0 = time.perf_counter()
    c0 = time.thread_time()
    try:
        if step is not None:
            params = params[step]
        fn = _KINDS[cell["kind"]]
        row, report, extra = fn(cell["check"], net_dict, data, params)
        rec = {"status": "ok", "error": None, "row": row, "report": report, "extra": extra}
    except Exception as e:  # noqa: BLE001 - any failure of one cell is recorded, the sweep goes on
        rec = {"status": "error", "error": _one_line(e), "row": {}, "report": {"traceback": traceback.format_exc()},
               "extra": {}}
    rec["seconds"] = time.perf_counter() - t0
    rec["cpu_seconds"] = time.thread_time() - c0  # CPU time of this thread: below `seconds` = waiting for a core
    rec["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    return jsonable(rec)


def _kkt(opts: Mapping[str, Any], net_dict, data, params):
    from ..kkt import check_kkt

    net = _net(net_dict)
    rep = check_kkt(net, params, *data, **opts)
    d = rep.to_dict()
    row: dict[str, Any] = {"verdict": rep.verdict}
    for k in ("eps", "eps_rel", "delta", "delta_rel", "delta_max", "gap", "min_margin", "normalized_margin"):
        row[k] = d.get(k)
    row["support_size"] = None if rep.support is None else len(rep.support)
    row["passed"] = rep.verdict == "kkt"
    return row, d, {}


def _embedding(opts: Mapping[str, Any], net_dict, data, params):
    from ..certificates.produce import make_split
    from ..embed import check_embedding

    net = _net(net_dict)
    kw = {k: v for k, v in opts.items() if k != "split"}
    emb = make_split(net, opts["split"])
    rep = check_embedding(emb, params, *data, **kw)
    row: dict[str, Any] = {"passed": rep.passed, "failed": " ".join(rep.failed) or None}
    kk = rep.checks.get("kkt")
    if kk is not None:
        row["kkt_figure"] = kk.figure
    return row, rep.to_dict(), {}


def _certify(opts: Mapping[str, Any], net_dict, data, params):
    from ..certificates import check_certificate, certify_kkt

    net = _net(net_dict)
    kkt = {k[4:]: v for k, v in opts.items() if k.startswith("kkt_")}
    kw = {k: v for k, v in opts.items() if not k.startswith("kkt_")}
    cert = certify_kkt(net, params, *data, kkt_options=kkt or None, self_check=False, **kw)
    res = check_certificate(cert)
    row: dict[str, Any] = {"passed": bool(res.ok), "failed": " ".join(c.name for c in res.failed) or None,
                           "seconds_exact_check": res.seconds}
    claims = cert.get("claims", {})
    for k in ("eps2", "delta", "normalized_margin"):
        if k in claims:
            row[f"claim_{k}"] = float(claims[k]["bound"])
    report = {"ok": bool(res.ok), "summary": res.summary(),
              "claims": [{"name": c.name, "holds": c.holds, "detail": c.describe()} for c in res.claims]}
    return row, report, {"cert.json": cert}


def _theorem(opts: Mapping[str, Any], net_dict, data, params):
    import theorems

    t = theorems.get(opts["name"])
    tol = dict(opts.get("tol") or {})
    t.check_tolerances(tol)  # before the call: a tolerance named like a search() flag (seed, keep) would be bound to it
    res = t.search(examples=opts.get("examples"), seed=int(opts.get("seed", 0)),
                   shrink_budget=int(opts.get("shrink_budget", 200)), **tol)
    ce = res.counterexample  # None exactly when the claim holds
    row: dict[str, Any] = {"passed": res.holds, "checked": res.checked, "not_applicable": res.not_applicable,
                           "failed": None if ce is None else " ".join(ce.failed)}
    for name, w in res.worst.items():
        row[f"worst_{name}"] = w.figure
    extra = {}
    if ce is not None:
        extra["counterexample.json"] = ce.to_dict()
    return row, res.to_dict(), extra


def resolve_function(spec: Any) -> Callable[..., Any]:
    """``"module:attr"`` -> the callable (attr may be dotted)."""
    if callable(spec):
        return spec
    mod, _, attr = str(spec).partition(":")
    obj: Any = importlib.import_module(mod)
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def _function(opts: Mapping[str, Any], net_dict, data, params):
    fn = resolve_function(opts["function"])
    kw = {k: v for k, v in opts.items() if k != "function"}
    X, y = data
    out = fn(_net(net_dict), params, X, y, **kw)
    if not isinstance(out, Mapping):
        raise TypeError(f"check function {opts['function']} returned {type(out).__name__}, expected a dict")
    row = {k: v for k, v in out.items() if isinstance(v, (int, float, str, bool, type(None)))}
    return row, dict(out), {}


_KINDS = {"kkt": _kkt, "embedding": _embedding, "certify": _certify, "theorem": _theorem, "function": _function}
