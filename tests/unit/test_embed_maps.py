"""Embedding maps: network surgery, the exact map T, composition, bad input.

Oracles: wide parameters built by hand with numpy (insert rows / columns / channel
blocks), exact matrix products with Fractions and sympy, the narrow network's own
forward pass, and central finite differences.
"""

from fractions import Fraction

import numpy as np
import pytest
import scipy.sparse as sps
import sympy as sp

import verifier
from verifier.embed import Embedding, EmbeddingError, add_zero_neuron, channel_split, compose, neuron_split

RNG = np.random.default_rng(12345)


def _fraction_gram(emb):
    """T^T T as a dense matrix of Fractions, from the exact entries (independent of the checker)."""
    P = emb.shape[1]
    cols = [dict() for _ in range(P)]
    for r, c, v in emb.entries():
        assert v.is_Rational
        cols[c][r] = Fraction(int(v.p), int(v.q))
    return [[sum(x * cols[j].get(r, 0) for r, x in cols[i].items()) for j in range(P)] for i in range(P)]


# --------------------------------------------------------------------------- fully connected
def test_two_layer_split_matches_hand_built_wide_params():
    net = verifier.mlp([3, 4, 2])
    p = net.init_params(3)
    emb = neuron_split(net, p, layer=1, neuron=1, ratios=["3/5", "4/5"])
    W1, W2 = p["W1"], p["W2"]
    want_W1 = np.vstack([W1, 0.8 * W1[1:2]])
    want_W1[1] = 0.6 * W1[1]
    want_W2 = np.hstack([W2, 0.8 * W2[:, 1:2]])
    want_W2[:, 1] = 0.6 * W2[:, 1]
    np.testing.assert_allclose(emb.wide_params["W1"], want_W1, rtol=0, atol=1e-15)
    np.testing.assert_allclose(emb.wide_params["W2"], want_W2, rtol=0, atol=1e-15)
    assert emb.wide_net.param_shapes == {"W1": (5, 3), "W2": (2, 5)}
    assert emb.info["copies"] == [1, 4]
    X = RNG.normal(size=(20, 3))
    np.testing.assert_allclose(verifier.forward(emb.wide_net, emb.wide_params, X), verifier.forward(net, p, X), rtol=1e-13, atol=1e-13)


def test_T_entries_are_exact_rationals_and_an_isometry_in_fractions():
    net = verifier.mlp([2, 3, 1])
    emb = neuron_split(net, None, 1, 2, ["1/3", "2/3", "2/3"])
    vals = {v for _r, _c, v in emb.entries()}
    assert vals == {sp.Integer(1), sp.Rational(1, 3), sp.Rational(2, 3)}
    assert emb.is_rational
    G = _fraction_gram(emb)
    assert all(G[i][j] == (1 if i == j else 0) for i in range(len(G)) for j in range(len(G)))
    # the float matrix carries the same numbers
    dense = emb.T.toarray()
    for r, c, v in emb.entries():
        assert dense[r, c] == float(v)
    assert emb.T.nnz == len(emb.entries()) == emb.shape[0]   # one entry per wide parameter


def test_float_ratios_are_read_as_decimals():
    net = verifier.mlp([2, 3, 1])
    emb = neuron_split(net, None, 1, 0, [0.6, 0.8])
    assert {v for *_rc, v in emb.entries()} == {1, sp.Rational(3, 5), sp.Rational(4, 5)}


def test_irrational_ratios_are_symbolic_and_isometric():
    net = verifier.mlp([2, 2, 1])
    emb = neuron_split(net, None, 1, 0, ["1/sqrt(2)", "1/2", "1/2"])
    assert not emb.is_rational
    Te = emb.T_exact
    assert Te[0, 0] == sp.sqrt(2) / 2
    gram = (Te.T * Te).applyfunc(sp.nsimplify)
    assert gram == sp.eye(emb.shape[1])


def test_deep_split_in_a_middle_layer():
    net = verifier.mlp([3, 4, 5, 4, 1])
    p = net.init_params(1)
    emb = neuron_split(net, p, layer=2, neuron=3, ratios=["2/3", "1/3", "2/3"])
    W2, W3 = p["W2"], p["W3"]
    want_W2 = np.vstack([W2, W2[3:4] / 3, 2 * W2[3:4] / 3])
    want_W2[3] = 2 * W2[3] / 3
    want_W3 = np.hstack([W3, W3[:, 3:4] / 3, 2 * W3[:, 3:4] / 3])
    want_W3[:, 3] = 2 * W3[:, 3] / 3
    np.testing.assert_allclose(emb.wide_params["W2"], want_W2, atol=1e-15)
    np.testing.assert_allclose(emb.wide_params["W3"], want_W3, atol=1e-15)
    np.testing.assert_array_equal(emb.wide_params["W1"], p["W1"])
    np.testing.assert_array_equal(emb.wide_params["W4"], p["W4"])
    X = RNG.normal(size=(30, 3))
    np.testing.assert_allclose(verifier.forward(emb.wide_net, emb.wide_params, X), verifier.forward(net, p, X), rtol=1e-12, atol=1e-13)


def test_first_layer_bias_is_split_too():
    net = verifier.mlp([2, 3, 1], bias="first")
    p = net.init_params(2)
    emb = neuron_split(net, p, 1, 1, ["3/5", "4/5"])
    np.testing.assert_allclose(emb.wide_params["b1"], [p["b1"][0], 0.6 * p["b1"][1], p["b1"][2], 0.8 * p["b1"][1]])
    X = RNG.normal(size=(10, 2))
    np.testing.assert_allclose(verifier.forward(emb.wide_net, emb.wide_params, X), verifier.forward(net, p, X), atol=1e-14)
    assert _fraction_gram(emb) == [[int(i == j) for j in range(net.num_params)] for i in range(net.num_params)]


def test_multiclass_and_leaky_relu():
    net = verifier.mlp([2, 3, 3], activation="leaky_relu:0.2")
    p = net.init_params(0)
    emb = neuron_split(net, p, 1, 2, ["3/5", "4/5"])
    X = RNG.normal(size=(15, 2))
    np.testing.assert_allclose(verifier.forward(emb.wide_net, emb.wide_params, X), verifier.forward(net, p, X), atol=1e-14)


# --------------------------------------------------------------------------- convolutions
def _hand_wide_cnn(p, layer_w, next_w, c, alphas, next_dense_block=None):
    """Filters alpha_k W_l[c] (appended), next layer slice alpha_k W_{l+1}[:, c] (or the flattened block)."""
    W, V = p[layer_w], p[next_w]
    newW = np.concatenate([W] + [a * W[c:c + 1] for a in alphas[1:]], axis=0)
    newW[c] = alphas[0] * W[c]
    if next_dense_block is None:
        newV = np.concatenate([V] + [a * V[:, c:c + 1] for a in alphas[1:]], axis=1)
        newV[:, c] = alphas[0] * V[:, c]
    else:
        s = next_dense_block
        C = V.shape[1] // s
        V4 = V.reshape(V.shape[0], C, s)
        newV4 = np.concatenate([V4] + [a * V4[:, c:c + 1] for a in alphas[1:]], axis=1)
        newV4[:, c] = alphas[0] * V4[:, c]
        newV = newV4.reshape(V.shape[0], -1)
    return newW, newV


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_channel_split_before_pool_flatten_dense(pool):
    net = verifier.cnn((2, 6, 6), channels=[3], pool=pool, outputs=2)
    p = net.init_params(4)
    emb = channel_split(net, p, layer=1, channel=1, ratios=["1/3", "2/3", "2/3"])
    W, V = _hand_wide_cnn(p, "W1", "W2", 1, [1 / 3, 2 / 3, 2 / 3], next_dense_block=9)
    np.testing.assert_allclose(emb.wide_params["W1"], W, atol=1e-15)
    np.testing.assert_allclose(emb.wide_params["W2"], V, atol=1e-15)
    assert emb.wide_net.shapes["pool1"] == (5, 3, 3)
    X = RNG.normal(size=(8, 2, 6, 6))
    np.testing.assert_allclose(verifier.forward(emb.wide_net, emb.wide_params, X), verifier.forward(net, p, X), rtol=1e-12, atol=1e-13)
    assert _fraction_gram(emb) == [[int(i == j) for j in range(net.num_params)] for i in range(net.num_params)]


def test_channel_split_conv_to_conv_and_later_dense():
    net = verifier.cnn((1, 8, 8), channels=[2, 3], pool="max", hidden=[4], outputs=1, bias="first")
    p = net.init_params(5)
    X = RNG.normal(size=(6, 1, 8, 8))
    emb = channel_split(net, p, 1, 0, ["3/5", "4/5"])
    W, V = _hand_wide_cnn(p, "W1", "W2", 0, [0.6, 0.8])
    np.testing.assert_allclose(emb.wide_params["W1"], W, atol=1e-15)
    np.testing.assert_allclose(emb.wide_params["W2"], V, atol=1e-15)
    np.testing.assert_allclose(emb.wide_params["b1"], [0.6 * p["b1"][0], p["b1"][1], 0.8 * p["b1"][0]])
    np.testing.assert_allclose(verifier.forward(emb.wide_net, emb.wide_params, X), verifier.forward(net, p, X), rtol=1e-12, atol=1e-13)
    emb2 = channel_split(net, p, 2, 2, ["3/5", "4/5"])            # conv2 -> pool -> flatten -> fc3
    W, V = _hand_wide_cnn(p, "W2", "W3", 2, [0.6, 0.8], next_dense_block=4)
    np.testing.assert_allclose(emb2.wide_params["W3"], V, atol=1e-15)
    np.testing.assert_allclose(verifier.forward(emb2.wide_net, emb2.wide_params, X), verifier.forward(net, p, X), rtol=1e-12, atol=1e-13)
    emb3 = neuron_split(net, p, 3, 1, ["1/sqrt(2)", "1/sqrt(2)"])  # the dense hidden layer after the convs
    np.testing.assert_allclose(verifier.forward(emb3.wide_net, emb3.wide_params, X), verifier.forward(net, p, X), rtol=1e-12, atol=1e-13)


def test_channel_split_without_pooling():
    net = verifier.cnn((1, 5, 5), channels=[2], pool=None, outputs=1, padding=0)
    p = net.init_params(6)
    emb = channel_split(net, p, 1, 1, ["3/5", "4/5"])
    _W, V = _hand_wide_cnn(p, "W1", "W2", 1, [0.6, 0.8], next_dense_block=9)
    np.testing.assert_allclose(emb.wide_params["W2"], V, atol=1e-15)


# --------------------------------------------------------------------------- zero neurons, user maps, composition
@pytest.mark.parametrize("act", ["relu", "power:2", "relu_power:3", "abs"])
def test_add_zero_neuron_preserves_function_for_any_homogeneous_activation(act):
    net = verifier.mlp([2, 3, 3, 1], activation=act)
    p = net.init_params(0)
    emb = add_zero_neuron(net, p, layer=2, count=2)
    assert emb.wide_params["W2"].shape == (5, 3)
    assert np.all(emb.wide_params["W2"][3:] == 0) and np.all(emb.wide_params["W3"][:, 3:] == 0)
    X = RNG.normal(size=(10, 2))
    np.testing.assert_allclose(verifier.forward(emb.wide_net, emb.wide_params, X), verifier.forward(net, p, X), rtol=1e-13)
    assert emb.T.nnz == net.num_params and not emb.warnings
    assert _fraction_gram(emb) == [[int(i == j) for j in range(net.num_params)] for i in range(net.num_params)]


def test_add_zero_channel():
    net = verifier.cnn((1, 4, 4), channels=[2], pool="avg")
    emb = add_zero_neuron(net, net.init_params(0), layer=1)
    assert emb.wide_net.param_shapes["W1"] == (3, 1, 3, 3) and emb.wide_net.param_shapes["W2"] == (1, 12)


def test_several_splits_compose_exactly():
    net = verifier.mlp([2, 3, 3, 1])
    p = net.init_params(7)
    e1 = neuron_split(net, p, 1, 0, ["3/5", "4/5"])
    e2 = neuron_split(e1.wide_net, e1.wide_params, 2, 2, ["1/3", "2/3", "2/3"])
    e3 = add_zero_neuron(e2.wide_net, e2.wide_params, 1)
    c = compose(e1, e2, e3)
    assert c.shape == (e3.wide_net.num_params, net.num_params)
    dense = (e3.T @ e2.T @ e1.T).toarray()
    np.testing.assert_allclose(c.T.toarray(), dense, atol=1e-15)
    exact = e3.T_exact * e2.T_exact * e1.T_exact
    assert c.T_exact == exact
    for k, v in e3.wide_params.items():
        np.testing.assert_allclose(c.wide_params[k], v, atol=1e-15)
    assert (e2 @ e1).T_exact == e2.T_exact * e1.T_exact
    assert c.then(neuron_split(c.wide_net, c.wide_params, 1, 1, ["3/5", "4/5"])).shape[1] == net.num_params
    with pytest.raises(EmbeddingError, match="not the wide network of embedding 0"):
        compose(e1, e1)


def test_user_map_forms_and_shape_validation():
    net = verifier.mlp([1, 1, 1], activation="identity")
    wide = verifier.mlp([1, 2, 1], activation="identity")
    rows = [["3/5", 0], ["4/5", 0], [0, "3/5"], [0, "4/5"]]
    e_list = Embedding(net, wide, rows, params={"W1": [[2.0]], "W2": [[-1.0]]})
    e_sym = Embedding(net, wide, sp.Matrix(rows))
    e_sp = Embedding(net, wide, sps.csr_matrix(np.array([[0.6, 0], [0.8, 0], [0, 0.6], [0, 0.8]])))
    assert e_list.T_exact == e_sym.T_exact
    # float entries are exact dyadic rationals, not 3/5
    assert e_sp.T_exact[0, 0] == sp.Rational(Fraction(0.6).numerator, Fraction(0.6).denominator) != sp.Rational(3, 5)
    np.testing.assert_allclose(e_list.wide_params["W1"], [[1.2], [1.6]])
    np.testing.assert_allclose(e_list.apply(np.array([[1.0, 0.0], [0.0, 1.0]])), [[0.6, 0.8, 0, 0], [0, 0, 0.6, 0.8]])
    with pytest.raises(EmbeddingError, match=r"map T has shape \(4, 3\), expected \(P~, P\) = \(4, 2\)"):
        Embedding(net, wide, np.zeros((4, 3)))
    with pytest.raises(EmbeddingError, match=r"shape \(2, 4\)"):
        Embedding(net, wide, sps.csr_matrix((2, 4)))
    with pytest.raises(EmbeddingError, match="2-dimensional"):
        Embedding(net, wide, np.zeros(4))
    with pytest.raises(EmbeddingError, match="not a finite real number"):
        Embedding(net, wide, [["x", 0], [0, 0], [0, 0], [0, 0]])
    with pytest.raises(EmbeddingError, match="is nan; entries must be finite|not a finite"):
        Embedding(net, wide, np.array([[np.nan, 0], [0, 0], [0, 0], [0, 0]]))
    with pytest.raises(EmbeddingError, match="wide_net must be a verifier.Network"):
        Embedding(net, "wide", rows)
    with pytest.raises(EmbeddingError, match=r"theta has shape \(3,\), expected \(2,\)"):
        e_list.apply(np.zeros(3))


# --------------------------------------------------------------------------- power activations, rescales
def test_power_split_is_built_but_flagged_with_the_reason():
    net = verifier.mlp([2, 3, 1], activation="power:2")
    p = net.init_params(0)
    emb = neuron_split(net, p, 1, 0, ["3/5", "4/5"])
    assert emb.flagged
    assert "no non-trivial isometric output-preserving split exists for z^k, k >= 2" in emb.warnings[0]
    assert "sum alpha_k^3 = 91/125" in emb.warnings[0] and "add_zero_neuron" in emb.warnings[0]
    # the map really changes the function by the factor sum alpha^3 on that unit (closed form)
    X = RNG.normal(size=(5, 2))
    h = (X @ p["W1"].T) ** 2
    want = verifier.forward(net, p, X)[:, 0] + (91 / 125 - 1) * p["W2"][0, 0] * h[:, 0]
    np.testing.assert_allclose(verifier.forward(emb.wide_net, emb.wide_params, X)[:, 0], want, rtol=1e-12)


def test_output_preserving_rescale():
    net = verifier.mlp([2, 3, 1])
    p = net.init_params(0)
    emb = neuron_split(net, p, 1, 1, in_ratios=["1/2", "1/2"], out_ratios=["1", "1"])
    X = RNG.normal(size=(9, 2))
    np.testing.assert_allclose(verifier.forward(emb.wide_net, emb.wide_params, X), verifier.forward(net, p, X), atol=1e-14)
    assert any("not an isometry" in w for w in emb.warnings)
    # power:2: sum b_k a_k^2 = 1 is the output-preserving condition
    netp = verifier.mlp([2, 3, 1], activation="power:2")
    pp = netp.init_params(0)
    e2 = neuron_split(netp, pp, 1, 1, in_ratios=["1/2", "1/2"], out_ratios=["2", "2"])
    np.testing.assert_allclose(verifier.forward(e2.wide_net, e2.wide_params, X), verifier.forward(netp, pp, X), rtol=1e-12)
    with pytest.raises(EmbeddingError, match=r"sum b_k a_k\^2 = 1/2 != 1"):
        neuron_split(netp, pp, 1, 1, in_ratios=["1/2", "1/2"], out_ratios=["1", "1"])


def test_sigmoid_is_flagged():
    net = verifier.mlp([2, 3, 1], activation="sigmoid")
    emb = neuron_split(net, net.init_params(0), 1, 0, ["3/5", "4/5"])
    assert any("not positively homogeneous" in w for w in emb.warnings)


# --------------------------------------------------------------------------- gradients vs finite differences
def _fd_grad(net, theta, x, h=1e-6):
    g = np.zeros_like(theta)
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e[i] = h
        g[i] = (verifier.forward(net, theta + e, x)[0, 0] - verifier.forward(net, theta - e, x)[0, 0]) / (2 * h)
    return g


def test_gradient_intertwining_against_finite_differences():
    net = verifier.mlp([2, 3, 1])
    theta = net.flatten(net.init_params(11))
    emb = neuron_split(net, None, 1, 2, ["3/5", "4/5"])
    for x in RNG.normal(size=(3, 1, 2)):
        g = _fd_grad(net, theta, x)
        gw = _fd_grad(emb.wide_net, emb.apply(theta), x)
        np.testing.assert_allclose(gw, emb.T @ g, atol=1e-7)
    # and the non-isometric rescale breaks it on the split unit's weights
    bad = neuron_split(net, None, 1, 2, in_ratios=["1/2", "1/2"], out_ratios=["1", "1"])
    x = net.unflatten(theta)["W1"][2:3]          # the split unit is active at x: W1[2] . x > 0
    g = _fd_grad(net, theta, x)
    gw = _fd_grad(bad.wide_net, bad.apply(theta), x)
    assert np.abs(gw - bad.T @ g).max() > 1e-3


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, match", [
    (dict(layer=0, neuron=0, ratios=["3/5", "4/5"]), r"layer=0 is out of range; hidden layers are 1..2"),
    (dict(layer=3, neuron=0, ratios=["3/5", "4/5"]), r"layer 3 \('fc3'\) is the output layer"),
    (dict(layer="fc7", neuron=0, ratios=["3/5", "4/5"]), r"layer='fc7' is not a dense/conv2d node"),
    (dict(layer=1.5, neuron=0, ratios=["3/5", "4/5"]), r"layer=1.5 must be an integer"),
    (dict(layer=1, neuron=4, ratios=["3/5", "4/5"]), r"neuron=4 is out of range; layer 'fc1' has 4 neurons, valid indices 0..3"),
    (dict(layer=1, neuron=-1, ratios=["3/5", "4/5"]), r"neuron=-1 is out of range"),
    (dict(layer=1, neuron=0, ratios=["0", "1"]), r"ratios\[0\]='0' is not positive"),
    (dict(layer=1, neuron=0, ratios=["-3/5", "4/5"]), r"ratios\[0\]='-3/5' is not positive"),
    (dict(layer=1, neuron=0, ratios=["1/2", "1/2"]), r"sum alpha_k\^2 = 1/2 != 1"),
    (dict(layer=1, neuron=0, ratios=[0.7071, 0.7071]), r"sum alpha_k\^2 = 49999041/50000000 != 1"),
    (dict(layer=1, neuron=0, ratios="3/5;4/5"), r"not a finite real number|not a number"),
    (dict(layer=1, neuron=0, ratios=[]), r"ratios is empty"),
    (dict(layer=1, neuron=0, ratios=["nan", "1"]), r"not a finite real number|not a number"),
    (dict(layer=1, neuron=0), r"give ratios=\[...\]"),
    (dict(layer=1, neuron=0, ratios=["1"], in_ratios=["1"], out_ratios=["1"]), r"not both"),
    (dict(layer=1, neuron=0, in_ratios=["1", "1"], out_ratios=["1"]), r"in_ratios has 2 entries and out_ratios 1"),
    (dict(layer=1, neuron=0, in_ratios=["1", "1"], out_ratios=["1", "1"]), r"sum b_k a_k = 2 != 1"),
])
def test_bad_split_arguments(kwargs, match):
    net = verifier.mlp([2, 4, 4, 1])
    with pytest.raises(EmbeddingError, match=match):
        neuron_split(net, None, **kwargs)


def test_bad_structure():
    cnn = verifier.cnn((1, 4, 4), channels=[2])
    with pytest.raises(EmbeddingError, match="is a convolution; use channel_split"):
        neuron_split(cnn, None, 1, 0, ["3/5", "4/5"])
    with pytest.raises(EmbeddingError, match="is a dense layer; use neuron_split"):
        channel_split(verifier.mlp([2, 3, 1]), None, 1, 0, ["3/5", "4/5"])
    with pytest.raises(EmbeddingError, match="channel=2 is out of range; layer 'conv1' has 2 channels"):
        channel_split(cnn, None, 1, 2, ["3/5", "4/5"])
    with pytest.raises(EmbeddingError, match="count=0 must be a positive integer"):
        add_zero_neuron(cnn, None, 1, count=0)
    res = verifier.Network([
        {"name": "x", "op": "input", "attrs": {"shape": [2]}},
        {"name": "fc1", "op": "dense", "inputs": ["x"], "params": {"weight": "W1"}, "attrs": {"out_features": 2}},
        {"name": "act1", "op": "relu", "inputs": ["fc1"]},
        {"name": "fc2", "op": "dense", "inputs": ["act1"], "params": {"weight": "W2"}, "attrs": {"out_features": 2}},
        {"name": "res", "op": "add", "inputs": ["fc2", "act1"]},
        {"name": "fc3", "op": "dense", "inputs": ["res"], "params": {"weight": "W3"}, "attrs": {"out_features": 1}},
        {"name": "out", "op": "output", "inputs": ["fc3"]},
    ])
    with pytest.raises(EmbeddingError, match=r"through node 'res' \(add\).*other summand"):
        neuron_split(res, None, 1, 0, ["3/5", "4/5"])
    with pytest.raises(verifier.VerifierError, match="params: missing"):
        neuron_split(verifier.mlp([2, 3, 1]), {"W1": np.zeros((3, 2))}, 1, 0, ["3/5", "4/5"])
