"""``verifier theorems list | show NAME | check NAME | replay FILE``: executable theorems.

``check`` runs hypothesis on generated instances of a claim (``--examples``,
``--seed``); exit status 0 when no counterexample was found, 1 when one was
(it is shrunk, printed and saved as JSON: ``--out FILE``, by default
``counterexample-<name>.json``), 2 on bad input.  ``replay FILE`` re-checks a
saved counterexample: 1 when the claim still fails on it, 0 when it now holds,
3 when the instance no longer satisfies the claim's assumptions.  ``check --workers N`` splits the
example budget into N seed shards run on dask (see ``verifier.sweep.theorems``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..errors import VerifierError
from ..io import atomic_write_text, check_output_path
from ._options import int_range


def _theorems():
    import theorems

    return theorems


def _slug(name: str) -> str:
    return name.replace("/", "_")


def _list(args: argparse.Namespace) -> int:
    th = _theorems()
    reg = th.registry()
    if args.json:
        print(json.dumps([t.to_dict() for t in reg.values()], indent=1))
        return 0
    width = max(len(n) for n in reg)
    print(f"{'name':<{width}}  {'status':<11} {'examples':>8}  title")
    for name, t in reg.items():
        status = {True: "theorem", False: "known-false", None: "claim"}[t.expected]
        print(f"{name:<{width}}  {status:<11} {t.default_examples:>8}  {t.title}")
    print(f"\n{len(reg)} claims; `verifier theorems show NAME` for the statement, `verifier theorems check NAME` to "
          "test it.  NAME/without-ASSUMPTION drops one assumption.")
    return 0


def _show(args: argparse.Namespace) -> int:
    t = _theorems().get(args.name)
    if args.json:
        print(json.dumps({**t.to_dict(), "negatable": t.negatable}, indent=1))
        return 0
    print(t.describe())
    if t.negatable:
        print("\nNegated variants (drop one assumption, search for a counterexample):")
        for a, how in t.negatable.items():
            print(f"  verifier theorems check {t.name}/without-{a}    # {how}")
    return 0


def _parse_tols(items: list[str] | None) -> dict[str, float]:
    out: dict[str, float] = {}
    for item in items or []:
        key, sep, val = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[key.strip()] = float(val)
        except ValueError:
            raise VerifierError(f"--tol {item!r} must be NAME=VALUE, e.g. --tol kkt=1e-5") from None
    return out


def _certify(ce, path: Path) -> str:
    """A certificate of the counterexample's point, re-checked exactly, written next to it."""
    from theorems._common import certify_instance

    try:
        cert, res = certify_instance(ce.instance)
    except (VerifierError, ImportError) as e:
        return f"no certificate: {e}"
    atomic_write_text(path, json.dumps(cert, indent=1) + "\n")
    figs = res.figures
    facts = [f"{k} = {figs[k]}" for k in ("isometry", "output_preserved", "gradient_commutes") if k in figs]
    return (f"certificate written to {path} (independent exact check: {'all claims hold' if res.ok else 'a claim fails'}"
            + (f"; exact facts: {', '.join(facts)}" if facts else "") + ")")


def _certify_sample(res) -> None:  # noqa: ANN001
    """Certificates for the kept passing instances (evidence that needs no trust in floating point)."""
    from theorems._common import certify_instance

    for i, inst in enumerate(res.sample):
        try:
            cert, chk = certify_instance(inst)
            claims = sorted(cert.get("claims", {}))
            res.certificates.append({"instance": i, "ok": bool(chk.ok), "kind": cert.get("meta", {}).get("kind"),
                                     "claims": claims})
        except (VerifierError, ImportError) as e:
            res.certificates.append({"instance": i, "ok": False, "error": str(e)})
    ok = sum(1 for c in res.certificates if c["ok"])
    print(f"  certificates: {ok} of {len(res.certificates)} sample instances certified and re-checked exactly"
          + "".join(f"\n    instance {c['instance']}: {c.get('error')}" for c in res.certificates if not c["ok"]))


def _check(args: argparse.Namespace) -> int:
    t = _theorems().get(args.name)
    tols = _parse_tols(args.tol)
    # refused here, before they meet the flags: `--tol seed=1` must not land in search(seed=...)
    t.check_tolerances(tols)
    # every output is checked before the search starts (it can take minutes)
    out_arg = Path(args.out) if args.out else Path(f"counterexample-{_slug(t.name)}.json")
    check_output_path(out_arg, option="--out")
    if args.certificate:
        check_output_path(out_arg.with_suffix(".cert.json"), option="--out (its .cert.json)")
    def report_instance(k: int, ev) -> None:  # noqa: ANN001
        print(f"  instance {k}: {ev.verdict} ({ev.seconds * 1e3:.0f} ms)", file=sys.stderr)

    progress = report_instance if args.verbose else None
    if args.workers is not None or args.scheduler is not None:  # the budget split across a dask cluster
        from ..sweep.theorems import parallel_search, shards

        n_shards = 2 if args.workers is None else args.workers
        res = parallel_search(t.name, examples=args.examples, seed=args.seed, workers=n_shards, client=None,
                              scheduler=args.scheduler, sequential=False, shrink_budget=args.shrink_budget,
                              keep=max(args.certify, 0), **tols)
        plan = shards(res.examples, seed=args.seed, workers=n_shards)
        print(f"{len(plan)} shard(s) on dask: " + ", ".join(f"{nk} from seed {sk}" for nk, sk in plan))
    else:
        res = t.search(examples=args.examples, seed=args.seed, shrink_budget=args.shrink_budget, progress=progress,
                       keep=max(args.certify, 0), **tols)
    print(res.summary(profile=args.profile))
    if res.holds:
        if args.certify > 0:
            _certify_sample(res)
        if args.out:
            atomic_write_text(args.out, json.dumps(res.to_dict(), indent=1) + "\n")
            print(f"evidence written to {args.out}")
        return 0
    ce = res.counterexample
    assert ce is not None
    print()
    print(ce.describe())
    if t.expected_failures:
        named = [f for f in ce.failed if f in t.expected_failures]
        print(f"\nexpected failing check(s) for this claim: {', '.join(t.expected_failures)}; failed here: "
              f"{', '.join(named) or 'none of them'}")
    out = Path(args.out or f"counterexample-{_slug(t.name)}.json")
    ce.save(out)
    print(f"\ncounterexample written to {out}; re-run it with `verifier theorems replay {out}`")
    if args.certificate:
        print(_certify(ce, out.with_suffix(".cert.json")))
    return 1


def _replay(args: argparse.Namespace) -> int:
    th = _theorems()
    name, inst, doc = th.load_counterexample(args.file)
    t = th.get(name)
    ev = t.check(inst)
    print(f"replaying {args.file}: {t.name}")
    print(inst.describe())
    print()
    print(ev)
    recorded = doc.get("failed") or []
    if ev.verdict == "fails":
        same = sorted(ev.failed) == sorted(recorded)
        print(f"\ncounterexample reproduced: failed {', '.join(ev.failed)}"
              + ("" if same or not recorded else f" (recorded: {', '.join(recorded)})"))
        return 1
    if ev.verdict == "not-applicable":
        print("\nthe instance does not satisfy the claim's assumptions (see above): nothing to replay")
        return 3
    print("\nthe claim holds on this instance: the counterexample no longer reproduces"
          + (f" (recorded failures: {', '.join(recorded)})" if recorded else ""))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("theorems", help="executable theorems: list, show, check (search counterexamples), replay",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    tsub = p.add_subparsers(dest="theorems_command", metavar="ACTION")
    tsub.required = True
    q = tsub.add_parser("list", help="every registered theorem and known-false claim")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(handler=_list)
    q = tsub.add_parser("show", help="statement, assumptions, LaTeX of one claim")
    q.add_argument("name", help="claim name (see `verifier theorems list`); NAME/without-ASSUMPTION for a negation")
    q.add_argument("--json", action="store_true", help="machine-readable output")
    q.set_defaults(handler=_show)
    q = tsub.add_parser("check", help="test a claim on generated instances; shrink and save a counterexample")
    q.add_argument("name", help="claim name; NAME/without-ASSUMPTION drops one assumption")
    q.add_argument("--examples", type=int, default=None, help="instances to generate (default: the claim's own)")
    q.add_argument("--seed", type=int, default=0, help="seed of the instance generator (default 0)")
    q.add_argument("--out", default=None, help="counterexample JSON (default counterexample-NAME.json); for a "
                   "claim that holds, write the evidence (count, worst figure per sub-check) here")
    q.add_argument("--profile", action="store_true", help="print where the time went (checking vs generation)")
    q.add_argument("--shrink-budget", type=int, default=200, help="checker calls spent shrinking (default 200)")
    q.add_argument("--tol", action="append", metavar="NAME=VALUE", help="override a tolerance (repeatable)")
    q.add_argument("--certificate", action="store_true",
                   help="also write an exactly re-checkable certificate of the counterexample's point")
    q.add_argument("--certify", type=int_range(0, 10_000), default=0, metavar="K",
                   help="for a claim that holds: certify K of the instances (exact re-check; KKT and embedding claims)")
    q.add_argument("-v", "--verbose", action="store_true", help="one line per instance on stderr")
    q.add_argument("--workers", type=int, default=None, metavar="N",
                   help="split the example budget into N shards run on dask (seed*N+k for shard k; a local "
                        "cluster of N processes unless --scheduler is given); needs the [sweep] extra")
    q.add_argument("--scheduler", default=None, metavar="ADDR",
                   help="run the shards on an existing dask cluster, e.g. tcp://host:8786 (default 2 shards)")
    q.set_defaults(handler=_check)
    q = tsub.add_parser("replay", help="re-check a saved counterexample")
    q.add_argument("file", help="counterexample JSON written by `verifier theorems check`")
    q.set_defaults(handler=_replay)
