"""Helpers shared by the test modules (one place, imported as ``from tests.helpers import ...``).

* oracles: :func:`fd_gradient` (central differences), :func:`max_margin` (an independent solver);
* data: :func:`random_data` (inputs and labels of a network's shape);
* files and the CLI: :func:`write_files` (network, parameters, data on disk), :func:`run_cli` (a real
  ``python -m verifier`` subprocess, for what only a process shows: exit statuses, signals, pipes),
  :func:`wait_for` (poll for a marker file, bounded by a count of polls, never by a deadline);
* dask: :func:`shards_match_sequential` (a theorem searched in shards on a cluster against its oracles).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]


def fd_gradient(f: Callable[[np.ndarray], float], theta: np.ndarray, h: float = 1e-6) -> np.ndarray:
    """Central finite differences of a scalar function: the independent oracle of every gradient."""
    theta = np.asarray(theta, dtype=np.float64)
    g = np.zeros_like(theta)
    for i in range(theta.size):
        e = np.zeros_like(theta)
        e.flat[i] = h
        g.flat[i] = (f(theta + e) - f(theta - e)) / (2 * h)
    return g


def random_data(net: Any, n: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` Gaussian inputs of the network's input shape; alternating +-1 labels (one output) or class
    indices ``0..C-1``."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, *net.input_shape))
    C = net.num_outputs
    y = np.where(np.arange(n) % 2 == 0, 1.0, -1.0) if C == 1 else np.arange(n) % C
    return X, y


def max_margin(X: np.ndarray, y: np.ndarray, norm: str = "l2") -> float:
    """``max_{||w|| <= 1} min_i y_i <w, x_i>`` by an independent solver (cvxpy/Clarabel for l2, an LP otherwise)."""
    import cvxpy as cp
    from scipy.optimize import linprog

    X = np.asarray(X, dtype=np.float64).reshape(len(y), -1)
    y = np.asarray(y, dtype=np.float64)
    n, d = X.shape
    YX = y[:, None] * X
    if norm == "l2":
        w = cp.Variable(d)
        cp.Problem(cp.Minimize(cp.sum_squares(w)), [YX @ w >= 1]).solve(solver="CLARABEL")
        return float(1 / np.linalg.norm(w.value))
    if norm == "linf":
        r = linprog(np.r_[np.zeros(d), -1], A_ub=np.c_[-YX, np.ones(n)], b_ub=np.zeros(n),
                    bounds=[(-1, 1)] * d + [(None, None)])
        return float(-r.fun)
    A = np.r_[np.c_[-YX, YX, np.ones(n)], [np.r_[np.ones(2 * d), 0]]]
    r = linprog(np.r_[np.zeros(2 * d), -1], A_ub=A, b_ub=np.r_[np.zeros(n), 1],
                bounds=[(0, None)] * (2 * d) + [(None, None)])
    return float(-r.fun)


def write_files(folder: Path, net: Any, params: Mapping[str, Any] | None = None, X: Any = None, y: Any = None,
                ) -> dict[str, Path]:
    """``net.json`` (and ``params.npz``, ``data.npz`` when given) in ``folder``; their paths by name."""
    from verifier.io import save_data, save_params

    folder = Path(folder)
    out = {"net": folder / "net.json"}
    net.to_json(out["net"])
    if params is not None:
        out["params"] = save_params(folder / "params.npz", params)
    if X is not None:
        out["data"] = save_data(folder / "data.npz", X, y)
    return out


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: this checkout first on the path, one BLAS thread."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO)] + [p for p in [env.get("PYTHONPATH")] if p])
    env.update({"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})
    env.update(extra)
    return env


def cli_command(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "verifier", *map(str, args)]


def run_cli(args: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None,
            **kw: Any) -> subprocess.CompletedProcess:
    """``python -m verifier ARGS`` in a subprocess; stdout and stderr captured as text."""
    return subprocess.run(cli_command(args), cwd=cwd, env=dict(env or cli_env()), capture_output=True, text=True,
                          **kw)


def wait_for(path: Path, proc: subprocess.Popen, polls: int = 20_000, interval: float = 0.01) -> bool:
    """Poll until ``path`` exists or ``proc`` has ended; at most ``polls`` polls (a count, not a deadline)."""
    for _ in range(polls):
        if Path(path).exists():
            return True
        if proc.poll() is not None:
            return Path(path).exists()
        time.sleep(interval)
    return Path(path).exists()


def shards_match_sequential(client: Any, examples: int, workers: int = 2) -> Any:
    """Search ``euler-identity`` in ``workers`` shards on ``client`` and check it against two oracles: the
    same shards run sequentially (identical worst cases) and the plain searches with the documented shard
    seeds (their worst figures and counts combine into the merged ones).  Returns the plain searches."""
    import theorems
    from verifier.sweep.theorems import parallel_search, shards

    par = parallel_search("euler-identity", examples=examples, seed=1, workers=workers, client=client)
    seq = parallel_search("euler-identity", examples=examples, seed=1, workers=workers, sequential=True)
    assert par.holds and par.checked == seq.checked == examples
    assert {k: (w.figure, w.instance, w.count) for k, w in par.worst.items()} == \
        {k: (w.figure, w.instance, w.count) for k, w in seq.worst.items()}
    t = theorems.get("euler-identity")
    plain = [t.search(examples=n, seed=s_) for n, s_ in shards(examples, seed=1, workers=workers)]
    assert sum(r.checked for r in plain) == par.checked
    for k, w in par.worst.items():
        assert w.figure == max(r.worst[k].figure for r in plain)
        assert w.count == sum(r.worst[k].count for r in plain)
    return plain
