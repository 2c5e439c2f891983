"""Producers: claims hold by construction, exact normalisation, storage, schema, embeddings."""

from __future__ import annotations

import json
import shutil
from fractions import Fraction

import jsonschema
import numpy as np
import pytest

from verifier.errors import VerifierError

import verifier
from verifier.certificates import (SCHEMA_PATH, CertifyError, certify_embedding, certify_kkt, check_certificate,
                                   parse_split)
from verifier.certificates import checker as C
from verifier.certificates.checker import CertificateError
from verifier.certificates.format import sha256_json
from verifier.datasets import linearly_separable, two_clusters_xor

SCHEMA = json.loads(SCHEMA_PATH.read_text())


@pytest.fixture(scope="module")
def trained():
    X, y = two_clusters_xor(24, seed=0)
    net = verifier.mlp([2, 8, 1])
    res = verifier.train(net, net.init_params(seed=1), X, y, steps=400, lr=0.5, progress=False)
    return net, res.params, X, y


def test_linear_max_margin_closed_form():
    # hard-margin SVM through the origin: w* = (1/2, 1/4), lambda* = (1/4, 1/16), exactly
    net = verifier.mlp([2, 1], activation="identity")
    cert = certify_kkt(net, {"W1": [[3.0, 1.5]]}, [[2.0, 0.0], [0.0, 4.0]], [1, 1])
    assert cert["params"]["tensors"]["W1"]["values"] == [(0.5).hex(), (0.25).hex()]
    assert cert["witnesses"]["multipliers"] == ["1/4", "1/16"]
    assert cert["claims"]["eps2"]["bound"] == "0" and cert["claims"]["delta"]["bound"] == "0"
    assert cert["claims"]["degree"]["value"] == "1"
    jsonschema.validate(cert, SCHEMA)


def test_trained_network_claims_hold_and_agree_with_float(trained):
    net, params, X, y = trained
    cert = certify_kkt(net, params, X, y)
    jsonschema.validate(cert, SCHEMA)
    res = check_certificate(cert)
    assert res.ok
    figs = res.figures
    # exact normalisation: smallest margin >= 1, and only rounding away from 1
    assert 1 <= figs["min_margin"] < 1 + Fraction(1, 10 ** 12)
    # claims are the exact values rounded outward to 6 digits
    for name in ("eps2", "delta", "delta_max"):
        bound = Fraction(cert["claims"][name]["bound"])
        assert figs[name] <= bound <= figs[name] * (1 + Fraction(1, 10 ** 5)) + Fraction(1, 10 ** 300)
    # multipliers: one power-of-two denominator
    dens = {Fraction(v).denominator for v in cert["witnesses"]["multipliers"]}
    assert all(d & (d - 1) == 0 for d in dens)
    # independent implementations agree: the float pipeline (check_kkt) vs the exact checker
    fl = cert["measured"]["float"]
    assert float(figs["eps2"]) == pytest.approx(fl["eps"] ** 2, rel=1e-6)
    assert float(figs["delta"]) == pytest.approx(fl["delta"], rel=1e-6, abs=1e-12)
    L = figs["degree"]
    assert float(figs["sum_multipliers"]) == pytest.approx(fl["sum_multipliers"], rel=1e-9)
    assert figs["euler_identity"] is True and L == 2


def test_supplied_multipliers_without_normalisation_are_taken_exactly(trained):
    net, params, X, y = trained
    lam = ["1/3"] + ["0"] * (len(y) - 1)
    cert = certify_kkt(net, params, X, y, multipliers=lam, normalize=False)
    assert cert["witnesses"]["multipliers"][0] == "1/3"
    stored = np.array([float.fromhex(v) for v in cert["params"]["tensors"]["W1"]["values"]])
    assert np.array_equal(stored, np.asarray(params["W1"]).ravel())
    assert check_certificate(cert).ok


def test_kinks_get_selections_and_the_exact_relaxation(trained):
    net0, params, X, y = trained
    net = verifier.mlp([2, 9, 1])
    # a ninth unit with zero incoming weights (pre-activation exactly 0 on every sample) and out-weight 1/2
    p = {"W1": np.vstack([params["W1"], np.zeros((1, 2))]), "W2": np.hstack([params["W2"], [[0.5]]])}
    cert = certify_kkt(net, p, X, y, kkt_options={"kink_tol": 1e-12})
    res = check_certificate(cert)
    assert res.ok
    assert {(k["node"], tuple(k["unit"])) for k in res.figures["kinks"]} == {("act1", (8,))}
    assert len(res.figures["kinks"]) == len(y)
    # the kinks sit at supported samples: subgradients with selections, exact Clarke (one hidden layer)
    assert cert["claims"]["relaxation"]["value"] == "exact"
    sels = cert["witnesses"].get("kink_selections", [])
    assert all(e["node"] == "act1" and e["unit"] == [8] and 0 <= Fraction(e["s"]) <= 1 for e in sels)
    # the selections are what makes eps small: with relu'(0) = 0 everywhere eps^2 is not smaller
    plain = certify_kkt(net, p, X, y, multipliers=cert["witnesses"]["multipliers"], normalize=False,
                        kink_selections=[], self_check=False)
    assert Fraction(plain["claims"]["eps2"]["bound"]) >= Fraction(cert["claims"]["eps2"]["bound"]) * Fraction(99, 100)


def test_external_storage_and_moving_the_files(tmp_path, trained):
    net, params, X, y = trained
    out = tmp_path / "a" / "kkt.cert.json"
    cert = certify_kkt(net, params, X, y, out=out, inline=False)
    jsonschema.validate(cert, SCHEMA)
    assert cert["params"]["path"] == "kkt.cert.params.npz" and (out.parent / "kkt.cert.data.npz").exists()
    moved = tmp_path / "b"
    shutil.copytree(out.parent, moved)
    assert check_certificate(moved / "kkt.cert.json").ok


def test_external_storage_of_a_tensor_named_file(tmp_path):
    """np.savez(f, **params) raised TypeError for a tensor called `file` (its own first argument)."""
    d = verifier.mlp([2, 1], activation="identity").to_dict()
    d["nodes"][1]["params"]["weight"] = d["parameters"][0]["name"] = "file"
    net = verifier.Network.from_dict(d)
    out = tmp_path / "kkt.cert.json"
    cert = certify_kkt(net, {"file": [[3.0, 1.5]]}, [[2.0, 0.0], [0.0, 4.0]], [1, 1], out=out, inline=False)
    with np.load(tmp_path / "kkt.cert.params.npz") as z:
        assert z.files == ["file"] and z["file"].tolist() == [[0.5, 0.25]]  # closed form, as in the test above
    assert check_certificate(out).ok


def test_base64_encoding_roundtrip(trained):
    net, params, X, y = trained
    cert = certify_kkt(net, params, X, y, encoding="f64-base64")
    jsonschema.validate(cert, SCHEMA)
    assert cert["data"]["X"]["encoding"] == "f64-base64"
    res = check_certificate(json.loads(json.dumps(cert)))
    assert res.ok


def test_multiclass_certificate():
    X, y = linearly_separable(15, 2, margin=0.3, seed=2)
    yc = (y > 0).astype(int) + 2 * (X[:, 0] > 1.5)
    net = verifier.mlp([2, 6, 3])
    res = verifier.train(net, net.init_params(seed=0), X, yc, steps=300, lr=0.3, progress=False)
    q = verifier.margins(net, res.params, X, yc)
    assert q.min() > 0  # deterministic: this seed separates the data
    cert = certify_kkt(net, res.params, X, yc)
    assert len(cert["witnesses"]["multipliers"]) == 2 * len(yc)
    assert check_certificate(cert).ok


def test_infeasible_data_cannot_be_certified():
    net = verifier.mlp([2, 1], activation="identity")
    with pytest.raises(CertifyError, match="not separated"):
        certify_kkt(net, {"W1": [[1.0, 0.0]]}, [[1.0, 0.0], [1.0, 0.0]], [1, -1])


def test_embedding_certificate(trained):
    net, params, X, y = trained
    cert = certify_embedding(net, params, X, y, split="layer=1,neuron=3,ratios=3/5,4/5")
    jsonschema.validate(cert, SCHEMA)
    claims = cert["claims"]
    for name in ("isometry", "output_preserved", "gradient_commutes"):
        assert claims[name] == {"relation": "=", "value": True}
    assert claims["wide_eps2"] == claims["eps2"] and claims["wide_delta"] == claims["delta"]
    res = check_certificate(cert)
    assert res.ok and res.figures["wide_eps2"] == res.figures["eps2"]


def test_embedding_with_broken_conditions_is_refused(trained):
    net, params, X, y = trained
    half = verifier.neuron_split(net, None, layer=1, neuron=0, ratios=["1/2", "1/2"], strict=False)
    with pytest.raises(CertifyError, match="isometry: .T\\^T T.\\[0,0\\] = 1/2, not 1"):
        certify_embedding(net, params, X, y, embedding=half)
    # a certificate of a correct split, with the map replaced by the broken one (hashes recomputed) and the
    # isometry claims deleted: the checker demands the required claims (issue 14, item 1)
    good = verifier.neuron_split(net, None, layer=1, neuron=0, ratios=["3/5", "4/5"])
    cert = certify_embedding(net, params, X, y, embedding=good)
    mp = cert["embedding"]["map"]
    mp["values"] = ["1/2" if v in ("3/5", "4/5") else v for v in mp["values"]]
    mp["sha256"] = sha256_json({k: mp[k] for k in ("cols", "rows", "shape", "values")})
    for name in ("isometry", "output_preserved"):
        del cert["claims"][name]
    with pytest.raises(CertificateError, match="claims.isometry: missing"):
        check_certificate(cert)
    cert["claims"]["isometry"] = {"relation": "=", "value": True}
    cert["claims"]["output_preserved"] = {"relation": "=", "value": True}
    res = check_certificate(cert)
    assert not res.ok and not res.claim("isometry").holds and not res.claim("output_preserved").holds


def test_irrational_split_is_refused(trained):
    net, params, X, y = trained
    with pytest.raises(CertifyError, match="irrational"):
        certify_embedding(net, params, X, y, split="layer=1,neuron=0,ratios=1/sqrt(2),1/sqrt(2)")


def test_parse_split():
    assert parse_split("layer=1,neuron=3,ratios=3/5,4/5") == {"layer": 1, "neuron": 3, "ratios": ["3/5", "4/5"]}
    assert parse_split("layer=1,channel=1,ratios=1/3,2/3,2/3") == {"layer": 1, "channel": 1,
                                                                      "ratios": ["1/3", "2/3", "2/3"]}
    # one grammar with `verifier embed --split`: layer is required there and here
    for bad in ("", "layer=1,foo=2", "neuron=x", "layer=1,neuron=1,neuron=2", "3/5", "channel=1,ratios=1/3,2/3,2/3"):
        with pytest.raises(VerifierError):
            parse_split(bad)


def test_exact_min_margin_helper_matches_float(trained):
    net, params, X, y = trained
    q = verifier.margins(net, params, X, y)
    assert float(C.exact_min_margin(net.to_dict(), params, X, y)) == pytest.approx(q.min(), rel=1e-12)


def _tie_net():
    return verifier.Network([
        {"name": "x", "op": "input", "attrs": {"shape": [1, 4, 4]}},
        {"name": "conv1", "op": "conv2d", "inputs": ["x"], "params": {"weight": "W1"},
         "attrs": {"out_channels": 2, "kernel_size": 1}},
        {"name": "act1", "op": "relu", "inputs": ["conv1"]},
        {"name": "pool1", "op": "maxpool2d", "inputs": ["act1"], "attrs": {"kernel_size": 2}},
        {"name": "flat", "op": "flatten", "inputs": ["pool1"]},
        {"name": "fc2", "op": "dense", "inputs": ["flat"], "params": {"weight": "W2"}, "attrs": {"out_features": 1}},
        {"name": "out", "op": "output", "inputs": ["fc2"]}])


def test_maxpool_ties_are_certified_under_the_chain_rule():
    net = _tie_net()
    rng = np.random.default_rng(0)
    X = rng.normal(size=(6, 1, 2, 2)).repeat(2, axis=2).repeat(2, axis=3)  # every pooling window ties exactly
    params = net.init_params(seed=0)
    y = np.sign(verifier.forward(net, params, X)[:, 0])
    rep = verifier.check_kkt(net, params, X, y)
    cert = certify_kkt(net, params, X, y, report=rep)
    res = check_certificate(cert)
    assert res.ok and cert["claims"]["relaxation"]["value"] == "chain-rule"
    assert all(k["node"] == "pool1" for k in res.figures["kinks"])
    assert float(res.figures["eps2"]) == pytest.approx(rep.eps ** 2, rel=1e-9)


def test_check_kkt_maxpool_selection_format_is_converted():
    from verifier.certificates.produce import _selection_entry

    net = _tie_net()
    e = _selection_entry({"node": "pool1", "sample": 2, "row": 2, "unit": [1, 0, 1], "s": {0: 0.25, 3: 0.75}}, net, "k")
    assert e == {"node": "pool1", "sample": 2, "row": 2, "unit": [1, 0, 1], "weights": ["1/4", "0", "0", "3/4"]}
    e = _selection_entry({"node": "act1", "sample": 0, "unit": (0, 1, 1), "s": 1.5}, net, "k")
    assert e["s"] == "1"  # clipped to the Clarke interval [0, 1]


def test_refutation_certificate_documents_the_failing_condition(trained):
    net, params, X, y = trained
    half = verifier.neuron_split(net, None, layer=1, neuron=0, ratios=["1/2", "1/2"], strict=False)
    cert = certify_embedding(net, params, X, y, embedding=half, refutation=True)
    assert cert["claims"]["isometry"] == {"relation": "=", "value": True}
    assert any(s.startswith("isometry") for s in cert["measured"]["conditions_failing_exactly"])
    res = check_certificate(cert)
    assert not res.ok and not res.claim("isometry").holds and res.figures["isometry"] is False
    assert res.headline().startswith("INVALID")
