"""verifier.strategies: argument validation, and the properties each strategy promises, against independent oracles."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import verifier
import verifier.strategies as vst
from verifier.errors import VerifierError
from verifier.numeric import jacobian_from, margins_from, prepare
from tests.helpers import max_margin

FAST = settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))


# -- argument validation: one message format, raised when the strategy is built ---------------------------

@pytest.mark.parametrize("call, message", [
    (lambda: vst.mlps(max_depth=0), "max_depth=0 must be an integer >= 1"),
    (lambda: vst.mlps(min_depth=3, max_depth=2), "min_depth=3 must be <= max_depth=2"),
    (lambda: vst.mlps(activations=["relu", "swish"]), "activations=['relu', 'swish'] must be a list of activations"),
    (lambda: vst.mlps(activations=[]), "activations=[] must be a non-empty list"),
    (lambda: vst.mlps(bias="some"), "bias='some' must be one of 'none', 'first', 'all'"),
    (lambda: vst.mlps(input_dim=0), "input_dim=0 must be an integer >= 1"),
    (lambda: vst.mlps(max_width=2.5), "max_width=2.5 must be an integer >= 1"),
    (lambda: vst.cnns(input_shape=(4, 4)), "input_shape=(4, 4) must be three positive integers"),
    (lambda: vst.cnns(pools=["sum"]), "pools=['sum'] must be a non-empty list drawn from"),
    (lambda: vst.cnns(kernel_sizes=[0]), "kernel_sizes=[0] must be a non-empty list of positive integers"),
    (lambda: vst.diagonal_nets(min_depth=1), "min_depth=1 must be an integer >= 2"),
    (lambda: vst.separable_data(margin=0), "margin=0 must be a number in (0, 0.5]"),
    (lambda: vst.separable_data(margin=float("nan")), "margin=nan must be a number in (0, 0.5]"),
    (lambda: vst.separable_data(min_samples=5, max_samples=2), "min_samples=5 must be <= max_samples=2"),
    (lambda: vst.separable_data(net=verifier.mlp([2, 2]), ), "must be a network with one output unit"),
    (lambda: vst.separable_data(net=verifier.mlp([2, 1]), dim=2), "dim=2 must be None when net= is given"),
    (lambda: vst.separable_data(net="net.json"), "net='net.json' must be a verifier.Network"),
    (lambda: vst.splits(min_parts=1), "min_parts=1 must be an integer in [2, 6]"),
    (lambda: vst.splits(max_parts=9), "max_parts=9 must be an integer in [2, 6]"),
    (lambda: vst.rescaled_splits(min_parts=0), "min_parts=0 must be an integer in [1, 6]"),
    (lambda: vst.split_sites(verifier.mlp([2, 1])), "must be a network with a hidden dense layer to split"),
    (lambda: vst.split_sites(verifier.mlp([2, 3, 1]), kind="filter"), "kind='filter' must be 'neuron' or 'channel'"),
    (lambda: vst.kkt_points(kinds=["svm"]), "kinds=['svm'] must be a non-empty list drawn from"),
    (lambda: vst.feasible_points(nets=verifier.mlp([2, 1])), "must be a hypothesis strategy of networks"),
    (lambda: vst.trained_points(method="lbfgs"), "method='lbfgs' must be one of 'gd', 'sign', 'coordinate', 'adam'"),
    (lambda: vst.params_for(verifier.mlp([2, 1]), denominator=0), "denominator=0 must be an integer >= 1"),
])
def test_bad_arguments_raise_one_clear_message(call, message):
    with pytest.raises(vst.StrategyArgumentError) as err:
        call()
    assert message in str(err.value)
    assert isinstance(err.value, VerifierError)  # the CLI prints it as one line
    assert "\n" not in str(err.value)


# -- networks -----------------------------------------------------------------------------------------------

@FAST
@given(vst.mlps(min_depth=2, max_depth=4, min_width=2, max_width=3, input_dim=None, max_input_dim=4,
                activations=["relu", "power:2"]))
def test_mlps_respect_their_ranges(net):
    weights = [net.param_shapes[p] for p in net.param_names]
    assert 2 <= len(weights) <= 4
    assert 1 <= weights[0][1] <= 4
    assert all(2 <= s[0] <= 3 for s in weights[:-1]) and weights[-1][0] == 1
    acts = {n.op for n in net.nodes.values() if n.op not in ("input", "dense", "output")}
    assert acts in ({"relu"}, {"power"})
    k = 1 if acts == {"relu"} else 2
    assert verifier.degree(net) == sum(k ** i for i in range(len(weights)))  # closed form, not the calculus' own rule


@FAST
@given(vst.cnns(max_conv_layers=2, max_channels=2))
def test_cnns_build_and_run(net):
    convs = [p for p in net.param_names if net.nodes[net.param_owner[p][0]].op == "conv2d"]
    assert 1 <= len(convs) <= 2 and all(net.param_shapes[p][0] <= 2 for p in convs)
    out = verifier.forward(net, net.init_params(0), np.ones((2, 1, 4, 4)))
    assert out.shape == (2, 1) and np.all(np.isfinite(out))


@FAST
@given(vst.diagonal_nets(max_dim=3, max_depth=4))
def test_diagonal_nets_are_products(net):
    d = net.input_shape[0]
    p = net.init_params(1)
    x = np.arange(1.0, d + 1)
    prod = np.prod([p[n].reshape(-1) for n in net.param_names], axis=0)  # <u_1 * ... * v, x>
    assert np.isclose(verifier.forward(net, p, x[None])[0, 0], prod @ x)


# -- data ---------------------------------------------------------------------------------------------------

@FAST
@given(vst.separable_data(dim=3, margin=0.3, min_samples=2, max_samples=7))
def test_separable_data_has_the_margin(data):
    X, y = data
    assert X.shape[1] == 3 and 2 <= len(y) <= 7 and set(y.tolist()) <= {-1.0, 1.0}
    assert max_margin(X, y) >= 0.3 - 1e-6


@FAST
@given(vst.cnns(max_conv_layers=1), st.data())
def test_separable_data_for_a_network_matches_its_input(net, data):
    X, y = data.draw(vst.separable_data(net=net, max_samples=3))
    assert X.shape[1:] == net.input_shape
    assert verifier.forward(net, net.init_params(0), X).shape == (len(y), 1)
    assert max_margin(X, y) >= 0.25 - 1e-6


@FAST
@given(vst.feasible_points(nets=vst.mlps(max_depth=3, activations=["relu", "abs"]), min_output=0.5))
def test_feasible_points_separate_their_data(pt):
    q = verifier.margins(pt.net, pt.params, pt.X, pt.y)
    assert q.min() >= 0.5
    assert np.all(pt.params["W1"] * 4 == np.round(pt.params["W1"] * 4))  # on the dyadic grid


# -- splits -------------------------------------------------------------------------------------------------

@FAST
@given(vst.splits(min_parts=2, max_parts=5))
def test_splits_lie_exactly_on_the_unit_sphere(r):
    assert 2 <= len(r) <= 5
    assert all(isinstance(a, Fraction) and a > 0 for a in r)
    assert sum(a * a for a in r) == 1


@FAST
@given(vst.rescaled_splits(min_parts=1, max_parts=3))
def test_rescaled_splits_preserve_output_not_norm(ab):
    a, b = ab
    assert len(a) == len(b) and all(x > 0 for x in a + b)
    assert sum(x * z for x, z in zip(a, b)) == 1
    assert a != b  # never the isometric split


def test_splits_include_the_documented_examples():
    from hypothesis import find

    assert find(vst.splits(), lambda r: True) == (Fraction(3, 5), Fraction(4, 5))
    assert find(vst.splits(min_parts=3), lambda r: True) == (Fraction(1, 3), Fraction(2, 3), Fraction(2, 3))


@FAST
@given(vst.mlps(max_depth=3), vst.separable_data(), vst.splits())
def test_the_documented_pattern_for_users_own_tests(net, data, ratios):
    # the example: independent draws fit together (2-D inputs by default)
    X, y = data
    params = net.init_params(0)
    emb = verifier.neuron_split(net, params, layer=1, neuron=0, ratios=[str(r) for r in ratios])
    assert np.allclose(verifier.forward(emb.wide_net, emb.wide_params, X), verifier.forward(net, params, X), rtol=1e-12, atol=1e-12)


@FAST
@given(vst.mlps(min_depth=2, max_depth=4, max_width=3).flatmap(lambda n: st.tuples(st.just(n), vst.split_sites(n))))
def test_split_sites_are_valid_for_neuron_split(net_site):
    net, (layer, unit) = net_site
    emb = verifier.neuron_split(net, None, layer=layer, neuron=unit, ratios=["3/5", "4/5"])
    assert emb.wide_net.num_params == net.num_params + sum(
        net.param_shapes[p][1] for p in net.param_names if p == f"W{layer}") + net.param_shapes[f"W{layer + 1}"][0]


# -- KKT points by construction --------------------------------------------------------------------------

@FAST
@given(vst.kkt_points(kinds=["linear", "deep_linear"], max_depth=4))
def test_smooth_kkt_points_satisfy_stationarity_with_their_multipliers(pt):
    theta = pt.net.flatten(pt.params)
    fp, cons = prepare(pt.net, theta, pt.X, pt.y)
    q = margins_from(fp, cons)
    J = jacobian_from(fp, cons)  # the engine's gradients; identity networks have no kinks
    lam = pt.multipliers
    assert np.isclose(q.min(), 1.0, atol=1e-12) and np.all(lam >= 0)
    assert np.allclose(J.T @ lam, theta, atol=1e-12)                     # theta = sum lambda_i grad q_i
    assert np.allclose(lam * (q - 1.0), 0.0, atol=1e-12)                 # complementary slackness
    assert np.isclose(lam.sum(), theta @ theta / verifier.degree(pt.net))       # Euler: sum lambda = ||theta||^2 / L


@FAST
@given(vst.kkt_points(kinds=["kink"]))
def test_kink_points_need_a_subgradient_selection(pt):
    theta = pt.net.flatten(pt.params)
    q = verifier.margins(pt.net, theta, pt.X, pt.y)
    assert np.isclose(q.min(), 1.0, atol=1e-12)
    assert len(verifier.kinks(pt.net, theta, pt.X, 1e-9)) >= 2          # both supports sit at a kink
    fp, cons = prepare(pt.net, theta, pt.X, pt.y)
    plain = jacobian_from(fp, cons).T @ pt.multipliers                 # relu'(0) = 0 everywhere
    assert np.linalg.norm(plain - theta) > 0.1                          # ... is not stationary
    rep = verifier.check_kkt(pt.net, theta, pt.X, pt.y)                 # with Clarke subgradients it is
    assert rep.verdict == "kkt" and rep.kink_selections
    assert np.isclose(rep.sum_multipliers, pt.multipliers.sum(), rtol=1e-8)


def test_kink_example_by_hand():
    # W1 = [[1, 3/4], [0, 1]], v = (5/4, 1), x_a = (4/5, 0), x_b = (-3/4, 1), lambda = (25/16, 1), s = 3/5
    from hypothesis import find

    pt = find(vst.kkt_points(kinds=["kink"], max_extra=0), lambda p: True)
    W1, v = pt.params["W1"], pt.params["W2"][0]
    xa, xb = pt.X
    la, lb = pt.multipliers
    s = 3 / 5
    row0 = la * v[0] * xa + lb * v[0] * s * xb
    row1 = lb * v[1] * xb + la * v[1] * s * xa
    assert np.allclose([row0, row1], W1)
    assert np.allclose(v, [la * max(W1[0] @ xa, 0) + lb * max(W1[0] @ xb, 0), la * max(W1[1] @ xa, 0) + lb * max(W1[1] @ xb, 0)])


# -- trained points -----------------------------------------------------------------------------------------

@settings(max_examples=3, deadline=None, suppress_health_check=list(HealthCheck))
@given(vst.trained_points(nets=vst.mlps(max_depth=2, min_width=2, max_width=3), steps=150, min_samples=2))
def test_trained_points_lower_the_loss(pt):
    assert pt.kind == "trained" and pt.X.shape[1] == pt.net.input_shape[0]
    loss = lambda p: float(np.exp(-verifier.margins(pt.net, p, pt.X, pt.y)).sum())  # noqa: E731
    _, g = verifier.dynamics.loss_and_grad(pt.net, pt.net.flatten(pt.init), pt.X, pt.y)
    if np.linalg.norm(g) > 0:
        assert loss(pt.params) < loss(pt.init)
    else:  # a dead ReLU start: gradient descent cannot move
        assert all(np.array_equal(pt.params[p], pt.init[p]) for p in pt.net.param_names)
