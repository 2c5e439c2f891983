"""The one definition of the "exact" relaxation level (docs/math.md section 7), against limiting gradients.

Oracle: the Clarke subdifferential is the convex hull of limits of gradients at
nearby differentiable points.  At a point with kinks we sample gradients at
random perturbations ``theta + delta r`` (differentiable almost surely) and
compare them with the vertices of the chain-rule set that
:func:`verifier.kkt.kinks.build_pieces` describes.  Where the definition says
"exact" every vertex must be approached; in the counterexample it rejects (one
pre-activation feeding two kinked ops) some vertex never is.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import verifier
from verifier.graph import Network
from verifier.kkt.kinks import build_pieces, exact_relaxation, exact_structure, prune, relaxation
from verifier.numeric.data import constraints
from verifier.numeric.engine import jacobian_from, kinks_from, run_forward


def _pieces(net, params, X, y, tol=1e-9):
    fp = run_forward(net, params, X)
    cons = constraints(net, np.asarray(y, dtype=float))
    ks = kinks_from(fp, tol)
    return fp, cons, ks, build_pieces(fp, cons, ks, tol)


def _vertices(fp, cons, pieces, row):
    """Vertices of the chain-rule subgradient set of margin row ``row`` (interval slots only)."""
    h0 = jacobian_from(fp, cons)[row]
    slots = [s for s in pieces.slots if s.row == row]
    assert all(s.kind == "interval" for s in slots)
    out = []
    for ends in itertools.product(*[(s.lo, s.hi) for s in slots]):
        v = h0.copy()
        for s, f in zip(slots, ends):
            v += f * pieces.D[s.cols[0]]
        out.append(v)
    return out


def _limiting(net, params, X, y, row, count=300, seed=0):
    rng = np.random.default_rng(seed)
    theta = net.flatten(params)
    delta = 1e-7 * np.linalg.norm(theta)
    cons = constraints(net, np.asarray(y, dtype=float))
    out = []
    for _ in range(count):
        fp = run_forward(net, theta + delta * rng.normal(size=theta.shape), X)
        out.append(jacobian_from(fp, cons)[row])
    return np.array(out)


def _approached(vertex, grads, rtol=1e-4):
    return bool(np.min(np.linalg.norm(grads - vertex, axis=1)) <= rtol * (1.0 + np.linalg.norm(vertex)))


def _first_layer_kink_net(seed, widths, bias="none"):
    """Random ``mlp(widths)`` with sample 0 exactly at the kink of first-layer unit 0 (and unit 1 when there is room).

    ``x_0 = e_1`` and ``W1[j, 0] = 0`` puts unit ``j`` at ``z = 0`` exactly; the last first-layer
    unit is kept active for sample 0 (``W1[-1, 0] > 0``) and the deeper hidden weights positive,
    so that no deeper pre-activation of sample 0 is at a kink.
    """
    rng = np.random.default_rng(seed)
    net = verifier.mlp(widths, bias=bias)
    p = net.init_params(seed)
    d = widths[0]
    kinked = [0, 1] if seed % 2 and widths[1] > 2 else [0]
    for name in net.param_names[1:-1]:  # hidden layers after the first: positive, so sample 0 stays active
        p[name] = np.abs(p[name]) + 0.1
    W1 = p["W1"]
    W1[kinked, 0] = 0.0
    W1[-1, 0] = abs(W1[-1, 0]) + 0.5
    if "b1" in p:
        p["b1"][kinked] = 0.0
        p["b1"][-1] = abs(p["b1"][-1])
    x0 = np.zeros(d)
    x0[0] = 1.0
    X = np.vstack([x0, rng.normal(size=(2, d))])
    return net, p, X, np.array([1.0, 1.0, -1.0]), kinked


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("widths,bias", [([2, 2, 2, 1], "none"), ([3, 3, 2, 2, 1], "none"), ([2, 3, 2, 1], "first")])
def test_first_layer_kinks_of_random_deep_nets_are_exact(seed, widths, bias):
    net, p, X, y, kinked = _first_layer_kink_net(seed, widths, bias)
    fp, cons, ks, pieces = _pieces(net, p, X, y)
    assert pieces.kink_nodes_of_sample.get(0) == {"act1"}
    assert {k.unit[0] for k in ks if k.sample == 0} == set(kinked)
    assert relaxation(net, pieces, np.ones(cons.m)) == "exact"
    # oracle: every chain-rule vertex of sample 0 is a limit of nearby gradients
    grads = _limiting(net, p, X, y, row=0)
    for v in _vertices(fp, cons, pieces, 0):
        assert _approached(v, grads), "a vertex of the chain-rule box is not a limiting gradient"


def test_mlp_2221_with_a_first_layer_kink_is_exact():
    net = verifier.mlp([2, 2, 2, 1])
    p = {"W1": np.array([[0.0, 1.0], [1.0, 1.0]]), "W2": np.array([[1.0, 1.0], [2.0, 1.0]]), "W3": np.array([[1.0, 1.0]])}
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    fp, cons, ks, pieces = _pieces(net, p, X, [1.0, 1.0])
    assert {(k.node, k.sample, k.unit) for k in ks} == {("act1", 0, (0,))}
    assert relaxation(net, pieces, np.array([1.0, 0.0])) == "exact"
    assert relaxation(net, pieces, np.array([0.0, 1.0])) == "none"  # the kinked sample carries no multiplier
    grads = _limiting(net, p, X, [1.0, 1.0], row=0)
    for v in _vertices(fp, cons, pieces, 0):
        assert _approached(v, grads)


def test_a_deeper_kink_of_the_same_sample_is_chain_rule():
    net = verifier.mlp([2, 2, 2, 1])
    # sample 0: first-layer unit 0 at its kink, and second-layer unit 0 at its kink too
    p = {"W1": np.array([[0.0, 1.0], [1.0, 1.0]]), "W2": np.array([[1.0, 0.0], [2.0, 1.0]]), "W3": np.array([[1.0, 1.0]])}
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    fp, cons, ks, pieces = _pieces(net, p, X, [1.0, 1.0])
    assert {k.node for k in ks if k.sample == 0} == {"act1", "act2"}
    assert pieces.kink_nodes_of_sample[0] == {"act1", "act2"}
    assert relaxation(net, pieces, np.array([1.0, 0.0])) == "chain-rule"
    assert not exact_relaxation(net, pieces.kink_nodes_of_sample, [0])


def _shared_preactivation_net() -> Network:
    """``q = u * (relu(z) + two_slope(0, 1)(z))`` with ``z = <w, x>``: the sum is ``z`` itself (smooth)."""
    return Network([
        {"name": "x", "op": "input", "attrs": {"shape": [2]}},
        {"name": "fc1", "op": "dense", "inputs": ["x"], "params": {"weight": "W1"}, "attrs": {"out_features": 1}},
        {"name": "pos", "op": "relu", "inputs": ["fc1"]},
        {"name": "neg", "op": "two_slope", "inputs": ["fc1"], "attrs": {"a": 0.0, "b": 1.0}},
        {"name": "sum", "op": "add", "inputs": ["pos", "neg"]},
        {"name": "fc2", "op": "dense", "inputs": ["sum"], "params": {"weight": "W2"}, "attrs": {"out_features": 1}},
        {"name": "out", "op": "output", "inputs": ["fc2"]},
    ])


def test_one_preactivation_feeding_two_kinked_ops_is_not_exact():
    net = _shared_preactivation_net()
    p = {"W1": np.array([[0.0, 1.0]]), "W2": np.array([[2.0]])}
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    y = [1.0, 1.0]
    fp, cons, ks, pieces = _pieces(net, p, X, y)
    assert {k.node for k in ks if k.sample == 0} == {"pos", "neg"}
    assert not exact_structure(net, "pos") and not exact_structure(net, "neg")
    assert relaxation(net, pieces, np.ones(2)) == "chain-rule"
    # oracle: q = 2 <w, x> is smooth: every nearby gradient is the same; the chain-rule hull is larger
    grads = _limiting(net, p, X, y, row=0, count=50)
    assert np.allclose(grads, grads[0], atol=1e-6)
    slot = next(s for s in pieces.slots if s.row == 0)
    assert slot.kind == "simplex" and len(slot.cols) >= 3  # the vertex hull over (s_pos, s_neg)
    h0 = jacobian_from(fp, cons)[0]
    verts = [h0] + [h0 + pieces.D[c] for c in slot.cols]
    assert not all(_approached(v, grads) for v in verts)


def test_exact_structure_asks_the_ops():
    assert exact_structure(verifier.mlp([2, 3, 1], bias="first"), "act1")
    assert exact_structure(verifier.mlp([2, 3, 1], activation="two_slope:2,-1"), "act1")
    assert not exact_structure(verifier.mlp([2, 3, 3, 1]), "act2")
    assert not exact_structure(verifier.mlp([2, 3, 1], activation="power:2"), "act1")  # no kink
    assert not exact_structure(verifier.cnn((1, 4, 4), channels=[2]), "act1")  # weight sharing
    assert not exact_structure(verifier.cnn((1, 4, 4), channels=[2]), "pool1")


def test_prune_is_exact_and_batched():
    # ReLU zeros below the kink feeding a tie, and an all-zero patch: nothing to keep
    net = verifier.cnn((1, 4, 4), channels=[1], kernel_size=1, padding=0, pool="max")
    p = {"W1": np.ones((1, 1, 1, 1)), "W2": np.ones((1, 4))}
    X = np.zeros((3, 1, 4, 4))
    X[0, 0, 0, :2] = 1.0  # sample 0: a real tie in the top-left window (equal values, different gradients? no: the
    X[1, 0, 0, 0] = -1.0  # patches are equal pixels of one weight, so the tied gradients are equal)
    fp = run_forward(net, p, X)
    ks = kinks_from(fp, 0.0)
    assert {(k.node, k.sample) for k in ks} <= {("pool1", 0)}
    assert prune(fp, ks, 0.0) == []  # tied entries x * w with x = 1: gradients d/dw equal -> the tie cannot matter
