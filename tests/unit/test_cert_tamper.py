"""Tamper evidence and bad input: every change is rejected with a message naming the field.

Exit status of ``verifier check-cert``: 2 for an unreadable / malformed / inconsistent file
(hash mismatch, unknown version, non-rational string, wrong shape), 1 for a false claim.
"""

from __future__ import annotations

import copy
import json
from fractions import Fraction

import numpy as np
import pytest

import verifier
from verifier.certificates import certify_kkt, check_certificate
from verifier.certificates.check import CertificateError
from verifier.certificates.format import sha256_f64, sha256_i64, sha256_json
from verifier.cli import main


@pytest.fixture(scope="module")
def cert():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 2))
    net = verifier.mlp([2, 4, 1])
    params = net.init_params(seed=2)
    y = np.sign(verifier.forward(net, params, X)[:, 0])
    return certify_kkt(net, params, X, y, multipliers=rng.random(12).round(3).astype(str).tolist())


def run(tmp_path, d, capsys, name="c.json"):
    path = tmp_path / name
    path.write_text(json.dumps(d) if not isinstance(d, str) else d)
    code = main(["check-cert", str(path)])
    out = capsys.readouterr()
    return code, out.out + out.err


def _digit_changed(s: str) -> str:
    """Change the last decimal digit of a string (keeps it well-formed)."""
    for i in range(len(s) - 1, -1, -1):
        if s[i].isdigit():
            return s[:i] + str((int(s[i]) + 1) % 10) + s[i + 1:]
    raise AssertionError(s)


def test_untouched_certificate_passes(tmp_path, cert, capsys):
    code, text = run(tmp_path, cert, capsys)
    assert code == 0 and "claims hold exactly" in text


def test_one_digit_of_a_multiplier(tmp_path, cert, capsys):
    d = copy.deepcopy(cert)
    d["witnesses"]["multipliers"][3] = _digit_changed(d["witnesses"]["multipliers"][3])
    code, text = run(tmp_path, d, capsys)
    assert code == 2 and "witnesses.multipliers" in text and "SHA-256" in text


def test_one_digit_of_a_parameter(tmp_path, cert, capsys):
    d = copy.deepcopy(cert)
    vals = d["params"]["tensors"]["W1"]["values"]
    vals[2] = float.fromhex(vals[2]).__mul__(1 + 2 ** -40).hex()
    code, text = run(tmp_path, d, capsys)
    assert code == 2 and "params.tensors.W1.sha256" in text


def test_a_label(tmp_path, cert, capsys):
    d = copy.deepcopy(cert)
    d["data"]["y"]["values"][5] *= -1
    code, text = run(tmp_path, d, capsys)
    assert code == 2 and "data.y.sha256" in text


def test_the_data_hash(tmp_path, cert, capsys):
    d = copy.deepcopy(cert)
    h = d["data"]["X"]["sha256"]
    d["data"]["X"]["sha256"] = ("0" if h[0] != "0" else "1") + h[1:]
    code, text = run(tmp_path, d, capsys)
    assert code == 2 and "data.X.sha256" in text


def test_a_claimed_bound_made_false(tmp_path, cert, capsys):
    d = copy.deepcopy(cert)
    bound = Fraction(d["claims"]["eps2"]["bound"])
    d["claims"]["eps2"]["bound"] = str(bound * Fraction(999, 1000))
    code, text = run(tmp_path, d, capsys)
    assert code == 1 and "claims.eps2: FAILS" in text and "off by" in text
    # a weaker claim is still a true claim
    d["claims"]["eps2"]["bound"] = str(bound * 2)
    assert run(tmp_path, d, capsys)[0] == 0


def test_the_format_version(tmp_path, cert, capsys):
    d = copy.deepcopy(cert)
    d["meta"]["format_version"] = 2
    code, text = run(tmp_path, d, capsys)
    assert code == 2 and "meta.format_version" in text and "reads version(s) 1" in text


def test_resealed_tampering_is_caught_by_the_mathematics(tmp_path, cert, capsys):
    # an adversary who recomputes the hashes still cannot make a false claim pass
    d = copy.deepcopy(cert)
    y = d["data"]["y"]["values"]
    y[0] = -y[0]
    d["data"]["y"]["sha256"] = sha256_i64(np.array(y, dtype=np.int64))
    code, text = run(tmp_path, d, capsys)
    assert code == 1 and "claims.min_margin: FAILS" in text
    d = copy.deepcopy(cert)
    lam = d["witnesses"]["multipliers"]
    lam[0] = str(Fraction(lam[0]) + 5)
    d["witnesses"]["sha256"]["multipliers"] = sha256_json(lam)
    code, text = run(tmp_path, d, capsys)
    assert code == 1 and "claims.eps2: FAILS" in text


def test_external_file_modified(tmp_path, capsys):
    net = verifier.mlp([2, 1], activation="identity")
    out = tmp_path / "k.json"
    certify_kkt(net, {"W1": [[1.0, 0.5]]}, [[2.0, 0.0], [0.0, 4.0]], [1, 1], out=out, inline=False)
    assert main(["check-cert", str(out)]) == 0
    data = dict(np.load(tmp_path / "k.params.npz"))
    data["W1"] = data["W1"] * 2
    np.savez(tmp_path / "k.params.npz", **data)
    code = main(["check-cert", str(out)])
    assert code == 2 and "params.sha256" in capsys.readouterr().err
    (tmp_path / "k.data.npz").unlink()
    with pytest.raises(CertificateError, match="data.path"):
        d = json.loads(out.read_text())
        d["params"]["sha256"] = __import__("verifier.certificates.format", fromlist=["x"]).sha256_file(tmp_path / "k.params.npz")
        check_certificate(d, base_dir=tmp_path)


# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------
def test_malformed_json_and_missing_file(tmp_path, capsys):
    code, text = run(tmp_path, '{"meta": {', capsys)
    assert code == 2 and "not valid JSON" in text
    assert main(["check-cert", str(tmp_path / "nope.json")]) == 2
    assert "cannot read certificate" in capsys.readouterr().err


@pytest.mark.parametrize("mutate, field", [
    (lambda d: d.pop("data"), "data: missing field"),
    (lambda d: d["meta"].pop("kind"), "meta.kind: missing field"),
    (lambda d: d["meta"].__setitem__("format", "something/else"), "meta.format"),
    (lambda d: d.__setitem__("extra", 1), "unknown top-level field"),
    (lambda d: d["claims"].__setitem__("eps3", {"relation": "<=", "bound": "1"}), "claims.eps3"),
    (lambda d: d["claims"]["eps2"].__setitem__("relation", ">="), "claims.eps2.relation"),
    (lambda d: d["claims"]["eps2"].__setitem__("bound", 0.5), "claims.eps2.bound"),
    (lambda d: d["claims"]["eps2"].__setitem__("bound", "one half"), "claims.eps2.bound"),
    (lambda d: d["network"]["nodes"][2].__setitem__("op", "gelu"), "network.nodes[2].op"),
    (lambda d: d["params"]["tensors"].pop("W2"), "params.tensors"),
    (lambda d: d["params"]["tensors"]["W1"].__setitem__("encoding", "f32"), "params.tensors.W1.encoding"),
    (lambda d: d["params"]["tensors"]["W1"]["values"].__setitem__(0, "zero"), "params.tensors.W1.values[0]"),
    (lambda d: d["data"]["y"]["values"].__setitem__(0, 3), "data.y.values[0]"),
    (lambda d: d.__setitem__("claims", {}), "claims"),
])
def test_malformed_fields_are_named(tmp_path, cert, capsys, mutate, field):
    d = copy.deepcopy(cert)
    mutate(d)
    code, text = run(tmp_path, d, capsys)
    assert code == 2 and field in text, text


def _reseal_multipliers(d):
    d["witnesses"]["sha256"]["multipliers"] = sha256_json(d["witnesses"]["multipliers"])


@pytest.mark.parametrize("value, field", [
    ("3/0", "witnesses.multipliers[0]"), ("x", "witnesses.multipliers[0]"), ("-1/2", "negative"),
])
def test_bad_multiplier_values(tmp_path, cert, capsys, value, field):
    d = copy.deepcopy(cert)
    d["witnesses"]["multipliers"][0] = value
    _reseal_multipliers(d)
    code, text = run(tmp_path, d, capsys)
    assert code == 2 and field in text


def test_wrong_number_of_multipliers_and_wrong_shapes(tmp_path, cert, capsys):
    d = copy.deepcopy(cert)
    d["witnesses"]["multipliers"].pop()
    _reseal_multipliers(d)
    code, text = run(tmp_path, d, capsys)
    assert code == 2 and "witnesses.multipliers" in text and "12 margin constraints" in text
    d = copy.deepcopy(cert)
    t = d["params"]["tensors"]["W1"]
    t["shape"] = [2, 4]  # same number of values, transposed shape
    code, text = run(tmp_path, d, capsys)
    assert code == 2 and "params.tensors.W1.shape" in text
    d = copy.deepcopy(cert)
    X = np.zeros((12, 3))
    d["data"]["X"] = {"shape": [12, 3], "encoding": "f64-hex", "values": [0.0.hex()] * 36, "sha256": sha256_f64(X)}
    code, text = run(tmp_path, d, capsys)
    assert code == 2 and "data.X" in text and "(n, 2)" in text


def test_bad_kink_selection_fields(tmp_path, cert, capsys):
    for sel, field in (({"node": "nope", "sample": 0, "unit": [0], "s": "1/2"}, "kink_selections[0].node"),
                       ({"node": "act1", "sample": 99, "unit": [0], "s": "1/2"}, "kink_selections[0].sample"),
                       ({"node": "act1", "sample": 0, "unit": [7], "s": "1/2"}, "kink_selections[0].unit"),
                       ({"node": "act1", "sample": 0, "unit": [0], "s": "3/2"}, "kink_selections[0].s"),
                       ({"node": "fc1", "sample": 0, "unit": [0], "s": "1/2"}, "no kinks")):
        d = copy.deepcopy(cert)
        d["witnesses"]["kink_selections"] = [sel]
        d["witnesses"]["sha256"]["kink_selections"] = sha256_json([sel])
        code, text = run(tmp_path, d, capsys)
        assert code == 2 and field in text, text
