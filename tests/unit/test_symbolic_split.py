"""Neuron splitting shown symbolically (docs/math.md section 10).

Oracles: the numeric forward pass, margins Jacobian and norms of the wide
network built by the split, evaluated at concrete ratios; closed forms for
the power activation's failure.
"""

import numpy as np
import pytest
import sympy as sp

import verifier
from verifier.errors import GraphError, VerifierError
from verifier.symbolic import prove_split_identity


def _numeric_T(res, ratios):
    sub = dict(zip(res.alphas, [sp.Rational(r) for r in ratios])) if res.alphas[0].is_Symbol else {}
    return np.array(res.T.xreplace(sub).tolist(), dtype=float)


@pytest.mark.parametrize("net,kw", [
    (verifier.mlp([2, 2, 1]), {}),
    (verifier.mlp([2, 3, 1], activation="abs"), dict(neuron=2, m=3)),
    (verifier.mlp([2, 3, 2, 1], activation="leaky_relu:0.2", bias="first"), dict(node="fc2", neuron=1)),
    (verifier.mlp([2, 2, 2], activation="identity", bias="all"), dict(neuron=1)),
], ids=["relu", "abs-m3", "leaky-deep", "identity-bias-multiout"])
def test_split_identity_holds_for_one_homogeneous_activations(net, kw):
    res = prove_split_identity(net, **kw)
    assert res.holds and res.function_holds and res.norm_holds and res.gradient_holds
    assert res.scaling_exponent == 1 and "isometry" in res.reason
    # numeric oracle at concrete ratios with sum alpha^2 = 1
    ratios = {2: (sp.Rational(3, 5), sp.Rational(4, 5)), 3: (sp.Rational(1, 3), sp.Rational(2, 3), sp.Rational(2, 3))}[res.m]
    T = _numeric_T(res, ratios)
    assert np.allclose(T.T @ T, np.eye(net.num_params))
    rng = np.random.default_rng(0)
    theta = net.flatten(net.init_params(seed=1))
    X = rng.normal(size=(5, net.input_shape[0]))
    wide_theta = T @ theta
    assert np.allclose(verifier.forward(res.wide, wide_theta, X), verifier.forward(net, theta, X), atol=1e-12)
    assert np.isclose(np.linalg.norm(wide_theta), np.linalg.norm(theta))
    y = np.zeros(5, dtype=int) if net.num_outputs > 1 else np.sign(rng.normal(size=5))
    J = verifier.margin_jacobian(net, theta, X, y)
    Jw = verifier.margin_jacobian(res.wide, wide_theta, X, y)
    assert np.allclose(Jw, J @ T.T, atol=1e-12)  # grad Phi~(T theta) = T grad Phi(theta)


@pytest.mark.parametrize("act", ["power:2", "relu_power:2"])
def test_split_identity_fails_for_power_two_and_says_why(act):
    net = verifier.mlp([2, 2, 1], activation=act)
    res = prove_split_identity(net)
    assert not res.holds and not res.function_holds and res.norm_holds
    a1, a2 = res.alphas
    assert res.scaling_exponent == 2 and sp.expand(res.power_sum - (a1**3 + a2**3)) == 0
    assert "sum_k b_k a_k^2" in res.reason and "91/125" in res.reason and "zero neuron" in res.reason
    # the difference is (sum alpha^3 - 1) times the old neuron's contribution
    quotient = sp.cancel(res.function_difference[0] / (a1**3 + a2**3 - 1))
    assert not quotient.has(a1) and not quotient.has(a2)
    # numeric oracle: Phi~(T theta) - Phi(theta) = (sum alpha^3 - 1) W2[0, 0] sigma(W1[0] . x) at (3/5, 4/5)
    T = _numeric_T(res, (sp.Rational(3, 5), sp.Rational(4, 5)))
    p = net.init_params(seed=2)
    theta = net.flatten(p)
    X = np.random.default_rng(3).normal(size=(4, 2))
    z = X @ p["W1"][0]
    sig = z**2 if act == "power:2" else np.maximum(z, 0) ** 2
    diff = verifier.forward(res.wide, T @ theta, X)[:, 0] - verifier.forward(net, theta, X)[:, 0]
    assert np.allclose(diff, (91 / 125 - 1) * p["W2"][0, 0] * sig)
    assert np.isclose(np.linalg.norm(T @ theta), np.linalg.norm(theta))  # still an isometry


def test_rescale_preserves_the_function_but_not_the_norm():
    net = verifier.mlp([2, 2, 1])
    res = prove_split_identity(net, ratios=(1, 1), outgoing=(0.5, 0.5))
    assert res.function_holds and not res.norm_holds and not res.holds
    assert "sum a_k^2 = 2" in res.reason and "sum b_k^2 = 1/2" in res.reason
    ok = prove_split_identity(net, ratios=(0.6, 0.8))
    assert ok.holds and ok.incoming == [sp.Rational(3, 5), sp.Rational(4, 5)]
    not_iso = prove_split_identity(net, ratios=(0.6, 0.6))
    assert not not_iso.function_holds and not not_iso.norm_holds


def test_split_bad_input():
    net = verifier.mlp([2, 2, 1])
    with pytest.raises(VerifierError, match="m=1 must be an integer >= 2"):
        prove_split_identity(net, m=1)
    with pytest.raises(VerifierError, match=r"neuron=5 must be an integer in 0..1 \(node 'fc1' has 2 units\)"):
        prove_split_identity(net, neuron=5)
    with pytest.raises(GraphError, match="node 'out' after 'fc2' is 'output', not an elementwise activation"):
        prove_split_identity(net, node="fc2")
    with pytest.raises(GraphError, match="does not exist"):
        prove_split_identity(net, node="nope")
    with pytest.raises(GraphError, match="dense -> \\[bias\\] -> elementwise activation -> dense"):
        prove_split_identity(verifier.cnn((1, 4, 4), channels=[1]))
    with pytest.raises(VerifierError, match="m=2 entries"):
        prove_split_identity(net, ratios=(1, 2, 3))
    with pytest.raises(VerifierError, match="positive numbers"):
        prove_split_identity(net, ratios=(-0.6, 0.8))
