"""Issue 13, item 8: max-pool CNN embedding checks give no false FAILs / ERRORs.

Oracles: one-sided finite differences of the narrow network (an input whose gradient is
unique has equal left and right directional derivatives, equal to the engine gradient);
a hand-built 2x2 max-pool window whose tie matters (two entries with different parameter
gradients); a reference gradient flow at 100x tighter tolerances (the integrator's error);
and a non-isometric rescale, which must still fail.
"""

from __future__ import annotations

import math

import numpy as np

import verifier
from verifier.dynamics import gradient_flow
from verifier.datasets import linearly_separable
from verifier.embed.checks import Check, EmbeddingReport, _global_reason, _samples_at_kinks_that_matter
from verifier.numeric.engine import kinks_from, run_forward


def digits(n=12, seed=0):
    """8x8 digit-like images: 'zeros' (rings, label +1) and 'ones' (bars, -1) on an exactly zero background."""
    rng = np.random.default_rng(seed)
    X = np.zeros((n, 1, 8, 8))
    y = np.empty(n)
    for i in range(n):
        img = np.zeros((8, 8))
        r0, c0 = rng.integers(0, 2, size=2)
        if i % 2 == 0:
            img[1 + r0:6 + r0, 1 + c0] = img[1 + r0:6 + r0, 4 + c0] = 1
            img[1 + r0, 1 + c0:5 + c0] = img[5 + r0, 1 + c0:5 + c0] = 1
            y[i] = 1
        else:
            img[1 + r0:7, 3 + c0] = img[1 + r0, 2 + c0] = 1
            y[i] = -1
        X[i, 0] = img * rng.uniform(0.5, 1.0, size=(8, 8))
    return X, y


def test_cnn_channel_split_gradient_check_compares_inputs_at_harmless_ties():
    X, y = digits()
    net = verifier.cnn((1, 8, 8), channels=[2], pool="max")
    res = verifier.train(net, None, X, y, steps=20, lr=0.05, schedule="constant", progress=False)
    fp = run_forward(net, res.theta, X)
    # precondition, read off the pooling windows directly: every image has an exactly tied window (zero
    # background); kinks_from no longer reports such harmless ties, the gradient check must not drop them
    pool = next(n for n in net.order if net.nodes[n].op == "maxpool2d")
    x = fp.ctx[pool]["x"]  # the pooling input; its 2x2 windows, stride 2, from numpy directly
    win = np.lib.stride_tricks.sliding_window_view(x, (2, 2), axis=(2, 3))[:, :, ::2, ::2].reshape(*x.shape[:2], -1, 4)
    top2 = -np.sort(-win, axis=-1)[..., :2]
    assert (top2[..., 0] == top2[..., 1]).reshape(len(X), -1).any(axis=1).all()
    emb = verifier.channel_split(net, res.params, layer=1, channel=0, ratios="3/5,4/5")
    rep = verifier.check_embedding(emb, res.params, X, y, checks=("function", "gradient"), probes=8)
    g = rep.checks["gradient"]
    assert g.status == "pass", g.detail
    kept = g.data["inputs"] - g.data["left_out"]
    assert kept >= len(X)  # before the fix: 0 of them (every input thrown out)
    # oracle: the gradient really is unique at the data points the check kept (given theta):
    # one-sided directional finite differences agree with each other and with the engine
    bad = _samples_at_kinks_that_matter(fp, kinks_from(fp, 0.0))
    keep = [i for i in range(len(X)) if i not in bad]
    assert len(keep) == len(X)
    J = verifier.margin_jacobian(net, res.theta, X, np.ones(len(X)))
    rng = np.random.default_rng(1)
    h = 1e-6 * np.linalg.norm(res.theta)
    for _ in range(3):
        v = rng.normal(size=res.theta.size)
        v /= np.linalg.norm(v)
        f0 = verifier.forward(net, res.theta, X)[:, 0]
        right = (verifier.forward(net, res.theta + h * v, X)[:, 0] - f0) / h
        left = (f0 - verifier.forward(net, res.theta - h * v, X)[:, 0]) / h
        assert np.allclose(right[keep], (J @ v)[keep], atol=1e-6 * np.abs(J).max())
        assert np.allclose(left[keep], right[keep], atol=1e-6 * np.abs(J).max())


def test_a_tie_that_matters_is_still_left_out():
    """1x1 conv on two input channels, 2x2 image, one 2x2 max-pool window: z = (w1, w2, 0, 0) on this input."""
    net = verifier.cnn((2, 2, 2), channels=[1], kernel_size=1, padding=0, pool="max", pool_size=2)
    x = np.zeros((1, 2, 2, 2))
    x[0, 0, 0, 0] = 1.0  # channel 0 feeds entry (0, 0)
    x[0, 1, 0, 1] = 1.0  # channel 1 feeds entry (0, 1)
    p = {k: np.ones(s) for k, s in net.param_shapes.items()}
    fp = run_forward(net, p, x)
    k = kinks_from(fp, 0.0)
    assert k and _samples_at_kinks_that_matter(fp, k) == {0}  # entries' gradients (1, 0, ..) and (0, 1, ..) differ
    # oracle: left and right derivatives in w1 differ (the max switches entry)
    W = p["W1"].copy()
    f = lambda W1: verifier.forward(net, {**p, "W1": W1}, x)[0, 0]
    d = np.zeros_like(W)
    d[0, 0, 0, 0] = 1e-3
    right, left = (f(W + d) - f(W)) / 1e-3, (f(W) - f(W - d)) / 1e-3
    assert not math.isclose(right, left)
    # and the harmless variant: the same input with w1 = w2 = -1 (window of four zero ReLU outputs) does not count
    p_neg = {**p, "W1": -np.ones_like(W)}
    fp2 = run_forward(net, p_neg, x)
    win = fp2.ctx["pool1"]["x"].reshape(-1)  # the pooling input: one 2x2 window
    assert np.all(win == 0.0)  # the window is a four-way tie ...
    assert _samples_at_kinks_that_matter(fp2, kinks_from(fp2, 0.0)) == set()  # ... that changes no gradient


def _flow_case():
    X, y = linearly_separable(12, 3, margin=0.1, seed=1)
    net = verifier.mlp([3, 4, 1], activation="identity")
    return net, net.init_params(1), X, y


def test_flow_tolerance_matches_the_integrator_error():
    net, p, X, y = _flow_case()
    emb = verifier.neuron_split(net, p, layer=1, neuron=0, ratios=["3/5", "4/5"])
    kw = dict(checks=("flow_trajectory",), flow_time=3.0, flow_rtol=1e-6, flow_atol=1e-8, flow_tol=1e-9)
    c = verifier.check_embedding(emb, p, X, y, **kw).checks["flow_trajectory"]
    assert c.status == "pass", c.detail
    # the deviation exceeds flow_tol x move: only the integrator's error explains (and allows) it
    assert c.data["deviation"] > 1e-9 * c.data["displacement"]
    # oracle: the flows at 100x tighter tolerances differ from the loose one by about the allowed error
    ta, a = gradient_flow(net, emb.net.flatten(p), X, y, t_end=3.0, rtol=1e-6, atol=1e-8)
    _, ref = gradient_flow(net, emb.net.flatten(p), X, y, t_end=3.0, rtol=1e-10, atol=1e-12)
    err = np.linalg.norm(a - ref, axis=1).max()
    assert 0.1 * err <= c.data["integrator_error"] <= 10 * err
    assert c.data["deviation"] <= c.data["allowed_deviation"] <= 10 * c.data["integrator_error"] + 1e-9 * c.data["displacement"] * 1.000001
    # a broken embedding (same function, different norm) still fails at these settings
    bad = verifier.neuron_split(net, p, layer=1, neuron=0, in_ratios=["1", "1"], out_ratios=["1/2", "1/2"], strict=False)
    cb = verifier.check_embedding(bad, p, X, y, **kw).checks["flow_trajectory"]
    assert cb.status == "fail" and cb.figure > 0.1


def test_summary_names_the_check_that_failed_not_the_one_that_errored():
    net, p, X, y = _flow_case()
    emb = verifier.neuron_split(net, p, layer=1, neuron=0, ratios=["3/5", "4/5"])
    grad_err = Check(False, float("nan"), "every input sits at a kink", status="error")
    assert "[gradient]" not in _global_reason(emb, None, None, grad_err)
    grad_fail = Check(False, 0.5, "differs")
    assert "[gradient]" in _global_reason(emb, None, None, grad_fail)
    rep = EmbeddingReport(emb, {"gradient": grad_err, "flow_trajectory": Check(False, 1.0, "trajectories differ")}, {})
    last = rep.summary().splitlines()[-1]
    assert "failed: flow_trajectory" in last and "could not be evaluated (error): gradient" in last
    assert last.index("failed: flow_trajectory") < last.index("gradient")
