"""Kink handling on a CNN with ReLU then max-pooling (issue: windows of zeros flagged as kinks).

Network ``conv(1->C, 3x3, no padding) -> relu -> maxpool 2 -> flatten -> dense -> 1`` on
MNIST-like 1x28x28 images (strokes on an exactly-zero background, so many ReLU
outputs are exact zeros and many pooling windows tie).  Reports the number of
kinks ``kinks_from`` flags at ``theta_hat`` and the time of ``check_kkt`` with
the default ``kink_tol`` and with ``kink_tol=None`` (no kink handling), whose
verdicts must agree when no kink matters.

    PYTHONPATH=. python benchmarks/bench_kinks.py --n 1000 --channels 4 [--bias]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def strokes(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Digit-like images: 2-4 strokes of width 2 on a zero background; label by stroke orientation."""
    rng = np.random.default_rng(seed)
    X = np.zeros((n, 1, 28, 28))
    y = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    for i in range(n):
        for _ in range(rng.integers(2, 5)):
            a, b = rng.integers(4, 22, size=2)
            L = rng.integers(6, 12)
            v = rng.uniform(0.5, 1.0)
            if y[i] > 0:
                X[i, 0, a:a + 2, b - 3:b - 3 + L] = v
            else:
                X[i, 0, a - 3:a - 3 + L, b:b + 2] = v
    return X, y


def separating_head(net, params, X, y) -> np.ndarray:
    """Output weights with every margin >= 1 on the network's features (an LP), so the point is feasible."""
    from scipy.optimize import linprog

    from verifier.numeric.engine import run_forward

    fp = run_forward(net, params, X)
    h = fp.ctx[net.nodes[net.output].inputs[0]]["h"]  # the input of the last dense layer
    d = h.shape[1]
    # minimise sum |w| subject to y_i <w, h_i> >= 1  (w = u - v, u, v >= 0)
    A = -(y[:, None] * h)
    res = linprog(np.ones(2 * d), A_ub=np.hstack([A, -A]), b_ub=-np.ones(len(y)), bounds=(0, None), method="highs")
    if res.status != 0:
        raise SystemExit(f"features not separable: {res.message}")
    return (res.x[:d] - res.x[d:]).reshape(1, d)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--channels", type=int, default=4)
    ap.add_argument("--bias", action="store_true", help="conv bias (ties of equal bias values)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip-kkt", action="store_true")
    a = ap.parse_args()
    import verifier
    from verifier.kkt import check_kkt
    from verifier.numeric.engine import kinks_from, run_forward

    net = verifier.cnn((1, 28, 28), channels=[a.channels], kernel_size=3, padding=0, pool="max",
                       bias="first" if a.bias else "none")
    params = net.init_params(a.seed)
    if a.bias:  # negative biases: background -> relu(b) = 0 with b < 0 (ties of frozen zeros)
        params["b1"] = -np.abs(params["b1"]) - 0.05
    X, y = strokes(a.n, a.seed)
    params["W2"] = separating_head(net, params, X, y)
    out: dict = {"n": a.n, "channels": a.channels, "bias": a.bias, "P": net.num_params}
    fp = run_forward(net, params, X)
    t = time.perf_counter()
    ks = kinks_from(fp, 1e-9)
    out["kinks_from_s"] = round(time.perf_counter() - t, 3)
    out["kinks"] = len(ks)
    out["kinks_by_node"] = {n: sum(k.node == n for k in ks) for n in sorted({k.node for k in ks})}
    if not a.skip_kkt:
        t = time.perf_counter()
        r0 = check_kkt(net, params, X, y, kink_tol=None)
        out["check_kkt_no_kinks_s"] = round(time.perf_counter() - t, 2)
        t = time.perf_counter()
        r1 = check_kkt(net, params, X, y)
        out["check_kkt_default_s"] = round(time.perf_counter() - t, 2)
        out["verdicts"] = [r0.verdict, r1.verdict]
        out["eps_rel"] = [r0.eps_rel, r1.eps_rel]
        out["kinks_found"] = r1.kinks_found
        out["relaxation"] = r1.relaxation
    print(json.dumps(out))


if __name__ == "__main__":
    main()
