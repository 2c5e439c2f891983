"""KKT checks at the size of real experiments (issue: working-set dual).

Each case runs in a fresh subprocess (its peak resident memory is that process's ``ru_maxrss``):
it generates or loads data (nothing is downloaded: scikit-learn's digits ship with the package;
"MNIST-shaped" data is a Gaussian mixture with 784 inputs), trains a network quickly (torch if it
is installed, else :func:`verifier.train`), then times ``verifier.check_kkt`` and reports rounds,
working-set size, support, ``(eps, delta)``, agreement with the dense route where that fits in
memory, and the physical bound: the FLOPs of one forward and one backward pass over the data plus
the Gram blocks the working set actually used, at this machine's measured GEMM rate.

    python benchmarks/bench_scale.py                 # every case
    python benchmarks/bench_scale.py --case digits   # one case (digits-800, digits, binary10k, mnist60k, cnn10k)

Environment: ``BENCH_MEMORY_GIB`` (the check's memory limit, default 4), ``BENCH_MNIST_EPOCHS`` (default 2).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
from _torch_net import torch_forward

CASES = ["digits-800", "digits", "binary10k", "mnist60k", "cnn10k"]


def gemm_rate() -> float:
    """Measured double-precision GEMM rate of this process (FLOP/s), best of three 1500^3 products."""
    a = np.random.default_rng(0).standard_normal((1500, 1500))
    best = np.inf
    for _ in range(3):
        t = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t)
    return 2 * 1500**3 / best


def forward_flops(net, n: int) -> float:
    """Multiply-adds x 2 of one forward pass over ``n`` samples (dense and conv layers)."""
    f = 0.0
    for name in net.order:
        node = net.nodes[name]
        if node.op == "dense":
            f += 2.0 * np.prod(net.param_shapes[node.params["weight"]])
        elif node.op == "conv2d":
            w = net.param_shapes[node.params["weight"]]
            f += 2.0 * np.prod(w) * np.prod(net.shapes[name][1:])
    return f * n


def gram_width(net) -> float:
    """Per pair of rows, the FLOPs of one Gram entry from the per-layer factors (``2 sum (in + out)``)."""
    f = 0.0
    for name in net.order:
        node = net.nodes[name]
        if node.params:
            f += 2.0 * sum(net.param_shapes[node.params["weight"]][:2]) if node.op == "dense" else \
                2.0 * np.prod(net.param_shapes[node.params["weight"]])
    return f


# -- data and training -------------------------------------------------------------------------------
def _digits(n: int | None):
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise SystemExit("scikit-learn is not installed: pip install scikit-learn (the digits ship with it)")
    d = load_digits()
    X = d.data / 16.0
    y = d.target.astype(np.int64)
    return (X[:n], y[:n]) if n else (X, y)


def _mixture(n: int, d: int, classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((classes, d)) * 0.35
    lab = rng.integers(0, classes, n)
    X = centers[lab] + 0.25 * rng.standard_normal((n, d))
    return X, lab


def _images(n: int, classes: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    protos = rng.standard_normal((classes, 1, 28, 28))
    lab = rng.integers(0, classes, n)
    return protos[lab] + 0.8 * rng.standard_normal((n, 1, 28, 28)), lab


def _train_torch(net, X, y, epochs, batch, lr, seed=0):
    import torch

    from verifier import to_torch_state_dict  # noqa: F401  (the import path the README shows)

    torch.manual_seed(seed)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in net.init_params(seed=seed, scale=1.0).items()}
    opt = torch.optim.Adam(p.values(), lr=lr)
    Xt = torch.tensor(X)
    C = net.num_outputs
    yt = torch.tensor(y)

    def fwd(xb):
        return torch_forward(net, p, xb)

    n = X.shape[0]
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for a in range(0, n, batch):
            idx = perm[a : a + batch]
            out = fwd(Xt[idx])
            loss = (torch.nn.functional.cross_entropy(out, yt[idx]) if C > 1
                    else torch.nn.functional.softplus(-yt[idx] * out[:, 0]).mean())
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        return {k: v.detach().numpy().astype(np.float64) for k, v in p.items()}


def _train(net, X, y, *, epochs, batch, lr):
    try:
        import torch  # noqa: F401
    except ImportError:
        import verifier

        return verifier.train(net, net.init_params(seed=0), X, y, steps=300, lr=0.5).params
    return _train_torch(net, X, y, epochs, batch, lr)


def _separated(net, p, X, y):
    """Keep the samples the trained network classifies correctly (the check needs a separating point)."""
    from verifier.numeric import margins
    from verifier.numeric.data import constraints

    q = margins(net, p, X, y)
    cons = constraints(net, np.asarray(y))
    bad = np.unique(cons.sample[q <= 0])
    keep = np.setdiff1d(np.arange(X.shape[0]), bad)
    return X[keep], y[keep], int(bad.shape[0])


def build(case: str):
    import verifier

    if case.startswith("digits"):
        X, y = _digits(800 if case == "digits-800" else None)
        net = verifier.mlp([64, 256, 10])
        p = _train(net, X, y, epochs=60, batch=128, lr=3e-3)
    elif case == "binary10k":
        X, lab = _mixture(10_000, 784, 2)
        y = np.where(lab == 1, 1.0, -1.0)
        net = verifier.mlp([784, 256, 256, 1])
        p = _train(net, X, y, epochs=4, batch=256, lr=1e-3)
    elif case == "mnist60k":
        X, y = _mixture(60_000, 784, 10)
        net = verifier.mlp([784, 256, 256, 10])
        p = _train(net, X, y, epochs=int(os.environ.get("BENCH_MNIST_EPOCHS", "2")), batch=256, lr=1e-3)
    elif case == "cnn10k":
        X, lab = _images(10_000, 2)
        y = np.where(lab == 1, 1.0, -1.0)
        net = verifier.cnn((1, 28, 28), channels=[8, 16], kernel_size=3, padding=0, pool="max", hidden=[], outputs=1)
        p = _train(net, X, y, epochs=2, batch=128, lr=1e-3)
    else:
        raise SystemExit(f"unknown case {case!r}; cases: {', '.join(CASES)}")
    X, y, dropped = _separated(net, p, X, y)
    return net, p, X, y, dropped


def run_case(case: str) -> dict:
    import verifier

    t0 = time.perf_counter()
    net, p, X, y, dropped = build(case)
    t_train = time.perf_counter() - t0
    rate = gemm_rate()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t = time.perf_counter()
    try:
        rep = verifier.check_kkt(net, p, X, y, kink_tol=None,
                                 memory_limit=float(os.environ.get("BENCH_MEMORY_GIB", "4")) * 2**30)
    except verifier.errors.VerifierError as e:  # e.g. the working set outgrew the memory limit: say so
        return {"case": case, "error": str(e), "check_s": time.perf_counter() - t, "train_s": t_train,
                "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    t_ws = time.perf_counter() - t
    ws = rep.working_set or {"rounds": 0, "working_set_sizes": [rep.n_constraints]}
    sizes = ws["working_set_sizes"]
    n = X.shape[0]
    flops = 3 * forward_flops(net, n) + sum(2 * forward_flops(net, n) + k * k * gram_width(net) for k in sizes)
    out = {
        "case": case, "net": "-".join(map(str, [net.input_shape[0] if len(net.input_shape) == 1 else "x".join(
            map(str, net.input_shape))] + [net.shapes[o][0] for o in [net.output]])), "params": net.num_params,
        "samples": n, "dropped_unseparated": dropped, "constraints": rep.n_constraints, "train_s": t_train,
        "check_s": t_ws, "verdict": rep.verdict, "eps_rel": rep.eps_rel, "delta_rel": rep.delta_rel,
        "support": int(len(rep.support)), "rounds": ws["rounds"], "working_set": sizes, "solver": rep.solver,
        "gemm_gflops": rate / 1e9, "bound_s": flops / rate, "rss_before_check_mib": rss_before / 2**20,
    }
    if case == "digits-800":  # the dense route fits here: compare
        t = time.perf_counter()
        dense = verifier.check_kkt(net, p, X, y, kink_tol=None, solver="nnls")
        out["dense_s"] = time.perf_counter() - t
        out["agree_eps_rel"] = abs(dense.eps_rel - rep.eps_rel) / max(dense.eps_rel, 1e-300)
        out["agree_delta_rel"] = abs(dense.delta_rel - rep.delta_rel) / max(dense.delta_rel, 1e-300)
        out["same_support"] = set(dense.support.tolist()) == set(rep.support.tolist())
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--case", choices=CASES, action="append")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per case (default 1800)")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(run_case(args.child)))
        return
    rows = []
    for case in args.case or CASES:
        try:
            r = subprocess.run([sys.executable, __file__, "--child", case], capture_output=True, text=True,
                               timeout=args.timeout)
        except subprocess.TimeoutExpired:
            print(f"{case}: stopped after {args.timeout} s (--timeout)", flush=True)
            continue
        if r.returncode != 0:
            print(f"{case}: failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}")
            continue
        d = json.loads(r.stdout.strip().splitlines()[-1])
        rows.append(d)
        if "error" in d:
            print(f"{d['case']:<11} refused after {d['check_s']:.1f} s (train {d['train_s']:.0f} s, peak "
                  f"{d['peak_rss_mib']:.0f} MiB): {d['error']}", flush=True)
            continue
        extra = ""
        if "dense_s" in d:
            extra = (f"; dense route {d['dense_s']:.1f} s ({d['dense_s'] / d['check_s']:.1f}x), (eps, delta) agree to "
                     f"{d['agree_eps_rel']:.1e} / {d['agree_delta_rel']:.1e}, same support: {d['same_support']}")
        print(f"{d['case']:<11} n={d['samples']:<6} m={d['constraints']:<7} P={d['params']:<7} "
              f"check {d['check_s']:6.1f} s  bound {d['bound_s']:5.2f} s  (x{d['check_s'] / d['bound_s']:.0f})  "
              f"peak {d['peak_rss_mib']:6.0f} MiB  rounds {d['rounds']}  |W| {d['working_set']}  support {d['support']}  "
              f"eps_rel {d['eps_rel']:.2e}  delta_rel {d['delta_rel']:.2e}  [{d['gemm_gflops']:.0f} GFLOP/s; "
              f"train {d['train_s']:.0f} s; {d['dropped_unseparated']} unseparated samples dropped]{extra}",
              flush=True)


if __name__ == "__main__":
    main()
