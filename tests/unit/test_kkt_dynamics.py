"""Lyu & Li: along gradient descent on the exponential loss, theta_hat(t) is (eps, delta)-KKT with both -> 0.

Trains a two-layer ReLU network on XOR-like data (not linearly separable) and
checks the KKT residuals at increasing checkpoints; the oracle is the theorem's
trend (plus the gap identity and the normalised margin rising on every report).
"""

from __future__ import annotations

import numpy as np

import verifier
from verifier.datasets import two_clusters_xor
from verifier.kkt import check_kkt


def test_training_drives_eps_and_delta_down():
    X, y = two_clusters_xor(16, seed=0)
    net = verifier.mlp([2, 6, 1])
    steps = [100, 300, 1000, 3000]
    res = verifier.train(net, net.init_params(seed=0), X, y, steps=steps[-1], lr=1.0, progress=False,
                         checkpoint_every=steps)
    reps = [check_kkt(net, res.checkpoints[k], X, y) for k in steps]
    assert all(r.verdict in ("kkt", "not_kkt") and r.identity_ok for r in reps)
    eps = np.array([r.eps_rel for r in reps])
    delta = np.array([r.delta_rel for r in reps])
    gamma = np.array([r.normalized_margin for r in reps])
    assert np.all(np.diff(eps) < 0) and np.all(np.diff(delta) < 0)
    assert eps[-1] < eps[0] / 4 and delta[-1] < delta[0] / 10
    assert np.all(np.diff(gamma) > 0)
    # the KKT numbers recorded in the training history agree with a direct check
    res2 = verifier.train(net, net.init_params(seed=0), X, y, steps=300, lr=1.0, progress=False, kkt_every=300)
    last = res2.history[-1]
    direct = check_kkt(net, res2.theta, X, y)
    assert np.isclose(last["eps_rel"], direct.eps_rel, rtol=1e-9) and last["verdict"] == direct.verdict
