"""The theorem library: true theorems hold on generated instances; known-false claims are refuted, by the right check.

Example counts follow the hypothesis profile (``ci``: 25; capped lower where one instance trains a
network); ``tests/slow`` runs the thorough version.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import settings

import theorems
from theorems import (channel_splitting, degree, dual_gap, euler, false_claims, limit_direction, linear_svm, lyu_li,
                      neuron_splitting, trajectories)

N = settings().max_examples  # 25 under the "ci" profile


def _holds(th, n, seed=0):
    res = th.search(examples=n, seed=seed)
    assert res.holds, res.counterexample.describe()
    assert res.checked >= min(n, 5) // 2, res.summary()
    for name, w in res.worst.items():  # the evidence: every sub-check ran and its worst figure is within tolerance
        assert w.count >= 1 and w.failures == 0
        if w.tol is not None:
            assert w.figure <= w.tol, (name, w)
    return res


# -- true theorems ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("th, n", [
    (euler.THEOREM, N),
    (degree.THEOREM, N),
    (linear_svm.THEOREM, N),
    (dual_gap.THEOREM, N),
    (neuron_splitting.THEOREM, N),
    (neuron_splitting.TWO_LAYER, min(N, 10)),
    (neuron_splitting.DEEP, min(N, 10)),
    (channel_splitting.THEOREM, min(N, 10)),
    (trajectories.GD, N),
    (trajectories.FLOW, min(N, 6)),
    (limit_direction.THEOREM, min(N, 4)),
    (lyu_li.THEOREM, min(N, 3)),
], ids=lambda v: getattr(v, "name", str(v)))
def test_true_theorem_holds(th, n):
    res = _holds(th, n)
    assert set(res.worst) >= {"euler": {"euler"}, "degree-of-architectures": {"calculus", "sympy", "scaling"},
                              "kkt-embedding-neuron-split": {"isometry", "function", "gradient", "kkt"},
                              "gd-trajectory-embedding": {"gd_trajectory"},
                              "flow-trajectory-embedding": {"flow_trajectory"}}.get(th.name, set())


def test_every_registered_true_theorem_is_tested():
    tested = {"euler-identity", "degree-of-architectures", "linear-kkt-is-svm", "dual-gap-identity",
              "kkt-embedding-neuron-split", "kkt-embedding-neuron-split-two-layer", "kkt-embedding-neuron-split-deep",
              "kkt-embedding-channel-split", "gd-trajectory-embedding", "flow-trajectory-embedding",
              "limit-direction-embedding", "lyu-li-kkt-convergence"}
    true = {n for n, t in theorems.registry().items() if t.expected is True}
    assert true == tested


# -- known-false claims: a counterexample, failing the right check ------------------------------------------

@pytest.mark.parametrize("claim, must_fail, must_pass", [
    (false_claims.SPLIT_WITHOUT_ISOMETRY, {"isometry", "kkt"}, {"function"}),
    (false_claims.CHANNEL_SPLIT_WITHOUT_ISOMETRY, {"isometry", "kkt"}, {"function"}),
    (false_claims.POWER2_SPLIT, {"function"}, {"isometry"}),
    (false_claims.SIGN_DESCENT_TRAJECTORY, {"gd_trajectory"}, {"isometry", "gradient"}),
    (false_claims.ADAM_TRAJECTORY, {"gd_trajectory"}, {"isometry", "gradient"}),
    (false_claims.COORDINATE_DESCENT_TRAJECTORY, {"gd_trajectory"}, {"isometry", "gradient"}),
    (false_claims.LINF_KKT_EMBEDDING, {"kkt"}, {"isometry", "function", "gradient"}),
], ids=lambda v: getattr(v, "name", ""))
def test_known_false_claim_is_refuted_by_the_right_check(claim, must_fail, must_pass):
    assert claim.expected is False and set(claim.expected_failures) == must_fail
    res = claim.search(examples=N, seed=0)
    assert not res.holds, f"{claim.name}: no counterexample in {res.checked} instances"
    ce = res.counterexample
    failed = set(ce.failed)
    assert must_fail <= failed, (failed, ce.describe())
    assert not (must_pass & failed), (failed, ce.describe())
    # shrinking is bounded by a count of checker calls (never by the clock); what follows holds after any
    # amount of shrinking, including none
    assert 0 <= ce.shrink_calls <= 200 and ce.first_instance is not None
    # the printed instance names the failing check and its figure
    text = ce.describe()
    for name in must_fail:
        assert f"FAIL  {name}" in text
    # replaying the instance reproduces the failure
    assert theorems.get(claim.name).check(ce.instance).failed == ce.failed


def test_linf_counterexample_is_a_genuine_linf_kkt_point():
    """The shrunk l_inf counterexample: the narrow point is l_inf-KKT, its split is not (independent check_kkt calls)."""
    import verifier

    ce = false_claims.LINF_KKT_EMBEDDING.search(examples=N, seed=0).counterexample
    inst = ce.instance
    from theorems._common import make_embedding

    emb = make_embedding(inst)
    narrow = verifier.check_kkt(inst.net, inst.params, inst.X, inst.y, norm="linf")
    wide = verifier.check_kkt(emb.wide_net, emb.apply(inst.params), inst.X, inst.y, norm="linf")
    assert narrow.verdict == "kkt" and wide.verdict == "not_kkt"
    l2 = verifier.check_kkt(emb.wide_net, emb.apply(inst.params), inst.X, inst.y, norm="l2")
    assert l2.verdict == verifier.check_kkt(inst.net, inst.params, inst.X, inst.y).verdict  # l2 is preserved


def test_power2_has_only_the_trivial_embedding():
    """The z^2 network's failure is the split, not the embedding idea: adding a zero neuron keeps the function."""
    import verifier

    ce = false_claims.POWER2_SPLIT.search(examples=N, seed=0).counterexample
    inst = ce.instance
    emb = verifier.add_zero_neuron(inst.net, inst.params, layer=inst.options["split"]["layer"])
    rep = verifier.check_embedding(emb, inst.params, inst.X, inst.y, checks=("isometry", "function", "gradient"))
    assert rep.passed, rep.summary()


# -- checkers against independent oracles -------------------------------------------------------------------

def test_degree_closed_forms_by_hand():
    assert degree.closed_form({"kind": "mlp", "widths": [2, 4, 4, 1], "activation": "relu"})[0] == 3
    assert degree.closed_form({"kind": "mlp", "widths": [2, 4, 4, 1], "activation": "power:2"})[0] == 7
    assert degree.closed_form({"kind": "mlp", "widths": [2, 3, 3, 3, 1], "activation": "relu_power:3"})[0] == 40
    assert degree.closed_form({"kind": "cnn", "channels": [2], "hidden": [], "activation": "abs"})[0] == 2
    assert degree.closed_form({"kind": "diagonal", "d": 3, "depth": 4})[0] == 4


def test_degree_checker_catches_a_wrong_closed_form():
    inst = degree.instance_for({"kind": "mlp", "widths": [2, 2, 1], "activation": "relu_power:2"})
    inst.options["architecture"] = {**inst.options["architecture"], "activation": "relu_power:3"}
    ev = degree.THEOREM.check(inst)
    assert ev.verdict == "not-applicable"  # the spec no longer builds this network
    checks = {c.name: c for c in degree._check(inst, degree.THEOREM.tolerances)}  # bypass the assumption
    assert not checks["calculus"].passed and not checks["sympy"].passed and not checks["scaling"].passed
    assert "closed form 1 + k + ... + k^(L-1) with k = 3, L = 2: 4" in checks["calculus"].detail


def test_svm_oracle_matches_a_constructed_solution():
    # support pair +-(1/2, 0) + (0, 1) around w = (2, 0): the SVM is w, whatever the offset along (0, 1)
    X = np.array([[0.5, 1.0], [-0.5, 1.0], [1.5, -2.0], [-2.0, 0.25]])
    y = np.array([1.0, -1.0, 1.0, -1.0])
    assert np.allclose(linear_svm.svm(X, y), [2.0, 0.0], atol=1e-12)


def test_euler_checker_detects_a_wrong_degree():
    inst = euler.example()
    inst.options["degree"] = 3  # claims degree 3 for a degree-2 network: the assumption check refuses
    assert euler.THEOREM.check(inst).verdict == "not-applicable"
    neg = euler.THEOREM.negated("homogeneous")  # ... and without the assumption the identity fails
    assert neg.check(inst).failed == ["euler", "scaling"]


def test_dual_gap_identity_by_hand():
    # linear model w = (1, 0) on x = (1, 0), y = 1: q = 1, h = x, G = [[1]], c = 1; D(l) = l - l^2/2
    import verifier

    inst = theorems.Instance(verifier.mlp([2, 1], activation="identity"), {"W1": [[1.0, 0.0]]}, [[1.0, 0.0]], [1.0],
                             {"lambda": [0.25]})
    p = dual_gap._parts(inst.net, inst.theta, inst.X, inst.y)
    assert np.isclose(dual_gap.dual_objective(p, np.array([0.25])), 0.25 - 0.25 ** 2 / 2)
    assert np.allclose(dual_gap.eps_delta(p, np.array([0.25])), (0.75, 0.0))  # ||(1,0) - 0.25 (1,0)||
    assert dual_gap.THEOREM.check(inst).passed


def test_neuron_split_checker_flags_a_broken_map():
    """A split whose ratios do not square-sum to 1 is outside the theorem; without the assumption it fails isometry."""
    inst = neuron_splitting.example()
    inst.options["split"] = {**inst.options["split"], "ratios": ["1/2", "1/2"]}
    assert neuron_splitting.THEOREM.check(inst).verdict == "not-applicable"
    ev = neuron_splitting.THEOREM.negated("isometric-ratios").check(inst)
    assert "isometry" in ev.failed and "function" in ev.failed  # sum alpha^2 = 1/2: the function halves too


def test_lyu_li_trend_is_measured_on_checkpoints():
    ev = lyu_li.THEOREM.check(lyu_li.example())
    assert ev.passed
    assert "steps 0:" in ev.checks["kkt-trend"].detail and ev.checks["kkt-trend"].figure < 0.5
