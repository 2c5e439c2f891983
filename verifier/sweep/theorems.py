"""``verifier theorems check NAME --workers N``: one theorem's example budget split across a dask cluster.

The budget of ``examples`` instances is cut into ``N`` shards, deterministically: shard ``k``
generates ``examples // N`` instances (one more for the first ``examples % N`` shards) from seed
``seed * N + k``, so ``N = 1`` is exactly the one-machine search.  Each shard is an ordinary
:meth:`theorems.Theorem.search` (a failure is shrunk on the worker that found it); the results are
merged: instance counts add up, the worst figure per sub-check is the worst over the shards (its
instance numbered across shards in shard order), and the counterexample is the one of the
lowest-numbered shard that found one.  It is re-checked on the client before it is reported (so it
replays), and records its shard's seed: ``verifier theorems check NAME --examples n_k --seed s_k``
finds it again on one machine.

>>> shards(10, seed=3, workers=4)
[(3, 12), (3, 13), (2, 14), (2, 15)]
>>> res = parallel_search("euler-identity", examples=6, seed=0, workers=2, sequential=True)
>>> res.holds, res.checked, sorted(res.worst)
(True, 6, ['euler', 'scaling'])
"""

from __future__ import annotations

import math
from typing import Any, Mapping

from .spec import SweepError


def shards(examples: int, *, seed: int, workers: int) -> list[tuple[int, int]]:
    """``[(examples_k, seed_k)]`` for ``k < workers`` (shards with no example are left out)."""
    for name, v, lo in (("examples", examples, 1), ("seed", seed, 0), ("workers", workers, 1)):
        if isinstance(v, bool) or not isinstance(v, int) or v < lo:
            raise SweepError(f"{name}={v!r} must be an integer >= {lo}")
    base, extra = divmod(examples, workers)
    out = [(base + (1 if k < extra else 0), seed * workers + k) for k in range(workers)]
    return [s for s in out if s[0] > 0]


def search_shard(name: str, examples: int, seed: int, shrink_budget: int, keep: int,
                 tolerances: Mapping[str, float]) -> dict[str, Any]:
    """One shard's search, as plain values (what a worker sends back)."""
    import theorems

    t = theorems.get(name)
    t.check_tolerances(tolerances)  # before the call: a tolerance named like a flag would be bound to it
    res = t.search(examples=examples, seed=seed, shrink_budget=shrink_budget, progress=None, keep=keep,
                   **dict(tolerances))
    ce = res.counterexample
    return {"examples": examples, "seed": seed, "checked": res.checked, "not_applicable": res.not_applicable,
            "worst": {k: {"figure": w.figure, "instance": w.instance, "passed": w.passed, "count": w.count,
                          "failures": w.failures, "tol": w.tol} for k, w in res.worst.items()},
            "seconds": res.seconds, "check_seconds": res.check_seconds, "slowest": res.slowest,
            "time_to_failure": res.time_to_failure, "sample": [i.to_dict() for i in res.sample],
            "counterexample": None if ce is None else {"instance": ce.instance.to_dict(), "found_after": ce.found_after,
                                                       "shrink_calls": ce.shrink_calls}}


def merge(name: str, examples: int, seed: int, parts: list[dict[str, Any]], tolerances: Mapping[str, float],
          keep: int = 0):
    """The :class:`theorems.SearchResult` of the shards ``parts`` (in shard order)."""
    import theorems
    from theorems.base import Counterexample, Instance, SearchResult, Worst

    t = theorems.get(name)
    res = SearchResult(t, examples, seed)
    offset = 0
    for p in parts:
        before = res.checked + res.not_applicable
        res.not_applicable += p["not_applicable"]
        res.check_seconds += p["check_seconds"]
        res.slowest = max(res.slowest, p["slowest"])
        res.seconds = max(res.seconds, p["seconds"])  # shards run side by side
        for k, w in p["worst"].items():
            f = float(w["figure"])
            cur = res.worst.get(k)
            if cur is None:
                res.worst[k] = Worst(f, offset + w["instance"], w["passed"], w["count"], w["failures"], w["tol"])
                continue
            if (math.isnan(f) and not math.isnan(cur.figure)) or f > cur.figure or (not w["passed"] and cur.passed):
                cur.figure, cur.instance, cur.passed = f, offset + w["instance"], w["passed"]
            cur.count += w["count"]
            cur.failures += w["failures"]
        for d in p["sample"]:
            if len(res.sample) < keep:
                res.sample.append(Instance.from_dict(d))
        if p["counterexample"] is not None and res.counterexample is None:
            ce = p["counterexample"]
            inst = Instance.from_dict(ce["instance"], source=f"shard seed {p['seed']}: counterexample")
            ev = t.check(inst, **dict(tolerances))  # replayed here: what is reported is what re-runs
            res.counterexample = Counterexample(t, inst, ev, found_after=before + ce["found_after"], shrink_calls=ce["shrink_calls"], seed=p["seed"])
            if p["time_to_failure"] is not None:
                res.time_to_failure = p["time_to_failure"]
        res.checked += p["checked"]
        offset += p["checked"]
        if res.counterexample is not None:
            break  # later shards' instances are not part of the evidence once a claim failed
    return res


def parallel_search(name: str, *, examples: int | None = None, seed: int = 0, workers: int = 2, client: Any = None,
                    scheduler: str | None = None, sequential: bool = False, shrink_budget: int = 200, keep: int = 0,
                    **tolerances: float):
    """Search claim ``name`` with its budget split into ``workers`` shards (see the module docstring).

    Runs on ``client``, or the dask scheduler at ``scheduler``, or a local cluster of ``workers``
    processes; ``sequential=True`` runs the shards one after the other here (same result).
    """
    import theorems

    t = theorems.get(name)
    t.check_tolerances(tolerances)
    n = t.default_examples if examples is None else examples
    plan = shards(n, seed=seed, workers=workers)
    args = [(t.name, nk, sk, shrink_budget, keep, dict(tolerances)) for nk, sk in plan]
    if sequential:
        parts = [search_shard(*a) for a in args]
    else:
        parts = _on_dask(args, client=client, scheduler=scheduler, workers=workers)
    return merge(t.name, n, seed, parts, tolerances, keep)


def _on_dask(args: list[tuple], *, client: Any, scheduler: str | None, workers: int) -> list[dict[str, Any]]:
    from .runner import dask_client

    missing = "--workers needs the [sweep] extra: pip install 'kkt-verifier[sweep]'"
    with dask_client(client, scheduler, workers, missing=missing) as c:
        futs = [c.submit(search_shard, *a, pure=False, retries=1) for a in args]
        return c.gather(futs)
