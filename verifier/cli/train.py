"""``verifier train``: full-batch training of a network on a data file (see :func:`verifier.train`)."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from .._display import fmt_number
from .._json import jsonable
from ..io import atomic_write_text, check_output_path
from ._options import positive_int, seed


def _clean(v: Any) -> Any:
    """JSON-safe: non-finite floats become null (the JSON standard has no inf/nan)."""
    return jsonable(v)


def _fmt(v: Any, spec: str = ".4g") -> str:
    return fmt_number(v, spec.lstrip("+"), sign=spec.startswith("+"))


def _train(args: argparse.Namespace) -> int:
    from ..dynamics import train
    from ..io import load_data, load_network, load_params, save_params

    inputs = [args.net, args.data, args.init]
    out = check_output_path(args.out, option="--out", inputs=inputs)
    history = check_output_path(args.history, option="--history", inputs=inputs + [out]) if args.history else None
    net = load_network(args.net)
    X, y = load_data(args.data)
    params = load_params(args.init, net) if args.init else None
    progress = None if args.progress == "auto" else args.progress == "on"
    t0 = time.perf_counter()
    res = train(net, params, X, y, loss=args.loss, method=args.method, steps=args.steps, lr=args.lr,
                schedule=args.schedule, kkt_every=args.kkt_every, progress=progress, seed=args.seed,
                history_every=args.history_every, batch_size=args.batch_size)
    elapsed = time.perf_counter() - t0
    save_params(out, res.params)
    if args.history:
        doc = res.to_dict()
        doc["meta"].update({"net": str(args.net), "data": str(args.data), "init": args.init, "seed": args.seed,
                            "seconds": round(elapsed, 3)})
        assert history is not None
        atomic_write_text(history, json.dumps(_clean(doc), indent=1) + "\n")
    first, last = res.history[0], res.history[-1]
    print(f"trained {net.num_params} parameters on {len(y)} samples: {args.method}, {args.loss} loss, "
          f"{args.schedule} schedule, lr {args.lr:g}, {args.steps} steps in {elapsed:.2f} s")
    kkt = "eps_rel" in last
    head = f"{'step':>8} {'log loss':>12} {'min margin':>12} {'norm. margin':>13} {'||theta||':>10}"
    print(head + (f" {'eps_rel':>10} {'delta_rel':>10}  verdict" if kkt else ""))
    for h in (first, last) if first is not last else (first,):
        row = (f"{h['step']:>8} {h['log_loss']:>12.5g} {h['min_margin']:>12.5g} "
               f"{_fmt(h['normalized_margin'], '+.6f'):>13} {h['norm']:>10.4g}")
        if kkt:
            row += f" {_fmt(h.get('eps_rel')):>10} {_fmt(h.get('delta_rel')):>10}  {h.get('verdict', '-')}"
        print(row)
    if last["min_margin"] <= 0:
        print("note: the data are not separated yet (smallest margin <= 0); train longer or use a wider network")
    print(f"wrote {out}" + (f" and {args.history}" if args.history else ""))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a network full-batch (GD, sign/coordinate descent, Adam)",
                       description="Full-batch float64 training on the exponential or logistic loss; writes the "
                                   "parameters (npz keyed by tensor name) and optionally the history (JSON).")
    p.add_argument("--net", required=True, help="network JSON file")
    p.add_argument("--data", required=True, help="data .npz with arrays X and y")
    p.add_argument("--out", required=True, help="where to write the trained parameters (.npz; written to exactly this path, atomically)")
    p.add_argument("--loss", default="exp", help="exp (default) or logistic")
    p.add_argument("--method", default="gd", help="gd (default), sign, coordinate or adam")
    p.add_argument("--schedule", default="adaptive", help="adaptive (default: loss-adaptive step) or constant")
    p.add_argument("--steps", type=int, default=1000, help="number of steps (default 1000)")
    p.add_argument("--lr", type=float, default=0.1, help="learning rate (default 0.1)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the random initialisation when --init is not given")
    p.add_argument("--init", default=None, help="initial parameters (.npz keyed by tensor name)")
    p.add_argument("--history", default=None, help="write the training history as JSON here")
    p.add_argument("--history-every", type=positive_int, default=None,
                   help="record the history every N steps (default: about 100 entries)")
    p.add_argument("--kkt-every", type=positive_int, default=None,
                   help="run the KKT check every N steps and record (eps, delta)")
    p.add_argument("--batch-size", type=positive_int, default=None,
                   help="minibatch size (default: full batch); each epoch in a random order from --seed")
    p.add_argument("--progress", choices=("auto", "on", "off"), default="auto",
                   help="progress bar on stderr (auto: when stderr is a terminal)")
    p.set_defaults(handler=_train)
