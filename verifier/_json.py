"""One conversion of results to JSON-safe values, shared by every report that writes JSON.

>>> import numpy as np
>>> jsonable({"a": np.arange(2), "b": np.float64("inf"), "c": (1, np.bool_(True))})
{'a': [0, 1], 'b': None, 'c': [1, True]}
>>> jsonable(float("nan"), nonfinite="str")
'nan'
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any, Mapping

import numpy as np


def jsonable(x: Any, *, nonfinite: str = "null", max_array: int | None = None) -> Any:
    """numpy arrays/scalars -> lists/Python numbers, mappings/sequences recursively, rationals and
    sympy numbers -> strings, anything else unknown -> ``str``.

    ``nonfinite``: ``"null"`` writes inf/nan as ``None`` (JSON has no inf/nan), ``"str"`` as
    ``"inf"``/``"nan"``.  ``max_array``: arrays with more entries become ``"<array [shape]>"``.
    """
    if nonfinite not in ("null", "str"):
        raise ValueError(f"nonfinite={nonfinite!r} must be 'null' or 'str'")
    kw = {"nonfinite": nonfinite, "max_array": max_array}
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
