"""The training fast path (views of theta, no per-step validation, per-sample seeds in the backward pass,
no VJP into the data) against independent references: a hand-written numpy re-implementation of
full-batch gradient descent for a 2-hidden-layer ReLU MLP (its own forward pass, closed-form backprop,
losses from their direct formulas), the per-row Jacobian route ``J^T w`` for the weighted gradient,
and an explicit loop for the multiclass constraint rows."""

from __future__ import annotations

import numpy as np
import pytest

import verifier
from verifier.dynamics import TrainingError, iterates, train
from verifier.numeric import constraints, jacobian_from, prepare, weighted_gradient_from


def _reference_gd(W, X, y, *, steps, lr, loss):
    """Plain numpy GD on ``sum_r loss(q_r)`` for ``W3 relu(W2 relu(W1 x))``; returns theta per step."""
    W = [w.copy() for w in W]
    n = X.shape[0]
    C = W[-1].shape[0]
    out = [np.concatenate([w.ravel() for w in W])]
    for _ in range(steps):
        z1 = X @ W[0].T
        h1 = np.maximum(z1, 0)
        z2 = h1 @ W[1].T
        h2 = np.maximum(z2, 0)
        F = h2 @ W[2].T  # (n, C)
        if C == 1:
            q = y * F[:, 0]
            dq = -np.exp(-q) if loss == "exp" else -1.0 / (1.0 + np.exp(q))  # d loss / d q
            dF = (dq * y)[:, None]
        else:
            Fy = F[np.arange(n), y]
            Q = Fy[:, None] - F  # q_ij = F_y - F_j (the j = y entry is 0 and not a constraint)
            E = np.exp(-Q)
            E[np.arange(n), y] = 0.0
            if loss == "exp":
                dQ = -E
            else:  # loss_i = log(1 + sum_j E_ij): d/dQ_ij = -E_ij / (1 + sum_j E_ij)
                dQ = -E / (1.0 + E.sum(axis=1, keepdims=True))
            dF = -dQ
            dF[np.arange(n), y] = dQ.sum(axis=1)
        g3 = dF.T @ h2
        d2 = (dF @ W[2]) * (z2 > 0)
        g2 = d2.T @ h1
        d1 = (d2 @ W[1]) * (z1 > 0)
        g1 = d1.T @ X
        W = [W[0] - lr * g1, W[1] - lr * g2, W[2] - lr * g3]
        out.append(np.concatenate([w.ravel() for w in W]))
    return np.array(out)


@pytest.mark.parametrize("loss", ["exp", "logistic"])
@pytest.mark.parametrize("classes", [1, 3])
def test_train_constant_gd_matches_a_numpy_reimplementation(loss, classes):
    rng = np.random.default_rng(5)
    n, d = 17, 4
    X = rng.normal(size=(n, d))
    y = np.where(rng.random(n) < 0.5, -1.0, 1.0) if classes == 1 else np.arange(n) % classes
    net = verifier.mlp([d, 6, 5, classes])
    p0 = net.init_params(seed=2)
    steps, lr = 25, 0.02
    ref = _reference_gd([p0[k] for k in net.param_names], X, y, steps=steps, lr=lr, loss=loss)
    res = train(net, p0, X, y, loss=loss, schedule="constant", steps=steps, lr=lr, checkpoint_every=1,
                progress=False)
    assert sorted(res.checkpoints) == list(range(steps + 1))
    moved = np.linalg.norm(ref[-1] - ref[0])
    assert moved > 1e-3  # the iterates really move
    for k, th in res.checkpoints.items():
        assert np.linalg.norm(th - ref[k]) <= 1e-12 * max(moved, 1.0), k
    # and the fixed-step iterates of the same loss
    it = iterates(net, p0, X, y, steps=steps, lr=lr, loss=loss)
    assert np.allclose(it, ref, rtol=0, atol=1e-12 * max(moved, 1.0))


def test_training_loop_still_stops_when_the_iteration_blows_up():
    # the fast path does not re-validate theta: the loop's own finiteness checks must still fire.
    # loss = exp(-w) + exp(w) (two opposite samples); w <- w - lr * 2 sinh(w) oscillates and explodes
    net = verifier.mlp([1, 1], activation="identity")
    X, y = np.array([[1.0], [-1.0]]), np.array([1.0, 1.0])
    with pytest.raises(TrainingError, match=r"^step \d+: .*overflows"):
        train(net, {"W1": np.array([[0.5]])}, X, y, schedule="constant", steps=50, lr=1e3, progress=False)
    # the logistic loss's gradient is bounded: |w| only grows linearly, the loss reaches ~ |w| >> 709.78
    # (where exp(loss) overflows) and the history's smoothed margin must still be a number
    res = train(net, {"W1": np.array([[0.5]])}, X, y, loss="logistic", schedule="constant", steps=4, lr=1e3,
                history_every=1, progress=False)
    top = max(res.history, key=lambda h: h["log_loss"])
    assert top["log_loss"] > np.log(709.79)
    assert top["smoothed_margin"] is not None and np.isfinite(top["smoothed_margin"])
    assert top["smoothed_margin"] * top["norm"] == pytest.approx(-np.exp(top["log_loss"]), rel=1e-12)


@pytest.mark.parametrize("arch", ["multiclass", "cnn"])
def test_weighted_gradient_equals_jacobian_transpose_weights(arch):
    rng = np.random.default_rng(1)
    if arch == "cnn":
        net = verifier.cnn((1, 6, 6), channels=[2, 3], kernel_size=3, padding=1, pool="max", outputs=4)
        X = rng.normal(size=(5, 1, 6, 6))
    else:
        net = verifier.mlp([3, 7, 5, 4])
        X = rng.normal(size=(6, 3))
    y = np.arange(X.shape[0]) % 4
    fp, cons = prepare(net, net.init_params(seed=3), X, y)
    w = rng.random(cons.m)
    J = jacobian_from(fp, cons)  # per-row gradients, the rows not summed per sample
    got = weighted_gradient_from(fp, cons, w)
    assert np.allclose(got, J.T @ w, rtol=1e-12, atol=1e-14 * np.abs(J).max())
    # a subset of the rows (not one per sample, some samples absent from the rows)
    rows = np.array([0, 4, 5, 13])
    sub = type(cons)(cons.sample[rows], cons.coef[rows], cons.other[rows], cons.n)
    assert np.allclose(weighted_gradient_from(fp, sub, w[rows]), J[rows].T @ w[rows], rtol=1e-12,
                       atol=1e-14 * np.abs(J).max())


def test_multiclass_constraint_rows_match_an_explicit_loop():
    net = verifier.mlp([2, 3, 5])
    y = np.array([4, 0, 2, 2, 1, 3, 0])
    cons = constraints(net, y)
    want = [(i, j) for i in range(len(y)) for j in range(5) if j != y[i]]
    assert [(int(s), int(o)) for s, o in zip(cons.sample, cons.other)] == want
    for r, (i, j) in enumerate(want):
        e = np.zeros(5)
        e[y[i]], e[j] = 1.0, -1.0
        assert np.array_equal(cons.coef[r], e)
    assert cons.n == len(y) and cons.sample.dtype == np.int64 and cons.other.dtype == np.int64


@pytest.mark.parametrize("log_loss", [-50.0, -3.0, 0.0, 2.0, 3.5, 6.6, 50.0])
def test_logistic_smoothed_margin_against_mpmath(log_loss):
    # log(1 / (exp(ell) - 1)) with ell = exp(log_loss); math.expm1 alone overflows past ell = 709.78
    import mpmath

    from verifier.dynamics.training import smoothed_margin

    mpmath.mp.dps = 50
    ell = mpmath.exp(log_loss)
    want = float(-mpmath.log(mpmath.expm1(ell)))
    assert smoothed_margin(log_loss, "logistic") == pytest.approx(want, rel=1e-14, abs=1e-300)
