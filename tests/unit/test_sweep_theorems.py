"""``theorems check --workers``: the deterministic shard plan and the merge (run here without dask;
the dask path is in test_sweep_dask.py and tests/slow/test_sweep_slow.py)."""

from __future__ import annotations

import pytest

import theorems
from verifier.sweep import SweepError
from verifier.sweep.theorems import merge, parallel_search, search_shard, shards


@pytest.mark.parametrize("examples, workers", [(1, 1), (10, 3), (7, 7), (5, 8), (300, 4)])
def test_shards_partition_the_budget(examples, workers):
    plan = shards(examples, seed=2, workers=workers)
    assert sum(n for n, _ in plan) == examples                              # nothing lost, nothing doubled
    assert max(n for n, _ in plan) - min(n for n, _ in plan) <= 1           # balanced
    assert [s for _, s in plan] == [2 * workers + k for k in range(len(plan))]
    assert plan == shards(examples, seed=2, workers=workers)                # deterministic
    other = {s for _, s in shards(examples, seed=3, workers=workers)}
    assert not other & {s for _, s in plan}                                 # other seeds, other shards


def test_shard_plan_rejects_bad_numbers():
    for kw in ({"examples": 0, "seed": 0, "workers": 2}, {"examples": 3, "seed": -1, "workers": 2},
               {"examples": 3, "seed": 0, "workers": 0}, {"examples": 3, "seed": 0, "workers": True}):
        with pytest.raises(SweepError, match="must be an integer"):
            shards(**kw)


def test_one_worker_is_the_plain_search():
    t = theorems.get("dual-gap-identity")
    plain = t.search(examples=4, seed=5)
    one = parallel_search("dual-gap-identity", examples=4, seed=5, workers=1, sequential=True)
    assert (one.checked, one.not_applicable, one.holds) == (plain.checked, plain.not_applicable, plain.holds)
    assert {k: (w.figure, w.instance, w.count, w.failures) for k, w in one.worst.items()} == \
        {k: (w.figure, w.instance, w.count, w.failures) for k, w in plain.worst.items()}


def test_merge_numbers_instances_across_shards_and_stops_at_the_first_counterexample(tmp_path):
    parts = [search_shard("euler-identity", 3, 0, 200, 1, {}), search_shard("euler-identity", 2, 1, 200, 1, {})]
    res = merge("euler-identity", 5, 0, parts, {}, keep=2)
    assert res.checked == 5 and res.holds and len(res.sample) == 2
    for k, w in res.worst.items():
        a, b = parts[0]["worst"][k], parts[1]["worst"][k]
        assert w.count == a["count"] + b["count"]
        assert w.figure == max(a["figure"], b["figure"])
        assert w.instance == (a["instance"] if a["figure"] >= b["figure"] else 3 + b["instance"])
    # a known-false claim: the first shard with a counterexample wins; it replays from its file
    res = parallel_search("split-without-isometry", examples=6, seed=0, workers=2, sequential=True)
    assert not res.holds
    ce = res.counterexample
    assert ce.seed == 0 and ce.found_after <= 3 and ce.evidence.verdict == "fails"
    path = ce.save(tmp_path / "ce.json")
    name, inst, _ = theorems.load_counterexample(path)
    assert theorems.get(name).check(inst).verdict == "fails"


@pytest.mark.parametrize("tol", ["progress", "seed", "kkt"])
def test_a_shard_refuses_unknown_tolerances_by_name(tol):
    """A tolerance named like a search() flag was bound to that flag (a float as the progress callback)."""
    with pytest.raises(theorems.TheoremError, match=rf"unknown tolerance\(s\) \['{tol}'\]"):
        search_shard("euler-identity", 1, 0, 200, 0, {tol: 1.0})


def test_cli_workers_must_be_positive(capsys):
    from verifier.cli import main

    assert main(["theorems", "check", "euler-identity", "--examples", "4", "--workers", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "verifier theorems: error: workers=0 must be an integer >= 1"
