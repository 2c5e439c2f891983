"""Checkpoints of a torch model, checked one by one: ``verifier kkt --torch model.py:Net --checkpoint DIR``.

* :func:`load_model` -- ``"model.py:Net"`` -> an instance: the file is imported as a
  module and ``Net`` (a class or a factory function) is called without arguments;
* :func:`load_state_dict` -- ``torch.load(path, weights_only=True)`` (tensors and plain
  containers only: no code from the file is run), unwrapped from the usual
  containers (``{"state_dict": ...}`` of Lightning, ``{"model_state_dict": ...}``,
  ``{"model": ...}``) and from a key prefix (``module.`` of DataParallel, ``model.``
  of a LightningModule) when the model's own names then match;
* :func:`find_checkpoints` -- a file, a directory (``*.pt``, ``*.pth``, ``*.ckpt``) or a
  glob, sorted by the training step in the name (``ckpt_00100.pt``) or in the file;
* :func:`check_checkpoints` -- import the model once, then for each checkpoint load
  the weights, read them as float64 and run :func:`verifier.check_kkt`.
"""

from __future__ import annotations

import glob as _glob
import importlib.util
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from ..errors import FormatError
from ..importers._common import require

#: checkpoint suffixes collected from a directory
SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
#: refuse to check more checkpoints than this in one call (a glob gone wrong)
MAX_CHECKPOINTS = 10_000
_WRAPPERS = ("state_dict", "model_state_dict", "model", "net", "params")
_STEP_KEYS = ("global_step", "step", "iteration", "epoch")


def load_model(spec: str) -> Any:
    """``"path/model.py:Net"`` -> ``Net()`` (a ``torch.nn.Module``); ``Net`` may be a class or a factory."""
    torch = require("torch", "torch")
    if ":" not in spec:
        raise FormatError(f"--torch {spec!r} must be FILE.py:NAME, e.g. model.py:Net (a class or a function "
                          "returning a torch.nn.Module, called without arguments)")
    path_s, name = spec.rsplit(":", 1)
    path = Path(path_s)
    if not path.is_file() or path.suffix != ".py":
        raise FormatError(f"--torch {spec!r}: {path_s!r} is not a Python file")
    mod_name = f"_verifier_user_model_{abs(hash(str(path.resolve())))}"
    try:
        s = importlib.util.spec_from_file_location(mod_name, path)
        assert s is not None and s.loader is not None
        mod = importlib.util.module_from_spec(s)
        sys.modules[mod_name] = mod
        s.loader.exec_module(mod)
    except Exception as e:  # noqa: BLE001 - the user's file failed to import
        raise FormatError(f"--torch {spec!r}: importing {path_s!r} failed: {type(e).__name__}: {e}") from None
    obj = getattr(mod, name, None)
    if obj is None:
        have = sorted(k for k, v in vars(mod).items() if isinstance(v, type) and issubclass(v, torch.nn.Module))
        raise FormatError(f"--torch {spec!r}: {path_s!r} defines no {name!r} (torch modules in it: {have})")
    try:
        model = obj()
    except Exception as e:  # noqa: BLE001
        raise FormatError(f"--torch {spec!r}: {name}() failed: {type(e).__name__}: {e}; it must be callable "
                          "without arguments (write a small factory function if it needs some)") from None
    if not isinstance(model, torch.nn.Module):
        raise FormatError(f"--torch {spec!r}: {name}() returned {type(model).__name__}, not a torch.nn.Module")
    return model.eval()


def _torch_load(path: Path, torch) -> Any:
    if not path.is_file():
        raise FormatError(f"checkpoint {str(path)!r} does not exist")
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - pickle errors, zip errors, unsafe globals
        msg = re.sub(r"\x1b\[[0-9;]*m", "", str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__)
        if "Weights only load failed" in msg:
            msg = "it holds pickled Python objects (a whole model saved with torch.save(model)?)"
        raise FormatError(
            f"checkpoint {str(path)!r} cannot be read with torch.load(weights_only=True): {msg[:200]}; save the "
            "weights with torch.save(model.state_dict(), path) (a whole pickled model is not loaded: it would run "
            "code from the file)"
        ) from None


def _is_state_dict(d: Any, torch) -> bool:
    return isinstance(d, Mapping) and len(d) > 0 and all(isinstance(v, torch.Tensor) for v in d.values())


def load_state_dict(path: str | Path, model: Any) -> tuple[dict[str, Any], int | None]:
    """``(state dict keyed by the model's names, step or None)`` from a checkpoint file."""
    torch = require("torch", "torch")
    p = Path(path)
    obj = _torch_load(p, torch)
    step = None
    if isinstance(obj, Mapping):
        for k in _STEP_KEYS:
            v = obj.get(k)
            if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
                step = int(v)
                break
    sd = obj
    if not _is_state_dict(sd, torch) and isinstance(obj, Mapping):
        for k in _WRAPPERS:
            if _is_state_dict(obj.get(k), torch):
                sd = obj[k]
                break
    if not _is_state_dict(sd, torch):
        what = f"a dict with keys {list(obj)[:8]}" if isinstance(obj, Mapping) else type(obj).__name__
        raise FormatError(f"checkpoint {str(p)!r} holds {what}, not a state dict {{name: tensor}} (nor one under "
                          f"{list(_WRAPPERS)}); save it with torch.save(model.state_dict(), path)")
    want = set(model.state_dict())
    sd = dict(sd)
    if not want <= set(sd):
        for prefix in ("module.", "model.", "net.", "_orig_mod."):
            stripped = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
            if want <= set(stripped):
                sd = stripped
                break
    missing = sorted(want - set(sd))
    if missing:
        raise FormatError(f"checkpoint {str(p)!r} lacks the model's tensor(s) {missing[:6]}"
                          f"{' ...' if len(missing) > 6 else ''} (it has {sorted(sd)[:6]}); is it a checkpoint "
                          f"of this model ({type(model).__name__})?")
    return {k: sd[k] for k in want}, step


def _step_from_name(p: Path) -> int | None:
    nums = re.findall(r"\d+", p.stem)
    return int(nums[-1]) if nums else None


def find_checkpoints(spec: str | Path) -> list[Path]:
    """A file, a directory (its ``*.pt/*.pth/*.ckpt/*.bin``) or a glob; sorted by the step in the name."""
    s = str(spec)
    p = Path(s)
    if p.is_file():
        return [p]
    if p.is_dir():
        files = [f for f in p.iterdir() if f.is_file() and f.suffix in SUFFIXES]
        where = f"folder {s!r} has no checkpoint files ({', '.join('*' + x for x in SUFFIXES)})"
    elif any(c in s for c in "*?["):
        files = [Path(f) for f in _glob.glob(s) if Path(f).is_file()]
        where = f"the pattern {s!r} matches no file"
    else:
        raise FormatError(f"--checkpoint {s!r} is not a file, a folder or a glob pattern")
    if not files:
        raise FormatError(where)
    if len(files) > MAX_CHECKPOINTS:
        raise FormatError(f"--checkpoint {s!r} matches {len(files)} files; at most {MAX_CHECKPOINTS} are checked")

    def key(f: Path) -> tuple[int, int, str]:
        k = _step_from_name(f)
        return (0 if k is not None else 1, k or 0, f.name)

    return sorted(files, key=key)


@dataclass
class CheckpointRow:
    """One checked checkpoint: the file, its step (from the file or its name), the report and the cost."""

    path: str
    step: int | None
    report: Any
    seconds: float
    source_dtype: str = "float64"
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self, full: bool = False) -> dict[str, Any]:
        d = self.report.to_dict()
        if not full:
            d.pop("theta_hat", None)
        return {"checkpoint": self.path, "step": self.step, "seconds": round(self.seconds, 4), **d}

    def csv_row(self) -> dict[str, Any]:
        r = self.report
        return {"checkpoint": self.path, "step": self.step, "verdict": r.verdict, "min_margin": r.min_margin,
                "normalized_margin": r.normalized_margin, "eps": r.eps, "eps_rel": r.eps_rel, "delta": r.delta,
                "delta_rel": r.delta_rel, "delta_max": r.delta_max,
                "support_size": None if r.support is None else len(r.support),
                "source_dtype": self.source_dtype, "seconds": round(self.seconds, 4)}


def check_checkpoints(model: Any, paths: Iterable[str | Path], X: Any, y: Any, **kkt_options: Any) -> list[CheckpointRow]:
    """Import ``model`` once, then check every checkpoint in ``paths`` (see :func:`verifier.check_kkt`)."""
    torch = require("torch", "torch")
    import copy

    from ..importers import from_torch
    from ..kkt import check_kkt
    from .monitor import read_params

    files = [Path(p) for p in paths]
    Xa = np.asarray(X, dtype=np.float64)
    rows: list[CheckpointRow] = []
    net = None
    for p in files:
        t0 = time.perf_counter()
        sd, step = load_state_dict(p, model)
        try:
            model.load_state_dict(sd, strict=False)
        except RuntimeError as e:
            first = str(e).strip().splitlines()
            raise FormatError(f"checkpoint {str(p)!r} does not fit the model {type(model).__name__}: "
                              f"{' '.join(first[:2])[:300]}") from None
        if net is None:  # the graph once, from the first checkpoint's weights
            net, _ = from_torch(copy.deepcopy(model).eval(), torch.as_tensor(Xa[: min(8, len(Xa))]))
        params, dtype = read_params(model, net.param_names)
        rep = check_kkt(net, params, Xa, y, **kkt_options)
        rep.note_source_dtype(dtype)
        rows.append(CheckpointRow(str(p), step if step is not None else _step_from_name(p), rep,
                                  time.perf_counter() - t0, dtype))
    return rows


__all__ = ["CheckpointRow", "MAX_CHECKPOINTS", "SUFFIXES", "check_checkpoints", "find_checkpoints", "load_model",
           "load_state_dict"]
