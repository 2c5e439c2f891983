"""Benchmark: ``verifier.check_kkt`` against the route a researcher would write.

Ours: margins and the Gram matrix ``G = J J^T`` from one factored backward pass
(no per-sample Jacobian), the tangent dual by the LDP -> NNLS reduction, ``eps``
from one weighted backward pass.

Baseline: per-sample Jacobian ``J`` (n x P) with ``torch.func.vmap(jacrev)``
at ``theta_hat``, then the multipliers from the P-dimensional least squares
``min_{lambda >= 0} 1/2 ||theta_hat - J^T lambda||^2 + sum_i lambda_i (q_i - 1)``
(the same objective: ``1/2 eps^2 + delta``) with cvxpy/CLARABEL.  At the
reference sizes ``J`` alone needs gigabytes, so the baseline also runs at a
smaller, stated size where both methods are timed and compared.

Each measurement runs in a fresh process (``multiprocessing`` spawn) so that
its peak resident memory (``VmHWM``, after the inputs are built) is its own.

Run:  python benchmarks/bench_kkt.py            (reference sizes, a few minutes)
      python benchmarks/bench_kkt.py --quick    (small sizes, about a minute)
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import time

import numpy as np

MEMORY_LIMIT_GB = 3.0  # the baseline is not attempted when J alone would exceed this


def make_problem(widths: list[int], n: int, seed: int = 0):
    """Random Gaussian inputs labelled by the network itself at a random point (all margins > 0)."""
    import verifier

    rng = np.random.default_rng(seed)
    net = verifier.mlp(widths)
    p = net.init_params(seed)
    X = rng.normal(size=(3 * n, widths[0]))
    out = net.forward(p, X)[:, 0]
    keep = np.abs(out) > np.quantile(np.abs(out), 0.2)  # drop samples close to the decision boundary
    X, y = X[keep][:n], np.sign(out[keep][:n])
    return net, p, X, y


def _rss_reset() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak RSS (VmHWM) to the current RSS
    except OSError:
        pass


def _rss(key: str) -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0  # MB
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_ours(widths, n, solver, out):
    from verifier.kkt import check_kkt

    net, p, X, y = make_problem(widths, n)
    check_kkt(*make_problem([4, 3, 1], 5)[0:4])  # warm imports (cvxpy, scipy) outside the timing
    base = _rss("VmRSS")
    _rss_reset()
    t = time.perf_counter()
    r = check_kkt(net, p, X, y, solver=solver)  # first call: includes the homogeneity calculus (sympy) for this net
    dt = time.perf_counter() - t
    peak = _rss("VmHWM") - base
    warm = []
    for _ in range(2):
        t = time.perf_counter()
        check_kkt(net, p, X, y, solver=solver)
        warm.append(time.perf_counter() - t)
    out.put({"time": dt, "time_warm": min(warm), "peak_mb": peak, "eps": r.eps, "delta": r.delta, "gap": r.gap,
             "solver": r.solver, "support": len(r.support), "P": net.num_params, "verdict": r.verdict,
             "identity_residual": r.identity_residual})


def _torch_model(widths, theta):
    import torch

    layers = []
    for i in range(len(widths) - 1):
        layers.append(torch.nn.Linear(widths[i], widths[i + 1], bias=False).double())
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    names = [k for k, _ in model.named_parameters()]
    shapes = [v.shape for _, v in model.named_parameters()]
    th = torch.tensor(theta)
    params, k = {}, 0
    for name, s in zip(names, shapes):
        size = int(np.prod(s))
        params[name] = th[k:k + size].reshape(s)
        k += size
    return model, params, names


def run_baseline(widths, n, jacobian_only, out):
    import torch
    from torch.func import functional_call, jacrev, vmap

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    net, p, X, y = make_problem(widths, n)
    L = len(widths) - 1
    theta = net.flatten(p)
    m0, p0, _ = _torch_model(widths, theta)
    vmap(jacrev(lambda ps, x: functional_call(m0, ps, (x[None],))[0, 0]), in_dims=(None, 0))(p0, torch.tensor(X[:2]))
    base = _rss("VmRSS")
    _rss_reset()
    t = time.perf_counter()
    model, params, names = _torch_model(widths, theta)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    with torch.no_grad():
        q = (yt * functional_call(model, params, (Xt,))[:, 0]).numpy()
    scale = q.min() ** (1.0 / L)
    theta_hat = theta / scale
    model, params, names = _torch_model(widths, theta_hat)
    qh = q / q.min()

    def f(ps, x):
        return functional_call(model, ps, (x[None],))[0, 0]

    jac = vmap(jacrev(f), in_dims=(None, 0))
    if jacobian_only:  # reference size: J does not fit; time computing it in chunks, then stop
        for a in range(0, n, 50):
            Jd = jac(params, Xt[a:a + 50])
            del Jd
        out.put({"time": time.perf_counter() - t, "peak_mb": _rss("VmHWM") - base, "jacobian_only": True})
        return
    Jd = jac(params, Xt)
    J = (yt[:, None] * torch.cat([Jd[k].reshape(len(y), -1) for k in names], dim=1)).numpy()
    t_jac = time.perf_counter() - t
    import cvxpy as cp

    lam = cp.Variable(len(y), nonneg=True)
    obj = 0.5 * cp.sum_squares(theta_hat - J.T @ lam) + (qh - 1.0) @ lam
    # tight tolerances: with CLARABEL's defaults delta is only good to ~1e-5 relative
    cp.Problem(cp.Minimize(obj), []).solve(solver=cp.CLARABEL, tol_gap_abs=1e-11, tol_gap_rel=1e-11, tol_feas=1e-11)
    lv = np.maximum(lam.value, 0.0)
    eps = float(np.linalg.norm(theta_hat - J.T @ lv))
    delta = float(lv @ (qh - 1.0))
    out.put({"time": time.perf_counter() - t, "time_jacobian": t_jac, "peak_mb": _rss("VmHWM") - base,
             "eps": eps, "delta": delta, "jacobian_only": False})


def measure(fn, *args):
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    pr = ctx.Process(target=fn, args=(*args, q))
    pr.start()
    res = q.get()
    pr.join()
    return res


def case(label: str, widths: list[int], n: int, baseline: bool, reference_from: dict | None = None) -> dict:
    P = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    print(f"\n== {label}: MLP {'-'.join(map(str, widths))} (ReLU, P = {P:,}), n = {n} samples ==", flush=True)
    ours = measure(run_ours, widths, n, "auto")
    print(f"  ours  check_kkt (solver={ours['solver']}): {ours['time']:8.2f} s   peak +{ours['peak_mb']:8.1f} MB   "
          f"(repeat call {ours['time_warm']:.2f} s)   "
          f"eps {ours['eps']:.10e}  delta {ours['delta']:.10e}  |support| {ours['support']}  "
          f"gap identity residual {ours['identity_residual']:.1e}", flush=True)
    res = {"label": label, "widths": widths, "n": n, "P": P, "ours": ours}
    j_gb = n * P * 8 / 1e9
    if not baseline:
        return res
    if j_gb > MEMORY_LIMIT_GB:
        b = measure(run_baseline, widths, n, True)
        print(f"  baseline: J alone is {n} x {P:,} float64 = {j_gb:.1f} GB (> {MEMORY_LIMIT_GB} GB): not stored.")
        print(f"  baseline: computing J in chunks of 50 samples (then discarding it) takes {b['time']:.2f} s "
              f"(peak +{b['peak_mb']:.0f} MB)")
        print(f"  ratio >= {b['time'] / ours['time']:.1f}x from the Jacobian alone (a lower bound: no P-dimensional solve)")
        if reference_from is not None and "baseline" in reference_from:
            sm = reference_from
            solve = sm["baseline"]["time"] - sm["baseline"]["time_jacobian"]
            est = b["time"] + solve * (n * P) / (sm["n"] * sm["P"])
            print(f"  estimate (cvxpy solve time scaled by the entries of J from the smaller case): "
                  f"~{est:.0f} s and ~{sm['baseline']['peak_mb'] * (n * P) / (sm['n'] * sm['P']) / 1024:.0f} GB "
                  f"-> ~{est / ours['time']:.0f}x (an extrapolation, not a measurement)")
        res["baseline_jacobian_only"] = b
        return res
    b = measure(run_baseline, widths, n, False)
    rel_e = abs(b["eps"] - ours["eps"]) / max(abs(ours["eps"]), 1e-300)
    rel_d = abs(b["delta"] - ours["delta"]) / max(abs(ours["delta"]), 1e-300)
    print(f"  baseline torch.func J + cvxpy:      {b['time']:8.2f} s   peak +{b['peak_mb']:8.1f} MB   "
          f"eps {b['eps']:.10e}  delta {b['delta']:.10e}   (J: {b['time_jacobian']:.2f} s)")
    print(f"  ratio: {b['time'] / ours['time']:.1f}x faster (first call; {b['time'] / ours['time_warm']:.0f}x repeat call), {b['peak_mb'] / max(ours['peak_mb'], 1e-3):.1f}x less peak memory; "
          f"(eps, delta) agree to {rel_e:.1e}, {rel_d:.1e} relative ({'OK' if max(rel_e, rel_d) <= 1e-6 else 'MISMATCH'} at 1e-6)",
          flush=True)
    res["baseline"] = b
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes only (about a minute)")
    args = ap.parse_args()
    print(f"bench_kkt: {os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f}; times are wall clock; "
          "peak = resident memory above the inputs")
    if args.quick:
        case("two-layer (quick)", [784, 32, 1], 100, True)
        case("three-layer (quick)", [784, 32, 32, 1], 100, True)
        return
    small2 = case("two-layer, smaller size where the baseline fits", [784, 100, 1], 200, True)
    case("two-layer, reference size", [784, 1000, 1], 1000, True, reference_from=small2)
    small3 = case("three-layer, smaller size where the baseline fits", [784, 64, 64, 1], 200, True)
    case("three-layer, reference size", [784, 500, 500, 1], 1000, True, reference_from=small3)


if __name__ == "__main__":
    main()
