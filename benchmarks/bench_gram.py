"""Gram matrix of the margins, G = J J^T: factored (ours) vs the explicit-Jacobian route.

Reference size: a 784-1000-1 ReLU MLP on 1000 samples (P = 785,000; J would be
1000 x 785,000 = 6.3 GB in float64).  Baselines a researcher would write:

* ``torch.func``: per-sample gradients with ``vmap(grad(...))``, then ``J @ J.T``;
* ``numpy``: our own engine's explicit Jacobian (``jacobian_from``), then ``J @ J.T``.

Prints wall time, peak memory (tracemalloc for numpy; RSS delta for torch) and
the ratio, and checks the matrices agree.  ``python benchmarks/bench_gram.py [--quick]``.
"""

from __future__ import annotations

import argparse
import gc
import resource
import time
import tracemalloc

import numpy as np

import verifier
from verifier.numeric import gram_from, jacobian_from, prepare


def _timed(fn, repeat=1):
    best = np.inf
    out = None
    for _ in range(repeat):
        gc.collect()
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def _peak_numpy(fn):
    tracemalloc.start()
    out = fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, peak / 2**20


def torch_gram(net, params, X, y):
    import torch
    from torch.func import functional_call, grad, vmap

    torch.set_num_threads(2)
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


def _problem(widths, n, seed):
    rng = np.random.default_rng(seed)
    net = verifier.mlp(widths)
    params = net.init_params(seed)
    X = rng.normal(size=(n, widths[0]))
    y = np.where(rng.random(n) < 0.5, -1.0, 1.0)
    return net, params, X, y


def _torch_child(widths, n, seed, conn):
    net, params, X, y = _problem(widths, n, seed)
    G, t = _timed(lambda: torch_gram(net, params, X, y))
    conn.send((G, t, _peak_rss_mib()))
    conn.close()


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


def _in_subprocess(widths, n, seed):
    """Run the torch baseline in a fresh process: its time and its own peak RSS (MiB, incl. the interpreter)."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_torch_child, args=(widths, n, seed, child))
    proc.start()
    out = parent.recv()
    proc.join()
    return out


def run(widths, n, seed=0, baselines=("numpy", "torch")):
    net, params, X, y = _problem(widths, n, seed)
    print(f"\n== MLP {'-'.join(map(str, widths))}, n = {n}, P = {net.num_params:,} ==")
    fp, cons = prepare(net, params, X, y)
    (G, t_ours) = _timed(lambda: gram_from(fp, cons), repeat=3)
    _, mem_ours = _peak_numpy(lambda: gram_from(fp, cons))
    print(f"{'ours (factored G)':<28} {t_ours:9.3f} s   peak {mem_ours:9.1f} MiB")
    rows = {"ours": (t_ours, mem_ours)}
    if "numpy" in baselines:
        def explicit():
            J = jacobian_from(fp, cons)
            return J @ J.T
        G_np, t_np = _timed(explicit)
        _, mem_np = _peak_numpy(explicit)
        err = np.abs(G_np - G).max() / np.abs(G).max()
        print(f"{'numpy explicit J J^T':<28} {t_np:9.3f} s   peak {mem_np:9.1f} MiB   ratio {t_np / t_ours:7.1f}x   rel.diff {err:.1e}")
        rows["numpy"] = (t_np, mem_np)
    if "torch" in baselines:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("torch.func baseline skipped: torch is not installed")
        else:
            G_t, t_t, rss = _in_subprocess(widths, n, seed)
            err = np.abs(G_t - G).max() / np.abs(G).max()
            print(f"{'torch.func vmap(grad) J J^T':<28} {t_t:9.3f} s   maxRSS {rss:8.1f} MiB   ratio {t_t / t_ours:7.1f}x   rel.diff {err:.1e}")
            rows["torch"] = (t_t, rss)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="small sizes only (seconds)")
    args = ap.parse_args()
    if args.quick:
        run([784, 100, 1], 200)
        return
    run([784, 1000, 1], 1000)
    run([100, 200, 200, 1], 1000)


if __name__ == "__main__":
    main()
