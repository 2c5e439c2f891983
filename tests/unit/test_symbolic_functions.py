"""The factor-pulling sympy functions (oracles: numbers, sympy's Max/Heaviside, finite differences)."""

from fractions import Fraction

import numpy as np
import pytest
import sympy as sp

from verifier.symbolic import clarke_interval, euler_rewrite, maxind, pmax, relu, step
from verifier.symbolic.functions import positive_part

c = sp.Symbol("c", positive=True)
a, b, z = sp.symbols("a b z", real=True)


def test_relu_pulls_positive_factors_so_homogeneity_cancels():
    assert relu(c * a + c * b) == c * relu(a + b)
    assert relu(c**2 * a) - c**2 * relu(a) == 0
    assert relu(-3 * c * a) == 3 * c * relu(-a)
    assert relu(relu(a)) == relu(a)  # relu(a) >= 0
    assert step(c * (a + b)) == step(a + b)
    assert pmax(c * a, c * b) == c * pmax(a, b)
    assert maxind(0, c * a, c * b) == maxind(0, a, b)


@pytest.mark.parametrize("v", [Fraction(-7, 3), Fraction(0), Fraction(5, 8), Fraction(11, 1)])
def test_numbers_evaluate_like_max_and_heaviside(v):
    r = sp.Rational(v.numerator, v.denominator)
    assert relu(r) == sp.Max(0, r)
    if r != 0:
        assert step(r) == sp.Heaviside(r)
    else:
        assert isinstance(step(r), step)  # Clarke: any s in [0, 1], left symbolic
    assert pmax(r, 2 * r, -r) == sp.Max(r, 2 * r, -r)


def test_rewrites_agree_with_sympy_forms_off_the_kink():
    e = relu(a - 2 * b)
    pts = [(1, 3), (5, 1), (-2, -3)]
    for pa, pb in pts:
        v = e.subs({a: pa, b: pb})
        assert v == e.rewrite(sp.Max).subs({a: pa, b: pb}) == e.rewrite(sp.Heaviside).subs({a: pa, b: pb})


def test_derivative_is_step_and_matches_finite_differences():
    e = b * relu(a * b - 1) + pmax(a, 2 * b)
    da = sp.diff(e, a)
    assert da.has(step) and da.has(maxind)
    f = sp.lambdify((a, b), e.rewrite(sp.Max), "math")
    for pa, pb in [(1.3, 2.1), (-0.7, 0.4), (3.0, -1.2)]:
        h = 1e-6
        fd = (f(pa + h, pb) - f(pa - h, pb)) / (2 * h)
        # evaluate the symbolic derivative at a point off every kink: step/maxind are numbers there
        val = float(da.subs({a: sp.nsimplify(pa), b: sp.nsimplify(pb)}))
        assert abs(val - fd) < 1e-6


def test_euler_rewrite_makes_eulers_identity_polynomial():
    e = b * relu(a) - pmax(a * b, b**2)  # homogeneous of degree 2
    eul = a * sp.diff(e, a) + b * sp.diff(e, b) - 2 * e
    assert sp.expand(euler_rewrite(eul)) == 0
    # and a non-homogeneous expression is caught
    bad = relu(a) + relu(b**2)
    eul_bad = a * sp.diff(bad, a) + b * sp.diff(bad, b) - 1 * bad
    assert sp.expand(euler_rewrite(eul_bad)) != 0


def test_positive_part_and_clarke_intervals():
    assert positive_part(-4 * c * a * b) == (4 * c, -a * b)
    assert clarke_interval("relu") == sp.Interval(0, 1)
    assert clarke_interval("abs") == sp.Interval(-1, 1)
    assert clarke_interval("leaky_relu", 0.25) == sp.Interval(sp.Rational(1, 4), 1)
    assert clarke_interval("leaky_relu", 2.0) == sp.Interval(1, 2)
    from verifier.errors import VerifierError

    with pytest.raises(VerifierError, match="no scalar kink"):
        clarke_interval("sigmoid")


def test_leaky_and_abs_clarke_reading():
    """relu(z) - a relu(-z) has derivative step(z) + a step(-z); reading step(-z) = 1 - s gives [a, 1]."""
    s = sp.Symbol("s")
    slope = sp.Rational(1, 4)
    d = sp.diff(relu(z) - slope * relu(-z), z)
    at_kink = d.subs({step(z): s, step(-z): 1 - s})
    vals = [at_kink.subs(s, v) for v in (0, 1)]
    assert sorted(vals) == [slope, 1]
    dabs = sp.diff(relu(z) + relu(-z), z).subs({step(z): s, step(-z): 1 - s})
    assert sorted(dabs.subs(s, v) for v in (0, 1)) == [-1, 1]
    assert np.isclose(float(d.subs(z, -1)), 0.25) and float(d.subs(z, 2)) == 1.0
