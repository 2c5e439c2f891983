"""Time series shown in reports: training histories and embedding deviations.

>>> import numpy as np, verifier
>>> from verifier.datasets import linearly_separable
>>> X, y = linearly_separable(12, 2, margin=0.2, seed=0)
>>> net = verifier.mlp([2, 3, 1])
>>> emb = verifier.neuron_split(net, None, layer=1, neuron=0, ratios=["3/5", "4/5"])
>>> s = trajectory_deviation(emb, net.flatten(net.init_params(0)), X, y, steps=20, lr=0.1)
>>> len(s["step"]), max(s["relative"]) < 1e-12
(21, True)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import FormatError


def _read_json(path: Any, what: str) -> Any:
    from .._json import read_json

    return read_json(path, what)


def load_history(h: Any) -> list[dict[str, Any]]:
    """A training history as a list of dicts: from a ``TrainResult``, its ``to_dict()``, a list, or a JSON file."""
    where = "history"
    if hasattr(h, "history"):
        h = h.history
    if isinstance(h, (str, Path)):
        where = f"history file {str(h)!r}"
        h = _read_json(h, "history")
    if isinstance(h, Mapping) and "history" in h:
        _check_history_header(h, where)
        h = h["history"]
    if not isinstance(h, list) or not all(isinstance(e, Mapping) for e in h):
        raise FormatError("history must be a list of dicts (step, loss, normalized_margin, eps_rel, delta_rel), "
                          "a TrainResult, or a JSON file of TrainResult.to_dict()")
    return [dict(e) for e in h]


def _check_history_header(doc: Mapping[str, Any], where: str) -> None:
    """The header of a training-history document: version 2 (the common header) or version 1 (format and
    version inside ``meta``, written before version 2); a document without any header (a hand-made
    ``{"history": [...]}``) is accepted."""
    from .._json import check_header
    from ..dynamics.training import HISTORY_FORMAT, HISTORY_VERSION

    meta = doc.get("meta")
    if "format" in doc or "version" in doc:
        check_header(doc, HISTORY_FORMAT, (HISTORY_VERSION,), where=where)
    elif isinstance(meta, Mapping) and ("format" in meta or "version" in meta):
        check_header(meta, HISTORY_FORMAT, (1,), where=f"{where}, meta")


def load_embedding_history(s: Any) -> dict[str, Any]:
    """``{"step": [...], "deviation": [...], "relative": [...]}`` from a dict, a list of dicts or a JSON file."""
    if isinstance(s, (str, Path)):
        s = _read_json(s, "embedding history")
    if isinstance(s, list):
        if not all(isinstance(e, Mapping) for e in s):
            raise FormatError("embedding history list must hold dicts with 'step' and 'deviation'")
        s = {"step": [e.get("step", e.get("t", i)) for i, e in enumerate(s)],
             "deviation": [e.get("deviation") for e in s],
             "relative": [e.get("relative") for e in s] if all("relative" in e for e in s) else None}
    if not isinstance(s, Mapping) or "deviation" not in s or ("step" not in s and "t" not in s):
        raise FormatError("embedding history must have 'step' (or 't') and 'deviation' arrays")
    out = dict(s)
    out["step"] = list(s.get("step", s.get("t")))
    if len(out["step"]) != len(out["deviation"]):
        raise FormatError(f"embedding history: {len(out['step'])} steps but {len(out['deviation'])} deviations")
    if "t" in s and "step" not in s:
        out.setdefault("xlabel", "t")
    return out


def trajectory_deviation(emb: Any, theta0: Any, X: Any, y: Any, *, steps: int = 200, lr: float = 0.1,
                         method: str = "gd", loss: str = "exp") -> dict[str, Any]:
    """``||theta~_k - T theta_k||`` along fixed-step iterates of the narrow and the wide network.

    The wide run starts at ``T theta0``; for gradient descent the deviation stays at rounding
    level (docs/math.md section 10); for sign descent or Adam it grows.  Returns a dict with ``step``,
    ``deviation``, ``relative`` (divided by ``||T theta_k||``) and ``method``.
    """
    from ..dynamics import iterates

    narrow = np.asarray(iterates(emb.net, np.asarray(theta0, dtype=np.float64), X, y, steps=steps, lr=lr,
                                 loss=loss, method=method))
    wide0 = emb.apply(np.asarray(theta0, dtype=np.float64))
    wide = np.asarray(iterates(emb.wide_net, wide0, X, y, steps=steps, lr=lr, loss=loss, method=method))
    mapped = emb.apply(narrow)
    dev = np.linalg.norm(wide - mapped, axis=1)
    rel = dev / np.maximum(np.linalg.norm(mapped, axis=1), 1e-300)
    return {"step": list(range(len(dev))), "deviation": dev.tolist(), "relative": rel.tolist(), "method": method,
            "title": f"Embedding under {method}: ||theta~_k - T theta_k||"}
