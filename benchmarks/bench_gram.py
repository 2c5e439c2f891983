"""Gram matrix of the margins, G = J J^T: factored (ours) vs the explicit-Jacobian routes.

Reference size: a 784-1000-1 ReLU MLP on 1000 samples (P = 785,000; J would be
1000 x 785,000 = 6.3 GB in float64).  ``--case cnn:N`` is a small CNN on N random 28x28
images (conv 8 3x3 -> relu -> maxpool 2 -> conv 16 3x3 -> relu -> maxpool 2 -> dense 1, no
bias, no padding; P = 1,552).  Routes, each from the parameters and the data to G (forward
pass included):

* ``ours``: ``verifier.numeric.prepare`` (forward pass) + ``gram_from``: one
  backward pass, ``sum over layers (Delta Delta^T) * (H H^T)``, no ``J``;
* ``numpy``: our own engine's explicit Jacobian (``jacobian_from``), then ``J @ J.T``;
* ``torch``: what a researcher would write with ``torch.func``: per-sample
  gradients ``vmap(grad(...))``, then ``J @ J.T`` (in a fresh process, so that
  its peak resident memory is its own).

Each route runs ``--repeat`` times (ours and numpy in this process, torch in a
fresh process each time; the routes alternate so that a drift in the machine's
speed hits all of them) and every figure is printed as min / median / max:
quote the median; the CPU seconds (all threads of the process) are steadier
than wall time on a loaded machine.  Ratios are taken pair by pair.  Peak memory: tracemalloc for
ours and numpy (numpy allocations only), the process's peak resident memory
(``VmHWM``, interpreter and torch included) for torch.  The matrices are
checked to agree.

    python benchmarks/bench_gram.py                        # both sizes, 3 runs each
    python benchmarks/bench_gram.py --quick                # small size (seconds)
    python benchmarks/bench_gram.py --case 100-200-200-1:1000 --repeat 7
    python benchmarks/bench_gram.py --case 100-200-200-1:1000 --routes ours,torch
    python benchmarks/bench_gram.py --case cnn:1000 --routes ours,torch --repeat 5
    python benchmarks/bench_gram.py --single ours --case 100-200-200-1:1000
        # one call of one route in this process, one JSON line: for an external
        # whole-process timer such as ``/usr/bin/time -v``

The load average is printed at the start and the end: run it on an otherwise
idle machine (on a shared one, ``OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1`` makes
numpy and torch single-threaded, which is steadier under load).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import statistics
import time
import tracemalloc

import numpy as np
from _torch_net import torch_forward

import verifier
from verifier.numeric import gram_from, jacobian_from, prepare

DEFAULT_CASES = ["784-1000-1:1000", "100-200-200-1:1000", "cnn:1000"]
QUICK_CASES = ["784-100-1:200"]
ROUTES = ("ours", "numpy", "torch")


def parse_case(text: str) -> tuple[list[int] | str, int]:
    """``"100-200-200-1:1000"`` -> ``([100, 200, 200, 1], 1000)``; ``"cnn:1000"`` -> ``("cnn", 1000)``."""
    try:
        w, n = text.split(":")
        widths: list[int] | str = "cnn" if w == "cnn" else [int(v) for v in w.split("-")]
        n_i = int(n)
    except ValueError:
        raise SystemExit(f"--case {text!r}: expected WIDTHS:N such as 100-200-200-1:1000, or cnn:N") from None
    if n_i < 1 or (widths != "cnn" and (len(widths) < 2 or widths[-1] != 1 or min(widths) < 1)):
        raise SystemExit(f"--case {text!r}: widths must end in 1 output unit and n must be >= 1")
    return widths, n_i


def _problem(widths, n, seed=0):
    rng = np.random.default_rng(seed)
    if widths == "cnn":
        net = verifier.cnn((1, 28, 28), channels=[8, 16], kernel_size=3, padding=0, pool="max", hidden=[],
                           outputs=1)
        X = rng.normal(size=(n, 1, 28, 28))
    else:
        net = verifier.mlp(widths)
        X = rng.normal(size=(n, widths[0]))
    params = net.init_params(seed)
    y = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    return net, params, X, y


def _describe(widths, net, n) -> str:
    if widths == "cnn":
        return f"CNN 28x28 (conv 8, relu, maxpool 2, conv 16, relu, maxpool 2, dense 1), n = {n}, P = {net.num_params:,}"
    return f"MLP {'-'.join(map(str, widths))}, n = {n}, P = {net.num_params:,}"


def ours_gram(net, params, X, y):
    return gram_from(*prepare(net, params, X, y))


def numpy_gram(net, params, X, y):
    J = jacobian_from(*prepare(net, params, X, y))
    return J @ J.T


def torch_gram(net, params, X, y):
    import torch
    from torch.func import functional_call, grad, vmap

    if any(net.nodes[v].op == "conv2d" for v in net.order):  # functional form of the CNN
        names = list(net.param_names)
        tp = {p: torch.tensor(params[p]) for p in names}

        def cnn_margin(ps, x, yi):
            return yi * torch_forward(net, ps, x[None])[0, 0]

        grads = vmap(grad(cnn_margin), in_dims=(None, 0, 0))(tp, torch.tensor(X), torch.tensor(y))
        J = torch.cat([grads[p].reshape(X.shape[0], -1) for p in names], dim=1)
        return (J @ J.T).numpy()
    widths = [net.param_shapes[p] for p in net.param_names]
    layers = []
    for i, (o, k) in enumerate(widths):
        layers += [torch.nn.Linear(k, o, bias=False)] + ([torch.nn.ReLU()] if i < len(widths) - 1 else [])
    model = torch.nn.Sequential(*layers).double()
    names = [n for n, _ in model.named_parameters()]
    tp = {n: torch.tensor(params[p]) for n, p in zip(names, net.param_names)}

    def margin(ps, x, yi):
        return yi * functional_call(model, ps, (x[None],))[0, 0]

    grads = vmap(grad(margin), in_dims=(None, 0, 0))(tp, torch.tensor(X), torch.tensor(y))
    J = torch.cat([grads[n].reshape(X.shape[0], -1) for n in names], dim=1)
    return (J @ J.T).numpy()


def _peak_rss_mib() -> float:
    """This process's peak resident memory: VmHWM (reset at exec, unlike ru_maxrss, which a
    spawned child inherits from its parent's fork on Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(fn):
    """``(result, wall seconds, CPU seconds of this process, all threads)``."""
    gc.collect()
    c, t = time.process_time(), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t, time.process_time() - c


def _traced_peak(fn) -> float:
    gc.collect()
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak / 2**20


def _torch_child(widths, n, seed, conn):
    import torch

    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or (os.cpu_count() or 1)))
    net, params, X, y = _problem(widths, n, seed)
    G, t, cpu = _timed(lambda: torch_gram(net, params, X, y))
    conn.send((G, t, cpu, _peak_rss_mib()))
    conn.close()


def _torch_in_subprocess(widths, n, seed):
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_torch_child, args=(widths, n, seed, child))
    proc.start()
    out = parent.recv()
    proc.join()
    return out


def _mmm(values, fmt):
    return " / ".join(format(v, fmt) for v in (min(values), statistics.median(values), max(values)))


def run(widths, n, routes, repeat, seed=0):
    net, params, X, y = _problem(widths, n, seed)
    print(f"\n== {_describe(widths, net, n)} ==", flush=True)
    have_torch = True
    if "torch" in routes:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("torch.func route skipped: torch is not installed")
            have_torch = False
    times: dict[str, list[float]] = {r: [] for r in routes}
    cpus: dict[str, list[float]] = {r: [] for r in routes}
    mem: dict[str, float] = {}
    G = ours_gram(net, params, X, y)  # warm-up (imports, first-call costs) and the reference matrix
    fp, cons = prepare(net, params, X, y)
    gram_only = []
    errs: dict[str, float] = {}
    for _ in range(repeat):
        for r in routes:
            if r == "ours":
                _, t, cpu = _timed(lambda: ours_gram(net, params, X, y))
                times[r].append(t)
                cpus[r].append(cpu)
                gram_only.append(_timed(lambda: gram_from(fp, cons))[1])
            elif r == "numpy":
                Gn, t, cpu = _timed(lambda: numpy_gram(net, params, X, y))
                times[r].append(t)
                cpus[r].append(cpu)
                errs[r] = float(np.abs(Gn - G).max() / np.abs(G).max())
                del Gn
            elif r == "torch" and have_torch:
                Gt, t, cpu, rss = _torch_in_subprocess(widths, n, seed)
                times[r].append(t)
                cpus[r].append(cpu)
                mem[r] = max(mem.get(r, 0.0), rss)
                errs[r] = float(np.abs(Gt - G).max() / np.abs(G).max())
    if "ours" in routes:
        mem["ours"] = _traced_peak(lambda: ours_gram(net, params, X, y))
    if "numpy" in routes:
        mem["numpy"] = _traced_peak(lambda: numpy_gram(net, params, X, y))
    label = {"ours": "ours (forward + factored G)", "numpy": "numpy explicit J J^T", "torch": "torch.func vmap(grad) J J^T"}
    rows = {}
    for r in routes:
        if not times[r]:
            continue
        kind = "peak RSS" if r == "torch" else "peak"
        line = (f"{label[r]:<30} {_mmm(times[r], '8.3f')} s (CPU {statistics.median(cpus[r]):.3f} s)   "
                f"{kind} {mem[r]:8.1f} MiB")
        if r != "ours" and "ours" in routes:
            ratios = [b / a for a, b in zip(times["ours"], times[r])]
            line += f"   ratio {_mmm(ratios, '.1f')}x   rel.diff {errs[r]:.1e}"
        elif r == "ours":
            line += f"   (G alone, forward pass excluded: {_mmm(gram_only, '.3f')} s)"
        print(line, flush=True)
        rows[r] = {"times": times[r], "cpu": cpus[r], "peak_mib": mem[r]}
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[1:]))
    ap.add_argument("--quick", action="store_true", help="small size only (seconds)")
    ap.add_argument("--case", action="append", metavar="WIDTHS:N", help="e.g. 100-200-200-1:1000 (repeatable)")
    ap.add_argument("--routes", default="ours,numpy,torch", help="comma-separated subset of ours,numpy,torch")
    ap.add_argument("--repeat", type=int, default=3, help="runs per route (default 3)")
    ap.add_argument("--single", choices=ROUTES, help="one call of one route in this process; prints one JSON line")
    ap.add_argument("--json", metavar="FILE", help="also write every measurement to FILE")
    args = ap.parse_args()
    if args.single:
        if not args.case or len(args.case) != 1:
            raise SystemExit("--single needs exactly one --case WIDTHS:N")
        widths, n = parse_case(args.case[0])
        net, params, X, y = _problem(widths, n)
        fn = {"ours": ours_gram, "numpy": numpy_gram, "torch": torch_gram}[args.single]
        G, t, cpu = _timed(lambda: fn(net, params, X, y))
        print(json.dumps({"route": args.single, "case": args.case[0], "verifier": os.path.dirname(verifier.__file__),
                          "time": t, "cpu": cpu,
                          "peak_rss_mib": _peak_rss_mib(),
                          "trace": float(np.trace(G))}))
        return
    routes = [r.strip() for r in args.routes.split(",") if r.strip()]
    if not routes or any(r not in ROUTES for r in routes):
        raise SystemExit(f"--routes {args.routes!r}: use a comma-separated subset of {', '.join(ROUTES)}")
    if args.repeat < 1:
        raise SystemExit("--repeat must be >= 1")
    cases = args.case or (QUICK_CASES if args.quick else DEFAULT_CASES)
    print(f"bench_gram: verifier from {os.path.dirname(verifier.__file__)}; {os.cpu_count()} CPU(s), load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} "
          f"(1/5/15 min); {args.repeat} run(s) per route; min / median / max", flush=True)
    out = {}
    for c in cases:
        out[c] = run(*parse_case(c), routes, args.repeat)
    print(f"\nload average at the end {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)


if __name__ == "__main__":
    main()
