"""Core commands: ``degree`` (homogeneity, node by node) and ``describe``."""

from __future__ import annotations

import argparse
import json

from ..analysis.homogeneity import node_degrees, quasi_homogeneous_weights
from ..io import load_network


def _degree(args: argparse.Namespace) -> int:
    net = load_network(args.net)
    if args.quasi:
        q = quasi_homogeneous_weights(net)
        if args.json:
            print(json.dumps({"quasi_homogeneous": q.exists, "weights": {k: str(v) for k, v in q.weights.items()},
                              "general": {k: str(v) for k, v in q.general.items()}, "reason": q.reason}, indent=1))
        elif q.exists:
            print("quasi-homogeneous: Phi(exp(s r) . theta) = exp(s) Phi(theta) with weights r =")
            for k, v in q.weights.items():
                print(f"  {k:<12} {v}      (general solution: {q.general[k]})")
        else:
            print(f"not quasi-homogeneous: {q.reason}")
        return 0 if q.exists else 1
    degs = node_degrees(net)
    if args.json:
        print(json.dumps({"degree": str(degs[net.output]), "nodes": {n: str(degs[n]) for n in net.order}}, indent=1))
        return 0
    print(f"{'node':<14} {'op':<12} {'shape':<14} degree")
    for n in net.order:
        print(f"{n:<14} {net.nodes[n].op:<12} {str(list(net.shapes[n])):<14} {degs[n]}")
    print(f"\nPhi(c theta; x) = c^{degs[net.output]} Phi(theta; x) for all c > 0: degree {degs[net.output]}")
    return 0


def _describe(args: argparse.Namespace) -> int:
    net = load_network(args.net)
    print(net.describe())
    print(f"\n{net.num_params} parameters: {', '.join(f'{p}{list(net.param_shapes[p])}' for p in net.param_names)}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("degree", help="degree of homogeneity, node by node")
    p.add_argument("net", help="network JSON file")
    p.add_argument("--quasi", action="store_true", help="solve for quasi-homogeneous weights per tensor instead")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=_degree)
    p = sub.add_parser("describe", help="nodes, shapes and parameters of a network")
    p.add_argument("net", help="network JSON file")
    p.set_defaults(handler=_describe)
