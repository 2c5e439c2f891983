"""Exact certificate checking time: how much does "no trust in floating point" cost?

Two cases (the issue's reference sizes):

* a two-layer ReLU network with 10,000 parameters (99-100-1) on 200 samples;
* the 784-1000-1 ReLU network (785,000 parameters) on 1000 samples.

For each: the float KKT check (``verifier.check_kkt``) proposes the multipliers,
``certify_kkt`` writes the certificate (inline, base64 floats), and
``check_certificate`` re-checks it from the file in exact arithmetic (its own
forward and backward passes on integers; matrix products exact through float64
BLAS on 21-bit limbs).  Prints the checking time, parameters per second and
parameter-samples per second, and the file size.

    python benchmarks/bench_cert.py [--quick] [--out DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import verifier
from verifier.certificates import certify_kkt, check_certificate


def case(widths: list[int], n: int, out: Path, seed: int = 0) -> dict:
    net = verifier.mlp(widths)
    params = net.init_params(seed=seed)
    rng = np.random.default_rng(seed + 1)
    X = rng.normal(size=(n, widths[0]))
    y = np.sign(verifier.forward(net, params, X)[:, 0])
    y[y == 0] = 1.0  # labels of the network itself: separable, margins > 0
    t = time.perf_counter()
    report = verifier.check_kkt(net, params, X, y)
    t_float = time.perf_counter() - t
    path = out / f"bench_{net.num_params}.cert.json"
    t = time.perf_counter()
    certify_kkt(net, params, X, y, report=report, out=path, self_check=False)
    t_cert = time.perf_counter() - t
    t = time.perf_counter()
    res = check_certificate(path)
    t_check = time.perf_counter() - t
    assert res.ok, res.summary()
    return {"P": net.num_params, "n": n, "float_kkt_s": t_float, "certify_s": t_cert, "check_s": t_check,
            "size_mb": path.stat().st_size / 1e6, "eps2": float(res.figures["eps2"]),
            "support": len(res.figures["support"])}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="only the 10,000-parameter case")
    ap.add_argument("--out", default=None, help="folder for the certificates (default: a temporary folder)")
    args = ap.parse_args()
    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="bench_cert_"))
    out.mkdir(parents=True, exist_ok=True)
    cases = [([99, 100, 1], 200)] + ([] if args.quick else [([784, 1000, 1], 1000)])
    print(f"{'network':<14} {'P':>9} {'n':>5} {'float KKT':>10} {'certify':>9} {'check':>8} "
          f"{'params/s':>10} {'P*n/s':>10} {'file':>8}")
    for widths, n in cases:
        r = case(widths, n, out)
        print(f"{'-'.join(map(str, widths)):<14} {r['P']:>9,} {r['n']:>5} {r['float_kkt_s']:>9.2f}s {r['certify_s']:>8.2f}s "
              f"{r['check_s']:>7.2f}s {r['P'] / r['check_s']:>10.3g} {r['P'] * r['n'] / r['check_s']:>10.3g} "
              f"{r['size_mb']:>6.1f}MB")
    print("check = exact re-check from the file (parse, SHA-256, exact forward, margins, weighted backward, "
          "eps^2, delta); certify includes one exact evaluation; float KKT = verifier.check_kkt.")


if __name__ == "__main__":
    main()
