"""Losses, fixed-step iterates and gradient flow (verifier.dynamics) against independent oracles:
central finite differences, log-sum-exp in mpmath, hand-written numpy loops with closed-form
gradients of a linear model, and closed-form solutions of the flow."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from scipy.optimize import brentq
from scipy.special import logsumexp

import verifier
from verifier.dynamics import (TrainingError, gradient_flow, iterates, log_loss_and_grad, loss_and_grad,
                               steepest_direction)
from verifier.errors import DataError, ParameterError, VerifierError
from tests.helpers import fd_gradient


def _data(n=7, d=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    y = np.where(rng.normal(size=n) > 0, 1.0, -1.0)
    y[0], y[1] = 1.0, -1.0
    return X, y


# ----------------------------------------------------------------------------- losses


@pytest.mark.parametrize("loss", ["exp", "logistic"])
@pytest.mark.parametrize("arch", ["relu2", "relu3", "multiclass", "cnn"])
def test_loss_gradient_matches_central_differences(loss, arch):
    if arch == "cnn":
        net = verifier.cnn(input_shape=(1, 4, 4), channels=[2], kernel_size=3, padding=1, pool="avg")
        rng = np.random.default_rng(3)
        X, y = rng.normal(size=(5, 1, 4, 4)), np.array([1.0, -1, 1, -1, 1])
    elif arch == "multiclass":
        net = verifier.mlp([3, 5, 3])
        X, _ = _data()
        y = np.arange(7) % 3
    else:
        net = verifier.mlp([3, 5, 1] if arch == "relu2" else [3, 4, 4, 1])
        X, y = _data()
    theta = net.flatten(net.init_params(seed=1))
    value, grad = loss_and_grad(net, theta, X, y, loss=loss)
    num = fd_gradient(lambda t: loss_and_grad(net, t, X, y, loss=loss)[0], theta)
    assert np.max(np.abs(grad - num)) <= 1e-6 * max(1.0, np.max(np.abs(num)))
    # log loss and its gradient agree with the loss
    lg, glog = log_loss_and_grad(net, theta, X, y, loss=loss)
    assert lg == pytest.approx(np.log(value), rel=1e-12, abs=1e-12)
    assert np.allclose(glog * value, grad, rtol=1e-10, atol=1e-14)


def test_loss_values_match_direct_formulas():
    # binary: sum exp(-y f) and sum log(1 + exp(-y f)) from the forward pass
    net = verifier.mlp([3, 6, 1])
    X, y = _data()
    p = net.init_params(seed=2)
    f = verifier.forward(net, p, X)[:, 0]
    assert loss_and_grad(net, p, X, y, "exp")[0] == pytest.approx(np.sum(np.exp(-y * f)), rel=1e-13)
    assert loss_and_grad(net, p, X, y, "logistic")[0] == pytest.approx(np.sum(np.log1p(np.exp(-y * f))), rel=1e-13)
    # multiclass logistic = softmax cross-entropy over all logits; exp = sum over wrong classes
    net3 = verifier.mlp([3, 6, 4])
    c = np.array([0, 1, 2, 3, 0, 1, 2])
    F = verifier.forward(net3, net3.init_params(seed=2), X)
    ce = np.sum(logsumexp(F, axis=1) - F[np.arange(7), c])
    assert loss_and_grad(net3, net3.init_params(seed=2), X, c, "logistic")[0] == pytest.approx(ce, rel=1e-13)
    ex = sum(np.exp(-(F[i, c[i]] - F[i, j])) for i in range(7) for j in range(4) if j != c[i])
    assert loss_and_grad(net3, net3.init_params(seed=2), X, c, "exp")[0] == pytest.approx(ex, rel=1e-13)


@pytest.mark.parametrize("loss", ["exp", "logistic"])
def test_log_loss_exact_far_beyond_underflow(loss):
    # linear model, margins ~ 1000: exp(-q) underflows in float64; compare with mpmath at 50 digits
    net = verifier.mlp([2, 1], activation="identity")
    X = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    y = np.array([1.0, 1.0, -1.0])
    theta = np.array([1000.0, 1003.5])
    q = y * (X @ theta)  # 1000, 1003.5, 2003.5
    mpmath.mp.dps = 50
    if loss == "exp":
        ref = mpmath.log(sum(mpmath.exp(-mpmath.mpf(v)) for v in q))
        w = [mpmath.exp(-mpmath.mpf(v)) / mpmath.exp(ref) for v in q]
    else:
        terms = [mpmath.log1p(mpmath.exp(-mpmath.mpf(v))) for v in q]
        ref = mpmath.log(sum(terms))
        w = [mpmath.exp(-mpmath.mpf(v)) / (1 + mpmath.exp(-mpmath.mpf(v))) / sum(terms) for v in q]
    lg, g = log_loss_and_grad(net, theta, X, y, loss=loss)
    assert lg == pytest.approx(float(ref), rel=1e-14)
    g_ref = -sum(float(wi) * yi * xi for wi, yi, xi in zip(w, y, X))
    assert np.allclose(g, g_ref, rtol=1e-12)
    value, grad = loss_and_grad(net, theta, X, y, loss=loss)
    assert value == 0.0 and np.all(grad == 0.0)  # the true values are below the float64 range
    assert np.all(np.isfinite(g)) and np.linalg.norm(g) > 0.5


def test_loss_overflow_is_a_clear_error_but_log_loss_is_finite():
    net = verifier.mlp([1, 1], activation="identity")
    X, y = np.array([[1.0]]), np.array([1.0])
    with pytest.raises(TrainingError, match="overflows float64; use log_loss_and_grad"):
        loss_and_grad(net, np.array([-800.0]), X, y)
    lg, g = log_loss_and_grad(net, np.array([-800.0]), X, y)
    assert lg == pytest.approx(800.0) and g.tolist() == [-1.0]
    lg, g = log_loss_and_grad(net, np.array([-800.0]), X, y, loss="logistic")  # log(log(1+e^800)) = log(800)
    assert lg == pytest.approx(np.log(800.0), rel=1e-14)


# ----------------------------------------------------------------------------- iterates


def _linear_grad(theta, X, y, loss):
    q = y * (X @ theta)
    s = np.exp(-q) if loss == "exp" else 1.0 / (1.0 + np.exp(q))
    return -(s * y) @ X


@pytest.mark.parametrize("loss", ["exp", "logistic"])
def test_gd_iterates_match_hand_loop_on_linear_model(loss):
    net = verifier.mlp([3, 1], activation="identity")
    X, y = _data(n=9, d=3, seed=4)
    th = np.array([0.3, -0.2, 0.1])
    got = iterates(net, th, X, y, steps=25, lr=0.07, loss=loss, method="gd")
    ref = [th]
    for _ in range(25):
        ref.append(ref[-1] - 0.07 * _linear_grad(ref[-1], X, y, loss))
    assert got.shape == (26, 3)
    assert np.allclose(got, np.array(ref), rtol=1e-12, atol=1e-14)


def test_sign_coordinate_adam_steps_match_hand_formulas():
    net = verifier.mlp([3, 1], activation="identity")
    X, y = _data(n=9, d=3, seed=4)
    th0 = np.array([0.3, -0.2, 0.1])
    lr = 0.01
    # sign descent, steepest-descent form: theta -= lr * ||g||_1 * sign(g)
    ref = [th0]
    for _ in range(4):
        g = _linear_grad(ref[-1], X, y, "exp")
        ref.append(ref[-1] - lr * np.sum(np.abs(g)) * np.sign(g))
    assert np.allclose(iterates(net, th0, X, y, steps=4, lr=lr, method="sign"), ref, rtol=1e-12)
    # coordinate descent: only the largest |g_k| moves, by lr * |g_k| in -sign(g_k)
    ref = [th0]
    for _ in range(4):
        g = _linear_grad(ref[-1], X, y, "exp")
        k = np.argmax(np.abs(g))
        nxt = ref[-1].copy()
        nxt[k] -= lr * g[k]
        ref.append(nxt)
    got = iterates(net, th0, X, y, steps=4, lr=lr, method="coordinate")
    assert np.allclose(got, ref, rtol=1e-12)
    assert np.all(np.sum(np.diff(got, axis=0) != 0, axis=1) == 1)  # one coordinate per step
    # Adam, betas 0.9 / 0.999, eps 1e-8, with bias correction
    m = v = np.zeros(3)
    ref = [th0]
    for t in range(1, 6):
        g = _linear_grad(ref[-1], X, y, "exp")
        m = 0.9 * m + 0.1 * g
        v = 0.999 * v + 0.001 * g ** 2
        ref.append(ref[-1] - lr * (m / (1 - 0.9 ** t)) / (np.sqrt(v / (1 - 0.999 ** t)) + 1e-8))
    assert np.allclose(iterates(net, th0, X, y, steps=5, lr=lr, method="adam"), ref, rtol=1e-12)


def test_steepest_directions_are_dual_norm_scaled_maximisers():
    rng = np.random.default_rng(0)
    for _ in range(20):
        g = rng.normal(size=6)
        for method, nrm, dual in (("gd", 2, 2), ("sign", np.inf, 1), ("coordinate", 1, np.inf)):
            d = steepest_direction(g, method)
            # <g, d> = ||g||_*^2 and ||d|| = ||g||_* : the minimiser of <g,u> + ||u||^2/2 (negated)
            assert g @ d == pytest.approx(np.linalg.norm(g, dual) ** 2)
            assert np.linalg.norm(d, nrm) == pytest.approx(np.linalg.norm(g, dual))
    # exact ties in coordinate descent share the step
    assert steepest_direction(np.array([2.0, -2.0, 1.0]), "coordinate").tolist() == [1.0, -1.0, 0.0]


def test_gd_commutes_with_an_isometry_and_sign_descent_does_not():
    # Phi(theta; x) = <theta, x>; rotating the data by Q and theta by Q keeps every margin, and
    # GD iterates satisfy theta~_k = Q theta_k; sign descent and Adam are coordinate-wise: they do not.
    net = verifier.mlp([3, 1], activation="identity")
    X, y = _data(n=9, d=3, seed=4)
    Q, _ = np.linalg.qr(np.random.default_rng(5).normal(size=(3, 3)))
    th0 = np.array([0.3, -0.2, 0.1])
    for method, preserved in (("gd", True), ("sign", False), ("adam", False)):
        a = iterates(net, th0, X, y, steps=20, lr=0.02, method=method)
        b = iterates(net, Q @ th0, X @ Q.T, y, steps=20, lr=0.02, method=method)
        dev = np.max(np.abs(b - a @ Q.T))
        assert (dev < 1e-12) == preserved, (method, dev)


# ----------------------------------------------------------------------------- gradient flow


@pytest.mark.parametrize("loss", ["exp", "logistic"])
def test_gradient_flow_matches_closed_form_for_one_sample(loss):
    # d theta/dt = y x l'(u) with u = y <theta, x>:  u' = |x|^2 exp(-u)  =>  exp(u) = exp(u0) + |x|^2 t
    #                                      logistic: u' = |x|^2 / (1 + exp(u))  =>  u + exp(u) = u0 + exp(u0) + |x|^2 t
    net = verifier.mlp([2, 1], activation="identity")
    x, yv = np.array([1.5, -0.5]), -1.0
    th0 = np.array([0.2, 0.4])
    t, th = gradient_flow(net, th0, x[None], np.array([yv]), t_end=10.0, loss=loss, n_eval=21)
    s2 = x @ x
    u0 = yv * th0 @ x
    if loss == "exp":
        u = np.log(np.exp(u0) + s2 * t)
    else:
        u = np.array([brentq(lambda v: v + np.exp(v) - (u0 + np.exp(u0) + s2 * ti), -50, 50, xtol=1e-15)
                      for ti in t])
    ref = th0[None] + np.outer((u - u0) / s2, yv * x)
    assert t[0] == 0.0 and t[-1] == 10.0 and th.shape == (21, 2)
    assert np.max(np.abs(th - ref)) < 1e-8


def test_gradient_flow_is_the_limit_of_gd_with_first_order_error():
    net = verifier.mlp([2, 6, 1])
    X, y = _data(n=8, d=2, seed=7)
    th0 = net.flatten(net.init_params(seed=3))
    T = 1.0
    _, flow = gradient_flow(net, th0, X, y, t_end=T, n_eval=2)
    errs = []
    for lr in (0.01, 0.005):
        gd = iterates(net, th0, X, y, steps=int(round(T / lr)), lr=lr)
        errs.append(np.linalg.norm(gd[-1] - flow[-1]))
    assert errs[0] < 0.05 * np.linalg.norm(flow[-1] - th0)
    assert 0.4 < errs[1] / errs[0] < 0.6  # Euler's method: the error halves with the step


# ----------------------------------------------------------------------------- bad input


def test_bad_arguments_give_clear_errors():
    net = verifier.mlp([2, 3, 1])
    X, y = _data(n=4, d=2)
    th = net.flatten(net.init_params(seed=0))
    cases = [
        (dict(loss="hinge"), "loss='hinge' is not supported; use one of \\['exp', 'logistic'\\]"),
        (dict(method="sgd"), "method='sgd' is not supported"),
        (dict(steps=-1), "steps=-1 must be an integer >= 0"),
        (dict(steps=2.5), "steps=2.5 must be an integer"),
        (dict(lr=0.0), "lr=0.0 must be a finite number > 0"),
        (dict(lr=float("nan")), "lr=nan must be a finite number > 0"),
        (dict(lr="fast"), "lr='fast' must be a finite number > 0"),
    ]
    for kw, msg in cases:
        args = dict(steps=3, lr=0.1, loss="exp", method="gd") | kw
        with pytest.raises(TrainingError, match=msg):
            iterates(net, th, X, y, **args)
    with pytest.raises(ParameterError, match="expected \\(9,\\)"):
        iterates(net, th[:-1], X, y, steps=1, lr=0.1)
    with pytest.raises(DataError, match="label 2 at sample 0 is not allowed"):
        loss_and_grad(net, th, X, np.array([2, 1, 1, -1]))
    with pytest.raises(DataError, match="sample 1 has a non-finite value"):
        loss_and_grad(net, th, np.array([[0, 1], [np.nan, 0], [1, 1], [0, 0]]), y)
    for kw, msg in ((dict(t_end=0.0), "t_end=0.0 must be"), (dict(t_end=1.0, n_eval=1), "n_eval=1 must be"),
                    (dict(t_end=1.0, method="BDF"), "method='BDF' is not supported for gradient flow"),
                    (dict(t_end=1.0, rtol=-1.0), "rtol=-1.0 must be")):
        with pytest.raises(TrainingError, match=msg):
            gradient_flow(net, th, X, y, **kw)
    assert issubclass(TrainingError, VerifierError)


def test_divergence_names_the_step():
    net = verifier.mlp([2, 3, 1])
    X, y = _data(n=4, d=2)
    with pytest.raises(TrainingError, match=r"^step \d+: .*(not finite|overflows)"):
        iterates(net, net.init_params(seed=0), 30 * X, y, steps=50, lr=50.0, method="sign")


def test_gradient_flow_evaluation_budget_stops_a_crawling_solver():
    """A budget far below what the integration needs must end in a clear error, never a hang."""
    import pytest as _pytest

    from verifier.dynamics import TrainingError, gradient_flow
    from verifier.datasets import two_clusters_xor

    net = verifier.mlp([2, 4, 1])
    X, y = two_clusters_xor(8, seed=0)
    theta0 = net.flatten(net.init_params(seed=0))
    with _pytest.raises(TrainingError, match=r"more than max_evals=50 gradient evaluations by t=.*sliding along a kink"):
        gradient_flow(net, theta0, X, y, t_end=5.0, max_evals=50)
    t, th = gradient_flow(net, theta0, X, y, t_end=0.05, n_eval=2, max_evals=200_000)
    assert th.shape == (2, net.num_params)
    with _pytest.raises(TrainingError, match="max_evals=0 must be a positive integer"):
        gradient_flow(net, theta0, X, y, t_end=1.0, max_evals=0)
