"""Reports of certificates: Markdown and a self-contained HTML page with plots.

:func:`write_report` checks the certificate exactly (so every number shown is
the checker's, not the producer's), then writes into ``out_dir``:

* ``report.md`` -- claims table, network, data fingerprints, the KKT
  conditions (and the network's KKT system in LaTeX from
  :func:`verifier.symbolic.kkt_system` when the instance is small), plots as
  PNG files next to it;
* ``report.html`` -- the same page, self-contained (plots embedded as
  base64 PNG, inline CSS, no scripts, no external resources);
* ``fig_*.png`` -- margins per constraint, multipliers and support, training
  curves (loss, normalised margin, ``eps_rel``, ``delta_rel``) when a training
  history is given, embedding deviations over time when a series is given.

Plots use matplotlib's Agg canvas directly (no global backend change).

>>> import tempfile, verifier
>>> from verifier.certificates import certify_kkt
>>> net = verifier.mlp([2, 1], activation="identity")
>>> cert = certify_kkt(net, {"W1": [[1.0, 0.5]]}, [[2.0, 0.0], [0.0, 4.0]], [1, 1])
>>> paths = write_report(cert, tempfile.mkdtemp())
>>> sorted(paths)
['figures', 'html', 'markdown']
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import FormatError
from .history_plot import _figure, _num, _png, history_png
from .series import load_embedding_history, load_history, trajectory_deviation

__all__ = ["write_report", "trajectory_deviation", "load_history", "load_embedding_history"]


# ---------------------------------------------------------------------------
# plots
# ---------------------------------------------------------------------------
def _plot_margins(margins: Sequence[float], support: set[int], labels: Sequence[str]) -> bytes:
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    q = np.asarray(margins, dtype=float)
    r = np.arange(len(q))
    sup = np.array([i in support for i in r], dtype=bool)
    ax.scatter(r[~sup], q[~sup], s=14, color="#888888", label="lambda = 0")
    ax.scatter(r[sup], q[sup], s=22, color="#d62728", label="support (lambda > 0)")
    ax.axhline(1.0, color="#1f77b4", lw=1, ls="--", label="q = 1")
    ax.set_xlabel("constraint r" + (" (sample)" if labels and labels[0].startswith("sample") and "vs" not in labels[0] else ""))
    ax.set_ylabel("margin q_r at the stored point")
    if len(q) and q.max() / max(q.min(), 1e-300) > 50 and q.min() > 0:
        ax.set_yscale("log")
    ax.set_title("Margins per constraint (exact values)")
    ax.legend(fontsize=8, loc="best")
    return _png(fig)


def _plot_multipliers(lam: Sequence[float]) -> bytes:
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    lam_a = np.asarray(lam, dtype=float)
    r = np.arange(len(lam_a))
    pos = lam_a > 0
    ax.vlines(r[pos], 0, lam_a[pos], color="#d62728", lw=1.2)
    ax.scatter(r[pos], lam_a[pos], s=16, color="#d62728", label=f"support: {int(pos.sum())} of {len(lam_a)}")
    ax.scatter(r[~pos], lam_a[~pos], s=8, color="#888888", label="lambda_r = 0")
    ax.set_xlabel("constraint r")
    ax.set_ylabel("multiplier lambda_r")
    ax.set_title("KKT multipliers (exact rationals, shown as floats)")
    ax.legend(fontsize=8)
    return _png(fig)


def _plot_embedding(series: Mapping[str, Any]) -> bytes:
    fig = _figure()
    ax = fig.add_subplot(1, 1, 1)
    x = np.asarray(series["step"], dtype=float)
    zeros = 0
    for key, label, color in (("deviation", "||theta~_k - T theta_k||", "#d62728"),
                              ("relative", "relative to ||T theta_k||", "#1f77b4")):
        if key in series and series[key] is not None:
            y = np.asarray([np.nan if v is None else v for v in series[key]], dtype=float)
            pos = y > 0
            if key == "deviation":
                zeros = int(np.sum(y == 0))
            ax.plot(x[pos], y[pos], label=label, color=color, lw=1.2, marker="." if pos.sum() < 60 else None)
    ax.set_yscale("log")
    if zeros:
        ax.text(0.01, 0.02, f"exactly 0 at {zeros} step(s) (not shown on the log scale)", transform=ax.transAxes,
                fontsize=8, color="#555555")
    ax.set_xlabel(series.get("xlabel", "step"))
    ax.set_ylabel("deviation")
    ax.set_title(series.get("title", "Embedding: wide trajectory vs T (narrow trajectory)"))
    ax.legend(fontsize=8)
    return _png(fig)


def _render_math(tex: str) -> bytes | None:
    """A one-line formula as a PNG via matplotlib mathtext (None if mathtext cannot parse it)."""
    try:
        fig = _figure(7.0, 0.45)
        fig.text(0.01, 0.5, f"${tex}$", fontsize=12, va="center")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", bbox_inches="tight", pad_inches=0.05)
        return buf.getvalue()
    except Exception:  # mathtext parse errors are ValueError; be generous: the source is shown anyway
        return None


# ---------------------------------------------------------------------------
# page
# ---------------------------------------------------------------------------
_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 980px; margin: 2em auto;
       padding: 0 1em; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; border-bottom: 2px solid #ddd; padding-bottom: .3em; }
h2 { font-size: 1.25em; margin-top: 1.6em; border-bottom: 1px solid #eee; }
table { border-collapse: collapse; margin: .6em 0; font-size: .92em; }
th, td { border: 1px solid #ddd; padding: .3em .6em; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
td:nth-child(3), td:nth-child(4) { white-space: nowrap; }
code, pre { font-family: "SFMono-Regular", Consolas, Menlo, monospace; font-size: .88em; }
pre { background: #f6f8fa; padding: .8em; overflow-x: auto; }
.ok { color: #1a7f37; font-weight: bold; } .fail { color: #cf222e; font-weight: bold; }
.verdict { font-size: 1.15em; padding: .6em .9em; border-radius: 6px; margin: 1em 0; }
.verdict.ok { background: #dafbe1; } .verdict.fail { background: #ffebe9; }
img { max-width: 100%; } .small { color: #666; font-size: .85em; }
"""


class _Page:
    """Builds Markdown and HTML side by side."""

    def __init__(self) -> None:
        self.md: list[str] = []
        self.html: list[str] = []

    def h(self, level: int, text: str) -> None:
        self.md.append("#" * level + " " + text + "\n")
        self.html.append(f"<h{level}>{html.escape(text)}</h{level}>")

    def p(self, text: str, *, cls: str | None = None, md: str | None = None) -> None:
        self.md.append((md if md is not None else text) + "\n")
        c = f' class="{cls}"' if cls else ""
        self.html.append(f"<p{c}>{html.escape(text)}</p>")

    def table(self, head: Sequence[str], rows: Sequence[Sequence[Any]], *, classes: Sequence[str | None] | None = None) -> None:
        self.md.append("| " + " | ".join(head) + " |")
        self.md.append("|" + "|".join("---" for _ in head) + "|")
        for r in rows:
            self.md.append("| " + " | ".join(str(c).replace("|", "\\|") for c in r) + " |")
        self.md.append("")
        out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
        for i, r in enumerate(rows):
            cls = classes[i] if classes else None
            cells = []
            for j, c in enumerate(r):
                cc = f' class="{cls}"' if cls and j == len(r) - 1 else ""
                cells.append(f"<td{cc}>{html.escape(str(c))}</td>")
            out.append("<tr>" + "".join(cells) + "</tr>")
        out.append("</table>")
        self.html.append("\n".join(out))

    def image(self, name: str, png: bytes, alt: str) -> None:
        self.md.append(f"![{alt}]({name})\n")
        b64 = base64.b64encode(png).decode("ascii")
        self.html.append(f'<p><img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}"></p>')

    def pre(self, text: str, *, lang: str = "") -> None:
        self.md.append(f"```{lang}\n{text}\n```\n")
        self.html.append(f"<pre>{html.escape(text)}</pre>")

    def math(self, tex: str, png: bytes | None) -> None:
        self.md.append(f"$$ {tex} $$\n")
        if png is not None:
            b64 = base64.b64encode(png).decode("ascii")
            self.html.append(f'<p><img alt="{html.escape(tex)}" src="data:image/png;base64,{b64}"></p>')
        else:
            self.html.append(f"<pre>{html.escape(tex)}</pre>")

    def raw_html(self, text: str) -> None:
        self.html.append(text)


def _short(v: Any) -> str:
    """Exact value for display: the fraction when short, else the nearest float prefixed by ``~``."""
    if isinstance(v, Fraction):
        if v.denominator == 1 and len(str(v.numerator)) <= 20:
            return str(v.numerator)
        t = str(v)
        if len(t) <= 20:
            return t
        try:
            f = float(v)
        except OverflowError:
            return f"(a number of {len(str(abs(v.numerator) // v.denominator))} digits)"
        return repr(f) if Fraction(f) == v else "~" + repr(f)
    if isinstance(v, float):
        return f"{v:.10g}"
    return str(v)




def write_report(cert: Any, out_dir: str | Path, *, history: Any = None, embedding_history: Any = None,
                 title: str | None = None, symbolic_max_params: int = 16,
                 symbolic_max_samples: int = 8, limits: Any = None, tol: float | None = None) -> dict[str, Any]:
    """Check ``cert`` (path or dict) exactly and write ``report.md``, ``report.html`` and figures to ``out_dir``.

    ``history``: a training history (``TrainResult``, its ``to_dict()``, a list of dicts with
    ``step``, ``loss``, ``normalized_margin``, ``eps_rel``, ``delta_rel``, or a JSON file of
    either).  ``embedding_history``: ``{"step": [...], "deviation": [...]}`` (see
    :func:`trajectory_deviation`) or a JSON file of it.  The network's KKT system in LaTeX is
    included when it has at most ``symbolic_max_params`` parameters and ``symbolic_max_samples``
    samples (sympy's expressions grow fast).  The headline and the statement are the checker's,
    generated from the claims it verified; the file's own ``meta.statement`` is shown only as an
    unverified note, and ``measured`` as "not checked".  ``tol``: the tolerance on ``eps_rel`` and
    ``delta_rel`` the headline compares with; ``limits``: the checker's resource bounds.
    Returns ``{"markdown": path, "html": path, "figures": [paths]}``.
    """
    from ..certificates.checker import CLAIMS, check_certificate, load

    out = Path(out_dir)
    d, folder = load(cert)
    res = check_certificate(d, base_dir=folder, limits=limits, tol=tol)
    hist = load_history(history) if history is not None else None
    emb_series = load_embedding_history(embedding_history) if embedding_history is not None else None
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise FormatError(f"report: cannot create folder {str(out)!r}: {e.strerror}") from None
    figs = res.figures
    meta = d["meta"]
    kind = meta["kind"]
    pg = _Page()
    pg.h(1, title or f"{'Embedding' if kind == 'embedding' else 'KKT'} certificate report")
    verdict = (f"All {len(res.claims)} claims hold exactly. {res.headline()}." if res.ok else
               f"{len(res.failed)} of {len(res.claims)} claims FAIL. {res.headline()}.")
    took = f"{res.seconds * 1000:.0f} ms" if res.seconds < 1 else f"{res.seconds:.2f} s"
    pg.md.append(f"**{verdict}** Checked independently in exact rational arithmetic in {took}.\n")
    pg.raw_html(f'<div class="verdict {"ok" if res.ok else "fail"}">{html.escape(verdict)} Checked independently '
                f"in exact rational arithmetic in {took}.</div>")
    if res.ok:
        pg.p("Statement (generated by the checker from the claims it verified): " + res.statement())
    if res.file_statement:
        pg.p("Note from the file (meta.statement; NOT checked, the producer's own words): " + res.file_statement,
             cls="small")
    pg.p(f"Format {meta['format']} version {meta['format_version']}, created {meta['created']} by {meta['tool']}.",
         cls="small")

    pg.h(2, "Claims")
    rows, classes = [], []
    for c in res.claims:
        shown = c.claimed_text if c.claimed_text is not None else _short(c.claimed)
        rows.append([c.name, CLAIMS[c.name].meaning, f"{c.relation} {shown}", _short(c.actual),
                     "holds" if c.holds else "FAILS"])
        classes.append("ok" if c.holds else "fail")
    pg.table(["claim", "meaning", "claimed", "value recomputed exactly", "verdict"], rows, classes=classes)
    for n in res.notes:
        pg.p("Note: " + n)

    pg.h(2, "Network and data")
    net_d = d["network"]
    node_rows = [[n["name"], n["op"], ", ".join(n.get("inputs", [])),
                  ", ".join(f"{k}={v}" for k, v in (n.get("params") or {}).items()),
                  json.dumps(n.get("attrs", {}))] for n in net_d["nodes"]]
    pg.table(["node", "op", "inputs", "params", "attrs"], node_rows)
    info = [["parameters P", figs["num_params"]], ["degree L", _short(figs["degree"])],
            ["samples n", figs["n"]], ["constraints m", figs["m"]],
            ["||theta||^2", _short(figs["theta_norm2"])], ["exact kinks", len(figs["kinks"])],
            ["subgradient notion", figs["relaxation"]]]
    if "sum_multipliers" in figs:
        L = figs["degree"]
        info += [["sum lambda", _short(figs["sum_multipliers"])],
                 ["||theta||^2 / L (sum lambda at an exact KKT point)",
                  _short(figs["theta_norm2"] / L) if L else "-"],
                 ["Euler identity <theta, sum lambda h> = L sum lambda q", "holds exactly" if figs.get("euler_identity") else "FAILS"]]
        eps2 = figs["eps2"]
        n2 = figs["theta_norm2"]
        if n2:
            info += [["eps_rel = eps / ||theta||", f"{math.sqrt(float(eps2) / float(n2)):.4g}"],
                     ["delta_rel = delta L / ||theta||^2", f"{float(figs['delta'] * L / n2):.4g}" if L else "-"]]
    pg.table(["quantity", "value"], info)
    fp = _fingerprints(d)
    if fp:
        pg.table(["stored content", "SHA-256"], fp)

    figures: list[Path] = []

    def add_fig(name: str, png: bytes | None, alt: str) -> None:
        if png is None:
            return
        path = out / name
        path.write_bytes(png)
        figures.append(path)
        pg.image(name, png, alt)

    pg.h(2, "Margins")
    support = set(figs.get("support", []))
    labels = [f"sample {i}" for i in range(figs["m"])]
    add_fig("fig_margins.png", _plot_margins([float(q) for q in figs["margins"]], support, labels), "margins per constraint")
    if "multipliers" in figs:
        pg.h(2, "Multipliers and support")
        lam = figs["multipliers"]
        add_fig("fig_multipliers.png", _plot_multipliers([float(v) for v in lam]), "multipliers")
        top = sorted(range(len(lam)), key=lambda r: -lam[r])[:10]
        pg.table(["constraint r", "lambda_r (exact)", "q_r - 1"],
                 [[r, _short(lam[r]), f"{float(figs['margins'][r] - 1):.4g}"] for r in top if lam[r] > 0])
    if hist:
        pg.h(2, "Training")
        add_fig("fig_training.png", history_png(hist), "training curves")
        pg.p(f"{len(hist)} recorded steps; last: " + ", ".join(
            f"{k} = {_num(hist[-1].get(k)):.4g}" for k in ("log_loss", "normalized_margin", "eps_rel", "delta_rel")
            if _num(hist[-1].get(k)) is not None))
    if kind == "embedding":
        pg.h(2, "Embedding")
        emb = d["embedding"]
        if emb.get("description"):
            pg.p("Map: " + str(emb["description"]))
        emb_rows: list[list[Any]] = [
            ["wide parameters P~", figs.get("wide_num_params")],
            ["T^T T = I", "holds exactly" if figs.get("isometry") else "FAILS"],
            ["Phi~(T theta; x_i) = Phi(theta; x_i) on all samples", "holds exactly" if figs.get("output_preserved") else "FAILS"]]
        if "gradient_commutes" in figs:
            emb_rows += [["sum lambda h~(T theta) = T sum lambda h(theta)", "holds exactly" if figs["gradient_commutes"] else "FAILS"],
                         ["wide eps^2", _short(figs["wide_eps2"])], ["wide delta", _short(figs["wide_delta"])]]
        pg.table(["condition", "value"], emb_rows)
        if emb_series is not None:
            add_fig("fig_embedding.png", _plot_embedding(emb_series), "embedding deviation over time")
    elif emb_series is not None:
        pg.h(2, "Embedding")
        add_fig("fig_embedding.png", _plot_embedding(emb_series), "embedding deviation over time")

    pg.h(2, "The KKT conditions being certified")
    for tex in (r"\min_\theta\ \frac{1}{2}\|\theta\|_2^2 \quad \mathrm{s.t.}\quad q_r(\theta)\geq 1",
                r"\epsilon^2 = \|\theta - \sum_r \lambda_r h_r\|_2^2,\quad h_r \in \partial^\circ q_r(\theta),\quad \lambda_r \geq 0",
                r"\delta = \sum_r \lambda_r\,(q_r(\theta) - 1)"):
        pg.math(tex, _render_math(tex))
    sym = _symbolic_latex(d, symbolic_max_params, symbolic_max_samples, folder)
    if sym:
        pg.p("The network's KKT system (verifier.symbolic.kkt_system), in LaTeX:")
        pg.md.append("$$\n" + sym + "\n$$\n")
        pg.raw_html("<details><summary>LaTeX source</summary><pre>" + html.escape(sym) + "</pre></details>")
    if figs["kinks"]:
        pg.h(2, "Exact kinks")
        pg.table(["node", "sample", "unit"], [[k["node"], k["sample"], k["unit"]] for k in figs["kinks"][:30]])
    measured = d.get("measured") or {}
    if measured:
        pg.h(2, "Figures measured by the producer: not checked (floating point; not part of the proof)")
        pg.pre(json.dumps(measured, indent=1)[:6000], lang="json")

    md_path = out / "report.md"
    html_path = out / "report.html"
    md_path.write_text("\n".join(pg.md) + "\n")
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title or 'Certificate report')}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(pg.html) + "\n</body></html>\n")
    html_path.write_text(page)
    return {"markdown": md_path, "html": html_path, "figures": figures}


def _fingerprints(d: Mapping[str, Any]) -> list[list[str]]:
    rows: list[list[str]] = []
    p = d.get("params", {})
    if "path" in p:
        rows.append([f"params file {p['path']}", p["sha256"]])
    else:
        for name, t in (p.get("tensors") or {}).items():
            rows.append([f"params {name} {t.get('shape')}", t.get("sha256", "")])
    data = d.get("data", {})
    if "path" in data:
        rows.append([f"data file {data['path']}", data["sha256"]])
    else:
        for k in ("X", "y"):
            if k in data:
                rows.append([f"data {k}", data[k].get("sha256", "")])
    for k, v in (d.get("witnesses", {}).get("sha256") or {}).items():
        rows.append([f"witnesses {k}", v])
    return rows


def _symbolic_latex(d: Mapping[str, Any], max_params: int, max_samples: int, folder: Path) -> str | None:
    """The KKT system in LaTeX from :mod:`verifier.symbolic` for small instances, else None (never raises)."""
    try:
        from ..certificates.checker import Net, read_data
        from ..graph import Network

        net = Network.from_dict(d["network"])
        if net.num_params > max_params:
            return None
        Xq, y, Xf = read_data(d, Net(d["network"], "network"), folder)
        if Xf is None or len(y) > max_samples:
            return None
        from ..symbolic import kkt_system

        return kkt_system(net, Xf, np.asarray(y), max_params=max_params, max_samples=max_samples).latex()
    except Exception:  # optional: the symbolic layer may be absent or decline the instance
        return None
