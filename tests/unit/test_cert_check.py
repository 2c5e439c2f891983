"""The independent exact checker against independent oracles.

* the float64 numeric engine (``verifier.numeric``: margins, weighted gradients), to ~1e-10;
* sympy, exactly, on dyadic points (``verifier.analysis.symbolic_eval`` with the active region);
* closed forms at kinks and max-pool ties, written out by hand in the tests.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import sympy as sp

import verifier
from verifier.analysis.symbolic_eval import param_symbols, region_functions, symbolic_forward
from verifier.certificates import checker as C
from verifier.certificates.format import (FORMAT_NAME, encode_labels, encode_tensor, sha256_json)
from verifier.numeric import margins_from, prepare, weighted_gradient_from


def loose_claims(degree, kind="kkt"):
    """Every claim a kind requires, with bounds loose enough to hold (the tests look at figures and single claims)."""
    c = {"degree": {"relation": "=", "value": str(degree)}, "relaxation": {"relation": "<=", "value": "chain-rule"},
         "min_margin": {"relation": ">=", "bound": "-1e30"}, "eps2": {"relation": "<=", "bound": "1e30"},
         "delta": {"relation": "<=", "bound": "1e30"}}
    if kind == "embedding":
        c.update({k: {"relation": "=", "value": True} for k in ("isometry", "output_preserved", "gradient_commutes")})
        c.update({"wide_min_margin": {"relation": ">=", "bound": "-1e30"}, "wide_eps2": {"relation": "<=", "bound": "1e30"},
                  "wide_delta": {"relation": "<=", "bound": "1e30"}})
    return c


def make_cert(net, params, X, y, lam=None, sels=None, kind="kkt", claims=None, embedding=None):
    """A certificate dict written by hand (no producer involved)."""
    ps = net.check_params(params)
    wit = {"sha256": {}}
    if lam is not None:
        wit["multipliers"] = [str(Fraction(v)) for v in lam]
        wit["sha256"]["multipliers"] = sha256_json(wit["multipliers"])
    if sels:
        wit["kink_selections"] = sels
        wit["sha256"]["kink_selections"] = sha256_json(sels)
    d = {"meta": {"format": FORMAT_NAME, "format_version": 1, "kind": kind, "created": "2025-01-01T00:00:00Z",
                  "tool": "test"},
         "network": net.to_dict(),
         "params": {"tensors": {p: encode_tensor(ps[p]) for p in net.param_names}},
         "data": {"X": encode_tensor(np.asarray(X, dtype=float)), "y": encode_labels(y)},
         "witnesses": wit,
         "claims": claims or loose_claims(verifier.degree(net), kind)}
    if embedding is not None:
        d["embedding"] = embedding
    return d


def exact_point(net, params, X, y, lam=None, sels=None):
    """Run the checker's engine on one point; returns its figures (including the gradient v)."""
    d = make_cert(net, params, X, y, lam, sels)
    cn = C.Net(d["network"], "network")
    P = C.read_params(d, cn, None)
    Xq, ys, _ = C.read_data(d, cn, None)
    rows = C.rows_of(cn.shapes[cn.output][0], ys)
    sel, problems = C.read_selections(sels, cn, Xq.shape[0], rows, "witnesses.kink_selections")
    if problems:
        raise problems[0].error()
    lamf = [Fraction(v) for v in lam] if lam is not None else None
    ev = C.Evaluator(cn, P, Xq)
    problems = C.window_problems(ev, sel, "witnesses.kink_selections")
    if problems:
        raise problems[0].error()
    return C.evaluate_point(cn, P, Xq, ys, lamf, sel, ev=ev), cn


def flat_exact(fig, cn):
    return np.concatenate([fig["v"][p].to_float().ravel() for p in cn.pnames])


NETS = {
    "relu": lambda: verifier.mlp([3, 5, 1]),
    "relu_deep_bias": lambda: verifier.mlp([3, 4, 4, 1], bias="first"),
    "leaky": lambda: verifier.mlp([3, 4, 4, 1], activation="leaky_relu:0.25"),
    "leaky_inexact": lambda: verifier.mlp([3, 4, 1], activation="leaky_relu:0.1"),
    "abs": lambda: verifier.mlp([3, 5, 1], activation="abs"),
    "power2": lambda: verifier.mlp([3, 4, 1], activation="power:2"),
    "relu_power2": lambda: verifier.mlp([3, 4, 1], activation="relu_power:2"),
    "identity": lambda: verifier.mlp([3, 4, 1], activation="identity"),
    "multiclass": lambda: verifier.mlp([3, 5, 3]),
    "cnn_max": lambda: verifier.cnn(input_shape=(1, 6, 6), channels=[2], kernel_size=3, padding=1, pool="max"),
    "cnn_avg": lambda: verifier.cnn(input_shape=(2, 5, 5), channels=[3], kernel_size=2, stride=1, pool="avg",
                                    hidden=[4], outputs=2),
    "cnn_stride": lambda: verifier.cnn(input_shape=(1, 7, 7), channels=[2, 2], kernel_size=3, stride=2, padding=1,
                                       pool=None),
    "diagonal": lambda: verifier.diagonal_linear(4, depth=3),
}


def _data(net, n, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, *net.input_shape))
    C_ = net.num_outputs
    y = rng.choice([-1.0, 1.0], size=n) if C_ == 1 else rng.integers(0, C_, size=n)
    return X, y


@pytest.mark.parametrize("name", sorted(NETS))
def test_margins_and_weighted_gradient_match_float_engine(name):
    net = NETS[name]()
    params = net.init_params(seed=3)
    X, y = _data(net, 6, 4)
    fp, cons = prepare(net, params, X, y)
    lam = np.random.default_rng(5).random(cons.m)
    fig, cn = exact_point(net, params, X, y, lam)
    q_float = margins_from(fp, cons)
    q_exact = np.array([float(q) for q in fig["margins"]])
    np.testing.assert_allclose(q_exact, q_float, rtol=1e-11, atol=1e-13)
    v_float = weighted_gradient_from(fp, cons, lam)
    v_exact = flat_exact(fig, cn)
    np.testing.assert_allclose(v_exact, v_float, rtol=1e-9, atol=1e-12 * max(1.0, np.abs(v_float).max()))
    theta = net.flatten(params)
    assert float(fig["eps2"]) == pytest.approx(float(np.sum((theta - v_float) ** 2)), rel=1e-9)
    assert float(fig["delta"]) == pytest.approx(float(np.sum(lam * (q_float - 1))), rel=1e-9, abs=1e-12)
    # Euler: <theta, sum lambda h> = L sum lambda q, exactly (the net is homogeneous)
    L, _ = cn.degree()
    assert L == verifier.degree(net)
    assert fig["theta_dot_v"] == L * fig["lambda_dot_q"]


def _sympy_margins_and_grads(net, params, X, y):
    syms = param_symbols(net)
    fns = region_functions(net, params)
    flat_syms = [s for p in net.param_names for s in syms[p].ravel()]
    values = {s: sp.Rational(Fraction(float(v)).numerator, Fraction(float(v)).denominator)
              for p in net.param_names for s, v in zip(syms[p].ravel(), np.asarray(params[p]).ravel())}
    qs, grads = [], []
    for i in range(len(X)):
        x = np.array([sp.Rational(Fraction(float(v)).numerator, Fraction(float(v)).denominator)
                      for v in np.ravel(X[i])], dtype=object).reshape(net.input_shape)
        out = symbolic_forward(net, x, syms, fns)
        q = int(y[i]) * out[0]
        qs.append(sp.expand(q).subs(values))
        grads.append([sp.diff(q, s).subs(values) for s in flat_syms])
    return qs, grads


SMALL = {
    "relu_deep_bias": lambda: verifier.mlp([2, 3, 3, 1], bias="first"),
    "leaky": lambda: verifier.mlp([2, 3, 2, 1], activation="leaky_relu:0.25"),
    "cnn_max": lambda: verifier.cnn(input_shape=(1, 4, 4), channels=[2], kernel_size=2, padding=1, pool="max"),
    "power2": lambda: verifier.mlp([2, 3, 1], activation="power:2"),
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_exact_equals_sympy_on_dyadic_points(name):
    net = SMALL[name]()
    rng = np.random.default_rng(7)
    params = {p: rng.integers(-8, 9, size=net.param_shapes[p]) / 8.0 + 1 / 64 for p in net.param_names}
    X = rng.integers(-4, 5, size=(3, *net.input_shape)) / 4.0 + 1 / 32
    y = np.array([1.0, -1.0, 1.0])
    lam = [Fraction(1, 3), Fraction(2, 5), Fraction(0)]
    fig, cn = exact_point(net, params, X, y, lam)
    assert not fig["kinks"], "pick a point off the kinks for this oracle"
    qs, grads = _sympy_margins_and_grads(net, params, X, y)
    assert [Fraction(int(q.p), int(q.q)) for q in qs] == fig["margins"]
    v_sym = [sum(sp.Rational(l.numerator, l.denominator) * g[j] for l, g in zip(lam, grads)) for j in range(len(grads[0]))]
    v_ex = []
    for p in cn.pnames:
        qv = fig["v"][p]
        v_ex += [Fraction(int(a), qv.den) for a in qv.num.ravel()]
    assert v_ex == [Fraction(int(s.p), int(s.q)) for s in v_sym]


def test_kink_selection_closed_form_one_hidden_layer():
    net = verifier.mlp([2, 2, 1])
    params = {"W1": [[1.0, -1.0], [0.5, 0.25]], "W2": [[2.0, -3.0]]}
    X = np.array([[1.0, 1.0]])  # W1[0] . x = 0 exactly: a kink at unit 0
    y = np.array([1.0])
    for s, expect_row0 in ((None, [0, 0]), (Fraction(1, 2), [Fraction(1), Fraction(1)]), (Fraction(1), [2, 2])):
        sels = None if s is None else [{"node": "act1", "sample": 0, "unit": [0], "s": str(s)}]
        fig, cn = exact_point(net, params, X, y, [Fraction(1)], sels)
        assert fig["kinks"] == [("act1", 0, (0,))]
        g = fig["v"]["W1"]
        # closed form: d q / d W1[0, :] = y * W2[0, 0] * s * x = 2 s (1, 1)
        assert [Fraction(int(a), g.den) for a in g.num[0]] == [Fraction(v) for v in expect_row0]
        # unit 1 is active: d q / d W1[1, :] = W2[0, 1] * x = (-3, -3)
        assert [Fraction(int(a), g.den) for a in g.num[1]] == [-3, -3]
    assert C.relaxation_needed(cn, fig["kinks"], [0])[0] == "exact"
    assert C.relaxation_needed(cn, fig["kinks"], [])[0] == "none"  # a kink at a sample without weight is harmless


def test_kink_in_deeper_layer_needs_chain_rule():
    net = verifier.mlp([1, 1, 1, 1])
    params = {"W1": [[1.0]], "W2": [[0.0]], "W3": [[1.0]]}  # layer-2 pre-activation is exactly 0
    fig, cn = exact_point(net, params, [[1.0]], [1], [Fraction(1)])
    assert ("act2", 0, (0,)) in fig["kinks"]
    assert C.relaxation_needed(cn, fig["kinks"], [0])[0] == "chain-rule"


def test_leaky_and_abs_kink_selections_in_their_clarke_intervals():
    net = verifier.mlp([2, 1, 1], activation="leaky_relu:0.25")
    params = {"W1": [[1.0, -1.0]], "W2": [[1.0]]}
    X = [[0.5, 0.5]]
    fig, cn = exact_point(net, params, X, [1], [Fraction(1)])  # default: leaky'(0) = slope
    g = fig["v"]["W1"]
    assert [Fraction(int(a), g.den) for a in g.num[0]] == [Fraction(1, 8), Fraction(1, 8)]
    bad = [{"node": "act1", "sample": 0, "unit": [0], "s": "1/8"}]  # below the slope 1/4
    with pytest.raises(C.CertificateError, match=r"kink_selections\[0\]\.s"):
        exact_point(net, params, X, [1], [Fraction(1)], bad)
    net = verifier.mlp([2, 1, 1], activation="abs")
    sels = [{"node": "act1", "sample": 0, "unit": [0], "s": "-1"}]
    fig, _ = exact_point(net, {"W1": [[1.0, -1.0]], "W2": [[1.0]]}, X, [1], [Fraction(1)], sels)
    g = fig["v"]["W1"]
    assert [Fraction(int(a), g.den) for a in g.num[0]] == [Fraction(-1, 2), Fraction(-1, 2)]


def _pool_net():
    return verifier.Network([
        {"name": "x", "op": "input", "attrs": {"shape": [2, 2, 2]}},
        {"name": "conv1", "op": "conv2d", "inputs": ["x"], "params": {"weight": "W1"},
         "attrs": {"out_channels": 1, "kernel_size": 1}},
        {"name": "pool1", "op": "maxpool2d", "inputs": ["conv1"], "attrs": {"kernel_size": 2}},
        {"name": "flat", "op": "flatten", "inputs": ["pool1"]},
        {"name": "fc2", "op": "dense", "inputs": ["flat"], "params": {"weight": "W2"}, "attrs": {"out_features": 1}},
        {"name": "out", "op": "output", "inputs": ["fc2"]},
    ])


def test_maxpool_tie_weights_closed_form():
    net = _pool_net()
    params = {"W1": np.ones((1, 2, 1, 1)), "W2": [[3.0]]}
    X = np.zeros((1, 2, 2, 2))
    X[0, 0, 0, 0] = 1.0  # channel 0 feeds entry (0,0), channel 1 entry (0,1): a tie of two maxima
    X[0, 1, 0, 1] = 1.0
    fig, cn = exact_point(net, params, X, [1], [Fraction(1)])
    assert fig["kinks"] == [("pool1", 0, (0, 0, 0))]
    g = fig["v"]["W1"]  # default: the first maximum takes the gradient: d/dW1 = 3 * (x_c[0,0]) = (3, 0)
    assert [Fraction(int(a), g.den) for a in g.num.ravel()] == [3, 0]
    sels = [{"node": "pool1", "sample": 0, "unit": [0, 0, 0], "weights": ["1/2", "1/2", "0", "0"]}]
    fig, _ = exact_point(net, params, X, [1], [Fraction(1)], sels)
    g = fig["v"]["W1"]
    assert [Fraction(int(a), g.den) for a in g.num.ravel()] == [Fraction(3, 2), Fraction(3, 2)]
    off = [{"node": "pool1", "sample": 0, "unit": [0, 0, 0], "weights": ["1/2", "0", "1/2", "0"]}]
    with pytest.raises(C.CertificateError, match="not a maximum"):
        exact_point(net, params, X, [1], [Fraction(1)], off)


def test_residual_add_network():
    net = verifier.Network([
        {"name": "x", "op": "input", "attrs": {"shape": [3]}},
        {"name": "fc1", "op": "dense", "inputs": ["x"], "params": {"weight": "W1"}, "attrs": {"out_features": 4}},
        {"name": "act1", "op": "relu", "inputs": ["fc1"]},
        {"name": "fca", "op": "dense", "inputs": ["act1"], "params": {"weight": "Wa"}, "attrs": {"out_features": 1}},
        {"name": "fcb", "op": "dense", "inputs": ["act1"], "params": {"weight": "Wb"}, "attrs": {"out_features": 1}},
        {"name": "sum", "op": "add", "inputs": ["fca", "fcb"]},
        {"name": "out", "op": "output", "inputs": ["sum"]},
    ])
    params = net.init_params(seed=1)
    X, y = _data(net, 5, 2)
    fp, cons = prepare(net, params, X, y)
    lam = np.linspace(0.1, 0.5, 5)
    fig, cn = exact_point(net, params, X, y, lam)
    np.testing.assert_allclose(flat_exact(fig, cn), weighted_gradient_from(fp, cons, lam), rtol=1e-10)
    assert cn.degree()[0] == 2


def test_non_homogeneous_network_reports_degree_failure():
    net = verifier.mlp([2, 3, 1], bias="all")
    d = make_cert(net, net.init_params(0), [[1.0, 2.0]], [1], [Fraction(1)],
                  claims=loose_claims(2))
    res = C.check_certificate(d)
    assert not res.ok and res.claim("degree").actual == "undefined"
    assert "not homogeneous" in res.claim("degree").detail


# ---------------------------------------------------------------------------
# embeddings
# ---------------------------------------------------------------------------
def _emb_cert(net, emb, params, X, y, lam):
    rows, cols, vals = [], [], []
    for r, c, v in emb.entries():
        rows.append(int(r)); cols.append(int(c)); vals.append(str(v))
    P, Pw = net.num_params, emb.wide_net.num_params
    mp = {"shape": [Pw, P], "rows": rows, "cols": cols, "values": vals}
    mp["sha256"] = sha256_json({"cols": cols, "rows": rows, "shape": [Pw, P], "values": vals})
    return make_cert(net, params, X, y, lam, kind="embedding",
                     embedding={"wide_network": emb.wide_net.to_dict(), "map": mp})


def test_neuron_split_embedding_exact():
    net = verifier.mlp([2, 3, 1])
    params = net.init_params(seed=2)
    X, y = _data(net, 5, 1)
    lam = [Fraction(1, k + 2) for k in range(5)]
    emb = verifier.neuron_split(net, None, layer=1, neuron=1, ratios=["3/5", "4/5"])
    figs = C.evaluate(_emb_cert(net, emb, params, X, y, lam))
    pub = figs["public"]
    assert pub["isometry"] and pub["output_preserved"] and pub["gradient_commutes"]
    assert pub["wide_eps2"] == pub["eps2"] and pub["wide_delta"] == pub["delta"]
    assert pub["wide_min_margin"] == pub["min_margin"]


def test_channel_split_embedding_exact():
    net = verifier.cnn(input_shape=(1, 5, 5), channels=[2], kernel_size=3, pool="max")
    params = net.init_params(seed=4)
    X, y = _data(net, 3, 3)
    emb = verifier.channel_split(net, None, layer=1, channel=1, ratios=["1/3", "2/3", "2/3"])
    pub = C.evaluate(_emb_cert(net, emb, params, X, y, [Fraction(1)] * 3))["public"]
    assert pub["isometry"] and pub["output_preserved"] and pub["gradient_commutes"]
    assert pub["wide_eps2"] == pub["eps2"]


def test_broken_embeddings_are_detected_exactly():
    net = verifier.mlp([2, 3, 1])
    params = net.init_params(seed=2)
    X, y = _data(net, 4, 1)
    lam = [Fraction(1)] * 4
    half = verifier.neuron_split(net, None, layer=1, neuron=0, ratios=["1/2", "1/2"], strict=False)
    figs = C.evaluate(_emb_cert(net, half, params, X, y, lam))
    assert not figs["public"]["isometry"] and "(T^T T)[0,0] = 1/2" in figs["details"]["isometry_detail"]
    assert not figs["public"]["output_preserved"]  # copies add up to 1/2 of the unit
    resc = verifier.neuron_split(net, None, layer=1, neuron=0, in_ratios=["1/2", "1/2"], out_ratios=["1", "1"])
    figs = C.evaluate(_emb_cert(net, resc, params, X, y, lam))
    assert figs["public"]["output_preserved"] and not figs["public"]["isometry"]
    assert not figs["public"]["gradient_commutes"]


def test_checker_shares_no_numeric_code_with_the_producer():
    # the checker's modules import only the standard library, numpy, and the certificate format/errors
    import ast
    import pathlib

    import verifier.certificates as pkg

    root = pathlib.Path(pkg.__file__).parent
    allowed_verifier = {"verifier.errors", "verifier.certificates.exact", "verifier.certificates.format"}
    files = {p: "verifier.certificates.checker" for p in (root / "checker").glob("*.py")}
    files.update({root / n: "verifier.certificates" for n in ("check.py", "exact.py", "format.py")})
    assert len(files) >= 9
    for path, package in files.items():
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                if node.level:  # relative import: resolve against the module's package
                    parts = package.split(".")
                    base = parts[: len(parts) - node.level + 1]
                    mod = ".".join(base + ([node.module] if node.module else []))
                    targets = [mod] if node.module else [f"{mod}.{a.name}" for a in node.names]
                else:
                    targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for t in targets:
                if t.startswith("verifier.certificates.checker"):
                    continue  # the checker's own modules
                if t.startswith("verifier"):
                    assert t in allowed_verifier, f"{path.name} imports {t}"
                else:
                    assert t.split(".")[0] in {"numpy", "__future__", "base64", "binascii", "json", "math", "re",
                                               "time", "zipfile", "dataclasses", "fractions", "pathlib", "typing",
                                               "hashlib", "os", "sys", "contextlib", "collections"}, \
                        f"{path.name} imports {t}"



def test_zero_input_patches_are_not_kinks():
    # kernel 1 with padding 1: the border pre-activations are W * 0 = 0 for every W (no kink in theta);
    # with a bias after the convolution they are b = 0, a genuine kink
    net = verifier.cnn(input_shape=(1, 3, 3), channels=[1], kernel_size=1, padding=1, pool=None)
    params = {"W1": np.ones((1, 1, 1, 1)), "W2": np.ones((1, 25))}
    X = np.ones((1, 1, 3, 3))
    fig, _ = exact_point(net, params, X, [1], [Fraction(1)])
    assert fig["kinks"] == []
    netb = verifier.cnn(input_shape=(1, 3, 3), channels=[1], kernel_size=1, padding=1, pool=None, bias="first")
    pb = {p: (np.zeros(s) if p.startswith("b") else np.ones(s)) for p, s in netb.param_shapes.items()}
    fig, _ = exact_point(netb, pb, X, [1], [Fraction(1)])
    assert len(fig["kinks"]) == 16  # the 5x5 border ring
