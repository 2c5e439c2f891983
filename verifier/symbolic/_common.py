"""Shared pieces of the symbolic layer: limits, time budget, exact number tests."""

from __future__ import annotations

import signal
import threading
import time
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
import sympy as sp

from ..errors import VerifierError

_X = sp.Dummy("x")


class SymbolicLimitError(VerifierError):
    """The problem is too large for symbolic work; the message names the size, the limit and how to raise it."""


class TimeBudgetError(VerifierError):
    """A symbolic computation ran out of its time budget; the message says how far it got."""


class UndecidedError(VerifierError):
    """An exact test could not be decided (e.g. a number sympy cannot show to be algebraic)."""


def check_limit(what: str, value: int, limit: int | None, keyword: str, hint: str = "") -> None:
    """Raise :class:`SymbolicLimitError` when ``value > limit`` (``limit=None`` disables the check)."""
    if limit is not None and value > limit:
        extra = f"; {hint}" if hint else ""
        raise SymbolicLimitError(
            f"{what} is {value}, above the limit {keyword}={limit} for exact symbolic work; "
            f"pass {keyword}={value} (or None; CLI --{keyword.replace('_', '-')}) to raise it{extra}"
        )


def to_rational(v: Any) -> sp.Expr:
    """A float as the rational sympy prints for it (``0.1 -> 1/10``), like the core's ``symbolic_forward``."""
    if isinstance(v, sp.Basic):
        return v
    if isinstance(v, (int, np.integer)):
        return sp.Integer(int(v))
    return sp.nsimplify(float(v), rational=True)


class _Deadline(Exception):
    pass


class Budget:
    """Wall-clock budget.  ``check()`` raises :class:`TimeBudgetError`; ``guard()`` interrupts a long sympy call.

    Interruption uses ``SIGALRM`` and only works in the main thread when no
    other interval timer is running; otherwise the budget is checked between
    steps only.
    """

    def __init__(self, seconds: float | None, what: str):
        self.seconds = seconds
        self.what = what
        self.start = time.monotonic()
        self.progress = ""

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def remaining(self) -> float | None:
        return None if self.seconds is None else self.seconds - self.elapsed

    def error(self) -> TimeBudgetError:
        done = f" after {self.progress}" if self.progress else ""
        return TimeBudgetError(
            f"{self.what} stopped at its time budget of {self.seconds:g} s{done}; "
            f"pass a larger time_budget (or None for no limit) or shrink the problem"
        )

    def check(self) -> None:
        r = self.remaining()
        if r is not None and r <= 0:
            raise self.error()

    @contextmanager
    def guard(self) -> Iterator[None]:
        r = self.remaining()
        use_alarm = (threading.current_thread() is threading.main_thread()
                     and hasattr(signal, "setitimer") and signal.getitimer(signal.ITIMER_REAL)[0] == 0)
        if r is None or not use_alarm:
            yield
            return
        if r <= 0:
            raise self.error()

        def handler(signum: int, frame: Any) -> None:
            raise _Deadline()

        old = signal.signal(signal.SIGALRM, handler)
        signal.setitimer(signal.ITIMER_REAL, max(r, 1e-3))
        try:
            yield
        except _Deadline:
            raise self.error() from None
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, old)


_NONFINITE = (sp.nan, sp.zoo, sp.oo, -sp.oo)


def is_finite_expr(e: Any) -> bool:
    """False when ``e`` contains ``nan``, ``zoo`` or an infinity (a degenerate sympy solution)."""
    return not sp.sympify(e).has(*_NONFINITE)


def _check_finite(e: sp.Expr, what: str) -> None:
    if not is_finite_expr(e):
        raise UndecidedError(f"{what}: {e} is not a finite number (a degenerate solution of sympy)")


def _approx(e: sp.Expr, prec: int = 30) -> tuple[Any, Any] | None:
    try:
        v = sp.N(e, prec, chop=False)
        re, im = v.as_real_imag()
        if not (re.is_Number and im.is_Number) or re is sp.nan or im is sp.nan or not (re.is_finite and im.is_finite):
            return None
        return re, im
    except (TypeError, ValueError, ArithmeticError):  # pragma: no cover
        return None


#: A number whose 30-digit approximation exceeds this in absolute value is certainly non-zero.
_CLEAR = sp.Float("1e-12")


def is_zero(e: Any) -> bool:
    """Exact zero test for an algebraic number; raises :class:`UndecidedError` when it cannot decide.

    A number whose 30-digit value is far from 0 is non-zero; otherwise the
    minimal polynomial decides (it is ``x`` exactly for 0).

    >>> is_zero(sp.sqrt(8) - 2 * sp.sqrt(2)), is_zero(sp.sqrt(2) - sp.Rational(99, 70))
    (True, False)
    """
    e = sp.sympify(e)
    if e.is_Rational:
        return e == 0
    _check_finite(e, "is_zero")
    e2 = sp.expand(e)
    if e2.is_Rational:
        return e2 == 0
    if e2.free_symbols:
        raise UndecidedError(f"is_zero: {e2} is not a number (free symbols {sorted(map(str, e2.free_symbols))})")
    a = _approx(e2)
    if a is not None and (abs(a[0]) > _CLEAR or abs(a[1]) > _CLEAR):
        return False
    try:
        return sp.minimal_polynomial(e2, _X) == _X
    except (NotImplementedError, sp.polys.polyerrors.NotAlgebraic, sp.polys.polyerrors.PolynomialError) as exc:
        raise UndecidedError(f"is_zero: cannot decide whether {e2} is 0 ({type(exc).__name__})") from None


def sign(e: Any) -> int:
    """Exact sign (-1, 0, 1) of a real algebraic number; raises :class:`UndecidedError` if not real/undecidable.

    Zero is decided by the minimal polynomial; a non-zero number's sign by
    numerical evaluation at increasing precision until it is far from 0.

    >>> sign(sp.sqrt(2) - sp.Rational(141421356, 10**8)), sign(sp.sqrt(8) - 2 * sp.sqrt(2))
    (1, 0)
    """
    e = sp.sympify(e)
    if e.is_Rational:
        return int(sp.sign(e))
    _check_finite(e, "sign")
    a = _approx(e)
    if a is not None and abs(a[1]) > _CLEAR and abs(a[1]) > abs(a[0]) * sp.Float("1e-20"):
        raise UndecidedError(f"sign: {e} is not real (about {a[0]} + {a[1]}*I)")
    if a is not None and abs(a[0]) > _CLEAR:
        return 1 if a[0] > 0 else -1
    if is_zero(e):
        return 0
    for prec in (60, 200, 600):
        a = _approx(e, prec)
        if a is None:
            break
        tol = sp.Float(10) ** (-(prec // 2))
        if abs(a[1]) > tol:
            raise UndecidedError(f"sign: {e} is not real (about {a[0]} + {a[1]}*I)")
        if abs(a[0]) > tol:
            return 1 if a[0] > 0 else -1
    raise UndecidedError(f"sign: cannot decide the sign of {e} (non-zero but below 1e-300)")


def is_real(e: Any) -> bool:
    """Exact test that an algebraic number is real (its imaginary part is 0).

    Raises :class:`UndecidedError` (never ``TypeError``) on ``nan``/``zoo``.

    >>> is_real(sp.sqrt(2) - 1), is_real(sp.sqrt(-2))
    (True, False)
    """
    e = sp.sympify(e)
    _check_finite(e, "is_real")
    if e.is_extended_real:
        return True
    if e.is_extended_real is False:
        return False
    a = _approx(e)
    if a is not None and abs(a[1]) > _CLEAR:
        return False
    im = sp.im(sp.expand_complex(e))
    return is_zero(im)
