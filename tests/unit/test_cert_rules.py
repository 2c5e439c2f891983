"""The checker's rule table: op coverage, the two-slope rule, and one definition of the "exact" relaxation.

Oracles: the op registry (coverage), closed forms of a one-hidden-layer net in
exact ``Fraction`` arithmetic written out by hand (two-slope), the equivalent
relu / leaky / abs rules, the float KKT layer's structural test
(``verifier.kkt.kinks.exact_structure``) and ``check_kkt``'s relaxation level.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

import verifier
from verifier.certificates import checker as C
from verifier.certificates.format import FORMAT_NAME, encode_labels, encode_tensor, sha256_json

#: ops of the registry the checker cannot evaluate exactly by design (not positively homogeneous)
NON_HOMOGENEOUS = {"sigmoid", "tanh"}


def test_checker_covers_every_homogeneous_registry_op():
    # the checker's op set equals the registry's homogeneous ops: adding an op without its exact rule fails here
    from verifier.ops import REGISTRY

    wanted = set(REGISTRY) - NON_HOMOGENEOUS
    assert set(C.OPS) == wanted, (sorted(wanted - set(C.OPS)), sorted(set(C.OPS) - wanted))
    assert set(C.OPS) == set(C.RULES) and not (set(C.OPS) & NON_HOMOGENEOUS)


# ---------------------------------------------------------------------------
# two_slope: a z (z >= 0), b z (z < 0)
# ---------------------------------------------------------------------------
def _net_dict(act: dict, widths=(2, 3, 1)):
    nodes = [{"name": "x", "op": "input", "attrs": {"shape": [widths[0]]}}]
    prev = "x"
    for i, w in enumerate(widths[1:], start=1):
        nodes.append({"name": f"fc{i}", "op": "dense", "inputs": [prev], "params": {"weight": f"W{i}"},
                      "attrs": {"out_features": w}})
        prev = f"fc{i}"
        if i < len(widths) - 1:
            nodes.append({"name": f"act{i}", "inputs": [prev], **act})
            prev = f"act{i}"
    nodes.append({"name": "out", "op": "output", "inputs": [prev]})
    return {"format": "kkt-verifier/network", "version": 1, "nodes": nodes}


def _cert(net_d, params, X, y, lam, sels=None, claims=None):
    wit = {"multipliers": [str(Fraction(v)) for v in lam]}
    wit["sha256"] = {"multipliers": sha256_json(wit["multipliers"])}
    if sels:
        wit["kink_selections"] = sels
        wit["sha256"]["kink_selections"] = sha256_json(sels)
    return {"meta": {"format": FORMAT_NAME, "format_version": 1, "kind": "kkt", "created": "x", "tool": "test"},
            "network": net_d, "params": {"tensors": {k: encode_tensor(np.asarray(v, float)) for k, v in params.items()}},
            "data": {"X": encode_tensor(np.asarray(X, float)), "y": encode_labels(y)}, "witnesses": wit,
            "claims": claims or {"degree": {"relation": "=", "value": "2"},
                                 "relaxation": {"relation": "<=", "value": "chain-rule"},
                                 "min_margin": {"relation": ">=", "bound": "-1e9"},
                                 "eps2": {"relation": "<=", "bound": "1e9"}, "delta": {"relation": "<=", "bound": "1e9"}}}


def _closed_form(a, b, params, X, y, lam, s_at_zero):
    """q_i = y_i sum_j W2_j sigma(z_ij); v = sum_i lam_i grad q_i, in Fractions (hand-written oracle)."""
    F = lambda v: Fraction(float(v))  # noqa: E731
    W1 = [[F(v) for v in row] for row in params["W1"]]
    W2 = [F(v) for v in params["W2"][0]]
    sig = lambda z: a * z if z >= 0 else b * z  # noqa: E731
    gW1 = [[Fraction(0)] * len(W1[0]) for _ in W1]
    gW2 = [Fraction(0)] * len(W2)
    qs = []
    for i, x in enumerate(X):
        x = [F(v) for v in x]
        z = [sum(w * xv for w, xv in zip(row, x)) for row in W1]
        qs.append(y[i] * sum(W2[j] * sig(z[j]) for j in range(len(W2))))
        for j in range(len(W2)):
            d = a if z[j] > 0 else (b if z[j] < 0 else s_at_zero.get((i, j), b))
            gW2[j] += lam[i] * y[i] * sig(z[j])
            for k in range(len(x)):
                gW1[j][k] += lam[i] * y[i] * W2[j] * d * x[k]
    theta = [v for row in W1 for v in row] + W2
    v = [g for row in gW1 for g in row] + gW2
    return qs, sum((t - g) ** 2 for t, g in zip(theta, v))


@pytest.mark.parametrize("a,b", [(Fraction(1), Fraction(-1, 2)), (Fraction(3, 4), Fraction(2)),
                                 (Fraction(-1), Fraction(1, 4))])
def test_two_slope_rule_against_closed_form(a, b):
    params = {"W1": [[1.0, -1.0], [0.5, 0.25], [-2.0, 1.0]], "W2": [[1.5, -0.75, 0.5]]}
    X = [[1.0, 1.0], [0.5, -2.0], [-1.0, 0.25]]  # sample 0: unit 0 at a kink (z = 0 exactly)
    y = [1, -1, 1]
    lam = [Fraction(1, 2), Fraction(1, 4), Fraction(3, 8)]
    net_d = _net_dict({"op": "two_slope", "attrs": {"a": str(a), "b": str(b)}})
    lo, hi = min(a, b), max(a, b)
    for s in (None, lo, (lo + hi) / 2, hi):
        sels = None if s is None else [{"node": "act1", "sample": 0, "unit": [0], "s": str(s)}]
        res = C.check_certificate(_cert(net_d, params, X, y, lam, sels))
        qs, eps2 = _closed_form(a, b, params, X, y, lam, {} if s is None else {(0, 0): s})
        assert res.figures["margins"] == qs
        assert res.figures["eps2"] == eps2
        assert res.figures["kinks"] == [{"node": "act1", "sample": 0, "unit": [0]}]
        assert res.figures["relaxation"] == "exact"  # first hidden layer
    for bad in (lo - Fraction(1, 8), hi + Fraction(1, 8)):  # outside the Clarke interval [min(a,b), max(a,b)]
        sels = [{"node": "act1", "sample": 0, "unit": [0], "s": str(bad)}]
        with pytest.raises(C.CertificateError, match=r"kink_selections\[0\]\.s: .* outside the Clarke interval"):
            C.check_certificate(_cert(net_d, params, X, y, lam, sels))


@pytest.mark.parametrize("act,equiv", [({"op": "relu"}, {"a": "1", "b": "0"}),
                                       ({"op": "leaky_relu", "attrs": {"slope": 0.25}}, {"a": "1", "b": "1/4"}),
                                       ({"op": "abs"}, {"a": "1", "b": "-1"})])
def test_two_slope_specialises_to_relu_leaky_abs(act, equiv):
    rng = np.random.default_rng(0)
    params = {"W1": rng.integers(-4, 5, size=(3, 2)) / 4.0, "W2": rng.integers(-4, 5, size=(1, 3)) / 4.0}
    X = rng.integers(-4, 5, size=(5, 2)) / 2.0
    y = [1, -1, 1, 1, -1]
    lam = [Fraction(k + 1, 7) for k in range(5)]
    kinked = C.RULES[act["op"]]
    r1 = C.check_certificate(_cert(_net_dict(act), params, X, y, lam))
    r2 = C.check_certificate(_cert(_net_dict({"op": "two_slope", "attrs": equiv}), params, X, y, lam))
    assert r1.figures["margins"] == r2.figures["margins"]
    assert r1.figures["kinks"] == r2.figures["kinks"]
    # the default derivatives at 0 differ (abs'(0) = 0 vs b); compare where no kink carries weight
    if not r1.figures["kinks"] or act["op"] != "abs":
        assert r1.figures["eps2"] == r2.figures["eps2"]
    assert kinked.clarke(C.Net(_net_dict(act), "n").nodes["act1"].a) == \
        C.RULES["two_slope"].clarke({"a": Fraction(equiv["a"]), "b": Fraction(equiv["b"])})


def test_two_slope_attributes_are_validated():
    for attrs, msg in (({"a": "1"}, "attribute b is required"), ({"a": "x", "b": "1"}, "is not a rational"),
                       ({"a": float("inf"), "b": 1.0}, "must be finite")):
        with pytest.raises(C.CertificateError, match=msg):
            C.Net(_net_dict({"op": "two_slope", "attrs": attrs}), "network")


# ---------------------------------------------------------------------------
# one definition of "exact" (docs/math.md section 7)
# ---------------------------------------------------------------------------
def _nets():
    yield verifier.mlp([2, 3, 1])
    yield verifier.mlp([2, 2, 2, 1])
    yield verifier.mlp([3, 4, 4, 4, 1], bias="first")
    yield verifier.mlp([2, 3, 3, 2], activation="leaky_relu:0.25")
    yield verifier.mlp([2, 3, 3, 1], activation="abs")
    yield verifier.mlp([2, 3, 1], activation="relu_power:1")
    yield verifier.cnn(input_shape=(1, 5, 5), channels=[2], kernel_size=3, pool="max")
    yield verifier.cnn(input_shape=(1, 6, 6), channels=[2, 2], kernel_size=3, padding=1, pool=None)
    yield verifier.Network([
        {"name": "x", "op": "input", "attrs": {"shape": [3]}},
        {"name": "fc1", "op": "dense", "inputs": ["x"], "params": {"weight": "W1"}, "attrs": {"out_features": 4}},
        {"name": "act1", "op": "relu", "inputs": ["fc1"]},
        {"name": "fca", "op": "dense", "inputs": ["act1"], "params": {"weight": "Wa"}, "attrs": {"out_features": 4}},
        {"name": "acta", "op": "relu", "inputs": ["fca"]},
        {"name": "fcb", "op": "dense", "inputs": ["acta"], "params": {"weight": "Wb"}, "attrs": {"out_features": 1}},
        {"name": "out", "op": "output", "inputs": ["fcb"]},
    ])


def test_first_layer_structure_agrees_with_the_float_kkt_layer():
    from verifier.kkt.kinks import exact_structure

    checked = 0
    for net in _nets():
        cn = C.Net(net.to_dict(), "network")
        for name in net.order:
            if cn.kinked(name) and C.RULES[cn.nodes[name].op].selection == "s":
                assert cn.first_layer(name) == exact_structure(net, name), (net.order, name)
                checked += 1
    assert checked >= 12


def test_deep_net_with_first_layer_kink_is_exact_in_both_reports():
    # mlp([2, 2, 2, 1]): a kink in the first hidden layer only is "exact" for the float check and the certificate
    net = verifier.mlp([2, 2, 2, 1])
    params = {"W1": [[1.0, -1.0], [0.5, 0.5]], "W2": [[1.0, 0.5], [0.25, 1.0]], "W3": [[1.0, 1.0]]}
    X = np.array([[1.0, 1.0], [2.0, 1.0]])  # sample 0: W1[0] . x = 0 exactly; deeper units all positive
    y = np.array([1.0, 1.0])
    rep = verifier.check_kkt(net, params, X, y)
    from verifier.certificates import certify_kkt

    cert = certify_kkt(net, params, X, y, report=rep)
    res = C.check_certificate(cert)
    assert res.ok and res.figures["kinks"] and all(k["node"] == "act1" for k in res.figures["kinks"])
    assert rep.multipliers[0] > 0 and rep.relaxation == "exact"  # the kinked sample carries weight
    assert res.figures["relaxation"] == "exact" and cert["claims"]["relaxation"]["value"] == "exact"
    # a kink in the second hidden layer of the same sample makes it chain-rule
    params2 = {"W1": [[1.0, 0.0], [0.0, 1.0]], "W2": [[1.0, -1.0], [1.0, 1.0]], "W3": [[1.0, 1.0]]}
    fig_cn = C.Net(net.to_dict(), "network")
    ev_kinks = [("act2", 0, (0,))]
    assert C.relaxation_needed(fig_cn, ev_kinks, [0])[0] == "chain-rule"
    assert C.relaxation_needed(fig_cn, [("act1", 0, (1,))], [0])[0] == "exact"
    assert C.relaxation_needed(fig_cn, [("act1", 0, (1,)), ("act2", 0, (0,))], [0])[0] == "chain-rule"
    # per sample: a deeper kink at a sample without weight does not matter
    assert C.relaxation_needed(fig_cn, [("act1", 0, (1,)), ("act2", 1, (0,))], [0])[0] == "exact"
    res2 = C.check_certificate(_cert(net.to_dict(), params2, [[1.0, 1.0]], [1], [Fraction(1)],
                                     claims={"degree": {"relation": "=", "value": "3"},
                                             "relaxation": {"relation": "<=", "value": "exact"},
                                             "min_margin": {"relation": ">=", "bound": "0"},
                                             "eps2": {"relation": "<=", "bound": "1e9"},
                                             "delta": {"relation": "<=", "bound": "1e9"}}))
    assert ("act2" in {k["node"] for k in res2.figures["kinks"]}) and res2.figures["relaxation"] == "chain-rule"
    assert not res2.ok and not res2.claim("relaxation").holds
