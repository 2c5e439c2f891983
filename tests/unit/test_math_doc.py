"""The worked numbers of ``docs/math.md`` against the code.

Each test recomputes a number the document states (marked **[tested]** there)
from an independent route: closed forms worked by hand, the explicit tangent
features ``h_r = y_r x_r`` of a linear model, brute-force limiting gradients
(random directions at distance 1e-8) against the engine's chain-rule
derivative overrides, a hand-written backward pass for the factored Gram
formula, and exact rationals.  A short check at the end keeps the document's
stated numbers in sync with these tests.
"""

from __future__ import annotations

import itertools
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import verifier
from verifier.numeric import jacobian_from, prepare
from verifier.numeric.engine import kinks_from

DOC = Path(__file__).resolve().parents[2] / "docs" / "math.md"

# -- the linear SVM of sections 4, 6, 8, 9 ---------------------------------------------------------------
SVM_NET = verifier.mlp([2, 1], activation="identity")
SVM_X = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
SVM_Y = np.array([1.0, 1.0, -1.0])
SVM_W = np.array([[1.0, 2.0]])
SVM_H = SVM_Y[:, None] * SVM_X  # tangent features of a linear model, by hand


def test_degrees_of_section_1():
    assert verifier.degree(verifier.mlp([2, 4, 4, 1], activation="relu_power:2")) == 1 + 2 + 4
    assert verifier.degree(verifier.mlp([2, 4, 4, 4, 1], activation="relu_power:3")) == 1 + 3 + 9 + 27


def test_svm_gap_identity_section_4():
    r = verifier.check_kkt(SVM_NET, {"W1": SVM_W}, SVM_X, SVM_Y)
    theta = SVM_W.ravel()
    q = SVM_H @ theta
    np.testing.assert_allclose(q, [1, 2, 3])  # q_min = 1: theta_hat = theta
    G = SVM_H @ SVM_H.T
    np.testing.assert_allclose(verifier.gram(SVM_NET, {"W1": SVM_W}, SVM_X, SVM_Y), G, atol=1e-15)
    np.testing.assert_allclose(G, [[1, 0, 1], [0, 1, 1], [1, 1, 2]])
    lam = np.array([1.0, 1.0, 0.0])  # the dual optimum worked by hand
    np.testing.assert_allclose(r.multipliers, lam, atol=1e-12)
    c = 1.0 + (1 - 1) * q
    D = c @ lam - 0.5 * lam @ G @ lam
    v = SVM_H.T @ lam
    eps, delta = np.linalg.norm(theta - v), lam @ (q - 1)
    assert (D, eps, delta) == (1.0, 1.0, 1.0)
    assert 0.5 * theta @ theta - D == 0.5 * eps**2 + delta == 1.5  # the gap identity, exactly
    assert r.verdict == "not_kkt"
    assert r.eps == pytest.approx(1.0, rel=1e-12) and r.delta == pytest.approx(1.0, rel=1e-12)
    assert r.gap == pytest.approx(1.5, rel=1e-12)
    assert r.eps_rel == pytest.approx(1 / np.sqrt(5), rel=1e-12) and r.delta_rel == pytest.approx(0.2, rel=1e-12)
    # section 3: |sum lambda L / ||theta||^2 - 1| <= eps_rel + delta_rel (here 0.6 <= 0.647)
    assert abs(r.sum_multipliers / r.sum_multipliers_expected - 1) <= r.eps_rel + r.delta_rel
    # the KKT point on this data
    k = verifier.check_kkt(SVM_NET, {"W1": np.array([[1.0, 1.0]])}, SVM_X, SVM_Y)
    assert k.verdict == "kkt" and k.gap == pytest.approx(0.0, abs=1e-12)
    assert k.sum_multipliers == pytest.approx(2.0, rel=1e-12)


def test_working_set_example_section_6():
    G = verifier.gram(SVM_NET, {"W1": SVM_W}, SVM_X, SVM_Y)
    c = np.ones(3)
    S = [0]  # smallest margin
    lam_S = np.linalg.solve(G[np.ix_(S, S)], c[S])  # restricted optimum (interior: lambda_S > 0)
    np.testing.assert_allclose(lam_S, [1.0])
    price = c - G[:, S] @ lam_S
    np.testing.assert_allclose(price, [0, 1, 0], atol=1e-15)
    S.append(int(np.argmax(np.where(np.isin(np.arange(3), S), -np.inf, price))))
    assert S == [0, 1]
    lam_S = np.linalg.solve(G[np.ix_(S, S)], c[S])
    np.testing.assert_allclose(lam_S, [1.0, 1.0])
    price = c - G[:, S] @ lam_S
    np.testing.assert_allclose(price, [0, 0, -1], atol=1e-15)  # no violation: optimal
    full = np.zeros(3)
    full[S] = lam_S
    np.testing.assert_allclose(full, verifier.check_kkt(SVM_NET, {"W1": SVM_W}, SVM_X, SVM_Y).multipliers, atol=1e-12)


@pytest.mark.parametrize("c", [3.7, 1e-3])
def test_scale_invariance_section_8(c):
    base = verifier.check_kkt(SVM_NET, {"W1": SVM_W}, SVM_X, SVM_Y)
    r = verifier.check_kkt(SVM_NET, {"W1": c * SVM_W}, SVM_X, SVM_Y)
    assert r.verdict == base.verdict
    assert (r.eps_rel, r.delta_rel) == pytest.approx((base.eps_rel, base.delta_rel), rel=1e-12)
    rx = verifier.check_kkt(SVM_NET, {"W1": SVM_W}, c * SVM_X, SVM_Y)
    assert rx.verdict == base.verdict
    assert (rx.eps_rel, rx.delta_rel) == pytest.approx((base.eps_rel, base.delta_rel), rel=1e-12)
    assert rx.eps == pytest.approx(1.0 / c, rel=1e-12)  # L = 1, d_x = 1: eps scales by c^(-1)


@pytest.mark.parametrize("norm, W, lam, F, delta", [
    ("l1", [1.0, 2.0], [2.0, 2.0, 0.0], 0.5, 2.0),
    ("linf", [1.0, 2.0], [0.5, 0.5, 0.0], 1.0, 0.5),
    ("l1", [1.0, 1.0], [2.0, 2.0, 0.0], 0.0, 0.0),
])
def test_norm_examples_section_9(norm, W, lam, F, delta):
    r = verifier.check_kkt(SVM_NET, {"W1": np.array([W])}, SVM_X, SVM_Y, norm=norm)
    theta = np.array(W)
    v = SVM_H.T @ np.array(lam)
    p, d = (1, np.inf) if norm == "l1" else (np.inf, 1)
    F_hand = 0.5 * np.linalg.norm(v, d) ** 2 + 0.5 * np.linalg.norm(theta, p) ** 2 - v @ theta
    assert F_hand == F
    np.testing.assert_allclose(r.multipliers, lam, atol=1e-6)
    assert r.fenchel_young == pytest.approx(F, abs=1e-6) and r.delta == pytest.approx(delta, abs=1e-6)
    assert r.gap == pytest.approx(F + delta, abs=1e-6)
    assert r.verdict == ("kkt" if F == 0 and delta == 0 else "not_kkt")


def test_dense_gram_formula_section_5():
    rng = np.random.default_rng(0)
    net = verifier.mlp([2, 16, 1])
    p = net.init_params(1)
    X = rng.normal(size=(40, 2))
    y = np.where(rng.random(40) < 0.5, -1.0, 1.0)
    W1, W2 = p["W1"], p["W2"]
    Z1 = X @ W1.T
    H1 = np.maximum(Z1, 0.0)
    D2 = y[:, None]                         # dq/dz_2
    D1 = (D2 @ W2) * (Z1 > 0)               # dq/dz_1 (hand-written backward pass)
    G_doc = (D1 @ D1.T) * (X @ X.T) + (D2 @ D2.T) * (H1 @ H1.T)
    J = verifier.margin_jacobian(net, p, X, y)
    scale = np.abs(G_doc).max()
    assert np.abs(G_doc - J @ J.T).max() <= 1e-13 * scale
    assert np.abs(G_doc - verifier.gram(net, p, X, y)).max() <= 1e-13 * scale


# -- kinks (section 7): brute-force limiting gradients against the chain rule ----------------------------

def _limiting(net, theta, X, y, count=400, r=1e-8, seed=0):
    """Distinct gradients at theta + r u for ``count`` random unit directions u (brute force)."""
    rng = np.random.default_rng(seed)
    out: list[np.ndarray] = []
    for _ in range(count):
        u = rng.normal(size=theta.shape)
        g = verifier.margin_jacobian(net, theta + r * u / np.linalg.norm(u), X, y)[0]
        if not any(np.allclose(g, o, atol=1e-5) for o in out):
            out.append(g)
    return out


def _chain_vertices(net, theta, X, y, kinked):
    """g(s) for every vertex s in {0, 1}^K of the kinked units' derivatives (engine overrides)."""
    fp, cons = prepare(net, theta, X, y)
    out: list[np.ndarray] = []
    for s in itertools.product([0.0, 1.0], repeat=len(kinked)):
        ov: dict[str, tuple[str, np.ndarray]] = {}
        for (node, unit), sv in zip(kinked, s):
            pre = fp.values[net.nodes[node].inputs[0]]
            D = ov[node][1] if node in ov else (pre > 0).astype(float)
            D[(0, *unit)] = sv
            ov[node] = ("deriv", D)
        g = jacobian_from(fp, cons, overrides=ov)[0]
        if not any(np.allclose(g, o, atol=1e-12) for o in out):
            out.append(g)
    return out


def _same_sets(A, B):
    return (all(any(np.allclose(a, b, atol=1e-5) for b in B) for a in A)
            and all(any(np.allclose(a, b, atol=1e-5) for a in A) for b in B))


def _kinked(net, theta, X, y):
    return [(k.node, k.unit) for k in kinks_from(prepare(net, theta, X, y)[0], 1e-12)]


def test_first_layer_kinks_exact_in_a_deeper_net():
    net = verifier.mlp([2, 3, 2, 1])
    X, y = np.array([[1.0, -0.5]]), np.array([1.0])
    W1 = np.array([[0.5, 1.0], [1.0, 2.0], [1.0, 0.0]])  # units 0 and 1 at a kink
    W2 = np.array([[1.0, -0.7, 0.8], [0.6, 0.9, 0.5]])
    W3 = np.array([[1.3, -0.4]])
    theta = np.concatenate([W1.ravel(), W2.ravel(), W3.ravel()])
    kinked = _kinked(net, theta, X, y)
    assert kinked == [("act1", (0,)), ("act1", (1,))]  # no deeper kink
    lim, chain = _limiting(net, theta, X, y), _chain_vertices(net, theta, X, y, kinked)
    assert len(lim) == len(chain) == 4 and _same_sets(lim, chain)
    q = verifier.margins(net, theta, X, y)[0]
    for g in chain:  # Euler holds for every chain-rule selection (section 1)
        assert g @ theta == pytest.approx(3 * q, abs=1e-12)


def test_counterexample_kinks_in_two_layers():
    net = verifier.mlp([1, 1, 1, 1])
    X, y = np.array([[1.0]]), np.array([1.0])
    theta = np.array([0.0, -1.0, 1.0])
    kinked = _kinked(net, theta, X, y)
    assert kinked == [("act1", (0,)), ("act2", (0,))]
    lim = _limiting(net, theta, X, y)
    assert len(lim) == 1 and np.allclose(lim[0], 0.0)  # q vanishes near theta: Clarke {0}
    chain = _chain_vertices(net, theta, X, y, kinked)
    assert _same_sets(chain, [np.zeros(3), np.array([-1.0, 0.0, 0.0])])  # hull [-1, 0] x 0 x 0


def test_counterexample_weight_sharing():
    net = verifier.cnn(input_shape=(1, 1, 2), channels=(1,), kernel_size=1, padding=0, pool=None)
    X, y = np.array([[[[1.0, 1.0]]]]), np.array([1.0])
    theta = np.array([0.0, 1.0, -1.0])  # filter w = 0, dense v = (1, -1)
    kinked = _kinked(net, theta, X, y)
    assert len(kinked) == 2
    lim = _limiting(net, theta, X, y)
    assert all(np.abs(g).max() < 1e-6 for g in lim)  # Clarke {0}
    chain = _chain_vertices(net, theta, X, y, kinked)
    assert _same_sets(chain, [np.zeros(3), np.array([1.0, 0.0, 0.0]), np.array([-1.0, 0.0, 0.0])])


def test_kink_worked_example_section_7():
    net = verifier.mlp([2, 2, 1])
    r = verifier.check_kkt(net, {"W1": np.eye(2), "W2": np.array([[1.0, 1.0]])},
                           np.array([[1.0, -0.5], [0.0, 1.0]]), np.array([1.0, 1.0]))
    assert r.verdict == "kkt" and r.relaxation == "exact"
    np.testing.assert_allclose(r.multipliers, [1.0, 1.0], atol=1e-9)
    (sel,) = r.kink_selections
    assert (sel["sample"], sel["node"], sel["unit"]) == (1, "act1", [0])
    assert sel["s"] == pytest.approx(0.5, abs=1e-9)
    assert r.sum_multipliers == pytest.approx(2.0, rel=1e-9)


def test_dyadic_and_document_in_sync():
    assert Fraction(0.1) == Fraction(3602879701896397, 2**55)
    text = DOC.read_text()
    for snippet in ["1/2 ||theta||^2 - D = 5/2 - 1 = 3/2 = 1/2 * 1^2 + 1",
                    "p = (1,1,1) - (1,1,2) = (0, 0, -1) <= 0",
                    "`F = 1/2 * 2^2 + 1/2 * 3^2 - 6 = 1/2`, `delta = 2`",
                    "3602879701896397 / 2^55",
                    "`1 + 2 + 4 = 7`"]:
        assert snippet in text, snippet
    assert "../shared" not in text
