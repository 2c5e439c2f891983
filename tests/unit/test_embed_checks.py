"""check_embedding: every condition of docs/math.md section 10, passing where the theorem applies and
failing, with the reason, where an assumption is dropped.

Oracles: an independent numpy gradient descent with a hand-written gradient (two-layer ReLU,
exponential loss), Fractions, closed forms of the failure factors (13/25, 91/125), and the
narrow network's own quantities.
"""

import json
import math

import numpy as np
import pytest

import verifier
from verifier.datasets import linearly_separable
from verifier.embed import Embedding, EmbeddingError, add_zero_neuron, channel_split, check_embedding, neuron_split

FAST = dict(gd_steps=40, lr=0.05, flow_time=0.3, n_eval=4, probes=8)


@pytest.fixture(scope="module")
def trained():
    X, y = linearly_separable(16, seed=3)
    net = verifier.mlp([2, 4, 1])
    res = verifier.train(net, net.init_params(0), X, y, steps=400, lr=0.1)
    return net, res.params, X, y


def test_sound_split_passes_every_check(trained):
    net, p, X, y = trained
    emb = neuron_split(net, p, layer=1, neuron=1, ratios=["3/5", "4/5"])
    rep = check_embedding(emb, p, X, y, **FAST)
    assert list(rep.checks) == ["isometry", "function", "gradient", "kkt", "gd_trajectory", "flow_trajectory",
                                "direction"]
    assert rep.passed and rep.failed == [], rep.summary()
    c = rep.checks
    assert c["isometry"].figure == 0 and "exactly (rational arithmetic" in c["isometry"].detail
    assert c["function"].figure < 1e-13 and c["gradient"].figure < 1e-13
    assert c["gd_trajectory"].figure < 1e-9 and c["gd_trajectory"].data["deviation"] < 1e-13
    assert c["flow_trajectory"].figure < 1e-6 and c["direction"].figure < 1e-6
    k = c["kkt"].data
    assert k["narrow"]["verdict"] == k["wide"]["verdict"]
    assert abs(k["narrow"]["eps"] - k["wide"]["eps"]) < 1e-7


def _exp_loss_grad(W, v, X, y):
    """Hand-written gradient of sum_i exp(-y_i sum_j v_j relu(w_j . x_i)) (independent of the engine)."""
    Z = X @ W.T
    H = np.maximum(Z, 0)
    e = np.exp(-y * (H @ v))
    gv = -(y * e) @ H
    gW = -((y * e)[:, None] * (Z > 0) * v[None, :]).T @ X
    return gW, gv


def test_gd_iterates_commute_with_T_independent_oracle(trained):
    net, p, X, y = trained
    emb = neuron_split(net, p, 1, 2, ["1/3", "2/3", "2/3"])
    W, v = p["W1"].copy(), p["W2"][0].copy()
    Ww, vw = emb.wide_params["W1"].copy(), emb.wide_params["W2"][0].copy()
    for _ in range(30):
        gW, gv = _exp_loss_grad(W, v, X, y)
        gWw, gvw = _exp_loss_grad(Ww, vw, X, y)
        W, v, Ww, vw = W - 0.05 * gW, v - 0.05 * gv, Ww - 0.05 * gWw, vw - 0.05 * gvw
        mapped = emb.apply({"W1": W, "W2": v[None, :]})
        np.testing.assert_allclose(Ww, mapped["W1"], atol=1e-12)
        np.testing.assert_allclose(vw, mapped["W2"][0], atol=1e-12)
    # ...and sign descent, written out by hand, does not commute
    W, v, Ww, vw = p["W1"], p["W2"][0], emb.wide_params["W1"], emb.wide_params["W2"][0]
    gW, gv = _exp_loss_grad(W, v, X, y)
    gWw, gvw = _exp_loss_grad(Ww, vw, X, y)
    mapped = emb.apply({"W1": W - 0.05 * np.sign(gW), "W2": (v - 0.05 * np.sign(gv))[None, :]})
    assert np.abs(Ww - 0.05 * np.sign(gWw) - mapped["W1"]).max() > 1e-3
    rep = check_embedding(emb, p, X, y, checks=["gd_trajectory"], gd_steps=30, lr=0.05)
    assert rep.checks["gd_trajectory"].passed and rep.checks["gd_trajectory"].data["deviation"] < 1e-13


@pytest.mark.parametrize("method, word", [("sign", "sign descent is coordinate-wise"), ("adam", "Adam normalises"),
                                          ("coordinate", "coordinate descent moves only")])
def test_coordinatewise_optimizers_break_the_trajectory(trained, method, word):
    net, _p, X, y = trained
    p = net.init_params(0)                                   # early phase: gradients are not yet tiny
    emb = neuron_split(net, p, 1, 1, ["3/5", "4/5"])
    rep = check_embedding(emb, p, X, y, checks=["gd_trajectory", "direction"], method=method, gd_steps=40, lr=0.01)
    assert rep.failed == ["gd_trajectory", "direction"]
    gd = rep.checks["gd_trajectory"]
    assert gd.figure > 1e-3 and word in gd.detail and "theta~_k != T theta_k" in gd.detail
    assert word in rep.checks["direction"].detail
    ok = check_embedding(emb, p, X, y, checks=["gd_trajectory"], method="gd", gd_steps=40, lr=0.01)
    assert ok.passed


def test_ratios_whose_squares_do_not_sum_to_one(trained):
    net, p, X, y = trained
    emb = neuron_split(net, p, 1, 0, ["3/5", "2/5"], strict=False)
    assert emb.warnings and "13/25" in emb.warnings[0]
    rep = check_embedding(emb, p, X, y, checks=["isometry", "function", "gradient", "kkt", "gd_trajectory"],
                          **FAST)
    iso, fun = rep.checks["isometry"], rep.checks["function"]
    assert not iso.passed and "sum of squared entries = 13/25 != 1" in iso.detail
    assert "sum alpha_k^2 = 13/25 != 1" in iso.detail
    assert iso.figure == pytest.approx(12 / 25)
    assert not fun.passed and "13/25 times the old unit" in fun.detail
    assert not rep.checks["kkt"].passed and "[isometry]" in rep.checks["kkt"].detail
    assert not rep.checks["gd_trajectory"].passed


def test_output_preserving_rescale_keeps_function_but_not_isometry_or_kkt(trained):
    net, p, X, y = trained
    emb = neuron_split(net, p, 1, 0, in_ratios=["1/2", "1/2"], out_ratios=["1", "1"])
    rep = check_embedding(emb, p, X, y, **FAST)
    assert rep.checks["function"].passed
    assert set(rep.failed) >= {"isometry", "gradient", "kkt", "gd_trajectory", "flow_trajectory"}
    iso = rep.checks["isometry"].detail
    assert "sum a_k^2 = 1/2 != 1" in iso and "sum b_k^2 = 2 != 1" in iso
    assert "agree only when a_k = b_k" in rep.checks["gradient"].detail
    kkt = rep.checks["kkt"]
    assert kkt.data["narrow"]["verdict"] != "infeasible"
    assert abs(kkt.data["narrow"]["eps"] - kkt.data["wide"]["eps"]) > 1e-3


def _quadratic_data():
    """Separable by Phi = x1^2 - x2^2 (a degree-3 net with z^2 activations can represent it)."""
    X = np.array([[2.0, 0.3], [-2.0, 0.4], [1.8, -0.2], [-1.9, -0.5], [0.3, 2.0], [-0.4, 1.7], [0.2, -2.1],
                  [-0.3, -1.8]])
    y = np.array([1.0, 1, 1, 1, -1, -1, -1, -1])
    return X, y


def test_power_two_split_fails_with_the_explanation_and_zero_neuron_works():
    X, y = _quadratic_data()
    net = verifier.mlp([2, 3, 1], activation="power:2")
    p = {"W1": np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]), "W2": np.array([[1.0, -1.0, 0.1]])}
    emb = neuron_split(net, p, 1, 0, ["3/5", "4/5"])
    rep = check_embedding(emb, p, X, y, checks=["isometry", "function", "kkt"], probes=8)
    assert rep.checks["isometry"].passed                      # the map itself is an isometry...
    fun = rep.checks["function"]                              # ...but not output-preserving
    assert not fun.passed
    assert "no non-trivial isometric output-preserving split exists for z^k, k >= 2" in fun.detail
    assert "sum alpha_k^3 = 91/125" in fun.detail and "use add_zero_neuron" in fun.detail
    kkt = rep.checks["kkt"]
    assert kkt.data["narrow"]["verdict"] != "infeasible" and not kkt.passed
    assert "[function]" in kkt.detail and "91/125" in kkt.detail
    zero = add_zero_neuron(net, p, 1)
    rz = check_embedding(zero, p, X, y, checks=["isometry", "function", "gradient", "kkt", "gd_trajectory"],
                         gd_steps=20, lr=0.001, probes=8)
    assert rz.passed, rz.summary()
    assert rz.checks["kkt"].data["wide"]["eps"] == pytest.approx(rz.checks["kkt"].data["narrow"]["eps"], abs=1e-7)


def test_deep_middle_layer_and_conv_splits_pass():
    X, y = linearly_separable(10, seed=1)
    deep = verifier.mlp([2, 3, 4, 1])
    p = verifier.train(deep, deep.init_params(1), X, y, steps=200, lr=0.05).params
    rep = check_embedding(neuron_split(deep, p, 2, 3, ["1/sqrt(2)", "1/2", "1/2"]), p, X, y,
                          checks=["isometry", "function", "gradient", "kkt", "gd_trajectory"], gd_steps=30, probes=8)
    assert rep.passed, rep.summary()
    assert "symbolic arithmetic (sympy)" in rep.checks["isometry"].detail
    rng = np.random.default_rng(0)
    Xi = rng.normal(size=(8, 1, 4, 4))
    yi = np.where(Xi[:, 0, :2].sum(axis=(1, 2)) > Xi[:, 0, 2:].sum(axis=(1, 2)), 1.0, -1.0)
    for pool in ("max", "avg"):
        cnn = verifier.cnn((1, 4, 4), channels=[2], pool=pool)
        pc = cnn.init_params(3)
        emb = channel_split(cnn, pc, 1, 1, ["3/5", "4/5"])
        rc = check_embedding(emb, pc, Xi, yi, checks=["isometry", "function", "gradient", "kkt", "gd_trajectory"],
                             gd_steps=20, lr=0.01, probes=8)
        assert rc.passed, rc.summary()


def test_isometry_is_decided_exactly_for_user_maps():
    net = verifier.mlp([1, 1, 1], activation="identity")
    wide = verifier.mlp([1, 2, 1], activation="identity")
    floats = Embedding(net, wide, np.array([[0.6, 0], [0.8, 0], [0, 0.6], [0, 0.8]]))
    exact = check_embedding(floats, checks=["isometry"])
    assert not exact.passed                                   # 0.6 and 0.8 are dyadic, not 3/5 and 4/5
    assert exact.checks["isometry"].figure < 1e-15
    assert check_embedding(floats, checks=["isometry"], exact=False).passed
    assert check_embedding(Embedding(net, wide, [["3/5", 0], ["4/5", 0], [0, "3/5"], [0, "4/5"]]),
                           checks=["isometry"]).passed
    skew = Embedding(net, wide, [["3/5", "4/5"], ["4/5", 0], [0, "3/5"], [0, 0]])
    d = check_embedding(skew, checks=["isometry"]).checks["isometry"].detail
    assert "not orthogonal" in d and "<T e_i, T e_j> = 12/25 != 0" in d


def test_report_table_and_json(trained):
    net, p, X, y = trained
    emb = neuron_split(net, p, 1, 0, in_ratios=["1/2", "1/2"], out_ratios=["1", "1"])
    rep = check_embedding(emb, p, X, y, checks=["isometry", "function", "gradient"], probes=4)
    text = str(rep)
    for name in ("isometry", "function", "gradient", "FAIL", "PASS", "warning: output-preserving rescale"):
        assert name in text
    d = json.loads(json.dumps(rep.to_dict()))
    assert d["format"] == "kkt-verifier/embedding-report" and d["failed"] == ["isometry", "gradient"]
    assert d["checks"]["function"]["passed"] is True
    assert d["embedding"]["info"]["in_ratios"] == ["1/2", "1/2"]
    assert math.isclose(d["checks"]["isometry"]["figure"], rep.checks["isometry"].figure)


def test_non_homogeneous_network_reports_an_error_not_a_verdict():
    X, y = linearly_separable(8, seed=0)
    net = verifier.mlp([2, 3, 1], activation="tanh")
    p = net.init_params(0)
    rep = check_embedding(neuron_split(net, p, 1, 0, ["3/5", "4/5"]), p, X, y, checks=["function", "kkt"], probes=4)
    assert rep.checks["kkt"].status == "error" and "could not run check_kkt" in rep.checks["kkt"].detail
    assert not rep.checks["function"].passed and "not positively homogeneous" in rep.checks["function"].detail


def test_bad_arguments(trained):
    net, p, X, y = trained
    emb = neuron_split(net, p, 1, 0, ["3/5", "4/5"])
    with pytest.raises(EmbeddingError, match=r"unknown check\(s\) \['isometri'\]"):
        check_embedding(emb, p, X, y, checks=["isometri"])
    with pytest.raises(EmbeddingError, match="need labelled data X and y"):
        check_embedding(emb, p, X)
    with pytest.raises(EmbeddingError, match="kkt_tol=-1 must be a finite number >= 0"):
        check_embedding(emb, p, X, y, kkt_tol=-1)
    with pytest.raises(EmbeddingError, match="method='newton' must be one of"):
        check_embedding(emb, p, X, y, method="newton")
    with pytest.raises(EmbeddingError, match="emb must be an Embedding"):
        check_embedding(net, p, X, y)
    with pytest.raises(verifier.VerifierError, match="inputs have shape"):
        check_embedding(emb, p, X[:, :1], y, checks=["function"])


def test_trajectory_checks_are_not_vacuous_at_a_well_trained_point():
    """From a point whose loss gradient underflows, GD would not move: 'auto' restarts at the unit
    direction, the trajectories really move, and a broken map (sign descent) is still caught."""
    import verifier as _v
    from verifier.datasets import two_clusters_xor

    X, y = two_clusters_xor(40, seed=0)
    net = _v.mlp([2, 16, 1])
    res = _v.train(net, net.init_params(seed=1), X, y, steps=5000, lr=0.5, progress=False)
    assert verifier_min_margin(net, res.params, X, y) > 800  # exp(-800) underflows: no gradient left
    emb = _v.neuron_split(net, res.params, layer=1, neuron=2, ratios=["3/5", "4/5"])
    checks = ("gd_trajectory",)
    given = _v.check_embedding(emb, res.params, X, y, checks=checks, trajectory_start="given")
    assert given.checks["gd_trajectory"].data["displacement"] == 0.0  # the vacuous comparison
    auto = _v.check_embedding(emb, res.params, X, y, checks=checks)
    gd = auto.checks["gd_trajectory"]
    assert gd.passed and gd.data["displacement"] > 1e-3 and "params/||params||" in gd.detail
    bad = _v.check_embedding(emb, res.params, X, y, checks=("gd_trajectory",), method="sign")
    assert not bad.checks["gd_trajectory"].passed


def verifier_min_margin(net, params, X, y):
    import verifier as _v

    return float(_v.margins(net, params, X, y).min())


def test_gradient_check_leaves_out_inputs_at_a_kink():
    """A data point exactly on a kink: the gradient is set-valued there, so it is left out (and said so);
    off the kink the identity is still checked on the remaining inputs."""
    import numpy as _np

    import verifier as _v

    net = _v.mlp([2, 2, 1])
    params = {"W1": _np.array([[0.1, -0.1], [0.7, 0.3]]), "W2": _np.array([[1.3, -0.9]])}
    X = _np.array([[1.0, 1.0], [0.5, -2.0]])  # sample 0: neuron 0 pre-activation 0.1 - 0.1 = 0 exactly
    emb = _v.neuron_split(net, params, layer=1, neuron=0, ratios=["1/3", "2/3", "2/3"])
    rep = _v.check_embedding(emb, params, X, _np.array([1.0, -1.0]), checks=("gradient",), probes=4)
    g = rep.checks["gradient"]
    assert g.passed and "1 input(s) at a kink left out" in g.detail and "on 5 inputs" in g.detail
