"""Issue 13, items 1 and 2: the symbolic solver misses no boundary KKT point and never crashes.

Oracles: closed forms worked out by hand (the dead-unit point
``theta* = (2^-1/4, 2^-1/4, 0, 0, 2^1/4, 0)`` with ``||theta||^2 = 2 sqrt 2``;
the kink point ``a = sqrt(5)/2``, ``W1 = a[[4/5,-3/5],[0,1]]``, ``W2 = [a,-a]``,
``lambda = (5/4, 5/4)``, selection ``3/5``), the numeric ``check_kkt`` at
tolerance 1e-9, a multi-start SLSQP minimisation of ``||theta||^2`` subject to
``q >= 1`` (brute force for the global minimum), and a lex Groebner basis.
"""

import numpy as np
import pytest
import sympy as sp
from scipy.optimize import minimize

import verifier
from verifier.symbolic import kkt_system, solve_kkt
from verifier.symbolic._common import UndecidedError, is_real, is_zero, sign
from verifier.symbolic.kkt import _solve_system

E12 = np.array([[1.0, 0.0], [0.0, 1.0]])


def _min_norm_sq_bruteforce(net, X, y, starts=12, seed=0):
    """min ||theta||^2 s.t. q_i(theta) >= 1 by SLSQP from random starts (independent of the symbolic layer)."""
    rng = np.random.default_rng(seed)
    best = np.inf
    for _ in range(starts):
        t0 = rng.normal(size=net.num_params)
        cons = [{"type": "ineq", "fun": lambda t, i=i: verifier.margins(net, t, X, y)[i] - 1} for i in range(len(y))]
        res = minimize(lambda t: t @ t, t0, constraints=cons, method="SLSQP", options={"ftol": 1e-12, "maxiter": 500})
        if res.success and verifier.margins(net, res.x, X, y).min() >= 1 - 1e-7:
            best = min(best, float(res.x @ res.x))
    return best


@pytest.fixture(scope="module")
def dead_unit_solution():
    return solve_kkt(verifier.mlp([2, 2, 1]), E12, np.array([1, 1]), time_budget=None)  # no wall-clock limit in tests


def test_dead_unit_global_minimum_is_found(dead_unit_solution):
    sol = dead_unit_solution
    r2, r4 = sp.root(2, 4), sp.sqrt(2)
    expected = [1 / r2, 1 / r2, 0, 0, r2, 0]
    swapped = [0, 0, 1 / r2, 1 / r2, 0, r2]
    thetas = [p.theta for p in sol.points]
    for want in (expected, swapped):
        assert any(all(is_zero(a - b) for a, b in zip(th, want)) for th in thetas), want
    mins = [p for p in sol.points if p.is_min_norm]
    assert len(mins) == 2 and all(is_zero(p.norm_sq - 2 * r4) for p in mins)
    # the ||theta||^2 = 4 points are KKT but not the minimum
    assert all(not p.is_min_norm for p in sol.points if is_zero(p.norm_sq - 4))
    assert sol.complete
    # the family's witness has the same norm (constant on the family) and is marked too
    assert all(f.witness.is_min_norm and is_zero(f.witness.norm_sq - 2 * r4) for f in sol.families)
    assert "2*sqrt(2)" in sol.stats["min_norm"]


def test_dead_unit_points_are_kkt_numerically_and_globally_minimal(dead_unit_solution):
    net = verifier.mlp([2, 2, 1])
    y = np.array([1, 1])
    for p in dead_unit_solution.points:
        r = verifier.check_kkt(net, p.theta_float(), E12, y, tol=1e-9)
        assert r.verdict == "kkt", (p.theta, r.eps_rel)
    best = min(float(sp.N(p.norm_sq)) for p in dead_unit_solution.points)
    assert best == pytest.approx(2 * np.sqrt(2), rel=1e-12)
    assert _min_norm_sq_bruteforce(net, E12, y) == pytest.approx(2 * np.sqrt(2), rel=1e-6)


def test_a_family_endpoint_outside_its_conditions_is_not_absorbed(dead_unit_solution):
    """The family W2_0_1 > 0 has the dead-unit point as its closure: membership must check the conditions."""
    from verifier.symbolic.kkt import _on_family

    sol = dead_unit_solution
    fam = sol.families[0]
    dead = [p for p in sol.points if is_zero(p.theta[5])]
    assert dead and not _on_family(dead[0], fam)
    assert _on_family(fam.witness, fam)


def test_nan_never_reaches_a_comparison():
    for f in (is_real, is_zero, sign):
        with pytest.raises(UndecidedError):
            f(sp.nan)
        with pytest.raises(UndecidedError):
            f(sp.zoo + sp.sqrt(2))


def test_kink_point_of_the_nan_case_is_found_in_its_region():
    """The region with the two kinks (x0: + 0; x1: 0 +) holds the KKT point of the issue, selection 3/5."""
    net = verifier.mlp([2, 2, 1])
    X = np.array([[1.0, 0.0], [0.6, 0.8]])
    y = np.array([1, -1])
    system = kkt_system(net, X, y)
    reg = system.region([("+", "0"), ("0", "+")])
    eqs, unk = reg.equations((0, 1))
    sols = _solve_system(eqs, unk)
    a = sp.sqrt(5) / 2
    want = [a * sp.Rational(4, 5), -a * sp.Rational(3, 5), 0, a, a, -a]
    hit = [s for s in sols if all(is_zero(s[t] - w) for t, w in zip(system.theta, want))]
    assert len(hit) == 1
    s = hit[0]
    assert [s[l] for l in system.lambdas] == [sp.Rational(5, 4), sp.Rational(5, 4)]
    assert sorted(str(v) for k, v in s.items() if str(k).startswith("s_")) == ["3/5", "3/5"]
    r = verifier.check_kkt(net, np.array([float(w) for w in want]), X, y, tol=1e-9)
    assert r.verdict == "kkt"



def test_min_norm_is_not_claimed_when_a_family_norm_varies(dead_unit_solution):
    """A family whose norm depends on its free symbol: no point may be marked as the minimum."""
    import dataclasses

    from verifier.symbolic.kkt import _mark_min_norm

    sol = dead_unit_solution
    fam = sol.families[0]
    f = fam.free[0]
    varying = dataclasses.replace(fam, theta=[f] + [sp.Integer(0)] * (len(fam.theta) - 1))
    assert varying.norm_sq_expr() == f**2
    points = [dataclasses.replace(p) for p in sol.points]
    note = _mark_min_norm(points, [varying])
    assert note.startswith("not decided") and not any(p.is_min_norm for p in points)
    # with the real (constant-norm) family the dead-unit points are the minimum again
    note = _mark_min_norm(points, [fam])
    assert "2*sqrt(2)" in note and sum(p.is_min_norm for p in points) == 2
