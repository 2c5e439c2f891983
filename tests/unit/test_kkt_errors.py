"""Bad input: the infeasible verdict or a clear one-line error, never a traceback; and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

import verifier
from verifier.cli import main
from verifier.errors import DataError, NotHomogeneousError, ParameterError, VerifierError
from verifier.io import save_data, save_params
from verifier.kkt import KKTError, check_kkt

NET = verifier.mlp([2, 1], activation="identity")
X = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0], [1.0, -2.0]])
Y = np.array([1.0, 1.0, -1.0, 1.0])
W = {"W1": np.array([[1.0, 1.0]])}  # margins 1, 1, 2, -1: sample 3 is misclassified


def test_non_separating_point_is_infeasible_with_indices():
    rep = check_kkt(NET, W, X, Y)
    assert rep.verdict == "infeasible"
    q = Y * (X @ W["W1"][0])  # numpy oracle
    assert rep.infeasible_samples == np.flatnonzero(q <= 0).tolist() == [3]
    assert rep.infeasible_constraints == ["sample 3"]
    assert rep.min_margin == q.min()
    assert rep.eps is None and rep.multipliers is None
    assert "infeasible" in str(rep)
    json.dumps(rep.to_dict())


def test_non_separable_data_any_point_is_infeasible():
    Xn = np.array([[1.0, 0.0], [1.0, 0.0]])
    rep = check_kkt(NET, {"W1": np.array([[2.0, 3.0]])}, Xn, np.array([1.0, -1.0]))
    assert rep.verdict == "infeasible" and rep.infeasible_samples == [1]


def test_multiclass_infeasible_names_constraints():
    net = verifier.mlp([2, 3], activation="identity")
    Wm = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]])
    rep = check_kkt(net, {"W1": Wm}, np.array([[1.0, 0.2], [0.2, 1.0]]), np.array([0, 0]))
    assert rep.verdict == "infeasible"
    assert rep.infeasible_samples == [1]
    assert rep.infeasible_constraints == ["sample 1 vs class 1"]


def test_zero_parameters_are_infeasible_with_a_note():
    rep = check_kkt(NET, {"W1": np.zeros((1, 2))}, X[:3], Y[:3])
    assert rep.verdict == "infeasible" and rep.infeasible_samples == [0, 1, 2]
    assert any("zero" in w for w in rep.warnings)


@pytest.mark.parametrize(
    "params,Xb,yb,exc,words",
    [
        ({"W1": np.array([[np.nan, 1.0]])}, X, Y, ParameterError, ["W1", "non-finite"]),
        ({"W1": np.array([[1.0, 1.0, 1.0]])}, X, Y, ParameterError, ["W1", "shape"]),
        ({"W2": np.array([[1.0, 1.0]])}, X, Y, ParameterError, ["missing"]),
        (W, np.array([[1.0, np.nan]]), np.array([1.0]), DataError, ["sample 0", "non-finite"]),
        (W, np.ones((4, 3)), Y, DataError, ["shape"]),
        (W, X, Y[:3], DataError, ["labels"]),
        (W, X, np.array([1.0, 0.0, -1.0, 1.0]), DataError, ["label 0", "sample 1", "+1 or -1"]),
    ],
)
def test_bad_inputs_raise_one_line_errors(params, Xb, yb, exc, words):
    with pytest.raises(exc) as e:
        check_kkt(NET, params, Xb, yb)
    msg = str(e.value)
    assert "\n" not in msg
    for w in words:
        assert w in msg


def test_multiclass_label_out_of_range():
    net = verifier.mlp([2, 3], activation="identity")
    with pytest.raises(DataError, match="0..2"):
        check_kkt(net, net.init_params(0), X, np.array([0, 1, 2, 3]))


@pytest.mark.parametrize(
    "kw,words",
    [
        ({"norm": "l3"}, ["norm='l3'", "'l2', 'l1', 'linf'"]),
        ({"norm": 2}, ["norm=2"]),
        ({"solver": "ecos"}, ["solver='ecos'", "clarabel"]),
        ({"tol": -1.0}, ["tol=-1.0"]),
        ({"tol": float("nan")}, ["tol=nan"]),
        ({"kink_tol": -1e-9}, ["kink_tol"]),
        ({"norm": "l1", "solver": "nnls"}, ["nnls", "l1"]),
        ({"second_order": "yes"}, ["second_order"]),
    ],
)
def test_bad_options(kw, words):
    Xs, ys = X[:3], Y[:3]
    with pytest.raises(KKTError) as e:
        check_kkt(NET, W, Xs, ys, **kw)
    assert isinstance(e.value, VerifierError)
    for w in words:
        assert w in str(e.value)


def test_nnls_refuses_kinks():
    from tests.unit.test_kkt_kinks import kink_point

    net, p, Xk, yk, _ = kink_point()
    with pytest.raises(KKTError, match="kinked"):
        check_kkt(net, p, Xk, yk, solver="nnls")


def test_non_homogeneous_network():
    net = verifier.mlp([2, 3, 1], bias="all")
    with pytest.raises(NotHomogeneousError, match="fc2_bias"):
        check_kkt(net, net.init_params(0), X, Y)


# ---------------------------------------------------------------------------- CLI


@pytest.fixture
def files(tmp_path):
    net_path = tmp_path / "net.json"
    NET.to_json(net_path)
    save_data(tmp_path / "data.npz", X[:3], Y[:3])
    save_params(tmp_path / "svm.npz", W)  # margins 1, 1, 2: the SVM, KKT
    save_params(tmp_path / "bad.npz", {"W1": np.array([[1.0, 3.0]])})
    save_data(tmp_path / "sep.npz", X, Y)  # with sample 3 the SVM point is infeasible
    return tmp_path


def test_cli_exit_codes_and_json(files, capsys):
    base = ["kkt", "--net", str(files / "net.json"), "--data", str(files / "data.npz")]
    assert main(base + ["--params", str(files / "svm.npz")]) == 0
    out = capsys.readouterr().out
    assert "verdict" in out and "kkt" in out
    assert main(base + ["--params", str(files / "svm.npz"), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    r = check_kkt(NET, W, X[:3], Y[:3])
    assert d["verdict"] == "kkt" and np.allclose(d["multipliers"], r.multipliers)
    assert d["eps"] == r.eps and "theta_hat" not in d
    assert main(base + ["--params", str(files / "bad.npz")]) == 1
    capsys.readouterr()
    inf = ["kkt", "--net", str(files / "net.json"), "--data", str(files / "sep.npz"), "--params", str(files / "svm.npz"),
           "--json"]
    assert main(inf) == 1
    assert json.loads(capsys.readouterr().out)["infeasible_samples"] == [3]


@pytest.mark.parametrize(
    "extra,words",
    [
        (["--norm", "l3"], ["norm='l3'"]),
        (["--solver", "nope"], ["solver='nope'"]),
        (["--params", "MISSING.npz"], ["does not exist"]),
    ],
)
def test_cli_bad_input_exit_2_one_line(files, capsys, extra, words):
    argv = ["kkt", "--net", str(files / "net.json"), "--data", str(files / "data.npz"), "--params",
            str(files / "svm.npz")] + extra
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("verifier kkt: error:")
    for w in words:
        assert w in err


def test_cli_kink_tol_none(files, capsys):
    argv = ["kkt", "--net", str(files / "net.json"), "--data", str(files / "data.npz"), "--params",
            str(files / "svm.npz"), "--kink-tol", "none", "--json", "--second-order"]
    assert main(argv) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["kink_tol"] is None and d["second_order"]["checked"] is True
