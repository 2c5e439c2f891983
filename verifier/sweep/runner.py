"""Running a sweep: plan the cells, skip finished ones, schedule the rest on dask, write results.

Every file is written by the client process (workers may be on other machines): a cell's record
lands in ``OUT/cells/<id>.json`` (temporary file, then ``os.replace``) the moment it finishes, so
an interrupted sweep loses only the cells in flight and a re-run skips the rest.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from .._json import header
from ..io import write_npz
from . import cells as C
from .spec import Cell, Spec, SweepError, load_spec, parse_spec

#: cell record file format; changes:
#:   1 -- first version: format, version, cell (id, key, axes, label, kind, inputs), status, error, row,
#:        report, seconds, worker.
CELL_FORMAT = "kkt-verifier/sweep-cell"
CELL_FORMAT_VERSION = 2  # 1: format/version only; 2: the common header (adds meta)
#: how long to try reaching an existing scheduler (``scheduler=``) before giving up with a clear error
CONNECT_TIMEOUT = "20s"


@dataclass
class SweepResult:
    """What :func:`run` did: where the results are, and the counts."""

    out: Path
    cells: list[Cell]
    records: dict[str, dict[str, Any]]
    computed: int = 0
    skipped: int = 0
    errors: int = 0
    seconds: float = 0.0
    table: Path | None = None
    plots: list[Path] = field(default_factory=list)
    dashboard: str | None = None

    def rows(self) -> list[dict[str, Any]]:
        """One flat row per cell, in grid order (the table's content)."""
        from .table import row_of

        return [row_of(c, self.records.get(c.key)) for c in self.cells]

    def summary(self) -> str:
        distinct = len({c.key for c in self.cells})
        shown = f"{len(self.cells)} cells" + (f" ({distinct} distinct)" if distinct != len(self.cells) else "")
        return (f"{shown}: {self.computed} computed, {self.skipped} already done, "
                f"{self.errors} error(s) in {self.seconds:.1f} s; results in {self.out}")


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same folder and ``os.replace``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _atomic_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp.npz", dir=path.parent)
    os.close(fd)
    try:
        write_npz(tmp, arrays)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def cell_path(out: Path, cell: Cell) -> Path:
    return out / "cells" / f"{cell.id}.json"


def read_record(out: Path, cell: Cell) -> dict[str, Any] | None:
    """The stored record of ``cell`` (``None`` when absent, unreadable, or for other inputs)."""
    p = cell_path(out, cell)
    try:
        d = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(d, dict) or d.get("format") != CELL_FORMAT or d.get("cell", {}).get("key") != cell.key:
        return None
    return d


def _write_record(out: Path, cell: Cell, rec: Mapping[str, Any]) -> dict[str, Any]:
    doc = {**header(CELL_FORMAT, CELL_FORMAT_VERSION),
           "cell": {"id": cell.id, "key": cell.key, "axes": cell.axes, "label": cell.label, "kind": cell.kind,
                    "inputs": cell.inputs()},
           **{k: v for k, v in rec.items() if k != "extra"}}
    for name, content in (rec.get("extra") or {}).items():
        atomic_write_text(out / "cells" / f"{cell.id}.{name}", json.dumps(content, indent=1) + "\n")
    atomic_write_text(cell_path(out, cell), json.dumps(doc, indent=1) + "\n")
    return doc


def _error_record(msg: str) -> dict[str, Any]:
    return {"status": "error", "error": msg, "row": {}, "report": {}, "extra": {}, "seconds": None, "worker": None}


# -- planning -------------------------------------------------------------------------------------------

class _Plan:
    """Inputs of the cells to compute, loaded once on the client."""

    def __init__(self, spec: Spec, todo: list[Cell], out: Path):
        self.todo = todo
        self.nets: dict[str, dict[str, Any]] = {}
        self.data: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.params: dict[str, dict[str, np.ndarray]] = {}
        #: train key -> (net key, data key, train options, sorted steps)
        self.trains: dict[str, tuple[str, str, dict[str, Any], list[int]]] = {}
        self.cached: dict[str, dict[int, dict[str, np.ndarray]]] = {}
        self.out = out
        src = spec.source
        for c in todo:
            if c.network is None:
                continue
            nk = C_key(c.network)
            if nk not in self.nets:
                try:
                    self.nets[nk] = C.build_network(c.network)
                except SweepError:
                    raise
                except Exception as e:  # noqa: BLE001 - a builder's complaint about its arguments
                    raise SweepError(f"{src}: section [network] {_show(c.network)} (cell {c.axes}): "
                                     f"{C._one_line(e)}") from None
            dk = c.data_key
            assert c.data is not None and dk is not None, c.axes  # parse_spec gives [data] with every [network]
            if dk not in self.data:
                try:
                    self.data[dk] = C.load_data(c.data)
                except Exception as e:  # noqa: BLE001
                    raise SweepError(f"{src}: section [data] {_show(c.data)} (cell {c.axes}): {C._one_line(e)}") from None
            X = self.data[dk][0]
            from ..graph import Network

            net = Network.from_dict(self.nets[nk])
            if tuple(X.shape[1:]) != tuple(net.input_shape):
                raise SweepError(f"{src}: the network of cell {c.axes} takes inputs of shape {list(net.input_shape)} "
                                 f"but [data] gives samples of shape {list(X.shape[1:])} (field 'network' or 'data')")
            if c.params is not None:
                pk = c.params["sha256"] + nk
                if pk not in self.params:
                    try:
                        self.params[pk] = C.load_params(c.params, self.nets[nk])
                    except Exception as e:  # noqa: BLE001
                        raise SweepError(f"{src}: field 'params.file' = {c.params['file']!r}: {C._one_line(e)}") from None
            if c.train is not None:
                tk = _train_key(c)
                opts = {k: v for k, v in c.train.items() if k != "steps"}
                entry = self.trains.setdefault(tk, (nk, dk, opts, []))
                if c.train["steps"] not in entry[3]:
                    entry[3].append(c.train["steps"])
        for tk, (_, _, _, steps) in self.trains.items():
            steps.sort()
            cached = self._load_cache(tk)
            if cached is not None and all(s in cached for s in steps):
                self.cached[tk] = cached

    def _load_cache(self, tk: str) -> dict[int, dict[str, np.ndarray]] | None:
        p = self.out / "train" / f"{tk[:16]}.npz"
        try:
            with np.load(p, allow_pickle=False) as z:
                out: dict[int, dict[str, np.ndarray]] = {}
                for name in z.files:
                    step, _, tensor = name.partition("/")
                    out.setdefault(int(step), {})[tensor] = z[name]
                return out
        except (OSError, ValueError):
            return None

    def save_cache(self, tk: str, ckpts: Mapping[int, Mapping[str, np.ndarray]]) -> None:
        merged: dict[int, Mapping[str, np.ndarray]] = dict(self._load_cache(tk) or {})
        merged.update(ckpts)
        _atomic_npz(self.out / "train" / f"{tk[:16]}.npz",
                    {f"{s}/{k}": v for s, d in merged.items() for k, v in d.items()})

    def cell_args(self, c: Cell) -> tuple[dict[str, Any], dict[str, Any] | None, str | None, Any]:
        payload = {"kind": c.kind, "check": c.check}
        if c.network is None:
            return payload, None, None, None
        nk = C_key(c.network)
        if c.params is not None:
            return payload, self.nets[nk], c.data_key, self.params[c.params["sha256"] + nk]
        return payload, self.nets[nk], c.data_key, None


def _train_key(c: Cell) -> str:
    """``c.train_key`` of a cell with a ``[train]`` section (only those have one)."""
    tk = c.train_key
    assert tk is not None, c.axes
    return tk


def C_key(d: Any) -> str:
    return json.dumps(d, sort_keys=True, default=str)


def _show(d: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in d.items() if k != "sha256")


# -- running --------------------------------------------------------------------------------------------

def run(spec: Spec | Mapping[str, Any] | str | Path, *, client: Any = None, scheduler: str | None = None,
        workers: int | None = None, sequential: bool = False, out: str | Path | None = None,
        retry_errors: bool = False, progress: bool = False, echo: Callable[[str], None] | None = None,
        write_outputs: bool = True, retries: int = 1) -> SweepResult:
    """Run a sweep; see :mod:`verifier.sweep`.

    ``spec``: a :class:`Spec`, the dict of a TOML spec, or the path of a TOML file.  Where it
    runs: ``client`` (a ``distributed.Client`` you manage), else ``scheduler`` (address of an
    existing dask scheduler, e.g. ``"tcp://host:8786"``), else a local cluster of ``workers``
    processes (default: the number of cores) with one thread and one BLAS thread each;
    ``sequential=True`` runs a plain loop in this process (no dask).  ``out`` overrides the
    spec's output folder.  Finished cells are skipped (cells that recorded an error too, unless
    ``retry_errors``).  ``progress``: a tqdm bar on stderr; ``echo``: where to print the
    dashboard link and notes.  ``write_outputs``: the table and plots at the end.
    """
    t_start = time.perf_counter()
    if isinstance(spec, (str, Path)):
        spec = load_spec(spec)
    elif not isinstance(spec, Spec):
        spec = parse_spec(spec)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise SweepError(f"workers={workers!r} must be an integer >= 1")
    if sum(x is not None and x is not False for x in (client, scheduler, sequential or None)) > 1:
        raise SweepError("give at most one of client=, scheduler= and sequential=True")
    out_p = Path(out) if out is not None else spec.out
    out_p.mkdir(parents=True, exist_ok=True)
    all_cells = spec.cells()
    records: dict[str, dict[str, Any]] = {}
    todo: list[Cell] = []
    seen: set[str] = set()
    for c in all_cells:
        if c.key in seen:
            continue
        seen.add(c.key)
        rec = read_record(out_p, c)
        if rec is not None and (rec.get("status") == "ok" or not retry_errors):
            records[c.key] = rec
        else:
            todo.append(c)
    res = SweepResult(out_p, all_cells, records, skipped=len(records))
    if todo:
        plan = _Plan(spec, todo, out_p)
        bar = _LazyBar(len(todo), progress)
        try:
            def finished(c: Cell, rec: Mapping[str, Any]) -> None:
                records[c.key] = _write_record(out_p, c, rec)
                res.computed += 1
                bar.update(1)

            if sequential:
                _run_sequential(plan, finished)
            else:
                def echo_then_bar(text: str) -> None:
                    if echo is not None:
                        echo(text)
                    bar.update(0)  # the bar starts below the cluster's line

                _run_dask(plan, finished, client=client, scheduler=scheduler, workers=workers, echo=echo_then_bar,
                          res=res, retries=retries)
        finally:
            bar.close()
    res.errors = sum(1 for c in all_cells if records.get(c.key, {}).get("status") == "error")
    if write_outputs:
        from .table import write_plots, write_table

        res.table = write_table(out_p, res.rows(), spec.table_format)
        if spec.plots:
            res.plots = write_plots(out_p, res.rows(), spec.plot_axes, spec.plots)
    res.seconds = time.perf_counter() - t_start
    return res


class _LazyBar:
    """A tqdm bar on stderr, created on the first update (after the cluster's start-up lines)."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled, self.bar = total, enabled, None

    def update(self, n: int) -> None:
        if self.enabled and self.bar is None:
            try:
                from tqdm import tqdm
            except ImportError:  # pragma: no cover - tqdm is in the [sweep] extra
                self.enabled = False
                return
            self.bar = tqdm(total=self.total, unit="cell", desc="sweep", dynamic_ncols=True)
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _run_sequential(plan: _Plan, finished: Callable[[Cell, Mapping[str, Any]], None]) -> None:
    trained: dict[str, Any] = dict(plan.cached)
    failed: dict[str, str] = {}
    for c in plan.todo:
        payload, net, dk, params = plan.cell_args(c)
        data = None if dk is None else plan.data[dk]
        step = None
        if c.train is not None:
            tk = _train_key(c)
            if tk not in trained and tk not in failed:
                nk, dk2, opts, steps = plan.trains[tk]
                try:
                    trained[tk] = C.train_run(plan.nets[nk], plan.data[dk2], opts, steps)
                    plan.save_cache(tk, trained[tk])
                except Exception as e:  # noqa: BLE001
                    failed[tk] = f"training failed: {C._one_line(e)}"
            if tk in failed:
                finished(c, _error_record(failed[tk]))
                continue
            params, step = trained[tk], c.train["steps"]
        finished(c, C.run_cell(payload, net, data, params, step))


@contextlib.contextmanager
def dask_client(client: Any, scheduler: str | None, workers: int | None, *, missing: str,
                dashboard: bool = False) -> Iterator[Any]:
    """The dask client to use: ``client`` as given, or one connected to ``scheduler``, or a ``LocalCluster``
    of ``workers`` processes (default: the cores) with one BLAS thread each; what it opened it closes.
    ``missing``: the error when ``distributed`` is not installed."""
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise SweepError(missing) from None
    own: list[Any] = []
    try:
        if client is None:
            if scheduler is not None:
                try:
                    client = Client(scheduler, timeout=CONNECT_TIMEOUT)
                except (OSError, TimeoutError) as e:
                    raise SweepError(f"cannot reach the dask scheduler at {scheduler!r}: {C._one_line(e)}") from None
            else:
                n = workers or os.cpu_count() or 1
                cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, env=dict(C.ONE_THREAD_ENV),
                                       dashboard_address=":8787" if dashboard else ":0", silence_logs=logging.ERROR)
                own.append(cluster)
                client = Client(cluster)
            own.insert(0, client)
        yield client
    finally:
        for obj in own:
            try:
                obj.close()
            except Exception:  # noqa: BLE001 # pragma: no cover - best effort at shutdown
                pass


def _run_dask(plan: _Plan, finished: Callable[[Cell, Mapping[str, Any]], None], *, client: Any, scheduler: str | None,
              workers: int | None, echo: Callable[[str], None] | None, res: SweepResult, retries: int) -> None:
    missing = ("running a sweep on dask needs the [sweep] extra: pip install 'kkt-verifier[sweep]' "
               "(or run it with sequential=True / --sequential)")
    with dask_client(client, scheduler, workers, missing=missing, dashboard=not _no_dashboard()) as client:
        from distributed import as_completed

        res.dashboard = None if _no_dashboard() else client.dashboard_link
        if echo is not None:
            nw = len(client.scheduler_info().get("workers", {}))
            echo(f"dask: {nw} worker(s) at {client.scheduler.address}; "
                 + (f"dashboard {res.dashboard}" if res.dashboard else "dashboard: install bokeh to get one"))
        token = uuid.uuid4().hex[:8]
        data_f = client.scatter({f"sweep-data-{dk[:16]}-{token}": v for dk, v in plan.data.items()}, broadcast=True,
                                hash=False) if plan.data else {}
        data_f = {dk: data_f[f"sweep-data-{dk[:16]}-{token}"] for dk in plan.data}
        train_f: dict[Any, str] = {}
        by_train: dict[str, Any] = {}
        for tk, (nk, dk, opts, steps) in plan.trains.items():
            if tk in plan.cached:
                continue
            f = client.submit(C.train_run, plan.nets[nk], data_f[dk], opts, steps, key=f"sweep-train-{tk[:16]}-{token}",
                              pure=False, retries=retries)
            train_f[f] = tk
            by_train[tk] = f
        cell_f: dict[Any, Cell] = {}
        for c in plan.todo:
            payload, net, cell_dk, params = plan.cell_args(c)
            data = None if cell_dk is None else data_f[cell_dk]
            step = None
            if c.train is not None:
                tk = _train_key(c)
                step = c.train["steps"]
                params = plan.cached[tk][step] if tk in plan.cached else by_train[tk]
                if tk in plan.cached:
                    step = None
            f = client.submit(C.run_cell, payload, net, data, params, step, key=f"sweep-cell-{c.id}-{token}",
                              pure=False, retries=retries)
            cell_f[f] = c
        for f in as_completed(list(train_f) + list(cell_f)):
            if f in train_f:
                if f.status == "finished":
                    plan.save_cache(train_f[f], f.result())
                continue
            c = cell_f[f]
            try:
                rec = f.result()
            except Exception as e:  # noqa: BLE001 - a killed worker (KilledWorker), a failed training run, ...
                rec = _error_record(("training failed: " if c.train is not None and c.train_key in by_train
                                     and by_train[c.train_key].status == "error" else "") + C._one_line(e))
            finished(c, rec)
            f.release()


def _no_dashboard() -> bool:
    try:
        import bokeh  # noqa: F401
    except ImportError:
        return True
    return False
