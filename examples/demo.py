"""The built-in end-to-end run behind ``make demo``.

Builds a two-layer ReLU network, trains it briefly on a generated 2-D data set
with gradient descent on the exponential loss, and prints its degree of
homogeneity, margins and normalised margin; writes a small report.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

import verifier
from verifier.datasets import two_clusters_xor
from verifier.numeric import jacobian_from, margins_from, prepare


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default="demo-output", help="folder for the report")
    ap.add_argument("--steps", type=int, default=2000)
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    X, y = two_clusters_xor(40, seed=0)
    net = verifier.mlp([2, 16, 1])
    L = net.degree()
    print(f"network: {net}\ndegree of homogeneity L = {L}")
    theta = net.flatten(net.init_params(seed=1))
    lr = 0.05
    for step in range(args.steps + 1):
        fp, cons = prepare(net, theta, X, y)
        q = margins_from(fp, cons)
        if step % (args.steps // 4) == 0:
            nm = q.min() / np.linalg.norm(theta) ** L
            print(f"step {step:5d}  loss {np.exp(-q).sum():.3e}  min margin {q.min():+.4f}  normalised margin {nm:+.5f}")
        # plain gradient descent on the exponential loss sum_i exp(-q_i)
        theta = theta + lr * jacobian_from(fp, cons).T @ np.exp(-q)
    q = verifier.margins(net, theta, X, y)
    report = {"degree": int(L), "min_margin": float(q.min()), "normalized_margin": float(q.min() / np.linalg.norm(theta) ** L),
              "separated": bool(q.min() > 0)}
    net.to_json(out / "net.json")
    verifier.io.save_params(out / "params.npz", net.unflatten(theta))
    verifier.io.save_data(out / "data.npz", X, y)
    (out / "report.json").write_text(json.dumps(report, indent=1) + "\n")
    print(f"\nreport written to {out / 'report.json'}: {report}")


if __name__ == "__main__":
    main()
