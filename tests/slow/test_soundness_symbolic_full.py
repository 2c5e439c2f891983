"""Issue 13, item 2, end to end (about 20 s per data set): solve_kkt on the data that crashed with NaN.

Oracle: the closed-form KKT point of the issue (a = sqrt(5)/2, W1 = a[[4/5,-3/5],[0,1]],
W2 = [a,-a], lambda = (5/4,5/4), selection 3/5) and the numeric check_kkt.
"""

import numpy as np
import pytest
import sympy as sp

import verifier
from verifier.symbolic import kkt_system, solve_kkt
from verifier.symbolic.kkt import _solve_system
from verifier.symbolic._common import is_zero


@pytest.mark.slow
@pytest.mark.parametrize("scale", [1, 5])
def test_nan_case_finds_the_kink_point(scale):
    X = np.array([[1.0, 0.0], [0.6 * scale, 0.8 * scale]])
    y = np.array([1, -1])
    net = verifier.mlp([2, 2, 1])
    sol = solve_kkt(net, X, y, time_budget=None)  # no wall-clock limit in tests
    a = sp.sqrt(5) / 2
    # unit 0 serves x0 and sits at its kink on x1 (4/5*3/5 - 3/5*4/5 = 0); unit 1 serves x1
    hits = [p for p in sol.points if all(is_zero(u - v) for u, v in zip(p.theta[:3], [a * sp.Rational(4, 5), -a * sp.Rational(3, 5), 0]))]
    assert hits, [p.theta for p in sol.points]
    p = hits[0]
    assert sorted(map(str, p.selections.values())) == ["3/5", "3/5"]
    if scale == 1:
        assert [str(t) for t in p.theta] == [str(v) for v in sp.Matrix([a * sp.Rational(4, 5), -a * sp.Rational(3, 5), 0, a, a, -a]).applyfunc(sp.radsimp)]
        assert p.multipliers == [sp.Rational(5, 4), sp.Rational(5, 4)]
    for q in sol.points:
        assert verifier.check_kkt(net, q.theta_float(), X, y, tol=1e-9).verdict == "kkt"
    assert sol.complete


@pytest.mark.slow
def test_degenerate_sympy_branch_is_resolved_from_the_groebner_basis():
    """sp.solve(check=False) returns a nan branch here; the retry gives finite solutions satisfying every equation."""
    net = verifier.mlp([2, 2, 1])
    X = np.array([[1.0, 0.0], [0.6, 0.8]])
    reg = kkt_system(net, X, np.array([1, -1])).region([("+", "+"), ("+", "+")])
    eqs, unk = reg.equations((0, 1))
    raw = sp.solve(eqs, unk, dict=True, simplify=False, check=False)
    assert any(sp.sympify(v).has(sp.nan, sp.zoo) for s in raw for v in s.values())  # the failure being fixed
    sols = _solve_system(eqs, unk)
    assert isinstance(sols, list) and sols
    for s in sols:
        assert all(not sp.sympify(v).has(sp.nan, sp.zoo) for v in s.values())
        # every solution satisfies the system (checked at two values of its free symbols, complex arithmetic)
        free = sorted(set().union(*(sp.sympify(v).free_symbols for v in s.values())) - set(s), key=str)
        for val in (sp.Rational(1, 3), sp.Rational(7, 5)):
            sub = {f: val for f in free}
            full = {u: sp.sympify(s.get(u, u)).xreplace(sub) for u in unk}
            assert all(abs(complex(sp.N(e.xreplace(full), 40))) < 1e-25 for e in eqs)
    # the Groebner basis (independent) says lambda_0 = lambda_1 and lambda_1^2 = 5/4 on the whole solution set
    G = sp.groebner(eqs, *unk, order="lex")
    lam0, lam1 = reg.lambdas
    assert lam0 - lam1 in G.exprs and lam1**2 - sp.Rational(5, 4) in G.exprs
    assert all(is_zero(sp.expand(s.get(lam1, lam1) ** 2 - sp.Rational(5, 4))) for s in sols)
