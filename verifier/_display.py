"""One display helper for numbers in text output (tables, report lines, check lines).

>>> from fractions import Fraction
>>> fmt_number(0.000123456), fmt_number(None), fmt_number(float("inf")), fmt_number(Fraction(1, 3))
('0.0001235', '-', 'inf', '1/3')
>>> fmt_number(2.0, ".6f", sign=True), fmt_number(12345678.9, ".3g")
('+2.000000', '1.23e+07')
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any


def fmt_number(x: Any, spec: str = ".4g", *, sign: bool = False, missing: str = "-") -> str:
    """``x`` for a human reader: ``missing`` for ``None``, ``inf``/``-inf``/``nan`` as such, exact rationals
    (``Fraction``, sympy numbers) as ``p/q``, integers as integers, other numbers with the format ``spec``
    (``sign=True`` prefixes ``+`` to non-negative numbers)."""
    if x is None:
        return missing
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, Fraction):
        return str(x.numerator) if x.denominator == 1 else f"{x.numerator}/{x.denominator}"
    if type(x).__module__.startswith("sympy"):
        return str(x)
    if isinstance(x, int):
        return f"{x:+d}" if sign else str(x)
    try:
        f = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(f):
        return "nan"
    if math.isinf(f):
        return "inf" if f > 0 else "-inf"
    return format(f, ("+" if sign else "") + spec)
