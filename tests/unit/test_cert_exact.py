"""Exact integer tensors of the certificate checker against plain Python integers and Fractions."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from verifier.certificates import exact as E
from verifier.certificates.check import CertificateError, parse_rational
from verifier.certificates.produce import round_decimal, round_multipliers


def _rand_ints(rng, shape, bits):
    out = np.empty(shape, dtype=object)
    for idx in np.ndindex(shape):
        b = int(rng.integers(0, bits + 1))
        v = int(rng.integers(0, 2 ** 62)) << max(0, b - 62) if b > 62 else int(rng.integers(0, 2 ** max(b, 1)))
        out[idx] = -v if rng.random() < 0.5 else v
    return out


@pytest.mark.parametrize("bits", [1, 20, 53, 62, 63, 90, 200])
def test_imatmul_equals_python_integer_product(bits):
    # oracle: numpy's object-dtype dot, i.e. Python big-integer arithmetic
    rng = np.random.default_rng(bits)
    for n, k, m in [(7, 13, 9), (40, 64, 33), (3, 300, 5)]:
        A = _rand_ints(rng, (n, k), bits)
        B = _rand_ints(rng, (k, m), bits)
        got = E.imatmul(A, B, min_work=0)
        assert np.array_equal(got, A.dot(B))


def test_imatmul_extremes_and_int64_inputs():
    A = np.array([[2 ** 300, -(2 ** 300)], [-1, 0]], dtype=object)
    B = np.array([[2 ** 200 + 1, 3], [2 ** 200, -(2 ** 61)]], dtype=object)
    assert np.array_equal(E.imatmul(A, B, min_work=0), A.dot(B))
    a = np.arange(-12, 12, dtype=np.int64).reshape(4, 6)
    b = np.arange(18, dtype=np.int64).reshape(6, 3) * (2 ** 40)
    assert np.array_equal(E.imatmul(a, b, min_work=0), a.astype(object).dot(b.astype(object)))
    assert E.imatmul(E.zeros((3, 0)), E.zeros((0, 2))).tolist() == [[0, 0]] * 3


def test_from_float64_is_the_exact_value():
    rng = np.random.default_rng(0)
    x = rng.normal(size=400) * 10.0 ** rng.integers(-300, 300, 400)
    x[::9] = 0.0
    x[1], x[2], x[3] = 5e-324, -2.2250738585072014e-308, 1.7976931348623157e308
    q = E.from_float64(x.reshape(20, 20))
    for v, num in zip(x, q.num.ravel()):
        assert Fraction(int(num), q.den) == Fraction(float(v))
    short = E.from_float64(np.array([0.5, 1.5, -3.0]))
    assert short.den == 2 and short.num.tolist() == [1, 3, -6]


def test_parse_rational_forms_and_errors():
    assert parse_rational("3/5", "f") == Fraction(3, 5)
    assert parse_rational("-7", "f") == -7
    assert parse_rational("1.5e-3", "f") == Fraction(3, 2000)
    assert parse_rational(4, "f") == 4
    for bad in ("3/0", "abc", "0x1p-3", 0.5, True, None, "1/2/3"):
        with pytest.raises(CertificateError) as e:
            parse_rational(bad, "witnesses.multipliers[2]")
        assert "witnesses.multipliers[2]" in str(e.value)


def test_round_decimal_is_outward_and_exact():
    rng = np.random.default_rng(1)
    for _ in range(300):
        x = Fraction(int(rng.integers(-10 ** 12, 10 ** 12)), int(rng.integers(1, 10 ** 15)))
        for d in (1, 3, 6):
            up, down = Fraction(round_decimal(x, d, up=True)), Fraction(round_decimal(x, d, up=False))
            assert down <= x <= up
            if x != 0:
                assert (up - down) <= abs(x) * Fraction(10) ** (1 - d) * 2


def test_round_multipliers_share_a_power_of_two_denominator():
    lam = round_multipliers([0.3, 1e-20, 2.5, -1e-17])
    dens = {f.denominator for f in lam if f}
    assert all(d & (d - 1) == 0 for d in dens)  # powers of two
    assert lam[1] == 0 and lam[3] == 0  # below resolution / negative noise
    assert abs(float(lam[0]) - 0.3) < 1e-14 and lam[2] == Fraction(5, 2)


@pytest.mark.parametrize("seed", range(3))
def test_dyadic_limbs_and_lazy_tensors_are_exact(seed):
    # float64 data with exponents spread over ~2^-60..2^10; large enough (n k m > 300,000) for the limb
    # path, where the dyadic form's limbs come straight from (mantissa, shift) in int64
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(90, 70)) * 2.0 ** rng.integers(-60, 10, size=(90, 70))
    B = rng.normal(size=(70, 50)) * 2.0 ** rng.integers(-30, 5, size=(70, 50))
    A[0, :5] = 0.0
    B[3, 3] = -0.0
    qa, qb = E.from_float64(A), E.from_float64(B)
    assert qa._num is None and qb._num is None  # still lazy
    p = E.qmatmul(qa, qb)
    assert qa._num is None and qa._limbs  # the product did not need Python-int numerators
    # oracle: the numerators (checked against Fraction entry by entry) multiplied as Python ints
    assert [Fraction(int(v), qa.den) for v in qa.num.ravel()] == [Fraction(v) for v in A.ravel()]
    assert [Fraction(int(v), qb.den) for v in qb.num.ravel()] == [Fraction(v) for v in B.ravel()]
    ref = qa.num.dot(qb.num)
    assert p.den == qa.den * qb.den and np.array_equal(p.num, ref)
    rows = np.array([3, 3, 0, 89] * 20)
    qa2 = E.from_float64(A)
    E.qmatmul(qa2, qb)
    taken = qa2.take(rows)
    assert taken._limbs  # a row selection keeps the cached limbs
    assert np.array_equal(E.qmatmul(taken, qb).num, ref[rows])
    assert np.array_equal(qa.sign_mask(positive=True), A > 0) and np.array_equal(qa.zero_mask(), A == 0)
    assert np.array_equal(qa.T.num, qa.num.T)


def test_word_conversions_round_trip():
    vals = [0, 1, -1, 2 ** 63 - 1, -(2 ** 63), 2 ** 64, -(2 ** 64) - 5, 3 ** 90, -(7 ** 70)]
    a = np.array(vals, dtype=object)
    mag = np.abs(a)
    words = E.ints_to_words(mag, E.max_bits(mag))
    back = E.words_to_ints(np.concatenate([words, np.zeros((len(vals), 1), dtype=np.uint64)], axis=1))
    assert back.tolist() == [abs(v) for v in vals]
