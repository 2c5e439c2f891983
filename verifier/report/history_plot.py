"""Figures of a training history: ``(eps, delta)`` falling along training, and the support samples as images.

* :func:`history_png` -- four panels against the step on log axes: ``eps_rel`` and
  ``delta_rel`` (with a ``1/log t`` reference curve: the rate at which Lyu & Li's
  bounds fall along gradient flow, ``log(1/loss) ~ log t``; anchored at the first
  plotted point, a guide to the eye, not a bound), the normalised margin (and
  the smoothed one), and the support size;
* :func:`support_png` -- the support samples of the last checked step drawn as
  images when the inputs are images (``(C, H, W)``, or flat with a square number of
  features: 8x8 digits, 28x28), with label and multiplier;
* :func:`plot_history` -- both to PNG files (``verifier plot``).

The HTML report can embed the same figures: ``history_png(history)`` returns PNG
bytes.  Matplotlib's Agg canvas is used directly (no global backend change).

>>> import tempfile, pathlib
>>> hist = [{"step": s, "eps_rel": 1 / s, "delta_rel": 0.5 / s, "normalized_margin": 0.1 - 1 / s,
...          "support_size": 4} for s in (1, 10, 100, 1000)]
>>> png = history_png(hist)
>>> png[:8] == b"\\x89PNG\\r\\n\\x1a\\n"
True
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import FormatError
from ..importers._common import require
from .series import load_history

#: at most this many support images are drawn (the largest multipliers first)
MAX_IMAGES = 48


def _figure(w: float = 6.4, h: float = 3.2):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _num(v: Any) -> float | None:
    """``v`` as a finite float, else ``None`` (missing, non-numeric or non-finite history entries)."""
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def _series(hist: Sequence[Mapping[str, Any]], key: str, positive: bool = False) -> tuple[np.ndarray, np.ndarray]:
    pts = [(float(h["step"]), _num(h.get(key))) for h in hist if _num(h.get("step")) is not None]
    pts = [(s, v) for s, v in pts if v is not None and s > 0 and (v > 0 or not positive)]
    if not pts:
        return np.zeros(0), np.zeros(0)
    s, v = zip(*pts)
    return np.asarray(s), np.asarray(v)


def _reference(ax, steps: np.ndarray, values: np.ndarray) -> None:
    """``c / log t`` through the first point with ``t >= 2``."""
    ok = steps >= 2
    if ok.sum() < 2:
        return
    t0, v0 = steps[ok][0], values[ok][0]
    t = np.geomspace(t0, steps[ok][-1], 64)
    ax.plot(t, v0 * math.log(t0) / np.log(t), color="#888888", ls="--", lw=1, label="~ 1/log t (Lyu & Li rate)")


def history_png(history: Any, *, title: str | None = None) -> bytes | None:
    """PNG bytes of the panels of :func:`history_figure` (None when the history has none of the quantities)."""
    fig = history_figure(history, title=title)
    return None if fig is None else _png(fig)


def history_figure(history: Any, *, title: str | None = None) -> Any:
    """A matplotlib ``Figure`` with up to four panels (``None`` when there is nothing to plot)."""
    require("matplotlib", "report")
    hist = load_history(history)
    if not all(isinstance(h, Mapping) and "step" in h for h in hist):
        raise FormatError("every history entry needs a 'step'")
    panels = []
    eps_s, eps_v = _series(hist, "eps_rel", positive=True)
    del_s, del_v = _series(hist, "delta_rel", positive=True)
    if len(eps_s) or len(del_s):
        panels.append("kkt")
    nm_s, nm_v = _series(hist, "normalized_margin")
    if len(nm_s):
        panels.append("margin")
    sup_s, sup_v = _series(hist, "support_size")
    if len(sup_s):
        panels.append("support")
    ll_s, ll_v = _series(hist, "log_loss")
    if len(ll_s):
        panels.append("loss")
    if not panels:
        return None
    cols = 2 if len(panels) > 1 else 1
    rows = (len(panels) + 1) // 2
    fig = _figure(4.2 * cols, 3.0 * rows + (0.3 if title else 0))
    for j, kind in enumerate(panels):
        ax = fig.add_subplot(rows, cols, j + 1)
        ax.set_xscale("log")
        from matplotlib.ticker import NullFormatter

        ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels (3x10^2, 4x10^2) overlap
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
        if kind == "kkt":
            ax.set_yscale("log")
            if len(eps_s):
                ax.plot(eps_s, eps_v, marker=".", lw=1.2, color="#1f77b4", label="eps_rel")
                _reference(ax, eps_s, eps_v)
            if len(del_s):
                ax.plot(del_s, del_v, marker=".", lw=1.2, color="#d62728", label="delta_rel")
                if not len(eps_s):
                    _reference(ax, del_s, del_v)
            ax.set_title("(eps, delta)-KKT: eps_rel, delta_rel", fontsize=9)
            ax.legend(fontsize=7)
        elif kind == "margin":
            ax.plot(nm_s, nm_v, marker="." if len(nm_s) < 80 else None, lw=1.2, color="#2ca02c",
                    label="normalised margin min q/||theta||^L")
            sm_s, sm_v = _series(hist, "smoothed_margin")
            if len(sm_s):
                ax.plot(sm_s, sm_v, lw=1, ls=":", color="#9467bd", label="smoothed margin")
            ax.set_title("normalised margin", fontsize=9)
            ax.legend(fontsize=7)
        elif kind == "support":
            ax.plot(sup_s, sup_v, marker=".", lw=1.2, drawstyle="steps-post", color="#ff7f0e")
            from matplotlib.ticker import MaxNLocator

            ax.yaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_title("support size (constraints with lambda > 0)", fontsize=9)
        else:
            ax.plot(ll_s, ll_v, lw=1.2, color="#444444")
            ax.set_title("log(loss)", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def image_shape(X: np.ndarray, shape: Sequence[int] | None = None) -> tuple[int, ...] | None:
    """``(H, W)`` or ``(H, W, 3)`` to draw one sample of ``X`` as an image, or None when it is not an image."""
    per = tuple(X.shape[1:])
    size = int(np.prod(per))
    if shape is not None:
        shp = tuple(int(s) for s in shape)
        if int(np.prod(shp)) != size or len(shp) not in (2, 3):
            raise FormatError(f"image shape {list(shp)} does not fit samples of shape {list(per)} ({size} values); "
                              "give H,W (or C,H,W) with H*W(*C) equal to the number of features")
        return shp if len(shp) == 2 else (shp[1], shp[2], shp[0]) if shp[0] == 3 else (shp[1] * shp[0], shp[2])
    if len(per) == 3 and per[0] == 1:
        return per[1:]
    if len(per) == 3 and per[0] == 3:
        return (per[1], per[2], 3)
    if len(per) == 2:
        return per
    if len(per) == 1:
        r = math.isqrt(size)
        if r * r == size and r >= 4:
            return (r, r)
    return None


def support_png(history: Any, X: Any, y: Any = None, *, image_shape_: Sequence[int] | None = None,
                max_images: int = MAX_IMAGES) -> bytes | None:
    """The support samples of the last entry that has ``support_samples``, drawn as images (None if not images)."""
    require("matplotlib", "report")
    hist = load_history(history)
    Xa = np.asarray(X, dtype=np.float64)
    shp = image_shape(Xa, image_shape_)
    entry = next((h for h in reversed(hist) if h.get("support_samples")), None)
    if shp is None or entry is None:
        return None
    samples = [int(i) for i in entry["support_samples"]]
    bad = [i for i in samples if not 0 <= i < len(Xa)]
    if bad:
        raise FormatError(f"the history's support sample {bad[0]} is outside the data (n = {len(Xa)}); "
                          "is this the data the history was recorded on?")
    lam: dict[int, float] = {}
    weights = entry.get("sample_multipliers") or {}
    for i in samples:
        lam[i] = float(weights.get(str(i), weights.get(i, 0.0))) if weights else 0.0
    order = sorted(samples, key=lambda i: -lam[i])[:max_images]
    cols = min(8, len(order))
    rows = (len(order) + cols - 1) // cols
    fig = _figure(1.25 * cols, 1.45 * rows + 0.4)
    for j, i in enumerate(order):
        ax = fig.add_subplot(rows, cols, j + 1)
        img = Xa[i].reshape(shp) if len(shp) == 2 else np.moveaxis(Xa[i].reshape(shp[2], shp[0], shp[1]), 0, -1)
        if len(shp) == 3:
            lo, hi = float(img.min()), float(img.max())
            img = (img - lo) / (hi - lo) if hi > lo else np.zeros_like(img)
        ax.imshow(img, cmap="gray_r" if len(shp) == 2 else None, interpolation="nearest")
        lab = "" if y is None else f"y={np.asarray(y).reshape(-1)[i]:g} "
        ax.set_title(f"#{i} {lab}" + (f"\nlambda={lam[i]:.3g}" if weights else ""), fontsize=6)
        ax.set_xticks([])
        ax.set_yticks([])
    more = f" (largest {len(order)} of {len(samples)})" if len(samples) > len(order) else ""
    fig.suptitle(f"support samples at step {entry['step']}{more}", fontsize=9)
    return _png(fig)


def plot_history(history: Any, out: str | Path, *, X: Any = None, y: Any = None,
                 image_shape_: Sequence[int] | None = None) -> list[Path]:
    """Write :func:`history_png` to ``out`` and, with image data ``X``, :func:`support_png` to ``<out>-support.png``."""
    out = Path(out)
    if not out.parent.exists():
        raise FormatError(f"--out {str(out)!r}: folder {str(out.parent)!r} does not exist")
    png = history_png(history)
    if png is None:
        raise FormatError("the history has none of eps_rel, delta_rel, normalized_margin, support_size, log_loss "
                          "to plot (record it with verifier.torch.KKTMonitor or verifier train --kkt-every N)")
    written = []
    try:
        out.write_bytes(png)
        written.append(out)
        if X is not None:
            sp = support_png(history, X, y, image_shape_=image_shape_)
            if sp is not None:
                p2 = out.with_name(f"{out.stem}-support{out.suffix or '.png'}")
                p2.write_bytes(sp)
                written.append(p2)
    except OSError as e:
        raise FormatError(f"cannot write {str(out)!r}: {e.strerror}") from None
    return written


__all__ = ["MAX_IMAGES", "history_figure", "history_png", "image_shape", "plot_history", "support_png"]
