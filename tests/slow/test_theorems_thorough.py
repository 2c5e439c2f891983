"""Thorough theorem runs (``make test-slow`` / ``pytest tests/slow``): every claim at its full example count.

True theorems must hold on ``default_examples`` instances (300 for the cheap identities) for two
seeds; every known-false claim must be refuted with the expected failing check for three seeds.
"""

from __future__ import annotations

import pytest

import theorems

pytestmark = pytest.mark.slow

TRUE = [n for n, t in theorems.registry().items() if t.expected is True]
FALSE = [n for n, t in theorems.registry().items() if t.expected is False]
CHEAP = {"euler-identity": 500, "degree-of-architectures": 300, "dual-gap-identity": 300, "linear-kkt-is-svm": 300,
         "kkt-embedding-neuron-split": 300, "gd-trajectory-embedding": 300}


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("name", TRUE)
def test_true_theorem_thorough(name, seed):
    th = theorems.get(name)
    res = th.search(examples=CHEAP.get(name, th.default_examples), seed=seed)
    assert res.holds, res.counterexample.describe()
    assert all(w.failures == 0 for w in res.worst.values())


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("name", FALSE)
def test_false_claim_thorough(name, seed):
    th = theorems.get(name)
    res = th.search(examples=th.default_examples, seed=seed)
    assert not res.holds
    assert set(th.expected_failures) <= set(res.counterexample.failed), res.counterexample.describe()
    if "function" not in th.expected_failures:
        assert "function" not in res.counterexample.failed


@pytest.mark.parametrize("name", ["kkt-embedding-neuron-split", "kkt-embedding-channel-split", "gd-trajectory-embedding"])
def test_negated_variants_find_counterexamples(name):
    th = theorems.get(name)
    for assumption in th.negatable:
        res = th.negated(assumption).search(examples=100, seed=0)
        assert not res.holds, f"{name} without {assumption}: no counterexample"
