"""Training speed: ``verifier.train`` against the same full-batch gradient descent written in torch.

Both routes run the same iteration from the same start: ``theta <- theta - lr * grad loss`` with the
exponential loss summed over the constraints (``verifier.train(..., schedule="constant",
method="gd")``; in torch a float64 loop of forward, ``torch.autograd.grad`` and an in-place update),
so the iterates agree to rounding.  Cases (data generated or shipped with scikit-learn, no download):

* ``mlp``: 784-256-256-1 ReLU, no bias, n = 2000 Gaussian inputs labelled by a random teacher;
* ``digits``: 64-256-10 on scikit-learn's 1,797 digits (10 classes, 9 constraints per sample;
  a generated 10-class mixture of the same shape when scikit-learn is missing);
* ``cnn``: 28x28 images, conv 8 3x3 -> relu -> maxpool 2 -> conv 16 3x3 -> relu -> maxpool 2 ->
  dense 1, no bias, n = 500 generated images.

Each measurement runs in a fresh process (``multiprocessing`` spawn) so that its peak resident
memory is its own; the routes alternate (ours, torch, ours, ...) so that a drift in the machine's
speed hits both, and every figure is printed as min / median / max over ``--repeat`` runs (quote
the median; ratios are taken pair by pair).  Per step: ``(T(S) - T(0)) / S`` where ``T(S)`` is a
run of ``S`` steps (one loss-and-gradient evaluation at the start and one per step), after one
warm-up step; ``T(0)`` (validation, the first evaluation, the first history entry) is printed as
set-up.  Agreement: the relative difference of the gradients at the start and of the final iterates
(relative to how far the iterates moved).  The bound: every dense/conv layer's GEMM timed alone at
its shape (best of 5, random operands, a conv as one ``(n Ho Wo) x (C k^2)`` by ``(C k^2) x C_out``
GEMM), times the GEMMs a step needs (forward, weight gradient and, except for the first layer,
input gradient): what a step costs when nothing but GEMMs runs.  Peak memory: the process's
``VmHWM`` (interpreter and imports included) and its increase over the set-up.

    python benchmarks/bench_train.py                       # the three cases, 3 runs each
    python benchmarks/bench_train.py --quick               # smaller sizes (seconds)
    python benchmarks/bench_train.py --case mlp --steps 20 --repeat 7
    python benchmarks/bench_train.py --single ours --case mlp
        # one measurement in this process, one JSON line: for an external whole-process timer
        # such as ``/usr/bin/time -v``

The load average is printed at the start and the end: run it on an otherwise idle machine (on a
shared one, ``OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1`` makes numpy and torch single-threaded,
which is steadier under load).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import statistics
import time

import numpy as np
from _torch_net import torch_forward

CASES = ("mlp", "digits", "cnn")
ROUTES = ("ours", "torch")
#: per case: default steps, sample count, and (for --quick) the reduced sample count
SETTINGS = {"mlp": dict(steps=20, n=2000, quick_n=200),
            "digits": dict(steps=20, n=1797, quick_n=200),
            "cnn": dict(steps=10, n=500, quick_n=50)}
#: default step: ``lr = LR_REL * ||theta_0|| / ||grad loss(theta_0)||`` (each step moves theta by about
#: this fraction of its norm; a fixed lr either crawls or overflows the exp loss, depending on the case)
LR_REL = 1e-3


# -- problems ------------------------------------------------------------------------------------------
def make_problem(case: str, n: int | None = None, seed: int = 0):
    """``(net, params, X, y, description)``; ``n=None``: the case's full size."""
    import verifier

    rng = np.random.default_rng(seed)
    n = n or SETTINGS[case]["n"]
    if case == "mlp":
        net = verifier.mlp([784, 256, 256, 1])
        X = rng.standard_normal((n, 784))
        y = np.where(X @ rng.standard_normal(784) >= 0, 1.0, -1.0)  # a random linear teacher
        what = f"MLP 784-256-256-1 (relu, no bias), n = {n}, binary"
    elif case == "digits":
        net = verifier.mlp([64, 256, 10])
        try:
            from sklearn.datasets import load_digits

            d = load_digits()
            X, y = d.data[:n] / 16.0, d.target[:n].astype(np.int64)
            src = "scikit-learn digits"
        except ImportError:
            centers = rng.standard_normal((10, 64))
            y = rng.integers(0, 10, n)
            X = centers[y] + 0.5 * rng.standard_normal((n, 64))
            src = "generated 10-class mixture (scikit-learn not installed)"
        what = f"MLP 64-256-10 (relu, no bias), n = {X.shape[0]}, 10 classes, {src}"
    elif case == "cnn":
        net = verifier.cnn((1, 28, 28), channels=[8, 16], kernel_size=3, padding=0, pool="max", hidden=[],
                           outputs=1)
        protos = rng.standard_normal((2, 1, 28, 28))
        lab = rng.integers(0, 2, n)
        X = protos[lab] + 0.8 * rng.standard_normal((n, 1, 28, 28))
        y = np.where(lab == 1, 1.0, -1.0)
        what = f"CNN 28x28 conv 8 3x3, relu, maxpool 2, conv 16 3x3, relu, maxpool 2, dense 1 (no bias), n = {n}"
    else:
        raise SystemExit(f"--case {case!r}: use one of {', '.join(CASES)}")
    return net, net.init_params(seed), X, y, what


# -- the GEMM bound ----------------------------------------------------------------------------------
def gemm_shapes(net, n: int) -> list[tuple[int, int, int, int]]:
    """Per dense/conv layer ``(rows, inner, cols, GEMMs per step)`` of its forward GEMM."""
    out = []
    for name in net.order:
        node = net.nodes[name]
        if node.op not in ("dense", "conv2d"):
            continue
        first = all(net.nodes[i].op == "input" for i in node.inputs)
        w = net.param_shapes[node.params["weight"]]
        rows = n if node.op == "dense" else n * int(np.prod(net.shapes[name][1:]))
        out.append((rows, int(np.prod(w[1:])), int(w[0]), 2 if first else 3))
    return out


def gemm_bound(net, n: int) -> tuple[float, float]:
    """``(seconds, FLOPs)`` of one step's GEMMs, each shape timed alone (best of 5)."""
    rng = np.random.default_rng(0)
    secs = flops = 0.0
    for rows, inner, cols, count in gemm_shapes(net, n):
        a, b = rng.standard_normal((rows, inner)), rng.standard_normal((inner, cols))
        best = np.inf
        for _ in range(5):
            t = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - t)
        secs += count * best
        flops += count * 2.0 * rows * inner * cols
    return secs, flops


# -- memory --------------------------------------------------------------------------------------------
def _status(key: str) -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _peak_reset() -> None:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # VmHWM := VmRSS
    except OSError:
        pass


# -- the two routes ------------------------------------------------------------------------------------
def run_ours(case: str, n: int | None, steps: int, lr: float) -> dict:
    import verifier
    from verifier.dynamics import loss_and_grad

    net, p, X, y, _ = make_problem(case, n)
    theta0 = net.flatten(p)

    def run(s: int):
        return verifier.train(net, p, X, y, loss="exp", method="gd", steps=s, lr=lr, schedule="constant",
                              progress=False)

    res, t0, ts, cpu, peak_add = _measure(run, steps)
    _, g0 = loss_and_grad(net, theta0, X, y, "exp")
    bound, flops = gemm_bound(net, X.shape[0])
    return {"route": "ours", "setup": t0, "total": ts, "cpu": cpu, "per_step": (ts - t0) / steps,
            "peak_rss_mib": _status("VmHWM"), "peak_add_mib": peak_add, "theta": res.theta.tolist(),
            "theta0": theta0.tolist(), "grad0": g0.tolist(), "bound": bound, "flops": flops}


def _measure(run, steps: int):
    """``run(1)`` to warm up (imports, first-call costs), ``run(0)`` for the set-up time, then ``run(steps)``
    timed (wall and CPU) with the resident memory it adds; returns ``(result, setup, total, cpu, peak_add)``."""
    run(1)
    t = time.perf_counter()
    run(0)
    t0 = time.perf_counter() - t
    base = _status("VmRSS")
    _peak_reset()
    c, t = time.process_time(), time.perf_counter()
    res = run(steps)
    ts, cpu = time.perf_counter() - t, time.process_time() - c
    return res, t0, ts, cpu, _status("VmHWM") - base


def torch_threads() -> int:
    return max(1, int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or (os.cpu_count() or 1))


def run_torch(case: str, n: int | None, steps: int, lr: float) -> dict:
    import torch

    torch.set_num_threads(torch_threads())
    net, p0, X, y, _ = make_problem(case, n)
    Xt = torch.tensor(X)
    C = net.num_outputs
    if C == 1:
        yt = torch.tensor(y)
    else:
        yi = torch.tensor(y)
        wrong = torch.ones(X.shape[0], C, dtype=torch.bool)
        wrong[torch.arange(X.shape[0]), yi] = False

    def run(s: int):
        ps = {k: torch.tensor(v, requires_grad=True) for k, v in p0.items()}
        order = [ps[k] for k in net.param_names]

        def loss_grad():
            out = torch_forward(net, ps, Xt)
            if C == 1:
                loss = torch.exp(-yt * out[:, 0]).sum()
            else:
                q = out.gather(1, yi[:, None]) - out  # q_ij = Phi_y - Phi_j
                loss = torch.exp(-q[wrong]).sum()
            return loss, torch.autograd.grad(loss, order)

        _, gs = loss_grad()
        g0 = gs
        for _ in range(s):
            with torch.no_grad():
                for t, g in zip(order, gs):
                    t.sub_(lr * g)
            _, gs = loss_grad()
        return order, g0

    (order, g0), t0, ts, cpu, peak_add = _measure(run, steps)
    flat = np.concatenate([v.detach().numpy().ravel() for v in order])
    grad0 = np.concatenate([g.numpy().ravel() for g in g0])
    return {"route": "torch", "setup": t0, "total": ts, "cpu": cpu, "per_step": (ts - t0) / steps,
            "peak_rss_mib": _status("VmHWM"), "peak_add_mib": peak_add, "theta": flat.tolist(),
            "grad0": grad0.tolist()}


RUNNERS = {"ours": run_ours, "torch": run_torch}


def default_lr(case: str, n: int | None, rel: float = LR_REL) -> float:
    """``rel * ||theta_0|| / ||grad loss(theta_0)||`` for the case (see :data:`LR_REL`)."""
    from verifier.dynamics import loss_and_grad

    net, p, X, y, _ = make_problem(case, n)
    theta = net.flatten(p)
    return float(rel * np.linalg.norm(theta) / np.linalg.norm(loss_and_grad(net, theta, X, y, "exp")[1]))


def _child(route, case, n, steps, lr, conn):
    try:
        conn.send(RUNNERS[route](case, n, steps, lr))
    except Exception as e:  # the parent is waiting: tell it, do not leave it hanging
        conn.send({"error": f"{type(e).__name__}: {e}"})
    conn.close()


def in_subprocess(route, case, n, steps, lr) -> dict:
    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_child, args=(route, case, n, steps, lr, child))
    proc.start()
    out = parent.recv()
    proc.join()
    if "error" in out:
        raise SystemExit(f"bench_train: the {route} route failed on case {case!r}: {out['error']}")
    return out


# -- report --------------------------------------------------------------------------------------------
def _mmm(values, fmt):
    return " / ".join(format(v, fmt) for v in (min(values), statistics.median(values), max(values)))


def _rel(a, b, scale) -> float:
    a, b, s = np.asarray(a), np.asarray(b), float(np.linalg.norm(scale))
    return float(np.linalg.norm(a - b) / s) if s > 0 else float(np.linalg.norm(a - b))


def run_case(case: str, n: int | None, steps: int, lr: float, routes, repeat: int) -> dict:
    what = make_problem(case, n)[4]
    print(f"\n== {case}: {what}; {steps} GD steps, lr {lr:g}, exp loss, float64 ==", flush=True)
    runs: dict[str, list[dict]] = {r: [] for r in routes}
    for _ in range(repeat):
        for r in routes:
            runs[r].append(in_subprocess(r, case, n, steps, lr))
    label = {"ours": "ours (verifier.train)", "torch": "torch GD loop"}
    for r in routes:
        rs = runs[r]
        line = (f"{label[r]:<22} per step {_mmm([1e3 * x['per_step'] for x in rs], '8.1f')} ms "
                f"(run: wall {statistics.median(x['total'] for x in rs):.2f} s, "
                f"CPU {statistics.median(x['cpu'] for x in rs):.2f} s)   "
                f"set-up {statistics.median(x['setup'] for x in rs):.3f} s   "
                f"peak RSS {max(x['peak_rss_mib'] for x in rs):7.1f} MiB "
                f"(+{max(x['peak_add_mib'] for x in rs):.1f} in the run)")
        print(line, flush=True)
    out: dict = {"case": case, "what": what, "steps": steps, "lr": lr, "runs": runs}
    if "ours" in routes:
        o = runs["ours"]
        bound = statistics.median(x["bound"] for x in o)
        flops = o[0]["flops"]
        ratios = [x["per_step"] / bound for x in o]
        print(f"{'GEMM bound':<22} per step {1e3 * bound:8.1f} ms ({flops / 1e9:.2f} GFLOP at "
              f"{flops / bound / 1e9:.1f} GFLOP/s, the layers' GEMMs timed alone)   ours / bound "
              f"{_mmm(ratios, '.2f')}x", flush=True)
        out["bound"] = bound
    if "ours" in routes and "torch" in routes:
        o, t = runs["ours"], runs["torch"]
        ratios = [a["per_step"] / b["per_step"] for a, b in zip(o, t)]
        th0 = np.asarray(o[0]["theta0"])
        dg = _rel(o[0]["grad0"], t[0]["grad0"], t[0]["grad0"])
        dth = _rel(o[0]["theta"], t[0]["theta"], np.asarray(t[0]["theta"]) - th0)
        print(f"{'ours / torch':<22} per step {_mmm(ratios, '.2f')}x   agreement: gradient at the start "
              f"{dg:.1e}, final iterate {dth:.1e} (relative to ||theta_S - theta_0||)", flush=True)
        out.update(ratio=ratios, grad_rel_diff=dg, theta_rel_diff=dth)
    for r in routes:
        for x in runs[r]:
            for k in ("theta", "theta0", "grad0"):
                x.pop(k, None)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[1:]))
    ap.add_argument("--case", action="append", choices=CASES, help="one of mlp, digits, cnn (repeatable)")
    ap.add_argument("--quick", action="store_true", help="smaller sample counts (seconds)")
    ap.add_argument("--n", type=int, help="samples (default: the case's size)")
    ap.add_argument("--steps", type=int, help="GD steps per run (default: 20; cnn 10)")
    ap.add_argument("--lr", type=float, help=f"learning rate (default: {LR_REL:g} ||theta_0|| / ||grad loss(theta_0)||)")
    ap.add_argument("--routes", default="ours,torch", help="comma-separated subset of ours,torch")
    ap.add_argument("--repeat", type=int, default=3, help="runs per route (default 3)")
    ap.add_argument("--single", choices=ROUTES, help="one measurement in this process; prints one JSON line")
    ap.add_argument("--json", metavar="FILE", help="also write every measurement to FILE")
    args = ap.parse_args()
    if args.repeat < 1:
        raise SystemExit("--repeat must be >= 1")
    if args.steps is not None and args.steps < 1:
        raise SystemExit("--steps must be >= 1")
    if args.n is not None and args.n < 2:
        raise SystemExit("--n must be >= 2")
    if args.lr is not None and not args.lr > 0:
        raise SystemExit("--lr must be > 0")
    cases = args.case or list(CASES)

    def params(c):
        s = SETTINGS[c]
        n = args.n or (s["quick_n"] if args.quick else None)
        return n, args.steps or s["steps"], args.lr or default_lr(c, n)

    if args.single:
        if len(cases) != 1:
            raise SystemExit("--single needs exactly one --case")
        out = RUNNERS[args.single](cases[0], *params(cases[0]))
        for k in ("theta", "theta0", "grad0"):
            out.pop(k, None)
        import verifier

        print(json.dumps({"case": cases[0], "verifier": os.path.dirname(verifier.__file__), **out}))
        return
    routes = [r.strip() for r in args.routes.split(",") if r.strip()]
    if not routes or any(r not in ROUTES for r in routes):
        raise SystemExit(f"--routes {args.routes!r}: use a comma-separated subset of {', '.join(ROUTES)}")
    if "torch" in routes:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("torch route skipped: torch is not installed")
            routes.remove("torch")
    import verifier

    print(f"bench_train: verifier from {os.path.dirname(verifier.__file__)}; {os.cpu_count()} CPU(s), "
          f"load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} (1/5/15 min); {args.repeat} run(s) "
          "per route, each in a fresh process; min / median / max", flush=True)
    out = [run_case(c, *params(c), routes, args.repeat) for c in cases]
    print(f"\nload average at the end {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
