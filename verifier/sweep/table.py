"""The results table (Parquet with pandas + pyarrow, CSV without) and the plots against the grid axes.

>>> rows = [{"cell": "a", "width": 4, "eps_rel": 0.1}, {"cell": "b", "width": 8, "verdict": "kkt"}]
>>> columns(rows)
['cell', 'width', 'eps_rel', 'verdict']
"""

from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path
from typing import Any, Mapping, Sequence

from .runner import atomic_write_text

from .spec import PLOTTABLE as PLOTTED


def row_of(cell: Any, rec: Mapping[str, Any] | None) -> dict[str, Any]:
    """The table row of one cell: id, axis values, check label, status, error, figures, time, worker."""
    row: dict[str, Any] = {"cell": cell.id, **cell.axes, "check": cell.label}
    if rec is None:
        row.update(status="missing", error=None)
        return row
    row.update(status=rec.get("status"), error=rec.get("error"))
    for k, v in (rec.get("row") or {}).items():
        if k not in row:
            row[k] = v
    row["seconds"] = rec.get("seconds")
    row["cpu_seconds"] = rec.get("cpu_seconds")
    row["worker"] = rec.get("worker")
    return row


def columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    cols: dict[str, None] = {}
    for r in rows:
        for k in r:
            cols.setdefault(k, None)
    return list(cols)


def _have_parquet() -> bool:
    try:
        import pandas  # noqa: F401
        import pyarrow  # noqa: F401
    except ImportError:
        return False
    return True


def write_table(out: Path, rows: Sequence[Mapping[str, Any]], fmt: str = "auto") -> Path:
    """``OUT/results.parquet`` (``fmt`` ``"parquet"``, or ``"auto"`` with pandas and pyarrow) or ``OUT/results.csv``."""
    from .spec import SweepError

    cols = columns(rows)
    if fmt == "parquet" or (fmt == "auto" and _have_parquet()):
        if not _have_parquet():
            raise SweepError("field 'sweep.table' = 'parquet' needs pandas and pyarrow (pip install pandas pyarrow); "
                             "use table = 'csv' or 'auto'")
        import pandas as pd

        df = pd.DataFrame([{c: r.get(c) for c in cols} for r in rows], columns=cols)
        for c in df.columns:  # mixed object columns (e.g. an axis of paths and numbers) as text
            if df[c].dtype == object and len({type(v) for v in df[c] if v is not None}) > 1:
                df[c] = df[c].map(lambda v: None if v is None else str(v))
        p = out / "results.parquet"
        tmp = out / ".results.parquet.tmp"
        df.to_parquet(tmp, index=False)
        tmp.replace(p)
        return p
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({c: ("" if r.get(c) is None else r.get(c)) for c in cols})
    p = out / "results.csv"
    atomic_write_text(p, buf.getvalue())
    return p


def read_table(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a results table (CSV values come back as text)."""
    p = Path(path)
    if p.suffix == ".parquet":
        import pandas as pd

        df = pd.read_parquet(p)
        return [{k: (None if _isnan(v) else v) for k, v in r.items()} for r in df.to_dict(orient="records")]
    with open(p, newline="") as f:
        return list(csv.DictReader(f))


def _isnan(v: Any) -> bool:
    return isinstance(v, float) and math.isnan(v)


def axis_number(v: Any) -> float | None:
    """A plottable number for an axis value: the number itself, or the last integer in a file name
    (``ckpt/step0400.npz`` -> 400)."""
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        nums = re.findall(r"\d+", Path(v).stem)
        return float(nums[-1]) if nums else None
    return None


def write_plots(out: Path, rows: Sequence[Mapping[str, Any]], axes: Sequence[str],
                figures: Sequence[str] = PLOTTED) -> list[Path]:
    """``OUT/plots/<figure>_vs_<axis>.png``: every cell's figure (dots) and the median per axis value (line),
    one colour per check, for each figure in :data:`PLOTTED` and each axis with >= 2 numeric values."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    paths: list[Path] = []
    ok = [r for r in rows if r.get("status") == "ok"]
    for fig_name in figures:
        have = [r for r in ok if isinstance(r.get(fig_name), (int, float)) and math.isfinite(r[fig_name])]
        if not have:
            continue
        for ax_name in axes:
            placed = [(x, r) for r in have if (x := axis_number(r.get(ax_name))) is not None]
            xs = {x for x, _ in placed}
            if len(placed) < len(have) or len(xs) < 2:  # a cell off the number line, or one value: no plot
                continue
            fig, ax = plt.subplots(figsize=(5.5, 3.8))
            labels = sorted({str(r.get("check")) for r in have})
            positive = all(r[fig_name] > 0 for r in have)
            for i, lab in enumerate(labels):
                pts = [(x, float(r[fig_name])) for x, r in placed if str(r.get("check")) == lab]
                col = f"C{i % 10}"
                ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=12, alpha=0.5, color=col)
                med = []
                for x in sorted({p[0] for p in pts}):
                    vals = sorted(p[1] for p in pts if p[0] == x)
                    m = len(vals)
                    med.append((x, vals[m // 2] if m % 2 else 0.5 * (vals[m // 2 - 1] + vals[m // 2])))
                ax.plot([m[0] for m in med], [m[1] for m in med], "-o", ms=3, color=col, label=f"{lab} (median)")
            if positive:
                ax.set_yscale("log")
            xs_f = sorted(xs)
            if xs_f[0] > 0 and xs_f[-1] / xs_f[0] >= 8:  # geometric grids (steps 250..2000, widths 8..64)
                ax.set_xscale("log", base=2)
                ax.minorticks_off()
            if len(xs_f) <= 12:  # the grid values themselves as ticks
                ax.set_xticks(xs_f)
                ax.set_xticklabels([f"{x:g}" for x in xs_f])
            ax.set_xlabel(ax_name)
            ax.set_ylabel(fig_name)
            ax.set_title(f"{fig_name} vs {ax_name} ({len(have)} cells)")
            ax.legend(fontsize=8)
            fig.tight_layout()
            p = out / "plots" / f"{fig_name}_vs_{ax_name}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(p, dpi=110)
            plt.close(fig)
            paths.append(p)
    return paths
