"""Split ratios: parsing to exact sympy numbers and the exact identities they must satisfy.

Ratios may be given as strings (``"3/5"``, ``"1/sqrt(2)"``, ``"0.6"``), ints,
:class:`fractions.Fraction`, :class:`decimal.Decimal` (read exactly), sympy numbers or
floats (numpy scalars included); Python and numpy complex numbers are rejected, even with
a zero imaginary part.  A float is read as the decimal number it prints as (``0.6`` means
``3/5``), so ``[0.6, 0.8]`` is the exact isometric split ``(3/5, 4/5)``; ratios like
``1/sqrt(2)`` must be given as strings to be exact.

>>> parse_ratios("3/5,4/5")
(3/5, 4/5)
>>> parse_ratios(["1/sqrt(2)", 0.5, "1/2"])
(sqrt(2)/2, 1/2, 1/2)
>>> is_zero(sum(r**2 for r in parse_ratios(["1/sqrt(2)", "1/2", "1/2"])) - 1)
True
"""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction
from numbers import Integral, Number, Real
from typing import Any, Iterable, Sequence

import sympy as sp

from ..errors import EmbeddingError


_ALLOWED = set("0123456789./*+-()^ eE")


def parse_ratio(value: Any, *, where: str = "ratio") -> sp.Expr:
    """One ratio as an exact sympy number (see the module docstring)."""
    if isinstance(value, bool):
        raise EmbeddingError(f"{where}={value!r} is not a number; give e.g. '3/5' or '1/sqrt(2)'")
    try:
        if isinstance(value, sp.Basic):
            out = sp.sympify(value)
        elif isinstance(value, Fraction):
            out = sp.Rational(value.numerator, value.denominator)
        elif isinstance(value, Integral):  # int, numpy integers
            out = sp.Integer(int(value))
        elif isinstance(value, Decimal):  # exactly (NaN and infinities raise)
            out = sp.Rational(*value.as_integer_ratio())
        elif isinstance(value, Real):  # float, numpy floats (not Number: a numpy complex's float() drops its imag part)
            f = float(value)
            if not math.isfinite(f):
                raise ValueError
            out = sp.Rational(repr(f))  # float(): numpy 2 reprs np.float64 as "np.float64(0.6)"
        elif isinstance(value, str):
            text = value.strip()
            # only numbers, + - * / ^ ( ) and sqrt: never hand arbitrary text to sympify (it evaluates it)
            if not text or set(text.replace("sqrt", "")) - _ALLOWED:
                raise ValueError
            out = sp.sympify(text, rational=True)
        else:
            raise ValueError
    except (ValueError, TypeError, sp.SympifyError, SyntaxError, OverflowError):
        raise EmbeddingError(
            f"{where}={value!r} is not a number; give e.g. '3/5', '1/sqrt(2)', 0.6"
        ) from None
    if out.free_symbols or not out.is_number or out.is_real is False or not out.is_finite:
        raise EmbeddingError(f"{where}={value!r} is not a finite real number; give e.g. '3/5', '1/sqrt(2)'")
    return sp.nsimplify(out) if isinstance(out, sp.Float) else out


def parse_ratios(values: Any, *, where: str = "ratios", positive: bool = True) -> tuple[sp.Expr, ...]:
    """A list of ratios (or one comma-separated string) as exact sympy numbers, each ``> 0``."""
    if isinstance(values, str):
        items: Sequence[Any] = [v for v in values.split(",")]
    elif isinstance(values, (sp.Basic, Number)):
        items = [values]
    else:
        try:
            items = list(values)
        except TypeError:
            raise EmbeddingError(f"{where}={values!r} must be a list of numbers such as ['3/5', '4/5']") from None
    if not items:
        raise EmbeddingError(f"{where} is empty; give at least one ratio, e.g. ['3/5', '4/5']")
    out = tuple(parse_ratio(v, where=f"{where}[{i}]") for i, v in enumerate(items))
    if positive:
        for i, r in enumerate(out):
            if not bool(r.is_positive):
                raise EmbeddingError(f"{where}[{i}]={items[i]!r} is not positive; split ratios must be > 0")
    return out


def is_zero(expr: sp.Expr) -> bool:
    """Exact test ``expr == 0`` for numbers built from rationals and radicals.

    Returns ``False`` when sympy cannot decide (never a float guess).
    """
    e = sp.sympify(expr)
    if e.is_Rational:
        return e == 0
    e = sp.nsimplify(sp.radsimp(sp.expand(e))) if e.has(sp.Float) else sp.radsimp(sp.expand(e))
    if e == 0:
        return True
    s = sp.simplify(e)
    if s == 0:
        return True
    return bool(s.equals(0))


def fmt(value: sp.Expr) -> str:
    """Short exact text of a number, with a float in brackets when irrational."""
    v = sp.sympify(value)
    if v.is_Rational:
        return str(v)
    return f"{v} (~{float(v):.6g})"


def fmt_tuple(values: Iterable[sp.Expr]) -> str:
    return "(" + ", ".join(str(v) for v in values) + ")"


def to_fraction(value: sp.Expr) -> Fraction | None:
    """An exact :class:`Fraction` for a rational sympy number, else ``None``."""
    v = sp.sympify(value)
    if v.is_Rational:
        return Fraction(int(v.p), int(v.q))
    return None
