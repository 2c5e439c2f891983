"""verifier.train: the loss-adaptive schedule (late phase of Lyu & Li), implicit bias of each
method against independently solved max-margin problems, history/checkpoints, the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

import verifier
from verifier.cli import main
from verifier.datasets import linearly_separable, two_clusters_xor
from verifier.dynamics import TrainingError, iterates, train
from verifier.io import load_params, save_data, save_params
from tests.helpers import max_margin


@pytest.fixture(scope="module")
def xor_run():
    X, y = two_clusters_xor(40, seed=0)
    net = verifier.mlp([2, 16, 1])
    res = train(net, net.init_params(seed=1), X, y, steps=4000, lr=0.3, progress=False, history_every=100)
    return net, X, y, res


def test_adaptive_schedule_late_phase_margin_rises_without_blowing_up(xor_run):
    net, X, y, res = xor_run
    h = res.history
    steps = [e["step"] for e in h]
    assert steps == list(range(0, 4001, 100))
    late = [e for e in h if e["step"] >= 500]
    assert all(e["min_margin"] > 0 for e in late)
    # the loss decreases at every recorded step, far below the float64 range of exp(-q)
    ll = np.array([e["log_loss"] for e in h])
    assert np.all(np.diff(ll) < 0) and ll[-1] < -300
    # Lyu & Li: smoothed margin increases; normalised margin increases in the late phase
    sm = np.array([e["smoothed_margin"] for e in late])
    nm = np.array([e["normalized_margin"] for e in late])
    assert np.all(np.diff(sm) >= -1e-12)
    assert np.all(np.diff(nm) >= -1e-6 * nm[-1]) and nm[-1] > nm[0]
    # the smoothed margin is a lower bound of the normalised margin (exp loss: log 1/l <= min q)
    assert np.all(sm <= nm + 1e-12)
    # no blow-up: ||theta||^2 grows at most linearly (L = 2), not geometrically
    norms = {e["step"]: e["norm"] for e in h}
    assert norms[4000] < 1.6 * norms[2000] and norms[4000] < 200
    # the step on the loss itself, eta_t = step / loss, grows as the loss falls
    lr_loss = np.array([e["log_lr_loss"] for e in late])
    assert np.all(np.diff(lr_loss) > 0)
    # the history agrees with the final parameters, recomputed from the forward pass
    f = verifier.forward(net, res.params, X)[:, 0]
    assert h[-1]["min_margin"] == pytest.approx(np.min(y * f), rel=1e-12)
    assert h[-1]["normalized_margin"] == pytest.approx(np.min(y * f) / np.linalg.norm(res.theta) ** 2, rel=1e-12)
    assert h[-1]["log_loss"] == pytest.approx(np.log(np.sum(np.exp(-(y * f - np.min(y * f))))) - np.min(y * f))


def test_line_search_tames_a_step_far_too_large():
    # lr = 50 is far beyond the stable step: the Armijo safeguard halves it (and the run stays sane)
    X, y = two_clusters_xor(40, seed=0)
    net = verifier.mlp([2, 16, 1])
    res = train(net, net.init_params(seed=1), X, y, steps=600, lr=50.0, progress=False, history_every=200)
    h = res.history
    assert h[-1]["halvings"] > 0
    assert np.all(np.diff([e["log_loss"] for e in h]) < 0)
    assert h[-1]["min_margin"] > 0 and h[-1]["normalized_margin"] > 0.13 and h[-1]["norm"] < 100


@pytest.mark.parametrize("loss", ["exp", "logistic"])
def test_deep_relu_net_trains_on_separable_data(loss):
    X, y = linearly_separable(30, 2, margin=0.1, seed=3)
    net = verifier.mlp([2, 8, 8, 1])  # L = 3
    res = train(net, net.init_params(seed=2), X, y, loss=loss, steps=2500, lr=1.0, progress=False,
                history_every=250)
    late = [e for e in res.history if e["step"] >= 1000]
    nm = np.array([e["normalized_margin"] for e in late])
    assert np.all([e["min_margin"] > 0 for e in late])
    assert np.all(np.diff(nm) >= -1e-6 * nm[-1]) and nm[-1] > nm[0]
    assert res.history[-1]["log_loss"] < -100 and res.history[-1]["norm"] < 100


@pytest.mark.parametrize("method,norm,key", [("gd", "l2", "normalized_margin"),
                                             ("sign", "linf", "normalized_margin_linf"),
                                             ("coordinate", "l1", "normalized_margin_l1")])
def test_steepest_descent_reaches_the_max_margin_of_its_norm(method, norm, key):
    # linear model: gd -> l2 SVM (Soudry et al.), sign -> l_inf, coordinate -> l1 margin (Gunasekar et al.)
    X, y = linearly_separable(30, 3, margin=0.05, seed=2)
    net = verifier.mlp([3, 1], activation="identity")
    best = max_margin(X, y, norm)
    res = train(net, np.full(3, 0.1), X, y, method=method, steps=2000, lr=1.0, progress=False)
    got = np.array([e[key] for e in res.history])
    assert np.all(got <= best * (1 + 1e-9))  # nothing beats the optimum
    assert got[-1] == pytest.approx(best, rel=0.015)


def test_constant_schedule_is_the_fixed_step_iteration():
    X, y = linearly_separable(12, 2, margin=0.1, seed=1)
    net = verifier.mlp([2, 5, 1])
    p0 = net.init_params(seed=4)
    for method in ("gd", "sign", "coordinate", "adam"):
        lr = 0.005 if method == "sign" else 0.05
        res = train(net, p0, X, y, method=method, schedule="constant", steps=40, lr=lr, checkpoint_every=10,
                    progress=False)
        ref = iterates(net, p0, X, y, steps=40, lr=lr, method=method)
        assert sorted(res.checkpoints) == [0, 10, 20, 30, 40]
        for k, th in res.checkpoints.items():
            assert np.allclose(th, ref[k], rtol=1e-13, atol=1e-15), (method, k)
        assert np.array_equal(res.theta, net.flatten(res.params))


def test_multiclass_training_separates_three_clusters():
    rng = np.random.default_rng(0)
    centers = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])
    c = np.arange(30) % 3
    X = centers[c] + 0.3 * rng.normal(size=(30, 2))
    net = verifier.mlp([2, 8, 3])
    res = train(net, net.init_params(seed=0), X, c, loss="logistic", steps=1500, lr=0.5, progress=False)
    F = verifier.forward(net, res.params, X)
    assert np.array_equal(F.argmax(axis=1), c)
    assert res.history[-1]["min_margin"] > 0 and res.history[-1]["log_loss"] < -10


def test_history_checkpoints_and_progress(capsys):
    X, y = linearly_separable(10, 2, seed=0)
    net = verifier.mlp([2, 4, 1])
    seen = []
    res = train(net, None, X, y, steps=50, history_every=20, checkpoint_every=25, progress=True, seed=3,
                callback=lambda k, th, e: seen.append(k))
    assert [e["step"] for e in res.history] == [0, 20, 25, 40, 50] == seen
    assert sorted(res.checkpoints) == [0, 25, 50]
    assert np.array_equal(res.checkpoints[0], net.flatten(net.init_params(seed=3)))  # params=None: seeded init
    assert np.array_equal(res.checkpoints[50], res.theta)
    res2 = train(net, None, X, y, steps=50, history_every=[3, 7], checkpoint_every=[7, 50], progress=False, seed=3)
    assert [e["step"] for e in res2.history] == [0, 3, 7, 50] and sorted(res2.checkpoints) == [7, 50]
    assert np.array_equal(res2.checkpoints[50], res.theta)  # deterministic
    err = capsys.readouterr().err
    assert "step 50/50" in err and "100.0%" in err
    train(net, None, X, y, steps=5, progress=None)  # stderr is not a terminal under pytest: no bar
    assert capsys.readouterr().err == ""
    doc = res.to_dict()
    assert doc["format"] == "kkt-verifier/train-history" and doc["meta"]["degree"] == "2"
    assert json.loads(json.dumps(doc))["history"][-1]["step"] == 50
    assert set(res.history[0]) >= {"step", "loss", "log_loss", "min_margin", "normalized_margin", "norm"}


def test_non_homogeneous_network():
    X, y = linearly_separable(10, 2, seed=0)
    net = verifier.mlp([2, 4, 1], bias="all")
    with pytest.raises(TrainingError, match="schedule='adaptive' needs a homogeneous network .*schedule='constant'"):
        train(net, None, X, y, steps=5, progress=False)
    res = train(net, None, X, y, steps=5, schedule="constant", progress=False)
    assert res.history[-1]["normalized_margin"] is None and res.history[-1]["log_loss"] < res.history[0]["log_loss"]


def test_bad_arguments_and_divergence():
    X, y = linearly_separable(10, 2, seed=0)
    net = verifier.mlp([2, 4, 1])
    for kw, msg in [(dict(schedule="cosine"), "schedule='cosine' is not supported; use one of"),
                    (dict(method="rmsprop"), "method='rmsprop' is not supported"),
                    (dict(loss="square"), "loss='square' is not supported"),
                    (dict(steps=-3), "steps=-3 must be an integer >= 0"),
                    (dict(lr=float("inf")), "lr=inf must be a finite number > 0"),
                    (dict(lr=-0.1), "lr=-0.1 must be a finite number > 0"),
                    (dict(kkt_every=0), "kkt_every=0 must be None, an integer >= 1 or a list of steps"),
                    (dict(kkt_every=[5, 2000]), "kkt_every: step 2000 must be an integer between 0 and steps=1000"),
                    (dict(checkpoint_every=2.5), "checkpoint_every=2.5 must be None"),
                    (dict(progress="yes"), "progress='yes' must be None"),
                    (dict(seed="a"), "seed='a' must be an integer")]:
        with pytest.raises(TrainingError, match=msg):
            train(net, None, X, y, **({"progress": False} | kw))
    with pytest.raises(TrainingError, match=r"^step \d+: "):
        train(net, None, 50 * X, y, steps=100, lr=100.0, method="sign", schedule="constant", progress=False)
    res = train(net, None, X, y, steps=0, progress=False)
    assert len(res.history) == 1 and np.array_equal(res.theta, net.flatten(net.init_params(0)))


# ----------------------------------------------------------------------------- CLI


def test_cli_train(tmp_path, capsys):
    X, y = two_clusters_xor(24, seed=1)
    net = verifier.mlp([2, 8, 1])
    net.to_json(tmp_path / "net.json")
    save_data(tmp_path / "data.npz", X, y)
    save_params(tmp_path / "init.npz", net.init_params(seed=5))
    args = ["train", "--net", str(tmp_path / "net.json"), "--data", str(tmp_path / "data.npz"),
            "--init", str(tmp_path / "init.npz"), "--steps", "300", "--lr", "0.5",
            "--out", str(tmp_path / "p.npz"), "--history", str(tmp_path / "h.json"), "--progress", "off"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "300 steps" in out and "norm. margin" in out and "wrote" in out
    p = load_params(tmp_path / "p.npz", net)
    ref = train(net, net.init_params(seed=5), X, y, steps=300, lr=0.5, progress=False)
    assert np.allclose(net.flatten(p), ref.theta, rtol=0, atol=0)
    doc = json.loads((tmp_path / "h.json").read_text())
    assert doc["meta"]["steps"] == 300 and doc["history"][-1]["step"] == 300
    assert doc["history"][-1]["normalized_margin"] == pytest.approx(ref.history[-1]["normalized_margin"])
    # with the KKT check every 150 steps: the table gains eps_rel / delta_rel, the history the KKT fields
    assert main(args + ["--kkt-every", "150"]) == 0
    out = capsys.readouterr().out
    assert "eps_rel" in out and "delta_rel" in out
    doc = json.loads((tmp_path / "h.json").read_text())
    rep = verifier.check_kkt(net, ref.params, X, y)
    assert doc["history"][-1]["eps_rel"] == pytest.approx(rep.eps_rel, rel=1e-9)
    assert doc["history"][-1]["verdict"] == rep.verdict and doc["meta"]["kkt"]["norm"] == "l2"
    # bad input: one line on stderr, exit status 2
    for extra, msg in ((["--method", "lbfgs"], "method='lbfgs' is not supported"),
                       (["--steps", "-1"], "steps=-1 must be"),
                       (["--lr", "nan"], "lr=nan must be")):
        assert main(args[:-2] + extra) == 2
        err = capsys.readouterr().err
        assert msg in err and err.count("\n") == 1
    bad = args.copy()
    bad[bad.index("--data") + 1] = str(tmp_path / "missing.npz")
    assert main(bad) == 2 and "does not exist" in capsys.readouterr().err


# ----------------------------------------------------------------------------- (eps, delta) history


def test_training_longer_drives_eps_and_delta_down():
    # Lyu & Li: along GD on the exponential loss, theta_hat(t) is (eps, delta)-KKT with both -> 0.
    X, y = two_clusters_xor(40, seed=0)
    net = verifier.mlp([2, 16, 1])
    ks = [100, 250, 600, 1500, 4000]
    res = train(net, net.init_params(seed=1), X, y, steps=4000, lr=0.3, kkt_every=[0, *ks], checkpoint_every=ks,
                history_every=[50], progress=False)
    h = [e for e in res.history if e["step"] != 50]
    assert [e["step"] for e in res.history] == [0, 50, *ks] and res.history[1]["eps_rel"] is None
    assert h[0]["verdict"] == "infeasible"  # not separated at initialisation: no KKT statement
    eps = np.array([e["eps_rel"] for e in h[1:]])
    delta = np.array([e["delta_rel"] for e in h[1:]])
    assert all(e["verdict"] in ("kkt", "not_kkt") for e in h[1:])
    assert np.all(np.diff(eps) < 0) and np.all(np.diff(delta) < 0)
    assert eps[-1] < 0.1 * eps[0] and delta[-1] < 0.1 * delta[0]
    assert res.to_dict()["meta"]["kkt"]["norm"] == "l2"
    # the recorded figures are those of check_kkt at the checkpoint, in the same units as the history
    rep = verifier.check_kkt(net, net.unflatten(res.checkpoints[4000]), X, y)
    assert h[-1]["eps_rel"] == pytest.approx(rep.eps_rel, rel=1e-9)
    assert h[-1]["delta"] == pytest.approx(rep.delta, rel=1e-9)
    assert h[-1]["normalized_margin"] == pytest.approx(rep.normalized_margin, rel=1e-9)
