"""KKT systems and exact KKT points.

Oracles: the numeric engine (margins, Jacobian), the numeric ``check_kkt`` of
``verifier.kkt`` at tolerance 1e-9, an independent SVM solve (scipy SLSQP on
the primal), closed forms worked out by hand, and the core's errors.
"""

import numpy as np
import pytest
import sympy as sp
from scipy.optimize import minimize

import verifier
from verifier.analysis.symbolic_eval import region_functions, symbolic_forward, param_symbols
from verifier.errors import DataError, NotHomogeneousError
from verifier.symbolic import SymbolicLimitError, TimeBudgetError, kkt_system, solve_kkt


def svm(X, y):
    """Hard-margin SVM without intercept: min 1/2||w||^2 s.t. y_i <w, x_i> >= 1 (SLSQP on the primal)."""
    cons = [{"type": "ineq", "fun": lambda w, i=i: y[i] * X[i] @ w - 1, "jac": lambda w, i=i: y[i] * X[i]}
            for i in range(len(y))]
    res = minimize(lambda w: 0.5 * w @ w, np.ones(X.shape[1]), jac=lambda w: w, constraints=cons, method="SLSQP",
                   options={"ftol": 1e-15, "maxiter": 500})
    assert res.success
    return res.x


def numeric_checks(net, point, X, y):
    """Every exact point passes the numeric check_kkt at 1e-9; smooth points also theta = J^T lambda (engine)."""
    theta = point.theta_float()
    r = verifier.check_kkt(net, theta, X, y, tol=1e-9)
    assert r.verdict == "kkt", (r.eps_rel, r.delta_rel)
    assert abs(r.min_margin - 1) < 1e-12
    assert abs(r.sum_multipliers - float(point.norm_sq) / float(verifier.degree(net))) < 1e-9
    if point.unique:
        assert np.allclose(r.multipliers, point.multipliers_float(), atol=1e-7)
    if not point.kinks:
        J = verifier.margin_jacobian(net, theta, X, y)
        assert np.allclose(theta, J.T @ point.multipliers_float(), atol=1e-12)
    assert np.allclose(verifier.margins(net, theta, X, y), [float(q) for q in point.margins], atol=1e-12)
    assert point.euler_ok


# ----------------------------------------------------------------------------- the system


def test_kkt_system_matches_the_numeric_engine():
    net = verifier.mlp([2, 2, 1])
    rng = np.random.default_rng(0)
    X = np.round(rng.normal(size=(3, 2)) * 4) / 4
    y = np.array([1, -1, 1])
    system = kkt_system(net, X, y)
    assert len(system.theta) == 6 and len(system.lambdas) == 3 and system.degree == 2
    theta = np.round(rng.normal(size=6) * 8) / 8
    lam = np.array([0.5, 1.25, 2.0])
    sub = {t: sp.Rational(float(v)) for t, v in zip(system.theta, theta)}
    sub.update({l: sp.Rational(float(v)) for l, v in zip(system.lambdas, lam)})
    q = verifier.margins(net, theta, X, y)
    J = verifier.margin_jacobian(net, theta, X, y)
    assert np.allclose([float(m.xreplace(sub)) for m in system.margins], q, atol=1e-12)
    grad_L = np.array([float(e.lhs.xreplace(sub)) for e in system.stationarity])
    assert np.allclose(grad_L, theta - J.T @ lam, atol=1e-12)
    assert np.isclose(float(system.lagrangian.xreplace(sub)), 0.5 * theta @ theta - lam @ (q - 1))
    assert [float(e.lhs.xreplace(sub)) for e in system.slackness] == pytest.approx(lam * (q - 1))
    assert all(isinstance(p, sp.GreaterThan) for p in system.primal + system.dual)
    tex = system.latex()
    assert tex.startswith(r"\begin{aligned}") and r"\mathcal{L}" in tex and r"\operatorname{relu}" in tex
    assert "complementary slackness" in str(system)


def test_multiclass_rows_and_region_polynomials():
    net = verifier.mlp([2, 2, 3])
    X = np.array([[1.0, 0.5], [-0.5, 1.0]])
    y = np.array([0, 2])
    system = kkt_system(net, X, y)
    assert system.labels == ["sample 0 vs class 1", "sample 0 vs class 2", "sample 1 vs class 0", "sample 1 vs class 1"]
    # the region polynomial of the pattern at a point equals the core's region evaluation there
    params = {"W1": np.array([[1.0, -0.5], [0.25, 1.0]]), "W2": np.array([[1.0, -1.0], [0.5, 2.0], [-1.0, 0.75]])}
    pre = X @ params["W1"].T
    choices = [tuple("+" if v > 0 else "-" for v in row) for row in pre]
    reg = system.region(choices)
    syms = param_symbols(net)
    for r, (i, other) in enumerate([(0, 1), (0, 2), (1, 0), (1, 1)]):
        out = symbolic_forward(net, X[i], syms, region_functions(net, params))
        expect = sp.expand(out[y[i]] - out[other])
        assert sp.expand(reg.margins[r] - expect) == 0
    assert len(reg.strict) == 4 and not reg.equalities
    kink = system.region([("0", "+"), ("+", "-")])
    assert kink.equalities and kink.s_bounds[0][1:] == (0, 1)
    from verifier.errors import VerifierError

    with pytest.raises(VerifierError, match=r"sample 0, unit act1\[1\]: choice '\?' is not one of"):
        system.region([("+", "?"), ("+", "+")])
    with pytest.raises(VerifierError, match="1 per-sample patterns for 2 samples"):
        system.region([("+", "+")])


# ----------------------------------------------------------------------------- exact points


def test_linear_model_three_points_equals_the_svm():
    net = verifier.mlp([2, 1])
    X = np.array([[2.0, 1.0], [1.0, 3.0], [-1.0, -0.5]])
    y = np.array([1, 1, -1])
    sol = solve_kkt(net, X, y, time_budget=None)
    assert sol.complete and len(sol.points) == 1 and not sol.families
    p = sol.points[0]
    assert all(v.is_Rational for v in p.theta)  # a linear problem has a rational solution
    assert np.allclose(p.theta_float(), svm(X, y), atol=1e-7)
    assert p.is_min_norm
    numeric_checks(net, p, X, y)


def test_one_relu_neuron_on_two_points_closed_form():
    # Phi = v relu(w . x); x1 = e1, x2 = e2, both +1: w ~ (1, 1), v = ||w|| = 2^(1/4)
    net = verifier.mlp([2, 1, 1])
    X = np.eye(2)
    sol = solve_kkt(net, X, np.array([1, 1]), time_budget=None)
    assert sol.complete and len(sol.points) == 1
    p = sol.points[0]
    r = sp.root(2, 4)
    assert [sp.simplify(a - b) for a, b in zip(p.theta, [1 / r, 1 / r, r])] == [0, 0, 0]
    assert [sp.simplify(l - 1 / sp.sqrt(2)) for l in p.multipliers] == [0, 0]
    assert sp.simplify(p.norm_sq - 2 * sp.sqrt(2)) == 0
    assert p.label == "x0: +; x1: +" and p.relaxation == "none"
    numeric_checks(net, p, X, np.array([1, 1]))
    # one neuron cannot give opposite signs: no KKT point, and the search is complete
    none = solve_kkt(net, X, np.array([1, -1]), time_budget=None)
    assert none.complete and len(none) == 0 and not none.families


def test_two_layer_linear_network_is_balanced_and_factors_the_svm():
    net = verifier.mlp([2, 1, 1], activation="identity")
    X = np.array([[1.0, 0.0], [0.0, 2.0]])
    y = np.array([1, -1])
    sol = solve_kkt(net, X, y, time_budget=None)
    assert sol.complete and len(sol.points) == 2  # (w, v) and (-w, -v)
    u = svm(X, y)
    for p in sol.points:
        w, v = p.params["W1"][0], p.params["W2"][0, 0]
        assert sp.simplify(v**2 - (w[0] ** 2 + w[1] ** 2)) == 0  # balanced: W1 W1^T = W2^T W2
        assert np.allclose([float(v * wi) for wi in w], u, atol=1e-7)  # the product is the SVM solution
        assert sp.simplify(p.norm_sq - 2 * sp.sqrt(sp.Rational(5, 4))) == 0  # 2 ||u||
        numeric_checks(net, p, X, y)


def test_diagonal_network_has_kkt_points_that_are_not_global_minima():
    # Phi = u1 v1 x1 + u2 v2 x2 on x = (1, 2): min l1-norm uses coordinate 2 (norm^2 1); coordinate 1 alone
    # (u2 = v2 = 0) is also KKT (the gradient in the dead coordinate vanishes) with norm^2 2
    net = verifier.diagonal_linear(2)
    X = np.array([[1.0, 2.0]])
    y = np.array([1])
    sol = solve_kkt(net, X, y, time_budget=None)
    assert sol.complete and len(sol.points) == 4
    norms = sorted(p.norm_sq for p in sol.points)
    assert norms == [1, 1, 2, 2]
    mins = [p for p in sol.points if p.is_min_norm]
    others = [p for p in sol.points if not p.is_min_norm]
    assert len(mins) == 2 and len(others) == 2
    for p in others:
        assert p.params["u"][1] == 0 and p.params["v"][0, 1] == 0
        numeric_checks(net, p, X, y)
        # not a global minimum: a feasible point of smaller norm exists (the minimum found)
        better = mins[0].theta_float()
        assert verifier.margins(net, better, X, y)[0] >= 1 - 1e-12
        assert better @ better < p.theta_float() @ p.theta_float() - 0.5
    for p in mins:
        numeric_checks(net, p, X, y)


def test_relu_kinks_with_clarke_selections():
    # two hidden ReLUs, x1 = e1 (+1), x2 = e2 (-1): each neuron sits on the kink of the other sample
    net = verifier.mlp([2, 2, 1])
    X = np.eye(2)
    y = np.array([1, -1])
    sol = solve_kkt(net, X, y, time_budget=None)
    assert sol.complete and len(sol.points) == 2  # the two neuron orders
    for p in sol.points:
        assert p.norm_sq == 4 and p.multipliers == [1, 1]
        assert len(p.kinks) == 2 and p.relaxation == "exact"
        assert set(p.selections.values()) == {0}
        assert all(v in (0, 1, -1) for v in p.theta)
        numeric_checks(net, p, X, y)
    assert sol.stats["regions"] == 25 and "0" in sol.points[0].label


def test_families_of_kkt_points_with_a_verified_member():
    net = verifier.mlp([1, 2, 1], activation="identity")  # rotations inside the hidden layer
    X = np.array([[1.0]])
    y = np.array([1])
    sol = solve_kkt(net, X, y, time_budget=None)
    assert sol.complete and not sol.points and len(sol.families) == 2
    system = kkt_system(net, X, y)
    for fam in sol.families:
        (f,) = fam.free
        sub = dict(zip(system.theta, fam.theta))
        assert sp.simplify(system.margins[0].xreplace(sub) - 1) == 0  # margin 1 along the whole family
        assert sp.simplify(sp.Add(*[t**2 for t in fam.theta]) - 2) == 0  # constant norm
        numeric_checks(net, fam.witness, X, y)
    assert "family" in str(sol)


def test_bad_input_and_limits():
    X = np.eye(2)
    y = np.array([1, -1])
    with pytest.raises(SymbolicLimitError, match=r"parameters is 6.*max_params=4.*max_params=6"):
        solve_kkt(verifier.mlp([2, 2, 1]), X, y, max_params=4, time_budget=None)
    with pytest.raises(SymbolicLimitError, match=r"samples is 5.*max_samples=4"):
        solve_kkt(verifier.mlp([2, 1]), np.ones((5, 2)), np.ones(5), time_budget=None)
    with pytest.raises(SymbolicLimitError, match=r"activation regions after pruning \(5 x 5\) is 25.*max_regions=10"):
        solve_kkt(verifier.mlp([2, 2, 1]), X, y, max_regions=10, time_budget=None)
    with pytest.raises(SymbolicLimitError, match=r"patterns per sample \(3 kinked units\) is 27.*max_regions=20"):
        solve_kkt(verifier.mlp([1, 3, 1]), np.ones((1, 1)), np.ones(1), max_regions=20, time_budget=None)
    with pytest.raises(TimeBudgetError, match=r"time budget of 0.05 s.*time_budget"):
        solve_kkt(verifier.mlp([2, 2, 1]), X, y, time_budget=0.05)
    net = verifier.mlp([2, 2, 1], bias="all")
    with pytest.raises(NotHomogeneousError) as core:
        verifier.degree(net)
    with pytest.raises(NotHomogeneousError) as ours:
        solve_kkt(net, X, y, time_budget=None)
    assert str(ours.value) == str(core.value)
    with pytest.raises(NotHomogeneousError, match="act1"):
        kkt_system(verifier.mlp([2, 2, 1], activation="sigmoid"), X, y)
    with pytest.raises(DataError, match=r"label 2(\.0)? at sample 1"):
        solve_kkt(verifier.mlp([2, 1]), X, np.array([1, 2]), time_budget=None)
    with pytest.raises(DataError, match=r"inputs have shape \(2, 3\)"):
        kkt_system(verifier.mlp([2, 1]), np.ones((2, 3)), y)
