"""Sweeps of checks over grids (widths x seeds x checkpoints x ...), scheduled on dask.distributed.

``verifier sweep SPEC.toml`` and :func:`run` read a spec (see :mod:`verifier.sweep.spec`) naming
the networks, the data, the checks and the grid; each cell (a grid point and a check) becomes a
dask task.  Results land in one table (``results.parquet`` with pandas + pyarrow, else
``results.csv``) with every cell's full report as JSON in ``cells/``, plus plots of
``eps_rel`` / ``delta_rel`` / normalised margin against the grid axes in ``plots/``.

* Where it runs: an embedded ``LocalCluster`` (one worker process per core, one thread and one
  BLAS thread each), or an existing cluster (``scheduler="tcp://host:8786"``), or a plain loop
  (``sequential=True``, no dask).
* Resumable: a cell's record is written atomically when it finishes, keyed by the hash of its
  inputs; a re-run skips finished cells.  Fault-tolerant: a worker that dies costs only the cell
  it was running, which the scheduler runs again; a cell that raises records its one-line error.
* Data arrays are scattered to the workers once; training runs are shared by the cells that
  differ only in the checkpoint step, and cached in ``train/``.

The dask part needs the ``[sweep]`` extra (``dask[distributed]``, ``tqdm``); the spec, the cells
and ``sequential=True`` do not.

>>> import tempfile
>>> spec = {"grid": {"width": [2, 3]}, "data": {"generator": "linearly_separable", "n": 12, "margin": 0.2},
...         "network": {"builder": "mlp", "widths": [2, "{width}", 1]},
...         "train": {"steps": 50, "lr": 0.5}, "check": [{"kind": "kkt"}], "sweep": {"plots": False}}
>>> res = run(spec, sequential=True, out=tempfile.mkdtemp())
>>> res.computed, res.errors, [r["verdict"] for r in res.rows()]
(2, 0, ['not_kkt', 'not_kkt'])
>>> run(spec, sequential=True, out=res.out).skipped     # resumed: nothing left to do
2
"""

from __future__ import annotations

from .runner import CELL_FORMAT, SweepResult, read_record, run
from .spec import Cell, Spec, SweepError, load_spec, parse_spec
from .table import read_table

__all__ = ["CELL_FORMAT", "Cell", "Spec", "SweepError", "SweepResult", "load_spec", "parse_spec", "read_record",
           "read_table", "run"]
