"""Lyu & Li's trend, observed: train a small ReLU MLP longer and watch it approach a KKT point.

Trains a two-layer ReLU network (degree L = 2) on a generated 2-D data set with
full-batch gradient descent on the exponential loss and the loss-adaptive step of
:func:`verifier.train`, and prints at each checkpoint the loss, the normalised
margin ``min_i q_i / ||theta||^L`` and how far the normalised point
``theta_hat`` is from a KKT point of the max-margin problem (``eps_rel``,
``delta_rel`` from :func:`verifier.check_kkt`, docs/math.md section 3).  Both should
fall while the margin rises.

    python examples/training_trend.py [--steps 20000] [--checkpoints 8] [--data xor|linear]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import verifier
from verifier.datasets import linearly_separable, two_clusters_xor


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--checkpoints", type=int, default=8, help="number of rows in the table (log-spaced)")
    ap.add_argument("--data", choices=("xor", "linear"), default="xor")
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--lr", type=float, default=0.3)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    X, y = two_clusters_xor(40, seed=0) if args.data == "xor" else linearly_separable(40, 2, margin=0.1, seed=0)
    net = verifier.mlp([2, args.width, 1])
    print(f"network {net}, degree L = {verifier.degree(net)}, {net.num_params} parameters; {len(y)} samples ({args.data})")

    # log-spaced checkpoints: the late phase is slow (Lyu & Li's rates are logarithmic)
    ks = sorted({int(k) for k in np.geomspace(max(args.steps // 200, 1), args.steps, args.checkpoints)} | {0})
    t0 = time.perf_counter()
    res = verifier.train(net, net.init_params(seed=args.seed), X, y, loss="exp", steps=args.steps, lr=args.lr,
                         history_every=ks, kkt_every=ks, progress=None)
    print(f"trained {args.steps} steps in {time.perf_counter() - t0:.1f} s "
          "(gradient descent, adaptive step, KKT check at each row)\n")

    def fmt(v: float | None, width: int, spec: str) -> str:
        return "-".rjust(width) if v is None else format(v, spec).rjust(width)

    print(f"{'step':>7} {'loss':>11} {'log loss':>10} {'norm. margin':>13} {'||theta||':>10} "
          f"{'eps_rel':>10} {'delta_rel':>10}  verdict")
    for h in res.history:
        print(f"{h['step']:>7} {h['loss']:>11.3e} {h['log_loss']:>10.2f} {fmt(h['normalized_margin'], 13, '+.6f')} "
              f"{h['norm']:>10.3f} {fmt(h['eps_rel'], 10, '.3e')} {fmt(h['delta_rel'], 10, '.3e')}  {h['verdict']}")

if __name__ == "__main__":
    main()
