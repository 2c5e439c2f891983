"""Before/after: the same kernel timed on two source trees of this project, alternating.

The performance round changed kernels whose old versions are not kept in the code (the pivoted
Cholesky factor, the per-constraint ``H H^T`` of multiclass Gram matrices, the kink handling, the
exact checker's integer conversions).  This script times such a kernel on an older checkout (``--before``,
e.g. ``git worktree add --detach /tmp/before <rev>``) and on this tree, in fresh processes that
alternate ``before, after, before, after, ...`` (a drift of the machine's speed hits both), and prints
min / median / max of each, the pair-by-pair ratio ``before / after`` and whether the two computed
the same thing (the figure each kernel returns: a norm, eps_rel, a claim's value).

Kernels (``--kernel NAME:ARG``, repeatable):

* ``factor:N`` -- ``verifier.kkt.dual.factor_psd`` of an ``N x N`` positive definite Gram matrix
  (the old code: LAPACK ``dpstrf``, pivoted; now ``dpotrf`` first, ``dpstrf`` only if that fails);
* ``gram-mc:N`` -- the Gram matrix of the margins of a 64-256-10 ReLU net on the first ``N`` of
  scikit-learn's digits (``m = 9 N`` constraints): ``prepare`` + ``gram_from``;
* ``kinks:N`` -- ``check_kkt`` on ``benchmarks/bench_kinks.py``'s CNN (conv -> relu -> maxpool ->
  dense) on ``N`` stroke images with an exactly zero background (default ``kink_tol``);
* ``cert:N`` -- the exact check (``check_certificate``) of a 784-1000-1 certificate on ``N``
  samples, produced by the same tree (production not timed).

    python benchmarks/bench_revisions.py --before /tmp/before --kernel factor:4000 --kernel gram-mc:1000 --repeat 5

Needs only the public tools: python, numpy, scipy, scikit-learn for ``gram-mc``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


# -- kernels: each returns (seconds of the timed part, a figure that both trees must agree on) ----------------

def k_factor(n: int) -> tuple[float, float]:
    from verifier.kkt.dual import factor_psd

    rng = np.random.default_rng(0)
    A = rng.normal(size=(n, n + 64))
    K = A @ A.T
    t = time.perf_counter()
    out = factor_psd(K)
    dt = time.perf_counter() - t
    R, rank = out[0], out[3]
    ok = np.linalg.norm(R.T @ R - K) <= 1e-10 * np.linalg.norm(K)  # R^T R = K (R in the original column order)
    return dt, float(rank if ok else -1)


def k_gram_mc(n: int) -> tuple[float, float]:
    from sklearn.datasets import load_digits

    import verifier
    from verifier.numeric import gram_from, prepare

    X, y = load_digits(return_X_y=True)
    X, y = X[:n] / 16.0, y[:n]
    net = verifier.mlp([64, 256, 10])
    params = net.init_params(0)
    t = time.perf_counter()
    G = gram_from(*prepare(net, params, X, y))
    return time.perf_counter() - t, float(np.trace(G))


def k_kinks(n: int) -> tuple[float, float]:
    sys.path.insert(0, str(HERE))
    from bench_kinks import separating_head, strokes

    import verifier

    net = verifier.cnn((1, 28, 28), channels=[4], kernel_size=3, padding=0, pool="max")
    params = net.init_params(0)
    X, y = strokes(n, 0)
    params["W2"] = separating_head(net, params, X, y)
    t = time.perf_counter()
    rep = verifier.check_kkt(net, params, X, y)
    return time.perf_counter() - t, float(rep.eps_rel)


def k_cert(n: int) -> tuple[float, float]:
    import verifier
    from verifier.certificates import certify_kkt, check_certificate

    net = verifier.mlp([784, 1000, 1])
    params = net.init_params(seed=0)
    X = np.random.default_rng(1).normal(size=(n, 784))
    y = np.sign(verifier.numeric.forward(net, params, X)[:, 0])
    y[y == 0] = 1.0
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "c.json"
        certify_kkt(net, params, X, y, out=path, self_check=False)
        t = time.perf_counter()
        res = check_certificate(path)
        dt = time.perf_counter() - t
    if not res.ok:
        raise SystemExit(f"certificate rejected: {res.summary()}")
    return dt, float(len(res.claims))


KERNELS = {"factor": k_factor, "gram-mc": k_gram_mc, "kinks": k_kinks, "cert": k_cert}


def _child(spec: str) -> None:
    name, arg = spec.split(":")
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    dt, figure = KERNELS[name](int(arg))
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"seconds": dt, "cpu_total": (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime),
                      "peak_mib": r1.ru_maxrss / 1024, "figure": figure}))


def _run(tree: Path, spec: str, timeout: float) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    p = subprocess.run([sys.executable, __file__, "--child", spec], env=env, capture_output=True, text=True,
                       timeout=timeout, cwd=str(tree))
    if p.returncode != 0:
        raise SystemExit(f"{spec} on {tree}: exit {p.returncode}\n{p.stderr[-2000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def _mmm(v: list[float]) -> str:
    return f"{min(v):.3g} / {statistics.median(v):.3g} / {max(v):.3g}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", help="source tree of the older revision (a git worktree)")
    ap.add_argument("--kernel", action="append", metavar="NAME:ARG", help=f"one of {sorted(KERNELS)} with its size")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per run (default 1800)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        _child(a.child)
        return
    if not a.before or not a.kernel:
        ap.error("--before and at least one --kernel are required")
    before = Path(a.before).resolve()
    if not (before / "verifier" / "__init__.py").is_file():
        ap.error(f"--before {a.before!r}: no verifier package there")
    for spec in a.kernel:
        if spec.split(":")[0] not in KERNELS or len(spec.split(":")) != 2:
            ap.error(f"--kernel {spec!r}: expected NAME:SIZE with NAME in {sorted(KERNELS)}")
    print(f"load average {os.getloadavg()[0]:.2f}; before = {before}, after = {REPO}; {a.repeat} alternating runs each")
    for spec in a.kernel:
        runs: dict[str, list[dict]] = {"before": [], "after": []}
        for _ in range(a.repeat):
            runs["before"].append(_run(before, spec, a.timeout))
            runs["after"].append(_run(REPO, spec, a.timeout))
        tb = [r["seconds"] for r in runs["before"]]
        ta = [r["seconds"] for r in runs["after"]]
        ratios = [b / x for b, x in zip(tb, ta)]
        fb, fa = runs["before"][0]["figure"], runs["after"][0]["figure"]
        agree = abs(fb - fa) <= 1e-9 * max(1.0, abs(fb), abs(fa))
        print(f"{spec:<14} before {_mmm(tb)} s   after {_mmm(ta)} s   before/after {_mmm(ratios)}x   "
              f"peak {max(r['peak_mib'] for r in runs['before']):.0f} / {max(r['peak_mib'] for r in runs['after']):.0f} MiB   "
              f"figure {fb:.6g} / {fa:.6g} ({'agree' if agree else 'DIFFER'})   load {os.getloadavg()[0]:.2f}",
              flush=True)


if __name__ == "__main__":
    main()
