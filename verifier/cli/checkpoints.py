"""``verifier kkt --torch model.py:Net --checkpoint PATH|DIR|GLOB --data data.npz``: check torch checkpoints.

The model class is imported from the user's file and instantiated once; its
graph is imported once (:func:`verifier.from_torch`); each checkpoint is read
with ``torch.load(weights_only=True)`` (no code from the checkpoint runs), loaded
into the model, read back as float64 and checked with :func:`verifier.check_kkt`.
One checkpoint prints the full report; several print one row each (``--csv``:
CSV, ``--json``: a JSON list).  Exit status 0 when every verdict is ``kkt``, 1
otherwise, 2 on bad input.  (This module is a helper of ``verifier kkt``; it
registers no command of its own.)
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from ..errors import FormatError

def require_net_params(args: argparse.Namespace) -> None:
    """``verifier kkt`` without ``--torch``: ``--net`` and ``--params`` are required."""
    if getattr(args, "csv", False):
        raise FormatError("--csv is for checkpoints: use it with --torch FILE.py:NAME --checkpoint PATH")
    # a torch checkpoint given as --params is recognised by its content when it is read (verifier.io)
    missing = [f"--{k}" for k in ("net", "params") if not getattr(args, k, None)]
    if missing:
        raise FormatError(f"verifier kkt needs {' and '.join(missing)} (or --torch FILE.py:NAME --checkpoint PATH "
                          "for a torch model and its checkpoints)")


def _f(v: object, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def torch_kkt(args: argparse.Namespace) -> int:
    from ..io import load_data
    from ..torch import check_checkpoints, find_checkpoints, load_model

    if not args.torch or not args.checkpoint:
        raise FormatError("--torch FILE.py:NAME and --checkpoint PATH|DIR|GLOB go together (the model and its weights)")
    if args.net or args.params:
        raise FormatError("give either --net/--params or --torch/--checkpoint, not both")
    if args.json and args.csv:
        raise FormatError("choose one of --json and --csv")
    model = load_model(args.torch)
    X, y = load_data(args.data)
    paths = find_checkpoints(args.checkpoint)
    rows = check_checkpoints(model, paths, X, y, norm=args.norm, tol=args.tol, kink_tol=args.kink_tol,
                             solver=args.solver, second_order=args.second_order)
    ok = all(r.report.verdict == "kkt" for r in rows)
    if args.json:
        out = [r.to_dict(full=args.full) for r in rows]
        print(json.dumps(out[0] if len(out) == 1 and Path(args.checkpoint).is_file() else out, indent=1))
        return 0 if ok else 1
    if args.csv:
        w = csv.DictWriter(sys.stdout, fieldnames=list(rows[0].csv_row()), lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if v is None else v) for k, v in r.csv_row().items()})
        return 0 if ok else 1
    if len(rows) == 1:
        r = rows[0]
        print(f"checkpoint {r.path}" + (f" (step {r.step})" if r.step is not None else "") +
              f": {r.source_dtype} weights, checked in float64 in {r.seconds:.2f} s")
        print(r.report)
        return 0 if ok else 1
    name_w = max(10, *(len(Path(r.path).name) for r in rows))
    print(f"{'step':>8}  {'checkpoint':<{name_w}}  {'verdict':<10} {'norm. margin':>12} {'eps_rel':>10} "
          f"{'delta_rel':>10} {'support':>7} {'seconds':>7}")
    for r in rows:
        rep = r.report
        sup = None if rep.support is None else len(rep.support)
        print(f"{_f(r.step, 'd'):>8}  {Path(r.path).name:<{name_w}}  {rep.verdict:<10} "
              f"{_f(rep.normalized_margin, '.5g'):>12} {_f(rep.eps_rel, '.3g'):>10} {_f(rep.delta_rel, '.3g'):>10} "
              f"{_f(sup, 'd'):>7} {r.seconds:>7.2f}")
    low = sorted({r.source_dtype for r in rows} - {"float64"})
    if low:
        print(f"note: the weights are {', '.join(low)}; the check runs in float64 on exactly those values, but "
              "figures below about 1e-6 are beyond what float32 training resolves")
    return 0 if ok else 1
