"""The theorem framework (instances, evidence, negation, search, counterexample files) and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

import theorems
import verifier
from theorems import base, euler, false_claims, neuron_splitting
from theorems.base import Check, Instance, TheoremError
from verifier.cli import main


# -- instances ---------------------------------------------------------------------------------------------

def test_instance_round_trips_exactly_through_json():
    inst = neuron_splitting.example()
    inst.params["W1"][0, 0] = 0.1 + 0.2  # not a short decimal: must survive exactly
    back = Instance.from_dict(json.loads(json.dumps(inst.to_dict())))
    assert back.net.to_dict() == inst.net.to_dict()
    assert all(np.array_equal(back.params[p], inst.params[p]) for p in inst.net.param_names)
    assert np.array_equal(back.X, inst.X) and np.array_equal(back.y, inst.y)
    assert back.options == inst.options and back.key() == inst.key()


def test_instance_validates_its_parameters():
    with pytest.raises(verifier.ParameterError, match="missing \\['W2'\\]"):
        Instance(verifier.mlp([2, 2, 1]), {"W1": np.zeros((2, 2))})
    with pytest.raises(verifier.FormatError, match="expected an object with fields 'network'"):
        Instance.from_dict({"params": {}})


def test_describe_is_small_and_readable():
    text = euler.example().describe()
    assert "W1 = [[1, -1], [0.5, 0.25]]" in text and "x_1 = [2, -1]  y = -1" in text
    assert "(degree 2)" in text


# -- evidence, assumptions, tolerances -------------------------------------------------------------------

def test_check_returns_named_subchecks_with_figures():
    ev = euler.THEOREM.check(euler.example())
    assert ev.verdict == "holds" and ev.passed and ev.failed == []
    assert set(ev.checks) == {"euler", "scaling"}
    c = ev.checks["euler"]
    assert c.passed and c.figure <= c.tol == 1e-10 and "L = 2" in c.detail
    d = ev.to_dict()
    assert d["verdict"] == "holds" and d["checks"]["euler"]["passed"] is True


def test_assumption_violation_makes_the_theorem_silent():
    inst = neuron_splitting.example()
    inst.y = -inst.y  # theta no longer separates the data
    ev = neuron_splitting.THEOREM.check(inst)
    assert ev.verdict == "not-applicable" and not ev.checks
    assert not ev.assumptions["feasible"].holds and "margin" in ev.assumptions["feasible"].detail
    assert "assumption 'feasible' does not hold" in str(ev)


def test_tolerances_are_explicit_and_overridable():
    inst = euler.example()
    inst.params["W2"] = inst.params["W2"] * 1.0
    assert euler.THEOREM.check(inst, euler=0.0).checks["euler"].tol == 0.0
    with pytest.raises(TheoremError, match="unknown tolerance\\(s\\) \\['kkt'\\]; this theorem's tolerances are"):
        euler.THEOREM.check(inst, kkt=1.0)


def test_a_failing_check_is_reported_by_name():
    inst = neuron_splitting.example()
    inst.options["split"] = {"kind": "neuron", "layer": 1, "unit": 0, "in_ratios": ["2"], "out_ratios": ["1/2"]}
    ev = false_claims.SPLIT_WITHOUT_ISOMETRY.check(inst)
    assert ev.verdict == "fails" and "isometry" in ev.failed and "kkt" in ev.failed and "function" not in ev.failed


def test_within_fails_on_nan():
    assert not base.within("x", float("nan"), 1.0, "").passed and base.within("x", 1.0, 1.0, "").passed


# -- negation and registry -------------------------------------------------------------------------------

def test_negated_drops_exactly_one_assumption():
    th = neuron_splitting.THEOREM
    neg = th.negated("l2-margin")
    assert [a.name for a in neg.assumptions] == [a.name for a in th.assumptions if a.name != "l2-margin"]
    assert neg.dropped == ("l2-margin",) and neg.parent is th and neg.expected is None
    with pytest.raises(TheoremError, match="has no assumption 'convex'; its assumptions are"):
        th.negated("convex")
    with pytest.raises(TheoremError, match="no instance generator violates 'feasible'"):
        th.negated("feasible")
    with pytest.raises(TheoremError, match="already a negated variant"):
        neg.negated("isometric-ratios")


def test_negated_instances_violate_the_dropped_assumption():
    from hypothesis import HealthCheck, given, settings

    neg = neuron_splitting.THEOREM.negated("isometric-ratios")
    iso = next(a for a in neuron_splitting.THEOREM.assumptions if a.name == "isometric-ratios")

    @settings(max_examples=10, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(neg.instances())
    def run(inst):
        assert not iso(inst).holds
        assert all(a(inst).holds for a in neg.assumptions)

    run()


def test_registry_names_and_lookup():
    names = theorems.names()
    assert len(names) == len(set(names)) >= 19
    assert theorems.get("split-without-isometry") is false_claims.SPLIT_WITHOUT_ISOMETRY
    assert theorems.get("euler-identity/without-homogeneous").dropped == ("homogeneous",)
    with pytest.raises(TheoremError, match="no theorem named 'kkt-embedding'.*did you mean"):
        theorems.get("kkt-embedding")
    for t in theorems.registry().values():  # every claim is stated completely
        assert t.statement and t.latex and t.assumptions or t.dropped
        assert t.expected is not False or t.expected_failures


# -- search ----------------------------------------------------------------------------------------------

def test_search_is_reproducible_and_counts_instances():
    neg = euler.THEOREM.negated("homogeneous")
    a = neg.search(examples=10, seed=3)
    b = neg.search(examples=10, seed=3)
    assert a.counterexample.instance.key() == b.counterexample.instance.key()
    ok = euler.THEOREM.search(examples=12, seed=1)
    assert ok.holds and 1 <= ok.checked <= 12 and ok.worst["euler"].count == ok.checked
    with pytest.raises(TheoremError, match="examples=0 must be an integer >= 1"):
        euler.THEOREM.search(examples=0)


def test_search_shrinks_the_counterexample_within_a_count_budget():
    """Shrinking is bounded by checker calls, not seconds: assert only what holds after any amount of it."""
    claim = false_claims.SIGN_DESCENT_TRAJECTORY
    calls = []
    orig = claim.check
    try:
        claim.check = lambda inst, **kw: calls.append(1) or orig(inst, **kw)  # type: ignore[method-assign]
        none = claim.search(examples=25, seed=0, shrink_budget=0)
        generated = len(calls)
        some = claim.search(examples=25, seed=0, shrink_budget=7)
    finally:
        del claim.check
    # budget 0: the counterexample is the first failing instance, no shrinking call was spent
    ce0 = none.counterexample
    assert ce0.shrink_calls == 0 and ce0.instance.key() == ce0.first_instance.key()
    assert ce0.first is not None and "gd_trajectory" in ce0.first.failed
    # budget 7: at most 7 extra checker calls (plus the final re-check), and the result still fails the same way
    ce = some.counterexample
    assert 0 <= ce.shrink_calls <= 7 and len(calls) - generated <= generated + 7
    assert ce.first_instance.key() == ce0.first_instance.key()
    assert "gd_trajectory" in ce.failed and claim.check(ce.instance).failed == ce.failed


# -- counterexample files and the CLI ---------------------------------------------------------------------

def test_cli_list_and_show(capsys):
    assert main(["theorems", "list"]) == 0
    out = capsys.readouterr().out
    assert "kkt-embedding-neuron-split" in out and "known-false" in out and "sign-descent-trajectory" in out
    assert main(["theorems", "show", "kkt-embedding-neuron-split"]) == 0
    out = capsys.readouterr().out
    assert "Statement:" in out and "LaTeX:" in out and "isometric-ratios" in out and r"\sum_k \alpha_k^2 = 1" in out
    assert main(["theorems", "list", "--json"]) == 0
    assert any(d["name"] == "power2-split" for d in json.loads(capsys.readouterr().out))


def test_cli_check_true_theorem_exits_0_and_writes_evidence(tmp_path, capsys):
    out = tmp_path / "evidence.json"
    assert main(["theorems", "check", "euler-identity", "--examples", "10", "--seed", "0", "--out", str(out),
                 "--profile"]) == 0
    text = capsys.readouterr().out
    assert "no counterexample in" in text and "profile:" in text
    d = json.loads(out.read_text())
    assert d["format"] == base.EVIDENCE_FORMAT and d["holds"] is True and d["worst"]["euler"]["count"] >= 1


def test_cli_check_false_claim_saves_and_replays(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["theorems", "check", "split-without-isometry", "--examples", "25", "--certificate"]) == 1
    text = capsys.readouterr().out
    assert "COUNTEREXAMPLE" in text and "FAIL  isometry" in text and "PASS  function" in text
    saved = tmp_path / "counterexample-split-without-isometry.json"
    d = json.loads(saved.read_text())
    assert d["format"] == base.FORMAT_NAME and d["theorem"]["name"] == "split-without-isometry"
    assert {"isometry", "kkt"} <= set(d["failed"])
    cert = tmp_path / "counterexample-split-without-isometry.cert.json"
    assert cert.exists() and "isometry = False" in text  # the exact checker confirms T^T T != I
    assert main(["theorems", "replay", str(saved)]) == 1
    assert "counterexample reproduced: failed isometry" in capsys.readouterr().out


def test_cli_replay_of_a_fixed_instance_exits_0_and_not_applicable_3(tmp_path, capsys):
    ce = false_claims.SPLIT_WITHOUT_ISOMETRY.search(examples=5).counterexample
    d = ce.to_dict()
    d["theorem"]["name"] = "kkt-embedding-neuron-split"
    d["instance"]["options"]["split"] = {"kind": "neuron", "layer": 1, "unit": 0, "ratios": ["3/5", "4/5"]}
    f = tmp_path / "fixed.json"
    f.write_text(json.dumps(d))
    assert main(["theorems", "replay", str(f)]) == 0
    assert "no longer reproduces" in capsys.readouterr().out
    d["instance"]["y"] = [-v for v in d["instance"]["y"]]
    f.write_text(json.dumps(d))
    assert main(["theorems", "replay", str(f)]) == 3


@pytest.mark.parametrize("argv, message", [
    (["theorems", "show", "no-such-theorem"], "no theorem named 'no-such-theorem'"),
    (["theorems", "check", "euler-identity", "--examples", "0"], "examples=0 must be an integer >= 1"),
    (["theorems", "check", "euler-identity", "--tol", "euler"], "--tol 'euler' must be NAME=VALUE"),
    (["theorems", "check", "euler-identity", "--tol", "kkt=1"], "unknown tolerance(s) ['kkt']"),
    # names of search()/parallel_search() flags: were bound to the flag (TypeError, or a silent sequential run)
    (["theorems", "check", "euler-identity", "--tol", "seed=1"], "unknown tolerance(s) ['seed']"),
    (["theorems", "check", "euler-identity", "--tol", "progress=1"], "unknown tolerance(s) ['progress']"),
    (["theorems", "check", "euler-identity", "--workers", "1", "--tol", "sequential=1"],
     "unknown tolerance(s) ['sequential']"),
    (["theorems", "check", "euler-identity", "--workers", "1", "--tol", "client=1"], "unknown tolerance(s) ['client']"),
    (["theorems", "check", "kkt-embedding-neuron-split/without-feasible"], "no instance generator violates 'feasible'"),
    (["theorems", "replay", "missing.json"], "cannot read counterexample file 'missing.json'"),
])
def test_cli_bad_input_is_one_line_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


@pytest.mark.parametrize("content, message", [
    ("{not json", "not valid JSON"),
    ('{"format": "other"}', "field 'format' is 'other'"),
    ('{"format": "kkt-verifier/counterexample", "version": 9}', "field 'version' is 9"),
    ('{"format": "kkt-verifier/counterexample", "version": 1, "theorem": {"name": "euler-identity"}}',
     "field 'instance' is missing"),
    ('{"format": "kkt-verifier/counterexample", "version": 1, "theorem": {"name": "euler-identity"}, '
     '"instance": {"network": {"nodes": []}}}', "instance.network: field 'format' is None; expected 'kkt-verifier/network'"),
])
def test_malformed_counterexample_files(tmp_path, capsys, content, message):
    f = tmp_path / "bad.json"
    f.write_text(content)
    assert main(["theorems", "replay", str(f)]) == 2
    assert message in capsys.readouterr().err


def test_check_objects_are_immutable_and_serialisable():
    c = base.sub_check("kkt", False, float("nan"), 1e-6, "x")
    assert isinstance(c, Check) and c.name == "kkt" and c.tol == 1e-6 and c.detail == "x"
    assert c.status == "fail" and c.to_dict(nonfinite="str")["figure"] == "nan" and c.to_dict()["figure"] is None
    with pytest.raises(AttributeError):
        c.passed = True  # type: ignore[misc]


# -- stating a claim of one's own --------------------------------------------------------------------------

def _user_claim():
    """'Phi(theta; -x) = -Phi(theta; x)' -- true for identity activations, false for ReLU."""
    from hypothesis import strategies as st

    import verifier.strategies as vst

    def linear_acts(inst):
        ok = all(n.op != "relu" for n in inst.net.nodes.values())
        return ok, "no ReLU" if ok else "has a ReLU"

    def check(inst, tol):
        a = verifier.forward(inst.net, inst.params, inst.X)
        b = verifier.forward(inst.net, inst.params, -inst.X)
        yield base.within("odd", float(np.abs(a + b).max()), tol["odd"], "Phi(-x) + Phi(x)")

    def strategy(drop=None):
        acts = ["relu"] if drop == "no-relu" else ["identity"]
        return vst.mlps(max_depth=2, activations=acts).flatmap(lambda net: st.builds(
            lambda p: Instance(net, p, np.ones((1, 2))), vst.params_for(net)))

    return base.Theorem("odd-network", title="Networks are odd", statement="Phi(theta; -x) = -Phi(theta; x).",
                        latex=r"\Phi(-x) = -\Phi(x)", check_fn=check, strategy=strategy, tolerances={"odd": 1e-12},
                        assumptions=[base.Assumption("no-relu", "No ReLU.", r"\sigma = \mathrm{id}", linear_acts)],
                        negatable={"no-relu": "ReLU networks"})


def test_a_user_defined_claim_is_searched_and_negated():
    th = _user_claim()
    assert th.search(examples=10).holds
    ce = th.negated("no-relu").search(examples=25).counterexample
    assert ce is not None and ce.failed == ["odd"]
    # shrunk to a tiny ReLU network whose output on x = (1, 1) is non-zero
    assert ce.instance.net.num_params <= 4 and ce.evidence.checks["odd"].figure > 0


def test_a_crashing_checker_is_an_error_check_not_a_traceback():
    th = _user_claim()
    inst = Instance(verifier.mlp([2, 1], activation="identity"), {"W1": [[1.0, 2.0]]}, np.ones((1, 2)))
    broken = base.Theorem("broken", title="t", statement="s", latex="l", assumptions=[],
                          check_fn=lambda i, t: iter([1 / 0]), strategy=lambda drop=None: None)
    ev = broken.check(inst)
    assert ev.verdict == "fails" and ev.checks["evaluation"].status == "error"
    assert "ZeroDivisionError" in ev.checks["evaluation"].detail
    assert th.check(inst).passed


def test_decisive_checks_decide_and_diagnostics_only_report():
    checks = {"isometry": base.sub_check("isometry", False, 3.0), "kkt": base.sub_check("kkt", True, 0.0, 1e-6)}
    ev = base.Evidence("split-without-isometry", {}, checks, decisive=("kkt",))
    assert ev.verdict == "holds" and ev.failed == ["isometry"]  # the diagnostic is reported, not decisive
    assert base.Evidence("x", {}, checks).verdict == "fails"   # without decisive checks every check decides
    errored = {**checks, "evaluation": base.sub_check("evaluation", False, float("nan"), status="error")}
    assert base.Evidence("x", {}, errored, decisive=("kkt",)).verdict == "fails"  # an error always decides
