"""``verifier new``: create the files the other commands take, so every example starts from a shown command.

``verifier new mlp 2,16,1 --out net.json``                  a network (``verifier.mlp``)
``verifier new diagonal 4 --depth 2 --out net.json``          a diagonal linear network
``verifier new params --net net.json --seed 1 --out p.npz``   a random point (``net.init_params(seed)``)
``verifier new data xor --n 40 --seed 0 --out data.npz``      data from ``verifier.datasets``
(``xor``: ``two_clusters_xor``; ``separable``: ``linearly_separable``, ``--dim``, ``--margin``;
``images``: ``images``, ``--image-shape C,H,W``).

In Python the same files come from ``net.to_json(path)``, ``verifier.io.save_params(path, params)``
and ``verifier.io.save_data(path, X, y)`` (an ``.npz`` with arrays ``X`` and ``y``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import FormatError

#: largest network / data set this command creates (bounded before allocating)
MAX_UNITS = 100_000
MAX_SAMPLES = 1_000_000


def _ints(text: str, what: str) -> list[int]:
    try:
        v = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise FormatError(f"{what} {text!r} must be comma-separated integers, e.g. 2,16,1") from None
    if not v or any(x < 1 for x in v):
        raise FormatError(f"{what} {text!r} must be positive integers, e.g. 2,16,1")
    if any(x > MAX_UNITS for x in v):
        raise FormatError(f"{what} {text!r}: at most {MAX_UNITS} per entry")
    return v


def _out(path: str) -> Path:
    p = Path(path)
    if not p.parent.exists():
        raise FormatError(f"--out {path!r}: folder {str(p.parent)!r} does not exist")
    return p


def _new(args: argparse.Namespace) -> int:
    import verifier
    from ..io import load_network, save_data, save_params

    kind = args.kind
    if kind in ("mlp", "diagonal"):
        if not args.spec:
            raise FormatError(f"verifier new {kind} needs its size: e.g. 'verifier new mlp 2,16,1 --out net.json'"
                              if kind == "mlp" else "e.g. 'verifier new diagonal 4 --depth 2 --out net.json'")
        if kind == "mlp":
            net = verifier.mlp(_ints(args.spec, "widths"), activation=args.activation, bias=args.bias)
        else:
            d = _ints(args.spec, "dimension")
            if len(d) != 1:
                raise FormatError(f"dimension {args.spec!r} must be one integer")
            net = verifier.diagonal_linear(d[0], depth=args.depth)
        out = _out(args.out)
        net.to_json(out)
        print(f"wrote {out}: {net} with {net.num_params} parameters "
              f"({', '.join(f'{p}{list(net.param_shapes[p])}' for p in net.param_names)})")
        return 0
    if kind == "params":
        if not args.net:
            raise FormatError("verifier new params needs --net NET.json")
        net = load_network(args.net)
        out = _out(args.out)
        save_params(out, net.init_params(args.seed))
        print(f"wrote {out}: net.init_params(seed={args.seed}) for {args.net}")
        return 0
    if kind == "data":
        from .. import datasets

        if args.n < 1 or args.n > MAX_SAMPLES:
            raise FormatError(f"--n {args.n} must be between 1 and {MAX_SAMPLES}")
        name = args.spec or "xor"
        if name == "xor":
            X, y = datasets.two_clusters_xor(args.n, seed=args.seed)
        elif name == "separable":
            X, y = datasets.linearly_separable(args.n, args.dim, margin=args.margin, seed=args.seed)
        elif name == "images":
            shp = _ints(args.image_shape, "--image-shape")
            if len(shp) != 3:
                raise FormatError(f"--image-shape {args.image_shape!r} must be C,H,W, e.g. 1,6,6")
            X, y = datasets.images(args.n, (shp[0], shp[1], shp[2]), seed=args.seed)
        else:
            raise FormatError(f"unknown data set {name!r}; use xor, separable or images")
        out = _out(args.out)
        save_data(out, X, y)
        print(f"wrote {out}: {name}, X {list(X.shape)}, y in {sorted(set(y.tolist()))} (seed {args.seed})")
        return 0
    raise FormatError(f"unknown kind {kind!r}; use mlp, diagonal, params or data")  # pragma: no cover


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("new", help="create a network JSON, a parameter .npz or a data .npz",
                       description="Create the input files of the other commands: 'new mlp 2,16,1 --out net.json', "
                                   "'new params --net net.json --seed 1 --out p.npz', "
                                   "'new data xor --n 40 --seed 0 --out data.npz'.")
    p.add_argument("kind", choices=("mlp", "diagonal", "params", "data"), help="what to create")
    p.add_argument("spec", nargs="?", default=None,
                   help="mlp: widths 2,16,1; diagonal: the dimension; data: xor (default), separable or images")
    p.add_argument("--out", required=True, help="file to write (.json for networks, .npz otherwise)")
    p.add_argument("--activation", default="relu", help="mlp: activation after each hidden layer (default relu)")
    p.add_argument("--bias", default="none", help="mlp: none (default), first or all")
    p.add_argument("--depth", type=int, default=2, help="diagonal: depth (default 2)")
    p.add_argument("--net", default=None, help="params: the network JSON")
    p.add_argument("--seed", type=int, default=0, help="params / data: random seed (default 0)")
    p.add_argument("--n", type=int, default=40, help="data: number of samples (default 40)")
    p.add_argument("--dim", type=int, default=2, help="data separable: dimension (default 2)")
    p.add_argument("--margin", type=float, default=0.1, help="data separable: margin (default 0.1)")
    p.add_argument("--image-shape", default="1,6,6", help="data images: C,H,W (default 1,6,6)")
    p.set_defaults(handler=_new)
