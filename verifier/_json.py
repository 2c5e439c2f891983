"""JSON helpers shared by every file format except certificates: one conversion of results to JSON-safe
values (:func:`jsonable`), one reader (:func:`read_json`) and one header (:func:`header`, :func:`check_header`).

>>> import numpy as np
>>> jsonable({"a": np.arange(2), "b": np.float64("inf"), "c": (1, np.bool_(True))})
{'a': [0, 1], 'b': None, 'c': [1, True]}
>>> jsonable(float("nan"), nonfinite="str")
'nan'
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np


def jsonable(x: Any, *, nonfinite: str = "null", max_array: int | None = None) -> Any:
    """numpy arrays/scalars -> lists/Python numbers, mappings/sequences recursively, rationals and
    sympy numbers -> strings, anything else unknown -> ``str``.

    ``nonfinite``: ``"null"`` writes inf/nan as ``None`` (JSON has no inf/nan), ``"str"`` as
    ``"inf"``/``"nan"``.  ``max_array``: arrays with more entries become ``"<array [shape]>"``.
    """
    if nonfinite not in ("null", "str"):
        raise ValueError(f"nonfinite={nonfinite!r} must be 'null' or 'str'")
    kw: dict[str, Any] = {"nonfinite": nonfinite, "max_array": max_array}
    if x is None or isinstance(x, str):
        return x
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        f = float(x)
        if math.isfinite(f):
            return f
        return None if nonfinite == "null" else str(f)
    if isinstance(x, Mapping):
        return {str(k): jsonable(v, **kw) for k, v in x.items()}
    if isinstance(x, np.ndarray):
        if max_array is not None and x.size > max_array:
            return f"<array {list(x.shape)}>"
        return jsonable(x.tolist(), **kw)
    if isinstance(x, (list, tuple)):
        return [jsonable(v, **kw) for v in x]
    if isinstance(x, Fraction):
        return str(x)
    return str(x)


# -- reading JSON files and their headers (one helper for every file format but certificates) ----------------

#: largest JSON file read (bytes); a bigger file is refused before it is read
MAX_JSON_BYTES = 256 * 2**20


def read_json(path: str | Path, what: str, *, max_bytes: int = MAX_JSON_BYTES) -> Any:
    """Parse the JSON file ``path``; every failure is one :class:`~verifier.errors.FormatError` line naming
    ``what`` (``"network"``, ``"history"``, ...), the file and the reason (missing, too large, not UTF-8
    text, not JSON, nested too deeply).

    >>> read_json("/nonexistent/net.json", "network")
    Traceback (most recent call last):
    ...
    verifier.errors.FormatError: cannot read network file '/nonexistent/net.json': No such file or directory
    """
    from .errors import FormatError

    p = Path(path)
    where = f"{what} file {str(p)!r}"
    try:
        size = p.stat().st_size
        if p.is_dir():
            raise FormatError(f"{where} is a folder; give a JSON file")
        if size > max_bytes:
            raise FormatError(f"{where} has {size} bytes, more than the limit of {max_bytes} for a JSON file")
        raw = p.read_bytes()
    except OSError as e:
        raise FormatError(f"cannot read {where}: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        kind = " (it looks like a zip/.npz archive)" if raw[:2] == b"PK" else ""
        raise FormatError(f"{where} is not UTF-8 text{kind}: byte {e.start} cannot be decoded; "
                          "expected a JSON file") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise FormatError(f"{where} is not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None
    except RecursionError:
        raise FormatError(f"{where} is nested too deeply to be read") from None


def header(fmt: str, version: int, **meta: Any) -> dict[str, Any]:
    """The header every JSON file format of the verifier starts with: ``{"format", "version", "meta"}``.

    ``meta`` always holds the tool name and version and a UTC timestamp; ``meta`` keywords are added.

    >>> h = header("kkt-verifier/counterexample", 1, seed=0)
    >>> h["format"], h["version"], h["meta"]["seed"], h["meta"]["tool"].startswith("verifier ")
    ('kkt-verifier/counterexample', 1, 0, True)
    """
    from datetime import datetime, timezone

    from . import __version__

    return {"format": fmt, "version": version,
            "meta": {"tool": f"verifier {__version__}",
                     "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"), **meta}}


def check_header(doc: Any, fmt: str, versions: Sequence[int], *, where: str) -> int:
    """Check the ``format`` and ``version`` fields written by :func:`header`; return the version.

    >>> check_header({"format": "kkt-verifier/network", "version": 1}, "kkt-verifier/network", (1,), where="n.json")
    1
    >>> check_header({"format": "x", "version": 1}, "kkt-verifier/network", (1,), where="n.json")
    Traceback (most recent call last):
    ...
    verifier.errors.FormatError: n.json: field 'format' is 'x'; expected 'kkt-verifier/network'
    """
    from .errors import FormatError

    if not isinstance(doc, Mapping):
        raise FormatError(f"{where}: expected a JSON object with fields 'format' and 'version', got "
                          f"{type(doc).__name__}")
    if doc.get("format") != fmt:
        raise FormatError(f"{where}: field 'format' is {doc.get('format')!r}; expected {fmt!r}")
    v = doc.get("version")
    if isinstance(v, bool) or not isinstance(v, int) or v not in versions:
        raise FormatError(f"{where}: field 'version' is {v!r}; this verifier reads version(s) "
                          f"{', '.join(map(str, versions))}")
    return v
