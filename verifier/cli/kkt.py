"""``verifier kkt``: is a parameter file a KKT point of the max-margin problem?

Exit status: 0 when the verdict is ``kkt``; 1 when it is ``not_kkt`` or
``infeasible`` (the check ran, the answer is no); 2 on bad input (one line on
stderr, no traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from ._options import float_range, positive_int
from ..io import load_data, load_network, load_params


def _kink_tol(text: str) -> float | None:
    if text.strip().lower() == "none":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--kink-tol {text!r} must be a number >= 0 or 'none'") from None


def _progress_printer():
    """One line per phase and per working-set round on stderr (``--quiet`` turns it off)."""
    t0 = time.perf_counter()

    def show(info: dict) -> None:
        t = time.perf_counter() - t0
        if "round" in info:
            print(f"[{t:7.1f} s] working set round {info['round']}: {info['working_set']} constraints, support "
                  f"{info['support']}, {info['violators']} violated outside (largest {info['max_violation']:.2e})",
                  file=sys.stderr, flush=True)
        elif info.get("phase") == "margins":
            print(f"[{t:7.1f} s] margins of {info['constraints']} constraints ({info['samples']} samples)",
                  file=sys.stderr, flush=True)

    return show


def _kkt(args: argparse.Namespace) -> int:
    from ..kkt import check_kkt

    if args.torch or args.checkpoint:  # a torch model and its checkpoints (verifier/cli/checkpoints.py)
        from .checkpoints import torch_kkt

        return torch_kkt(args)
    from .checkpoints import require_net_params

    require_net_params(args)
    net = load_network(args.net)
    params = load_params(args.params, net)
    X, y = load_data(args.data)
    report = check_kkt(net, params, X, y, norm=args.norm, tol=args.tol, kink_tol=args.kink_tol,
                       solver=args.solver, second_order=args.second_order,
                       memory_limit=None if args.memory_limit is None else int(args.memory_limit * 2**30),
                       working_set_size=args.working_set, progress=None if args.quiet else _progress_printer())
    if args.json:
        d = report.to_dict()
        if not args.full:
            d.pop("theta_hat", None)
        print(json.dumps(d, indent=1))
    else:
        print(report)
    return 0 if report.verdict == "kkt" else 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "kkt",
        help="check whether parameters are a KKT point of the max-margin problem",
        description="Normalise the point to smallest margin 1, solve the tangent dual for multipliers and "
        "report (eps, delta). Exit status 0: kkt; 1: not_kkt or infeasible; 2: bad input.",
    )
    p.add_argument("--net", help="network JSON file")
    p.add_argument("--params", help="parameter .npz keyed by tensor name")
    p.add_argument("--torch", metavar="FILE.py:NAME", help="a torch model instead of --net/--params: the class "
                   "(or factory) NAME in FILE.py, called without arguments; needs --checkpoint")
    p.add_argument("--checkpoint", metavar="PATH|DIR|GLOB", help="with --torch: a state dict saved with torch.save, "
                   "a folder of them or a glob; one row each")
    p.add_argument("--csv", action="store_true", help="with --torch: print one CSV row per checkpoint")
    p.add_argument("--data", required=True, help="data .npz with arrays X and y")
    p.add_argument("--json", action="store_true", help="print the report as JSON (KKTReport.to_dict)")
    p.add_argument("--full", action="store_true", help="with --json: include theta_hat (the normalised parameters)")
    p.add_argument("--norm", default="l2", help="l2 (default), l1 or linf")
    p.add_argument("--tol", type=float_range(0.0, None), default=1e-6, help="verdict kkt iff eps_rel <= tol and delta_rel <= tol (default 1e-6)")
    p.add_argument("--kink-tol", type=_kink_tol, default=1e-9,
                   help="pre-activations with |z| <= this are kinks (default 1e-9); 'none' to use default derivatives")
    p.add_argument("--solver", default="auto",
                   help="auto (default: all constraints at once up to 2000, the working set above), working-set, "
                   "nnls, clarabel or osqp")
    p.add_argument("--working-set", type=positive_int, default=1000, metavar="K",
                   help="initial working set: the K constraints with the smallest margins (default 1000)")
    p.add_argument("--memory-limit", type=float_range(0.0, None, lo_open=True, what='GiB'), default=None, metavar="GIB",
                   help="GiB the largest arrays may take (default: half the machine's memory)")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")
    p.add_argument("--second-order", action="store_true", help="also check second-order necessary conditions")
    p.set_defaults(handler=_kkt)
