"""Reading the files the CLI takes: network JSON, parameter ``.npz``, data ``.npz``.

* network: the JSON format of :meth:`verifier.Network.to_json`;
* parameters: an ``.npz`` keyed by parameter name (``W1``, ``W2``, ...);
* data: an ``.npz`` with arrays ``X`` (``(n, d)`` or ``(n, C, H, W)``) and ``y``
  (``+-1`` for one output unit, class indices ``0..C-1`` otherwise).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from .errors import FormatError
from .graph import Network


def load_network(path: str | Path) -> Network:
    return Network.from_json(Path(path))


def _load_npz(path: str | Path, what: str) -> dict[str, np.ndarray]:
    p = Path(path)
    if not p.exists():
        raise FormatError(f"{what} file {str(p)!r} does not exist")
    try:
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise FormatError(f"{what} file {str(p)!r} is not a readable .npz archive ({type(e).__name__}: {e})") from None


def load_params(path: str | Path, net: Network) -> dict[str, np.ndarray]:
    """Parameters from an ``.npz`` keyed by tensor name, validated against ``net``."""
    return net.check_params(_load_npz(path, "parameter"), where=str(path))


def save_params(path: str | Path, params: dict[str, Any]) -> None:
    np.savez(Path(path), **{k: np.asarray(v, dtype=np.float64) for k, v in params.items()})


def load_data(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` from an ``.npz`` with arrays ``X`` and ``y`` (validated later against a network)."""
    d = _load_npz(path, "data")
    missing = [k for k in ("X", "y") if k not in d]
    if missing:
        raise FormatError(f"data file {str(path)!r} lacks array(s) {missing}; it must hold arrays 'X' and 'y' (has {sorted(d)})")
    return d["X"], d["y"]


def save_data(path: str | Path, X: np.ndarray, y: np.ndarray) -> None:
    np.savez(Path(path), X=np.asarray(X, dtype=np.float64), y=np.asarray(y))
