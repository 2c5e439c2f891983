"""A sweep of 200 ``check_kkt`` cells on a dask LocalCluster versus a plain sequential loop.

5 widths x 8 seeds x 5 checkpoints of ReLU MLPs ``2-w-1`` trained on ``two_clusters_xor`` (n = 800
by default).  The checkpoints are written once as ``.npz`` files (not timed; reused on re-runs from
``--workdir``); then the same spec (``[params] file = "{checkpoint}"`` over a glob axis) runs

* sequentially: ``verifier.sweep.run(spec, sequential=True)`` -- one process, one BLAS thread, a
  plain loop over the cells; and
* on a ``LocalCluster(n_workers=W, threads_per_worker=1)`` (one BLAS thread per worker), timed
  with and without starting the cluster.

The routes alternate (``--repeat``, default 2; best time of each reported).  Prints the times, the
cells' own compute time summed (a cluster figure above the sequential one means the workers had to
share their cores with other processes), the speed-up, and whether every cell's figures (verdict, eps, eps_rel, delta,
delta_rel, delta_max, gap, margins, support size) are identical between the two runs, cell by cell.
The machine's load average is printed before and after: on a shared machine the speed-up is
bounded by the cores that are actually free.  Linux's autogroup scheduling (on by default on
desktops and on the development VM) shares the CPU between *sessions*: while other sessions keep
the cores busy, the workers started from this one share this session's slice, and no number of
workers makes it larger -- the script prints how many sessions were running.

    python benchmarks/bench_sweep.py [--quick] [--workers W] [--n N] [--workdir DIR]
"""

from __future__ import annotations

import os

for _v in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):  # before numpy: one BLAS thread here too
    os.environ.setdefault(_v, "1")

import argparse  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import verifier  # noqa: E402
from verifier.datasets import two_clusters_xor  # noqa: E402
from verifier.sweep import parse_spec, run  # noqa: E402

FIGURES = ("verdict", "eps", "eps_rel", "delta", "delta_rel", "delta_max", "gap", "min_margin", "normalized_margin",
           "support_size")


def prepare(work: Path, widths: list[int], seeds: list[int], steps: list[int], n: int) -> None:
    """Data, one network JSON per width, checkpoints ``ck/w{width}_s{seed}_step{k}.npz`` (skipped when present)."""
    X, y = two_clusters_xor(n, seed=0)
    verifier.io.save_data(work / "data.npz", X, y)
    (work / "ck").mkdir(parents=True, exist_ok=True)
    for w in widths:
        net = verifier.mlp([2, w, 1])
        (work / f"net{w}.json").write_text(net.to_json())
        for s in seeds:
            files = [work / "ck" / f"w{w}_s{s}_step{k:04d}.npz" for k in steps]
            if all(f.exists() for f in files):
                continue
            tr = verifier.train(net, net.init_params(s), X, y, steps=max(steps), lr=0.5, checkpoint_every=steps,
                                history_every=[max(steps)], progress=False)
            for k, f in zip(steps, files):
                verifier.io.save_params(f, net.unflatten(tr.checkpoints[k]))


def spec_for(work: Path, widths: list[int], seeds: list[int], steps: list[int]) -> dict:
    return {"sweep": {"name": "bench", "plots": False, "table": "csv"},
            "grid": {"width": widths, "seed": seeds, "step": steps},
            "network": {"file": "net{width}.json"}, "data": {"file": "data.npz"},
            "params": {"file": "ck/w{width}_s{seed}_step{step}.npz"},
            "check": [{"kind": "kkt"}]}


def warm() -> None:
    """One tiny KKT check: pays the imports and first-call costs a fresh process has."""
    X, y = two_clusters_xor(8, seed=0)
    net = verifier.mlp([2, 4, 1])
    verifier.check_kkt(net, net.init_params(0), X, y)


def autogroups() -> str:
    """With the kernel's autogroup scheduling, CPU time is shared between sessions, not processes: a
    cluster started from one session gets that session's share however many workers it has."""
    try:
        if Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() != "1":
            return "autogroup scheduling off"
    except OSError:
        return "autogroup scheduling: unknown"
    busy = set()
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            state = (d / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if state == "R":
                busy.add((d / "autogroup").read_text().split()[0])
        except (OSError, IndexError):
            continue
    return (f"autogroup scheduling on: {len(busy)} session(s) with running processes now; this one's processes "
            f"together get about {os.cpu_count()}/{max(len(busy), 1)} of the cores")


def load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:  # pragma: no cover
        return "?"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="2 widths x 2 seeds x 2 checkpoints, n = 200")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="local cluster size (default: cores)")
    ap.add_argument("--n", type=int, default=None, help="samples (default 800; --quick 200)")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each route, alternating (best time reported)")
    ap.add_argument("--workdir", default=None, help="keep checkpoints here between runs (default: a temp dir)")
    args = ap.parse_args()
    widths, seeds, steps = [16, 24, 32, 48, 64], list(range(8)), [40, 80, 120, 160, 200]
    if args.quick:
        widths, seeds, steps = [16, 32], [0, 1], [40, 200]
    n = args.n or (200 if args.quick else 800)
    work = Path(args.workdir) if args.workdir else Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "ck").mkdir(exist_ok=True)
    steps_txt = [f"{k:04d}" for k in steps]
    t = time.perf_counter()
    prepare(work, widths, seeds, steps, n)
    warm()
    print(f"checkpoints ready in {work} ({time.perf_counter() - t:.1f} s, not timed)")
    spec = parse_spec(spec_for(work, widths, seeds, steps_txt), source="bench", base=work)
    cells = spec.cells()
    print(f"sweep: {len(cells)} check_kkt cells ({len(widths)} widths x {len(seeds)} seeds x {len(steps)} checkpoints), "
          f"ReLU MLP 2-w-1, n = {n}; {os.cpu_count()} cores, load average before: {load()}; {autogroups()}")
    from distributed import Client, LocalCluster

    t0 = time.perf_counter()
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                           env={"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    client = Client(cluster)
    client.run(warm)  # the workers' first imports and first solve (part of the start-up time)
    t_start = time.perf_counter() - t0
    times: dict[str, list[float]] = {"seq": [], "par": []}
    busy: dict[str, list[float]] = {"seq": [], "par": []}
    for rep in range(args.repeat):  # alternate the routes: a load change on a shared machine hits both
        for route in ("seq", "par") if rep % 2 == 0 else ("par", "seq"):
            shutil.rmtree(work / route, ignore_errors=True)
            t = time.perf_counter()
            if route == "seq":
                seq = run(spec, sequential=True, out=work / route, write_outputs=False)
                res = seq
            else:
                par = run(spec, client=client, out=work / route, write_outputs=False)
                res = par
            times[route].append(time.perf_counter() - t)
            busy[route].append(sum(r["seconds"] or 0.0 for r in res.records.values()))
            cpu = sum(r.get("cpu_seconds") or 0.0 for r in res.records.values())
            print(f"  run {rep + 1}, {route}: {times[route][-1]:.2f} s (cells' own time {busy[route][-1]:.2f} s, of which "
                  f"on a CPU {cpu:.2f} s; load {load()})", flush=True)
    client.close()
    cluster.close()
    t_seq, t_par = min(times["seq"]), min(times["par"])

    rows_s, rows_p = seq.rows(), par.rows()
    same = sum(1 for a, b in zip(rows_s, rows_p) if all(a.get(k) == b.get(k) for k in FIGURES))
    worst = 0.0
    for a, b in zip(rows_s, rows_p):
        for k in FIGURES:
            if isinstance(a.get(k), float) and isinstance(b.get(k), float):
                worst = max(worst, abs(a[k] - b[k]) / max(abs(a[k]), 1e-300))
    errors = sum(1 for r in rows_s + rows_p if r["status"] != "ok")
    verdicts = {}
    for r in rows_s:
        verdicts[r.get("verdict")] = verdicts.get(r.get("verdict"), 0) + 1
    print(f"verdicts: {verdicts}; cell errors: {errors}")
    print(f"{'route':<34} {'time':>9} {'per cell':>10} {'speed-up':>9}")
    print(f"{'sequential loop (1 process)':<34} {t_seq:8.2f}s {t_seq / len(cells) * 1e3:8.1f}ms {1.0:8.2f}x")
    print(f"  (cells' own compute time, best run: sequential {min(busy['seq']):.2f} s, cluster {min(busy['par']):.2f} s "
          "summed over workers; a ratio above 1 is CPU contention from other processes)")
    print(f"{f'LocalCluster, {args.workers} workers':<34} {t_par:8.2f}s {t_par / len(cells) * 1e3:8.1f}ms "
          f"{t_seq / t_par:8.2f}x")
    print(f"{'  + cluster start-up':<34} {t_par + t_start:8.2f}s {'':>10} {t_seq / (t_par + t_start):8.2f}x")
    print(f"identical figures cell by cell: {same} of {len(cells)} (largest relative difference {worst:.1e})")
    print(f"load average after: {load()}; {autogroups()}")
    return 0 if same == len(cells) and errors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
