"""Benchmark: ``verifier.check_kkt`` against the routes a researcher would write.

Three routes to the same multipliers and the same ``(eps, delta)``, all at
``theta_hat = theta / (min q)^(1/L)``:

* **ours** -- ``verifier.check_kkt``: margins and the Gram matrix ``G = J J^T``
  from one factored backward pass (no per-sample Jacobian), the n-dimensional
  tangent dual by the LDP -> NNLS reduction, ``eps`` from one weighted
  backward pass.
* **fair** -- the baseline a researcher would write today: per-sample
  gradients ``J`` (n x P) with ``torch.func.vmap(grad(...))``, ``G = J J^T``,
  then the same n-dimensional dual
  ``max_{lambda >= 0} c.lambda - 1/2 lambda^T G lambda`` (``c = 1 + (L-1) q``)
  with cvxpy/CLARABEL (``quad_form`` of ``G``), ``eps = ||theta_hat - J^T lambda||``.
* **pdim** -- the P-dimensional route: the same ``J``, then the multipliers from
  ``min_{lambda >= 0} 1/2 ||theta_hat - J^T lambda||^2 + sum_i lambda_i (q_i - 1)``
  (the same objective ``1/2 eps^2 + delta``) with cvxpy/CLARABEL on ``J^T``.
  Only attempted while ``J`` has at most ``PDIM_MAX_ENTRIES`` entries.

The dual solvers of both baselines run at the tolerances ours uses
(``1e-11``); with CLARABEL's defaults ``delta`` is only good to ~1e-5 relative.

Each measurement runs in a fresh process (``multiprocessing`` spawn), so that
its peak resident memory (``VmHWM`` above the resident size once the inputs
are built and the imports warmed) is its own; measurements of the routes
alternate (ours, fair, pdim, ours, ...) so that a drift in the machine's speed
hits all of them.  Each figure is printed as min / median / max over
``--repeat`` runs; quote the median.  The time is the first call in the
process (for ours it includes the homogeneity calculus of the network);
``repeat`` is a second call in the same process.  CPU seconds (all threads of
the measuring process) are printed beside the wall time: steadier under load.

Run (the machine should be otherwise idle; the load average is printed at the
start and the end; on a shared machine ``OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1``
makes both numpy and torch single-threaded, which is steadier under load):

    python benchmarks/bench_kkt.py                 # the stated sizes, 3 runs each (~10 min)
    python benchmarks/bench_kkt.py --quick         # small sizes, 1 run (about a minute)
    python benchmarks/bench_kkt.py --case 784-100-1:200 --methods ours,fair --repeat 5
    python benchmarks/bench_kkt.py --reference     # also 784-1000-1 and 784-500-500-1 at n = 1000
    python benchmarks/bench_kkt.py --single fair --case 784-100-1:200
        # one measurement in this very process, one JSON line: for an external
        # whole-process timer such as ``/usr/bin/time -v``
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import sys
import time

import numpy as np

#: Reference sizes: the baselines are not attempted when ``J`` alone would exceed this many GB.
MEMORY_LIMIT_GB = 3.0
#: The P-dimensional cvxpy route is attempted only up to this many entries of ``J`` (beyond, cvxpy's
#: canonicalisation of the dense ``J^T`` alone takes minutes and gigabytes).
PDIM_MAX_ENTRIES = 20_000_000
#: Dual-solver tolerances of both baselines (the ones ``verifier.kkt.dual.solve_cvxpy`` uses).
CLARABEL_TOL = dict(tol_gap_abs=1e-11, tol_gap_rel=1e-11, tol_feas=1e-11)

DEFAULT_CASES = ["784-100-1:200", "784-64-64-1:200", "784-300-1:1000"]
QUICK_CASES = ["784-32-1:100", "784-32-32-1:100"]
REFERENCE_CASES = ["784-1000-1:1000", "784-500-500-1:1000"]
METHODS = ("ours", "fair", "pdim")


def parse_case(text: str) -> tuple[list[int], int]:
    """``"784-100-1:200"`` -> ``([784, 100, 1], 200)``."""
    try:
        w, n = text.split(":")
        widths = [int(v) for v in w.split("-")]
        n_i = int(n)
    except ValueError:
        raise SystemExit(f"--case {text!r}: expected WIDTHS:N such as 784-100-1:200") from None
    if len(widths) < 2 or widths[-1] != 1 or min(widths) < 1 or n_i < 2:
        raise SystemExit(f"--case {text!r}: widths must end in 1 output unit and n must be >= 2")
    return widths, n_i


def make_problem(widths: list[int], n: int, seed: int = 0):
    """Random Gaussian inputs labelled by the network itself at a random point (all margins > 0)."""
    import verifier

    rng = np.random.default_rng(seed)
    net = verifier.mlp(widths)
    p = net.init_params(seed)
    X = rng.normal(size=(3 * n, widths[0]))
    out = verifier.forward(net, p, X)[:, 0]
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


# -- the three routes (each called in its own process) --------------------------------------------------

def run_ours(widths: list[int], n: int) -> dict:
    from verifier.kkt import check_kkt

    net, p, X, y = make_problem(widths, n)
    check_kkt(*make_problem([4, 3, 1], 5)[0:4])  # warm imports (cvxpy, scipy) outside the timing
    base = _rss("VmRSS")
    _rss_reset()
    c0, t = time.process_time(), time.perf_counter()
    r = check_kkt(net, p, X, y)  # first call: includes the homogeneity calculus (sympy) for this net
    dt, cpu = time.perf_counter() - t, time.process_time() - c0
    peak = _rss("VmHWM") - base
    t = time.perf_counter()
    check_kkt(net, p, X, y)
    support = 0 if r.support is None else len(r.support)
    return {"time": dt, "cpu": cpu, "time_repeat": time.perf_counter() - t, "peak_mb": peak, "eps": r.eps, "delta": r.delta,
            "solver": r.solver, "support": support, "identity_residual": r.identity_residual}


def torch_threads() -> int:
    """Threads for torch: ``OMP_NUM_THREADS`` if set (as numpy's BLAS reads ``OPENBLAS_NUM_THREADS``), else all CPUs."""
    try:
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    except (KeyError, ValueError):
        return max(1, os.cpu_count() or 1)


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


def _torch_setup(widths, n):
    """Problem, torch model at theta, and a warmed ``vmap(grad)`` (2 samples) outside the timing."""
    import torch
    from torch.func import functional_call, grad, vmap

    torch.set_num_threads(torch_threads())
    net, p, X, y = make_problem(widths, n)
    theta = net.flatten(p)
    m0, p0, _ = _torch_model(widths, theta)
    f0 = lambda ps, x, yi: yi * functional_call(m0, ps, (x[None],))[0, 0]  # noqa: E731
    vmap(grad(f0), in_dims=(None, 0, 0))(p0, torch.tensor(X[:2]), torch.tensor(y[:2]))
    return theta, X, y


def _torch_jacobian(widths, theta, X, y, jacobian_only=False):
    """``theta_hat``, normalised margins and ``J`` (n x P, numpy) by ``torch.func.vmap(grad)``."""
    import torch
    from torch.func import functional_call, grad, vmap

    L = len(widths) - 1
    model, params, names = _torch_model(widths, theta)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    with torch.no_grad():
        q = (yt * functional_call(model, params, (Xt,))[:, 0]).numpy()
    theta_hat = theta / q.min() ** (1.0 / L)
    qh = q / q.min()
    model, params, names = _torch_model(widths, theta_hat)

    def margin(ps, x, yi):
        return yi * functional_call(model, ps, (x[None],))[0, 0]

    per_sample = vmap(grad(margin), in_dims=(None, 0, 0))
    if jacobian_only:  # J does not fit: compute it in chunks of 50 samples and discard them
        for a in range(0, len(y), 50):
            chunk = per_sample(params, Xt[a:a + 50], yt[a:a + 50])
            del chunk
        return theta_hat, qh, None
    g = per_sample(params, Xt, yt)
    J = torch.cat([g[k].reshape(len(y), -1) for k in names], dim=1)
    return theta_hat, qh, J


def run_fair(widths: list[int], n: int) -> dict:
    import cvxpy as cp
    import torch

    theta, X, y = _torch_setup(widths, n)
    L = len(widths) - 1
    base = _rss("VmRSS")
    _rss_reset()
    c0, t0 = time.process_time(), time.perf_counter()
    theta_hat, qh, J = _torch_jacobian(widths, theta, X, y)
    t1 = time.perf_counter()
    G = (J @ J.T).numpy()
    t2 = time.perf_counter()
    c = 1.0 + (L - 1.0) * qh
    lam = cp.Variable(len(y), nonneg=True)
    prob = cp.Problem(cp.Maximize(c @ lam - 0.5 * cp.quad_form(lam, cp.psd_wrap(G))))
    prob.solve(solver=cp.CLARABEL, **CLARABEL_TOL)
    lv = np.maximum(np.asarray(lam.value, dtype=np.float64), 0.0)
    eps = float(torch.linalg.vector_norm(torch.tensor(theta_hat) - J.T @ torch.tensor(lv)))
    delta = float(lv @ (qh - 1.0))
    t3 = time.perf_counter()
    return {"time": t3 - t0, "cpu": time.process_time() - c0, "time_jacobian": t1 - t0, "time_gram": t2 - t1,
            "time_solve": t3 - t2,
            "peak_mb": _rss("VmHWM") - base, "eps": eps, "delta": delta, "status": prob.status}


def run_pdim(widths: list[int], n: int) -> dict:
    import cvxpy as cp

    theta, X, y = _torch_setup(widths, n)
    base = _rss("VmRSS")
    _rss_reset()
    c0, t0 = time.process_time(), time.perf_counter()
    theta_hat, qh, J = _torch_jacobian(widths, theta, X, y)
    J = J.numpy()
    t1 = time.perf_counter()
    lam = cp.Variable(len(y), nonneg=True)
    obj = 0.5 * cp.sum_squares(theta_hat - J.T @ lam) + (qh - 1.0) @ lam
    prob = cp.Problem(cp.Minimize(obj))
    prob.solve(solver=cp.CLARABEL, **CLARABEL_TOL)
    lv = np.maximum(np.asarray(lam.value, dtype=np.float64), 0.0)
    eps = float(np.linalg.norm(theta_hat - J.T @ lv))
    delta = float(lv @ (qh - 1.0))
    return {"time": time.perf_counter() - t0, "cpu": time.process_time() - c0, "time_jacobian": t1 - t0,
            "peak_mb": _rss("VmHWM") - base, "eps": eps, "delta": delta, "status": prob.status}


def run_jacobian_only(widths: list[int], n: int) -> dict:
    theta, X, y = _torch_setup(widths, n)
    base = _rss("VmRSS")
    _rss_reset()
    c0, t0 = time.process_time(), time.perf_counter()
    _torch_jacobian(widths, theta, X, y, jacobian_only=True)
    return {"time": time.perf_counter() - t0, "cpu": time.process_time() - c0, "peak_mb": _rss("VmHWM") - base}


RUNNERS = {"ours": run_ours, "fair": run_fair, "pdim": run_pdim, "jacobian_only": run_jacobian_only}


def _child(name, widths, n, out):
    out.put(RUNNERS[name](widths, n))


def measure(name: str, widths: list[int], n: int) -> dict:
    """One measurement of route ``name`` in a fresh process."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    pr = ctx.Process(target=_child, args=(name, widths, n, q))
    pr.start()
    res = q.get()
    pr.join()
    return res


# -- reporting ----------------------------------------------------------------------------------------------

def _mmm(values: list[float], fmt: str) -> str:
    """min / median / max."""
    return " / ".join(format(v, fmt) for v in (min(values), statistics.median(values), max(values)))


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


def case(spec: str, methods: list[str], repeat: int) -> dict:
    widths, n = parse_case(spec)
    P = sum(a * b for a, b in zip(widths[:-1], widths[1:]))
    j_gb = n * P * 8 / 1e9
    print(f"\n== MLP {'-'.join(map(str, widths))} (ReLU, P = {P:,}), n = {n}; J would be {j_gb:.2f} GB ==", flush=True)
    todo = list(methods)
    notes = []
    if j_gb > MEMORY_LIMIT_GB:
        todo = [m for m in todo if m == "ours"] + (["jacobian_only"] if set(todo) & {"fair", "pdim"} else [])
        notes.append(f"J alone is {j_gb:.1f} GB (> {MEMORY_LIMIT_GB} GB): both baselines need it; "
                     "timing only its computation in chunks of 50 samples (a lower bound for either baseline)")
    elif "pdim" in todo and n * P > PDIM_MAX_ENTRIES:
        todo.remove("pdim")
        notes.append(f"pdim skipped: J has {n * P:,} entries (> {PDIM_MAX_ENTRIES:,}); cvxpy on the dense J^T "
                     "would take minutes and gigabytes just to canonicalise")
    for msg in notes:
        print("  " + msg)
    runs: dict[str, list[dict]] = {m: [] for m in todo}
    for _ in range(repeat):  # interleaved: ours, fair, pdim, ours, ...
        for m in todo:
            runs[m].append(measure(m, widths, n))
    label = {"ours": "ours  check_kkt", "fair": "fair  torch.func G + cvxpy n-dim dual",
             "pdim": "pdim  torch.func J + cvxpy P-dim", "jacobian_only": "J alone (torch.func, chunked)"}
    for m in todo:
        rs = runs[m]
        extra = ""
        if m == "ours":
            extra = f"  repeat call {_mmm([r['time_repeat'] for r in rs], '.3f')} s  solver {rs[0]['solver']}"
        elif m == "fair":
            extra = (f"  (J {statistics.median(r['time_jacobian'] for r in rs):.2f} s, J J^T "
                     f"{statistics.median(r['time_gram'] for r in rs):.2f} s, dual "
                     f"{statistics.median(r['time_solve'] for r in rs):.2f} s)")
        elif m == "pdim":
            extra = f"  (J {statistics.median(r['time_jacobian'] for r in rs):.2f} s)"
        print(f"  {label[m]:<38} time {_mmm([r['time'] for r in rs], '8.3f')} s "
              f"(CPU {statistics.median(r['cpu'] for r in rs):.3f} s)   "
              f"peak +{_mmm([r['peak_mb'] for r in rs], '.0f')} MB{extra}", flush=True)
    res = {"case": spec, "widths": widths, "n": n, "P": P, "runs": runs, "notes": notes}
    if "ours" not in runs:
        return res
    ours = runs["ours"]
    e0, d0 = ours[0]["eps"], ours[0]["delta"]
    print(f"  ours: eps {e0:.10e}  delta {d0:.10e}  |support| {ours[0]['support']}  "
          f"gap identity residual {ours[0]['identity_residual']:.1e}")
    for m in ("fair", "pdim", "jacobian_only"):
        if m not in runs:
            continue
        rs = runs[m]
        ratios = [b["time"] / a["time"] for a, b in zip(ours, rs)]  # pair by pair
        mem = statistics.median(r["peak_mb"] for r in rs) / max(statistics.median(r["peak_mb"] for r in ours), 1e-3)
        if m == "jacobian_only":
            print(f"  {m}: ratio >= {_mmm(ratios, '.1f')}x (min / median / max, pair by pair; J alone, no solve)")
            continue
        re_ = max(_rel(r["eps"], e0) for r in rs)
        rd = max(_rel(r["delta"], d0) for r in rs)
        ok = "OK" if max(re_, rd) <= 1e-6 else "MISMATCH"
        print(f"  {m} / ours: time {_mmm(ratios, '.1f')}x (min / median / max, pair by pair), peak memory {mem:.0f}x; "
              f"(eps, delta) agree to {re_:.1e}, {rd:.1e} relative ({ok} at 1e-6)", flush=True)
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[1:]))
    ap.add_argument("--quick", action="store_true", help="small sizes, one run each (about a minute)")
    ap.add_argument("--reference", action="store_true", help="also the reference sizes (J does not fit: lower bounds)")
    ap.add_argument("--case", action="append", metavar="WIDTHS:N", help="e.g. 784-100-1:200 (repeatable)")
    ap.add_argument("--methods", default="ours,fair,pdim", help="comma-separated subset of ours,fair,pdim")
    ap.add_argument("--repeat", type=int, default=None, help="runs per route (default 3; 1 with --quick)")
    ap.add_argument("--single", choices=sorted(RUNNERS), help="one measurement of one route in this process; "
                    "prints one JSON line (for an external whole-process timer)")
    ap.add_argument("--json", metavar="FILE", help="also write every measurement to FILE")
    args = ap.parse_args()
    if args.single:
        if not args.case or len(args.case) != 1:
            raise SystemExit("--single needs exactly one --case WIDTHS:N")
        widths, n = parse_case(args.case[0])
        print(json.dumps({"route": args.single, "case": args.case[0], **RUNNERS[args.single](widths, n)}))
        return
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise SystemExit(f"--methods {args.methods!r}: use a comma-separated subset of {', '.join(METHODS)}")
    repeat = args.repeat if args.repeat is not None else (1 if args.quick else 3)
    if repeat < 1:
        raise SystemExit("--repeat must be >= 1")
    cases = args.case or (QUICK_CASES if args.quick else DEFAULT_CASES)
    if args.reference:
        cases = cases + REFERENCE_CASES
    print(f"bench_kkt: {os.cpu_count()} CPU(s), load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} "
          f"(1/5/15 min); {repeat} run(s) per route, each in a fresh process; times are wall clock, "
          "peak = resident memory above the inputs", flush=True)
    results = [case(c, methods, repeat) for c in cases]
    print(f"\nload average at the end {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"python": sys.version.split()[0], "results": results}, f, indent=1)


if __name__ == "__main__":
    main()
