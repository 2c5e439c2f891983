"""``verifier symbolic ...``: exact (sympy) statements about a network.

* ``degree --net net.json``: proof of ``Phi(c theta) = c^L Phi(theta)`` (or the
  quasi-homogeneous version) and Euler's identity, with the cross-checks;
* ``kkt --net net.json --data data.npz [--latex]``: the KKT system written out;
* ``solve --net net.json --data data.npz``: every exact KKT point, by region;
* ``split --net net.json [--node fc1 --neuron 0 --m 2]``: the neuron-splitting
  identities for symbolic ratios with ``sum alpha^2 = 1``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..io import load_data, load_network
from ._options import float_range, int_range


def _limit(v: str) -> int | None:
    """A count limit: an integer >= 1, or ``none`` for no limit."""
    return None if v.strip().lower() == "none" else int_range(1, None, "or 'none' for no limit")(v)


def _budget(v: str) -> float | None:
    """A time budget in seconds: a number > 0, or ``none`` for no limit."""
    return None if v.strip().lower() == "none" else float_range(0.0, None, lo_open=True, what="seconds, or 'none'")(v)


def _degree(args: argparse.Namespace) -> int:
    from ..symbolic import prove_homogeneity

    net = load_network(args.net)
    proof = prove_homogeneity(net, max_params=args.max_params, time_budget=args.time_budget)
    if args.json:
        print(json.dumps(proof.to_dict(), indent=1))
    elif args.latex:
        print(proof.latex())
    else:
        print(proof)
    return 0 if proof.proved else 1


def _kkt(args: argparse.Namespace) -> int:
    from ..symbolic import kkt_system

    net = load_network(args.net)
    X, y = load_data(args.data)
    system = kkt_system(net, X, y, max_params=args.max_params, max_samples=args.max_samples)
    print(system.latex() if args.latex else system)
    return 0


def _solve(args: argparse.Namespace) -> int:
    from ..symbolic import solve_kkt

    net = load_network(args.net)
    X, y = load_data(args.data)
    sol = solve_kkt(net, X, y, max_params=args.max_params, max_samples=args.max_samples,
                    max_regions=args.max_regions, time_budget=args.time_budget)
    if args.json:
        print(json.dumps(sol.to_dict(), indent=1))
    else:
        print(sol)
    return 0 if sol.complete else 1


def _split(args: argparse.Namespace) -> int:
    from ..symbolic import prove_split_identity

    net = load_network(args.net)
    res = prove_split_identity(net, node=args.node, neuron=args.neuron, m=args.m, max_params=args.max_params)
    print(json.dumps(res.to_dict(), indent=1) if args.json else res)
    return 0 if res.holds else 1


def register(sub: Any) -> None:
    p = sub.add_parser("symbolic", help="exact sympy proofs: degree, KKT system, exact KKT points, splitting")
    ss = p.add_subparsers(dest="symbolic_command", metavar="SUBCOMMAND")
    ss.required = True

    d = ss.add_parser("degree", help="prove Phi(c theta) = c^L Phi(theta) and Euler's identity")
    d.add_argument("--net", required=True, help="network JSON file")
    d.add_argument("--max-params", type=_limit, default=64, help="parameter limit (default 64, 'none' for no limit)")
    d.add_argument("--time-budget", type=_budget, default=120.0, help="seconds (default 120, 'none' for no limit)")
    d.add_argument("--latex", action="store_true", help="print the identities as LaTeX")
    d.add_argument("--json", action="store_true", help="machine-readable output")
    d.set_defaults(handler=_degree)

    k = ss.add_parser("kkt", help="the KKT system: Lagrangian, stationarity, feasibility, slackness")
    k.add_argument("--net", required=True, help="network JSON file")
    k.add_argument("--data", required=True, help="data .npz with arrays X and y")
    k.add_argument("--latex", action="store_true", help="print as a LaTeX aligned block")
    k.add_argument("--max-params", type=_limit, default=64, help="parameter limit (default 64)")
    k.add_argument("--max-samples", type=_limit, default=64, help="sample limit (default 64)")
    k.set_defaults(handler=_kkt)

    s = ss.add_parser("solve", help="every exact KKT point of a small instance, grouped by activation region")
    s.add_argument("--net", required=True, help="network JSON file")
    s.add_argument("--data", required=True, help="data .npz with arrays X and y")
    s.add_argument("--max-params", type=_limit, default=8, help="parameter limit (default 8)")
    s.add_argument("--max-samples", type=_limit, default=4, help="sample limit (default 4)")
    s.add_argument("--max-regions", type=_limit, default=5000, help="activation-region limit (default 5000)")
    s.add_argument("--time-budget", type=_budget, default=60.0, help="seconds (default 60, 'none' for no limit)")
    s.add_argument("--json", action="store_true", help="machine-readable output")
    s.set_defaults(handler=_solve)

    t = ss.add_parser("split", help="neuron-splitting identities for symbolic ratios with sum alpha^2 = 1")
    t.add_argument("--net", required=True, help="network JSON file")
    t.add_argument("--node", default=None, help="dense node whose unit is split (default: first hidden layer)")
    t.add_argument("--neuron", type=int_range(0, None), default=0, help="unit index (default 0)")
    t.add_argument("--m", type=int_range(2, None, "the number of copies"), default=2, help="number of copies (default 2)")
    t.add_argument("--max-params", type=_limit, default=64, help="parameter limit (default 64)")
    t.add_argument("--json", action="store_true", help="machine-readable output")
    t.set_defaults(handler=_split)
