"""verifier.embed.ratios.parse_ratio: which Python/numpy values are read as which exact ratio."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
import sympy as sp

from verifier.embed.ratios import parse_ratio, parse_ratios
from verifier.errors import EmbeddingError


@pytest.mark.parametrize("value, exact", [
    (np.int64(3), Fraction(3)),
    (np.float64(0.6), Fraction(3, 5)),   # read as the decimal it prints as (numpy 2 repr was rejected)
    (np.float32(0.5), Fraction(1, 2)),
    (Decimal("0.6"), Fraction(3, 5)),
    (Decimal(-2), Fraction(-2)),
    (Decimal("0.12345678901234567891"), Fraction(12345678901234567891, 10 ** 20)),   # exactly, not via float
    (np.uint8(200), Fraction(200)),
    (2 ** 70 + 1, Fraction(2 ** 70 + 1)),
    (Fraction(4, 5), Fraction(4, 5)),
    (7, Fraction(7)),
])
def test_real_scalars_are_read_exactly(value, exact):
    """Oracle: the Fraction written by hand; compared exactly as sympy rationals."""
    assert parse_ratio(value) == sp.Rational(exact.numerator, exact.denominator)


@pytest.mark.parametrize("value", [
    np.complex128(1 + 2j),   # int()/float() of a numpy complex silently dropped the 2j (parsed as 1)
    np.complex64(0.5 + 0j),
    1 + 2j,
    0.5 + 0j,
    True,
    float("nan"),
    np.float32("inf"),
    Decimal("NaN"),
    Decimal("-Infinity"),
])
def test_complex_bool_and_non_finite_are_rejected_with_one_line(value):
    with pytest.raises(EmbeddingError, match=r"^ratio=.* is not a number") as e:
        parse_ratio(value)
    assert "\n" not in str(e.value)


def test_parse_ratios_takes_a_numpy_array_and_rejects_a_complex_item():
    assert parse_ratios(np.array([0.6, 0.8])) == (sp.Rational(3, 5), sp.Rational(4, 5))
    with pytest.raises(EmbeddingError, match=r"ratios\[0\]"):
        parse_ratios([np.complex128(1 + 2j), "1/2"])
