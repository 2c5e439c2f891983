"""Kinks (docs/math.md section 7): a hand-built two-layer ReLU KKT point that needs a Clarke selection.

Construction (c = 3/5): x_A = (1, 0), x_B = (-3/5, 4/5) (so <x_A, x_B> = -c),
both labelled +1.  Neuron 1 has w_1 = lam a (x_A + c x_B) (orthogonal to x_B:
a kink at sample B), neuron 2 has w_2 = lam a (x_B + c x_A) (a kink at A), the
output weights are (a, a), with lam = 1/sqrt(1-c^2) and a = (1-c^2)^(-1/4).
Stationarity in w_1 reads w_1 = lam a (x_A + s x_B): it holds exactly for the
subgradient selection s = c at the kink, and for no other (relu'(0) = 0
fails).  Oracles: this closed form, and torch autograd with a hand-written
activation whose derivative at the kink is the reported selection.
"""

from __future__ import annotations

import numpy as np
import pytest
torch = pytest.importorskip("torch", reason="the oracles here use torch autograd (the [torch] extra)")

import verifier
from verifier.kkt import check_kkt

C = 3 / 5
XA = np.array([1.0, 0.0])
XB = np.array([-3 / 5, 4 / 5])


def kink_point(activation: str = "relu"):
    lam = 1 / np.sqrt(1 - C**2)
    a = (1 - C**2) ** -0.25
    w1 = lam * a * (XA + C * XB)
    w2 = lam * a * (XB + C * XA)
    net = verifier.mlp([2, 2, 1], activation=activation)
    XC = np.array([[0.5, 2.0]])  # a third sample with margin > 1 (lambda = 0)
    X = np.vstack([XA, XB, XC])
    y = np.ones(3)
    return net, {"W1": np.vstack([w1, w2]), "W2": np.array([[a, a]])}, X, y, lam


@pytest.mark.parametrize("activation", ["relu", "leaky_relu:0.1", "abs"])
def test_two_layer_kink_point_is_kkt_with_selection(activation):
    net, p, X, y, lam = kink_point(activation)
    q = verifier.margins(net, p, X, y)
    assert np.allclose(q[:2], 1.0) and q[2] > 1.5
    rep = check_kkt(net, p, X, y)
    assert rep.verdict == "kkt"
    assert rep.relaxation == "exact"
    assert rep.solver in ("clarabel", "osqp", "clarabel+polish", "osqp+polish")
    assert np.allclose(rep.multipliers, [lam, lam, 0.0], atol=1e-7)
    sels = {(s["sample"], tuple(s["unit"])): s["s"] for s in rep.kink_selections}
    assert set(sels) == {(1, (0,)), (0, (1,))}
    assert np.allclose(list(sels.values()), C, atol=1e-7)
    assert rep.identity_ok
    assert np.isclose(rep.sum_multipliers, rep.theta_norm**2 / 2, rtol=1e-7)

    smooth = check_kkt(net, p, X, y, kink_tol=None)  # default derivative at the kink: not stationary
    assert smooth.verdict == "not_kkt"
    assert smooth.eps_rel > 0.05
    assert smooth.kinks_found == 0 and smooth.relaxation == "none"
    assert smooth.gap > rep.gap


def test_leaky_slope_above_needed_selection_is_not_kkt():
    # leaky ReLU with slope 0.7: the interval [0.7, 1] does not contain the needed s = 0.6
    net, p, X, y, _ = kink_point("leaky_relu:0.7")
    rep = check_kkt(net, p, X, y)
    assert rep.verdict == "not_kkt"
    for s in rep.kink_selections:
        assert 0.7 - 1e-9 <= s["s"] <= 1 + 1e-9


def test_kink_tolerance_catches_near_kinks():
    net, p, X, y, _ = kink_point()
    q = dict(p)
    q["W1"] = p["W1"] + np.array([[0.0, 1e-7], [0.0, 0.0]])  # pre-activation of neuron 1 at B becomes ~8e-8
    assert check_kkt(net, q, X, y, kink_tol=1e-9).verdict == "not_kkt"
    rep = check_kkt(net, q, X, y, kink_tol=1e-6, tol=1e-5)
    assert rep.kinks_found >= 2 and rep.verdict == "kkt"


# ----------------------------------------------------------------------------
# torch oracle: gradients with prescribed derivatives at kinks


class _Act(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, deriv, fn):
        ctx.save_for_backward(deriv)
        return fn(z)

    @staticmethod
    def backward(ctx, g):
        (deriv,) = ctx.saved_tensors
        return g * deriv, None, None


def torch_grad(weights: list[np.ndarray], x: np.ndarray, derivs: dict[tuple[int, int], float]) -> np.ndarray:
    """Gradient of the ReLU MLP output at x; derivs[(layer, unit)] overrides relu' there."""
    Ws = [torch.tensor(W, dtype=torch.float64, requires_grad=True) for W in weights]
    h = torch.tensor(x, dtype=torch.float64)
    for l, W in enumerate(Ws):
        z = W @ h
        if l == len(Ws) - 1:
            h = z
            break
        d = (z > 0).to(torch.float64).detach().clone()
        for (ll, u), s in derivs.items():
            if ll == l:
                d[u] = s
        h = _Act.apply(z, d, torch.relu)
    h.sum().backward()
    return np.concatenate([W.grad.numpy().ravel() for W in Ws])


def test_selection_at_interval_end_is_polished_to_the_exact_end():
    # Regression (found by the symbolic layer): CLARABEL stopped at s ~ 2.5e-6 inside [0, 1] where the exact
    # selection is the end 0, giving eps_rel 1.8e-6 and "not_kkt" at tol 1e-9 for an exact KKT point.
    #
    # Closed-form oracle.  theta = (0,1,1,0,-1,1): W1 = [[0,1],[1,0]], W2 = [[-1,1]], so
    # Phi(x) = -relu(x_2) + relu(x_1); X = I, y = (1,-1): q_1 = Phi(e1) = 1, q_2 = -Phi(e2) = 1, so theta is
    # already normalised (theta_hat = theta, ||theta||^2 = 4, L = 2, delta = 0).
    # Sample 1 (x = e1): z = W1 e1 = (0, 1), unit 0 at its kink with s_1 in [0, 1]:
    #   h_1 = (dW1 row 0 = a_0 s_1 e1, dW1 row 1 = a_1 e1, dW2 = relu(z)) = (-s_1, 0, 1, 0, 0, 1).
    # Sample 2 (x = e2): z = W1 e2 = (1, 0), unit 1 at its kink with s_2 in [0, 1]:
    #   h_2 = -(a_0 e2, a_1 s_2 e2, relu(z)) = (0, 1, 0, -s_2, -1, 0).
    # Stationarity theta = l_1 h_1 + l_2 h_2 reads (0,1,1,0,-1,1) = (-l_1 s_1, l_2, l_1, -l_2 s_2, -l_2, l_1):
    # the unique solution is l_1 = l_2 = 1, s_1 = s_2 = 0 (and sum l = 2 = ||theta||^2 / L).  For l = (1, 1)
    # and selections s, eps = ||(s_1, 0, 0, s_2, 0, 0)|| = sqrt(s_1^2 + s_2^2): any s off the end costs eps.
    net = verifier.mlp([2, 2, 1])
    theta = np.array([0.0, 1.0, 1.0, 0.0, -1.0, 1.0])
    X, y = np.eye(2), np.array([1.0, -1.0])
    rep = check_kkt(net, theta, X, y, tol=1e-9)  # default solver: CLARABEL at kinks, then the polish step
    assert rep.verdict == "kkt", (rep.eps_rel, rep.delta_rel)
    assert rep.solver == "clarabel+polish" and rep.relaxation == "exact" and rep.identity_ok
    sels = {(s["sample"], tuple(s["unit"])): s["s"] for s in rep.kink_selections}
    assert sels == {(0, (0,)): 0.0, (1, (1,)): 0.0}  # exactly the interval end, not 2.5e-6
    assert all(s["interval"] == [0.0, 1.0] for s in rep.kink_selections)
    assert np.array_equal(rep.theta_hat, theta)
    assert np.allclose(rep.multipliers, [1.0, 1.0], rtol=0, atol=1e-12)
    assert abs(rep.sum_multipliers - 2.0) < 1e-12
    assert rep.eps_rel <= 1e-14 and rep.delta == 0.0 and abs(rep.gap) <= 1e-14
    # torch oracle: theta_hat - sum_i lambda_i h_i(s_i) with the reported selections as the derivative at the kink
    Ws = [theta[:4].reshape(2, 2), theta[4:].reshape(1, 2)]
    v = sum(rep.multipliers[i] * y[i] * torch_grad(Ws, X[i], {(0, u[0]): s}) for (i, u), s in sels.items())
    assert np.linalg.norm(theta - v) <= 1e-14 and np.isclose(np.linalg.norm(theta - v), rep.eps, atol=1e-15)
    # OSQP (which happened to land on the vertex) now gives the same certificate
    osqp = check_kkt(net, theta, X, y, tol=1e-9, solver="osqp")
    assert osqp.verdict == "kkt" and osqp.kink_selections == rep.kink_selections
    assert np.allclose(osqp.multipliers, rep.multipliers, rtol=0, atol=1e-12)


def test_deep_kink_labelled_chain_rule_and_certificate_matches_torch():
    # one sample; a layer-2 neuron is exactly at its kink and carries a subgradient choice
    net = verifier.mlp([2, 3, 2, 1])
    x = np.array([1.0, 0.5])
    W1 = np.array([[1.0, 0.2], [0.3, 1.0], [0.5, -0.4]])
    h1 = np.maximum(W1 @ x, 0)
    r = np.array([1.0, -2.0, 0.0])
    r[2] = -(r[:2] @ h1[:2]) / h1[2]  # row 1 of W2 orthogonal to h1: z2_1 = 0
    W2 = np.vstack([r, [0.7, 0.4, 0.9]])
    W3 = np.array([[1.5, 1.0]])
    p = {"W1": W1, "W2": W2, "W3": W3}
    assert abs((W2 @ h1)[0]) < 1e-12
    X, y = x[None], np.ones(1)
    rep = check_kkt(net, p, X, y)
    smooth = check_kkt(net, p, X, y, kink_tol=None)
    assert rep.relaxation == "chain-rule"
    assert rep.gap <= smooth.gap * (1 + 1e-9)  # more subgradients can only help
    assert rep.identity_ok
    (sel,) = rep.kink_selections
    assert sel["node"] == "act2" and sel["unit"] == [0] and 0 <= sel["s"] <= 1
    # independent reconstruction of v = lambda h(s) and of eps
    th = rep.theta_hat
    Ws = [th[:6].reshape(3, 2), th[6:12].reshape(2, 3), th[12:].reshape(1, 2)]
    g = torch_grad(Ws, x, {(1, 0): sel["s"]})
    eps = np.linalg.norm(th - rep.multipliers[0] * g)
    assert np.isclose(eps, rep.eps, rtol=1e-6, atol=1e-10)


def test_first_layer_kink_in_deep_net_is_exact():
    # kinks only in the first activation (fed by input -> dense) are exact even in a deeper net
    net = verifier.mlp([2, 2, 2, 1])
    x = np.array([1.0, 1.0])
    W1 = np.array([[1.0, -1.0], [1.0, 0.5]])  # neuron 0 at its kink for this sample
    W2 = np.array([[1.0, 0.5], [0.2, 1.0]])
    W3 = np.array([[1.0, 1.0]])
    rep = check_kkt(net, {"W1": W1, "W2": W2, "W3": W3}, x[None], np.ones(1))
    assert rep.kink_selections and rep.relaxation == "exact"
    th = rep.theta_hat
    Ws = [th[:4].reshape(2, 2), th[4:8].reshape(2, 2), th[8:].reshape(1, 2)]
    (sel,) = rep.kink_selections
    g = torch_grad(Ws, x, {(0, sel["unit"][0]): sel["s"]})
    assert np.isclose(np.linalg.norm(th - rep.multipliers[0] * g), rep.eps, rtol=1e-6, atol=1e-10)


def test_kinks_in_two_layers_use_the_vertex_hull():
    # the same sample has kinks in layers 1 and 2: the chain-rule hull is enumerated over vertices
    net = verifier.mlp([2, 2, 2, 1])
    x = np.array([1.0, 1.0])
    W1 = np.array([[1.0, -1.0], [1.0, 0.5]])  # layer-1 kink (unit 0)
    W2 = np.array([[0.0, 0.0], [0.2, 1.0]])  # layer-2 unit 0 has z = 0 as well
    W3 = np.array([[1.0, 1.0]])
    p = {"W1": W1, "W2": W2, "W3": W3}
    rep = check_kkt(net, p, x[None], np.ones(1))
    smooth = check_kkt(net, p, x[None], np.ones(1), kink_tol=None)
    assert rep.relaxation == "chain-rule"
    assert rep.identity_ok
    assert rep.gap <= smooth.gap * (1 + 1e-9)  # more subgradients can only help
    assert all(s.get("hull") for s in rep.kink_selections)


def test_zero_neuron_kinks_are_irrelevant():
    # a neuron with zero in- and out-weights is at a kink for every sample, but no selection changes a gradient
    net, p, X, y, _ = kink_point()
    net3 = verifier.mlp([2, 3, 1])
    p3 = {"W1": np.vstack([p["W1"], [0.0, 0.0]]), "W2": np.hstack([p["W2"], [[0.0]]])}
    rep = check_kkt(net3, p3, X, y)
    assert rep.verdict == "kkt" and rep.relaxation == "exact"
    assert all(tuple(s["unit"]) != (2,) for s in rep.kink_selections)


def test_maxpool_tie_selection_matches_torch_routing():
    # two conv outputs tie in the first pooling window; routing the gradient to either is a chain-rule choice
    net = verifier.cnn((1, 5, 5), channels=[1], pool="max", padding=0, kernel_size=2, hidden=[])
    rng = np.random.default_rng(0)
    X = rng.uniform(0.1, 1, size=(1, 1, 5, 5))
    X[0, 0, 0, 0] = X[0, 0, 0, 1] = 1.5  # conv output = top-left of each patch: entries 0 and 1 of window (0, 0) tie
    p = {"W1": np.array([[[[1.0, 0.0], [0.0, 0.0]]]]), "W2": np.array([[1.0, 0.5, 0.3, 1.0]])}
    rep = check_kkt(net, p, X, np.ones(1))
    smooth = check_kkt(net, p, X, np.ones(1), kink_tol=None)
    assert rep.relaxation == "chain-rule" and rep.identity_ok
    assert rep.gap < smooth.gap * (1 - 1e-3)
    (sel,) = rep.kink_selections
    assert sel["node"] == "pool1" and sel["unit"] == [0, 0, 0]
    weights = sel["s"]
    assert np.isclose(sum(weights.values()), 1.0) and min(weights.values()) >= -1e-9

    th = torch.tensor(rep.theta_hat)

    def phi(t, route):
        W1, W2 = t[:4].reshape(1, 1, 2, 2), t[4:].reshape(1, 4)
        a = torch.relu(torch.nn.functional.conv2d(torch.tensor(X), W1))[0, 0]  # (4, 4)
        pooled = torch.nn.functional.max_pool2d(a[None, None], 2)[0, 0].reshape(-1).clone()
        pooled = torch.cat([a[0, route][None], pooled[1:]])  # window (0, 0) takes the chosen tied entry
        return (W2 @ pooled)[0]

    v = torch.zeros(8, dtype=torch.float64)
    for route, wgt in weights.items():
        t = th.clone().requires_grad_(True)
        phi(t, int(route)).backward()
        v += wgt * t.grad
    eps = np.linalg.norm(rep.theta_hat - rep.multipliers[0] * v.numpy())
    assert np.isclose(eps, rep.eps, rtol=1e-6, atol=1e-10)


def test_zero_background_kinks_are_pruned():
    # all-zero patches put many ReLU pre-activations exactly at 0 and tie pooling windows; none can matter
    net = verifier.cnn((1, 6, 6), channels=[2], pool="max")
    from verifier.datasets import images

    X, _ = images(6)
    X = np.where(np.abs(X) < 0.5, 0.0, X)
    p = net.init_params(0)
    out = verifier.forward(net, p, X)[:, 0]
    X, y = X[np.abs(out) > 1e-6], np.sign(out[np.abs(out) > 1e-6])
    rep = check_kkt(net, p, X, y)
    # brute force: many ReLU pre-activations sit exactly at 0 (all-zero patches) ...
    z = verifier.numeric.engine.run_forward(net, p, X).ctx["act1"]["z"]
    assert int((z == 0).sum()) > 20
    # ... but their gradient is 0 whatever the selection: not kinks that matter, not reported
    assert rep.kinks_found == 0
    assert rep.kink_selections == [] and rep.relaxation == "none"
    assert np.isclose(rep.gap, check_kkt(net, p, X, y, kink_tol=None).gap, rtol=1e-9)
