"""Minibatch training in :func:`verifier.train` (``batch_size=``, ``seed=``).

Oracle: a linear model ``Phi(x) = <w, x>`` with the exponential loss, whose batch
gradient has the closed form ``-sum_i exp(-y_i <w, x_i>) y_i x_i``, iterated here
with the documented batch order (a fresh permutation from
``numpy.random.default_rng(seed)`` each epoch).
"""

from __future__ import annotations

import numpy as np
import pytest

import verifier
from verifier.datasets import linearly_separable
from verifier.dynamics import TrainingError


def _oracle(w, X, y, *, steps, lr, batch, seed):
    rng = np.random.default_rng(seed)
    order, pos = rng.permutation(len(X)), 0
    for _ in range(steps):
        if pos >= len(order):
            order, pos = rng.permutation(len(X)), 0
        idx = order[pos:pos + batch]
        pos += batch
        Xb, yb = X[idx], y[idx]
        grad = -(np.exp(-yb * (Xb @ w)) * yb) @ Xb
        w = w - lr * grad
    return w


@pytest.mark.parametrize("batch", [1, 3, 7])
def test_constant_step_sgd_matches_closed_form(batch):
    X, y = linearly_separable(10, 3, margin=0.1, seed=2)
    net = verifier.mlp([3, 1], activation="identity")
    w0 = np.array([0.3, -0.2, 0.1])
    res = verifier.train(net, {"W1": w0[None]}, X, y, steps=23, lr=0.05, schedule="constant", batch_size=batch,
                         seed=5, progress=False)
    np.testing.assert_allclose(res.params["W1"][0], _oracle(w0, X, y, steps=23, lr=0.05, batch=batch, seed=5),
                               rtol=1e-12, atol=1e-14)
    assert res.config["batch_size"] == batch and res.config["seed"] == 5
    # the history is measured on the full data at the recorded steps
    last = res.history[-1]
    assert last["step"] == 23
    assert last["min_margin"] == pytest.approx(float(np.min(y * (X @ res.params["W1"][0]))), rel=1e-12)


def test_batch_as_large_as_the_data_is_full_batch():
    X, y = linearly_separable(12, 2, margin=0.1, seed=0)
    net = verifier.mlp([2, 4, 1])
    a = verifier.train(net, None, X, y, steps=50, lr=0.3, progress=False)
    b = verifier.train(net, None, X, y, steps=50, lr=0.3, progress=False, batch_size=12)
    np.testing.assert_array_equal(a.theta, b.theta)
    assert b.config["batch_size"] is None


def test_adaptive_minibatch_training_separates_and_checks_kkt():
    X, y = linearly_separable(24, 2, margin=0.2, seed=1)
    net = verifier.mlp([2, 8, 1])
    res = verifier.train(net, net.init_params(seed=0), X, y, steps=600, lr=0.5, batch_size=6, kkt_every=300,
                         progress=False)
    first, last = res.history[0], res.history[-1]
    assert last["min_margin"] > 0 and last["normalized_margin"] > first["normalized_margin"]
    rep = verifier.check_kkt(net, res.params, X, y)
    assert last["eps_rel"] == pytest.approx(rep.eps_rel, rel=1e-9)
    # a different seed gives a different batch order, hence different iterates
    other = verifier.train(net, net.init_params(seed=0), X, y, steps=600, lr=0.5, batch_size=6, seed=1,
                           progress=False)
    assert not np.allclose(other.theta, res.theta)


@pytest.mark.parametrize("bad", [0, -3, 2.5, True])
def test_bad_batch_size_is_named(bad):
    X, y = linearly_separable(6, 2, margin=0.1, seed=0)
    with pytest.raises(TrainingError, match=r"batch_size=.* must be None \(full batch\) or an integer >= 1"):
        verifier.train(verifier.mlp([2, 1], activation="identity"), None, X, y, steps=2, batch_size=bad)


def test_cli_batch_size_is_passed_through(tmp_path, capsys):
    from verifier.cli import main
    from verifier.io import load_params, save_data

    X, y = linearly_separable(10, 3, margin=0.1, seed=2)
    net = verifier.mlp([3, 1], activation="identity")
    net.to_json(tmp_path / "net.json")
    save_data(tmp_path / "d.npz", X, y)
    np.savez(tmp_path / "init.npz", W1=np.array([[0.3, -0.2, 0.1]]))
    assert main(["train", "--net", str(tmp_path / "net.json"), "--data", str(tmp_path / "d.npz"), "--init",
                 str(tmp_path / "init.npz"), "--schedule", "constant", "--lr", "0.05", "--steps", "23",
                 "--batch-size", "3", "--seed", "5", "--progress", "off", "--out", str(tmp_path / "p.npz")]) == 0
    w = load_params(tmp_path / "p.npz", net)["W1"][0]
    np.testing.assert_allclose(w, _oracle(np.array([0.3, -0.2, 0.1]), X, y, steps=23, lr=0.05, batch=3, seed=5),
                               rtol=1e-12, atol=1e-14)
    code = main(["train", "--net", str(tmp_path / "net.json"), "--data", str(tmp_path / "d.npz"), "--batch-size", "0",
                 "--out", str(tmp_path / "q.npz")])
    assert code == 2  # a bad option: one line, exit status 2
    assert "0 is not valid; expected an integer in [1, inf]" in capsys.readouterr().err
