"""``verifier sweep SPEC.toml``: a grid of checks on dask (see ``docs/sweeps.md``).

Runs every cell of the spec that is not finished yet (on an embedded local cluster, one worker
per core, unless ``--scheduler ADDR`` names an existing one or ``--sequential`` asks for a plain
loop), writes each cell's record to ``OUT/cells/`` as it finishes, then the table
(``OUT/results.parquet`` or ``.csv``) and the plots (``OUT/plots/``).  Exit status 0 when every
cell ran without error, 1 when some recorded an error (the others are still written), 2 on a
malformed spec.
"""

from __future__ import annotations

import argparse
import sys

#: columns shown in the terminal preview of the table (when present)
PREVIEW = ("cell", "check", "status", "verdict", "eps_rel", "delta_rel", "normalized_margin", "passed", "error")


def _fmt(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    s = str(v)
    return s if len(s) <= 60 else s[:57] + "..."


def preview(rows: list[dict], axes: list[str], limit: int = 10) -> str:
    """A fixed-width rendering of the first ``limit`` rows (axis columns, then :data:`PREVIEW`)."""
    cols = [c for c in ("cell", *axes, *PREVIEW[1:]) if any(c in r for r in rows)]
    cols = list(dict.fromkeys(cols))
    shown = rows[:limit]
    table = [[_fmt(r.get(c)) for c in cols] for r in shown]
    widths = [max([len(c)] + [len(t[i]) for t in table]) for i, c in enumerate(cols)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(cols, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(t, widths)) for t in table]
    if len(rows) > limit:
        lines.append(f"... {len(rows) - limit} more row(s)")
    return "\n".join(lines)


def _sweep(args: argparse.Namespace) -> int:
    from ..sweep import load_spec, read_record, run

    spec = load_spec(args.spec)
    cells = spec.cells()
    if args.dry_run:
        out = spec.out if args.out is None else __import__("pathlib").Path(args.out)
        done = sum(1 for c in cells if read_record(out, c) is not None)
        print(f"{spec.source}: {len(cells)} cells ({' x '.join(f'{k} {len(v)}' for k, v in spec.axes.items()) or '1'}"
              f" x {len(spec.checks)} check(s)); {done} already done in {out}, {len(cells) - done} to run")
        return 0
    echo = None if args.quiet else (lambda s: print(s, file=sys.stderr))
    res = run(spec, scheduler=args.scheduler, workers=args.workers, sequential=args.sequential, out=args.out,
              retry_errors=args.retry_errors, progress=not args.quiet and sys.stderr.isatty() or args.progress,
              echo=echo)
    rows = res.rows()
    if not args.quiet:
        print(preview(rows, list(spec.axes)))
        print()
    print(res.summary())
    print(f"table: {res.table}")
    if res.plots:
        print(f"plots: {', '.join(str(p) for p in res.plots)}")
    return 1 if res.errors else 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="run a grid of checks (widths x seeds x checkpoints x ...) on dask",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", help="sweep spec (TOML); see docs/sweeps.md")
    p.add_argument("--out", default=None, help="output folder (default: the spec's [sweep] out)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=None,
                       help="worker processes of the embedded local cluster (default: the number of cores)")
    where.add_argument("--scheduler", default=None, metavar="ADDR",
                       help="use an existing dask cluster, e.g. tcp://host:8786")
    where.add_argument("--sequential", action="store_true", help="a plain loop in this process (no dask)")
    p.add_argument("--retry-errors", action="store_true", help="re-run cells that recorded an error")
    p.add_argument("--dry-run", action="store_true", help="count the cells and the finished ones; run nothing")
    p.add_argument("--progress", action="store_true", help="show the progress bar even when stderr is not a terminal")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, dashboard line or table preview")
    p.set_defaults(handler=_sweep)
