"""Verdicts are invariant under the scale symmetries (docs/math.md, "Scale invariance").

``Phi(c theta; x) = c^L Phi(theta; x)`` and, for a network homogeneous in its input,
``Phi(theta; b x) = b Phi(theta; x)``: the KKT status and ``eps_rel``, ``delta_rel`` do not change.
The oracle is the same check on the unscaled problem; float64 overflow or underflow of the scaled
point must not turn into a verdict.
"""

from __future__ import annotations

import numpy as np
import pytest

import verifier

SCALES = [1e-300, 1e-200, 1e-160, 1e160, 1e200, 1e300]


def _svm_point():
    net = verifier.mlp([2, 1], activation="identity")
    X = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0], [2.0, 0.5]])
    y = np.array([1.0, 1.0, -1.0, 1.0])
    return net, {"W1": np.array([[1.0, 1.0]])}, X, y


def _relu_point():
    rng = np.random.default_rng(0)
    net = verifier.mlp([3, 5, 1])
    X = rng.standard_normal((12, 3))
    p = net.init_params(seed=1)
    out = verifier.forward(net, p, X)[:, 0]
    return net, p, X, np.where(out > 0, 1.0, -1.0)


def _scaled(p, s):
    return {k: np.asarray(v) * s for k, v in p.items()}


@pytest.mark.parametrize("s", SCALES)
def test_parameter_scale_does_not_change_the_verdict(s):
    for net, p, X, y in (_svm_point(), _relu_point()):
        ref = verifier.check_kkt(net, p, X, y)
        rep = verifier.check_kkt(net, _scaled(p, s), X, y)
        assert rep.verdict == ref.verdict
        assert np.isclose(rep.eps_rel, ref.eps_rel, rtol=1e-6, atol=1e-12)
        assert np.isclose(rep.delta_rel, ref.delta_rel, rtol=1e-6, atol=1e-12)
        assert np.allclose(rep.margins, ref.margins, rtol=1e-9)  # normalised margins, smallest 1
        assert np.isclose(rep.normalized_margin, ref.normalized_margin, rtol=1e-9)


@pytest.mark.parametrize("s", [1e-200, 1e-100, 1e100, 1e200])
def test_data_scale_does_not_change_the_verdict(s):
    for net, p, X, y in (_svm_point(), _relu_point()):
        ref = verifier.check_kkt(net, p, X, y)
        rep = verifier.check_kkt(net, p, X * s, y)
        assert rep.verdict == ref.verdict
        assert np.isclose(rep.eps_rel, ref.eps_rel, rtol=1e-6, atol=1e-12)
        assert np.isclose(rep.delta_rel, ref.delta_rel, rtol=1e-6, atol=1e-12)
        # the normalised point of the scaled problem is the unscaled one divided by s^(1/L) (L = degree)
        L = float(verifier.degree(net))
        assert np.allclose(rep.theta_hat * s ** (1.0 / L), ref.theta_hat, rtol=1e-9)


def test_svm_kkt_point_scaled_is_still_kkt_with_its_multipliers():
    net, p, X, y = _svm_point()
    ref = verifier.check_kkt(net, p, X, y)
    assert ref.verdict == "kkt"
    rep = verifier.check_kkt(net, _scaled(p, 1e-300), X, y)
    assert rep.verdict == "kkt" and rep.min_margin > 0
    assert np.allclose(rep.multipliers, ref.multipliers, rtol=1e-9, atol=1e-12)


def test_sign_descent_on_a_finite_iterate_does_not_overflow():
    from fractions import Fraction

    net = verifier.mlp([1, 1, 1])
    res = verifier.train(net, {"W1": np.array([[20.0]]), "W2": np.array([[-25.0]])}, np.array([[1.0]]),
                         np.array([1.0]), steps=2, lr=0.01, method="sign", schedule="constant")
    th = net.flatten(res.params)
    assert np.all(np.isfinite(th))
    # independent value in exact arithmetic: q = W2 relu(W1 x), normalised margin q / ||theta||^2
    f = [Fraction(float(v)) for v in th]
    q = f[1] * max(f[0], Fraction(0))
    expect = float(q / (f[0] ** 2 + f[1] ** 2))
    last = res.history[-1]
    assert last["normalized_margin"] == pytest.approx(expect, rel=1e-12, abs=1e-300)
    assert np.isfinite(last["norm"]) and last["norm"] == pytest.approx(float(np.hypot(th[0], th[1])), rel=1e-12)
