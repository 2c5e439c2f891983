"""The built-in end-to-end run behind ``make demo``.

On a generated 2-D data set (four clusters, XOR labels; nothing is downloaded):
train a two-layer ReLU network with the loss-adaptive gradient descent, check
that it is an approximate KKT point of the max-margin problem (with the
multipliers as evidence), split a hidden neuron with ratios (3/5, 4/5) and check
the embedding, certify both claims, re-check both certificates in exact rational
arithmetic, and write a Markdown + HTML report.  The work is done by
:func:`verifier.report.demo.run_demo`; this script only parses arguments.
"""

from __future__ import annotations

import argparse
import sys

from verifier.errors import VerifierError
from verifier.report.demo import run_demo


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="demo-output", help="folder for certificates and the report (default: demo-output)")
    ap.add_argument("--steps", type=int, default=3000, help="training steps (default 3000)")
    ap.add_argument("--hidden", type=int, default=16, help="hidden width (default 16)")
    ap.add_argument("--split", default="layer=1,neuron=3,ratios=3/5,4/5", help="the neuron split to certify")
    args = ap.parse_args()
    try:
        result = run_demo(args.out, steps=args.steps, hidden=args.hidden, split=args.split)
    except VerifierError as e:
        print(f"demo: error: {e}", file=sys.stderr)
        return 2
    ok = result["kkt_ok"] and result["embedding_ok"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
