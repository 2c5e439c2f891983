"""The checks of an embedding (docs/math.md section 10), each with its figure and, on failure, the reason.

=================  ==============================================================  =========================
check              condition                                                       figure
=================  ==============================================================  =========================
isometry           ``T^T T = I`` (exact: Fractions, or sympy for radicals)         ``max |T^T T - I|`` (float)
function           ``Phi~(T theta; x) = Phi(theta; x)`` on data and random probes  largest relative difference
gradient           ``grad Phi~(T theta; x) = T grad Phi(theta; x)``                largest relative difference
kkt                narrow and wide :func:`~verifier.check_kkt` agree               largest relative difference
gd_trajectory      ``theta~_k = T theta_k`` for ``k <= gd_steps``                  ``max_k ||.||`` / distance moved
flow_trajectory    ``theta~(t) = T theta(t)`` on ``[0, flow_time]``                ``max_t ||.||`` / distance moved
direction          ``T theta/||theta|| = theta~/||theta~||`` at the end            largest distance of unit vectors
=================  ==============================================================  =========================

>>> import numpy as np, verifier
>>> net = verifier.mlp([2, 3, 1])
>>> emb = verifier.neuron_split(net, net.init_params(0), layer=1, neuron=2, ratios=["3/5", "4/5"])
>>> X = np.random.default_rng(0).normal(size=(6, 2))
>>> rep = check_embedding(emb, None, X, None, checks=("isometry", "function", "gradient"))
>>> rep.passed, rep.checks["isometry"].detail
(True, 'T^T T = I exactly (rational arithmetic over all 9 columns)')
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Iterable, Mapping

import numpy as np

from .._json import header, jsonable
from ..results import Check
import scipy.sparse as sps
import sympy as sp

from ..errors import VerifierError
from ..analysis.homogeneity import degree
from ..numeric import check_inputs, forward, jacobian_from, run_forward
from ..numeric.data import Constraints
from .maps import Embedding
from .ratios import EmbeddingError, fmt, is_zero, to_fraction

if TYPE_CHECKING:
    from ..kkt import KKTReport

#: The flow check's integrator-error estimate re-integrates the narrow flow at ``rtol / FLOW_REF_FACTOR``.
FLOW_REF_FACTOR = 100.0
#: ... and allows ``FLOW_ERR_SLACK`` times that error on top of ``flow_tol`` x the distance moved.
FLOW_ERR_SLACK = 10.0

ALL_CHECKS = ("isometry", "function", "gradient", "kkt", "gd_trajectory", "flow_trajectory", "direction")
#: JSON report format; changes:
#:   1 -- first version;
#:   2 -- the common header: a ``meta`` block (tool, timestamp) beside ``format`` and ``version``.
REPORT_FORMAT = "kkt-verifier/embedding-report"
REPORT_VERSION = 2

_METHOD_WHY = {
    "sign": ("sign descent is coordinate-wise: its step ||g||_1 sign(g) does not commute with T "
             "(the copies of a split unit get equal-size steps sign(alpha_k g) = sign(g) instead of alpha_k-scaled "
             "ones, and ||T g||_1 != ||g||_1), so theta~_k != T theta_k"),
    "adam": ("Adam normalises every coordinate by its own running RMS, which is scale-free: a copy's update "
             "m_k/sqrt(v_k) equals the original unit's instead of alpha_k times it, so Adam does not commute with T "
             "and theta~_k != T theta_k"),
    "coordinate": ("coordinate descent moves only the largest |gradient| coordinate, and which one that is changes "
                   "under T (a split coordinate alpha_k g is smaller than g), so theta~_k != T theta_k"),
}


def _jsonable(x: Any) -> Any:
    return jsonable(x)


class EmbeddingReport:
    """The result of :func:`check_embedding`: ``checks`` maps a name to a :class:`Check`."""

    def __init__(self, embedding: Embedding, checks: dict[str, Check], settings: dict[str, Any]):
        self.embedding = embedding
        self.checks = checks
        self.settings = settings

    @property
    def passed(self) -> bool:
        """True when every check that was run passed."""
        return all(c.passed for c in self.checks.values())

    @property
    def failed(self) -> list[str]:
        """Names of the checks that did not pass (failed or could not be evaluated)."""
        return [n for n, c in self.checks.items() if not c.passed]

    @property
    def warnings(self) -> list[str]:
        return list(self.embedding.warnings)

    def summary(self) -> str:
        lines = [f"embedding: {self.embedding.description}",
                 f"T: {self.embedding.shape[0]} x {self.embedding.shape[1]}, "
                 f"{'rational' if self.embedding.is_rational else 'irrational'} entries, nnz {self.embedding.T.nnz}"]
        for w in self.embedding.warnings:
            lines.append(f"warning: {w}")
        lines.append(f"{'check':<16} {'result':<6} {'figure':>10}  detail")
        for name, c in self.checks.items():
            res = {"pass": "PASS", "fail": "FAIL", "error": "ERROR"}[c.status]
            fig = "-" if not math.isfinite(c.figure) else f"{c.figure:.3g}"
            lines.append(f"{name:<16} {res:<6} {fig:>10}  {c.detail}")
        if self.passed:
            lines.append(f"all {len(self.checks)} checks passed")
        else:
            failed = [n for n, c in self.checks.items() if c.status == "fail"]
            errored = [n for n, c in self.checks.items() if c.status == "error"]
            parts = ([f"failed: {', '.join(failed)}"] if failed else []) + \
                ([f"could not be evaluated (error): {', '.join(errored)}"] if errored else [])
            lines.append(f"{len(self.failed)} of {len(self.checks)} checks did not pass; {'; '.join(parts)}")
        return "\n".join(lines)

    __str__ = summary

    def __repr__(self) -> str:
        return f"EmbeddingReport(passed={self.passed}, failed={self.failed})"

    def to_dict(self) -> dict[str, Any]:
        e = self.embedding
        return {
            **header(REPORT_FORMAT, REPORT_VERSION),
            "embedding": {"description": e.description, "kind": e.kind, "shape": list(e.shape),
                          "rational": e.is_rational, "nnz": int(e.T.nnz), "info": _jsonable(e.info),
                          "warnings": list(e.warnings)},
            "settings": _jsonable(self.settings),
            "passed": self.passed,
            "failed": self.failed,
            "checks": {n: c.to_dict() for n, c in self.checks.items()},
        }

    def to_json(self, path: Any = None, indent: int = 1) -> str:
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            from pathlib import Path

            Path(path).write_text(text + "\n")
        return text


# ---------------------------------------------------------------------------
# reasons, from what the embedding knows about itself
# ---------------------------------------------------------------------------
def _steps(emb: Embedding) -> list[dict[str, Any]]:
    return list(emb.info.get("steps", [emb.info])) if emb.info else []


def _isometry_reason(emb: Embedding) -> str:
    out = []
    for st in _steps(emb):
        kind = st.get("kind", "")
        if kind.endswith("_split") and not is_zero(st["sum_in_sq"] - 1):
            out.append(f"split ratios {_tup(st['in_ratios'])}: sum alpha_k^2 = {fmt(st['sum_in_sq'])} != 1")
        elif kind.endswith("_rescale"):
            a, b = st["in_ratios"], st["out_ratios"]
            parts = []
            if not is_zero(st["sum_in_sq"] - 1):
                parts.append(f"incoming ratios a = {_tup(a)} have sum a_k^2 = {fmt(st['sum_in_sq'])} != 1")
            if not is_zero(st["sum_out_sq"] - 1):
                parts.append(f"outgoing ratios b = {_tup(b)} have sum b_k^2 = {fmt(st['sum_out_sq'])} != 1")
            if parts:
                out.append("output-preserving rescale: " + " and ".join(parts))
    return "; ".join(out)


def _function_reason(emb: Embedding) -> str:
    out = []
    for st in _steps(emb):
        kind = st.get("kind", "")
        if not (kind.endswith("_split") or kind.endswith("_rescale")):
            continue
        for p, s in zip(st["exponents"], st["output_sums"]):
            if p is None:
                acts = ", ".join(f"{n!r} ({o})" for n, o in st["activations"])
                out.append(f"the activation after the split unit ({acts}) is not positively homogeneous: "
                           "sigma(a z) != a sigma(z); use add_zero_neuron")
            elif not is_zero(s - 1):
                if kind.endswith("_split") and p != 1:
                    from .maps import power_explanation

                    out.append(f"the unit is followed by z^{p}: the copies add up to sum alpha_k^{p + 1} = {fmt(s)} "
                               f"times the old unit; {power_explanation(p)}")
                elif kind.endswith("_split"):
                    out.append(f"the copies add up to sum alpha_k^2 = {fmt(s)} times the old unit (needs 1)")
                else:
                    out.append(f"the copies add up to sum b_k a_k{'' if p == 1 else '^' + str(p)} = {fmt(s)} times "
                               "the old unit (needs 1)")
    return "; ".join(out)


def _gradient_reason(emb: Embedding, function_ok: bool | None) -> str:
    if function_ok is False:
        return "the function itself is not preserved (see the function check)"
    out = []
    for st in _steps(emb):
        if st.get("kind", "").endswith("_rescale") and any(x != y for x, y in zip(st["in_ratios"], st["out_ratios"])):
            out.append("for an output-preserving rescale the wide gradient on copy k's incoming weights is b_k g "
                       "(and a_k^p h on its outgoing weights), while T grad Phi gives a_k g (and b_k h): they agree only "
                       f"when a_k = b_k (here a = {_tup(st['in_ratios'])}, b = {_tup(st['out_ratios'])})")
    return "; ".join(out)


def _global_reason(emb: Embedding, iso: Check | None, fun: Check | None, grad: Check | None) -> str:
    """A short 'because ...' for the KKT and trajectory checks, naming the first-order checks that failed."""
    parts = []
    fun, iso, grad = (c if c is not None and c.status == "fail" else None for c in (fun, iso, grad))  # errors blame nothing
    if fun is not None and not fun.passed:
        r = _function_reason(emb)
        parts.append("Phi~(T theta) != Phi(theta)" + (f" ({r})" if r else "") + " [function]")
    if iso is not None and not iso.passed:
        r = _isometry_reason(emb)
        parts.append("T^T T != I, so T changes norms and does not commute with a gradient step"
                     + (f" ({r})" if r else "") + " [isometry]")
    if grad is not None and not grad.passed and (fun is None or fun.passed):
        parts.append("grad Phi~(T theta) != T grad Phi(theta) [gradient]")
    if not parts:
        r = _function_reason(emb) or _isometry_reason(emb)
        if r:
            parts.append(r)
        elif emb.warnings:
            parts.append(emb.warnings[0])
    return "; ".join(parts)


def _combine(method: str, why: str) -> str:
    r = _METHOD_WHY.get(method, "") if method != "gd" else ""
    if r and why:
        return f"{r}; besides, {why}"
    return r or why


def _tup(v: Iterable[Any]) -> str:
    return "(" + ", ".join(str(x) for x in v) + ")"


# ---------------------------------------------------------------------------
# 1. isometry
# ---------------------------------------------------------------------------
def check_isometry(emb: Embedding, *, exact: bool = True, tol: float = 1e-12) -> Check:
    """``T^T T = I``, decided exactly (Fractions / sympy) unless ``exact=False`` (then ``<= tol`` in floats)."""
    T = emb.T
    P = emb.shape[1]
    M = (T.T @ T - sps.identity(P, format="csr")).tocoo()
    figure = float(np.abs(M.data).max()) if M.nnz else 0.0
    if not exact:
        ok = figure <= tol
        return Check(ok, figure, f"max |T^T T - I| = {figure:.3g} {'<=' if ok else '>'} tol {tol:g} (floats, not exact)",
                     tol=tol)
    by_row: dict[int, list[tuple[int, sp.Expr]]] = {}
    for r, c, v in emb.entries():
        by_row.setdefault(r, []).append((c, v))
    rational = emb.is_rational

    def conv(v: sp.Expr) -> Any:
        """A Fraction (exact and fast) when every entry is rational, else the sympy number itself."""
        if not rational:
            return v
        f = to_fraction(v)
        assert f is not None  # emb.is_rational: every entry is a rational number
        return f

    cols: dict[int, list[Any]] = {}
    off: dict[tuple[int, int], Any] = {}
    for ents in by_row.values():
        vals = [(c, conv(v)) for c, v in ents]
        for c, v in vals:
            cols.setdefault(c, []).append(v)
        if len(vals) > 1:
            for i in range(len(vals)):
                for j in range(i + 1, len(vals)):
                    (ci, vi), (cj, vj) = vals[i], vals[j]
                    key = (min(ci, cj), max(ci, cj))
                    off[key] = off.get(key, 0) + vi * vj
    # diagonal: group columns with the same multiset of entries (a split has few distinct ones)
    cache: dict[tuple, Any] = {}
    bad_cols: list[tuple[int, Any]] = []
    for c in range(P):
        col = cols.get(c, [])
        multiset = tuple(sorted(col, key=str))
        if multiset not in cache:
            s = sum((v * v for v in col), Fraction(0) if rational else sp.Integer(0))
            ok = (s == 1) if rational else is_zero(sp.expand(s) - 1)
            cache[multiset] = (ok, s)
        ok, s = cache[multiset]
        if not ok:
            bad_cols.append((c, s))
    bad_off = [(k, v) for k, v in off.items() if not ((v == 0) if rational else is_zero(v))]
    how = "rational arithmetic" if rational else "symbolic arithmetic (sympy)"
    if not bad_cols and not bad_off:
        return Check(True, figure, f"T^T T = I exactly ({how} over all {P} columns)", data={"exact": True})
    parts = []
    if bad_cols:
        c, s = bad_cols[0]
        sv = sp.Rational(s.numerator, s.denominator) if isinstance(s, Fraction) else s
        parts.append(f"{len(bad_cols)} of {P} columns do not have norm 1, e.g. column {c} ({emb.narrow_name(c)}): "
                     f"sum of squared entries = {fmt(sv)} != 1")
    if bad_off:
        (i, j), v = bad_off[0]
        vv = sp.Rational(v.numerator, v.denominator) if isinstance(v, Fraction) else v
        parts.append(f"{len(bad_off)} pairs of columns are not orthogonal, e.g. columns {i} ({emb.narrow_name(i)}) and "
                     f"{j} ({emb.narrow_name(j)}): <T e_i, T e_j> = {fmt(vv)} != 0")
    reason = _isometry_reason(emb)
    detail = "T^T T != I: " + "; ".join(parts) + (f" -- {reason}" if reason else "")
    return Check(False, figure, detail, data={"exact": True, "bad_columns": len(bad_cols), "bad_pairs": len(bad_off)})


# ---------------------------------------------------------------------------
# 2. function, 3. gradient
# ---------------------------------------------------------------------------
def _points(emb: Embedding, params: Any, seed: int) -> list[tuple[str, np.ndarray]]:
    pts = []
    if params is not None:
        pts.append(("the given theta", emb.net.flatten(emb.net.check_params(params))))
    pts.append(("a random theta", emb.net.flatten(emb.net.init_params(seed + 7919))))
    return pts


def _inputs(emb: Embedding, X: Any, probes: int, seed: int) -> tuple[np.ndarray, int]:
    rng = np.random.default_rng(seed)
    shape = tuple(emb.net.input_shape)
    parts = []
    n_data = 0
    scale = 1.0
    if X is not None:
        Xa = check_inputs(emb.net, X)
        parts.append(Xa)
        n_data = Xa.shape[0]
        s = float(np.std(Xa))
        scale = s if s > 0 else 1.0
    if probes > 0:
        parts.append(rng.normal(0.0, scale, size=(probes, *shape)))
    if not parts:
        raise EmbeddingError("check_embedding: no inputs; give data X or probes >= 1")
    return np.concatenate(parts, axis=0), n_data


def _where(i: int, n_data: int) -> str:
    return f"data sample {i}" if i < n_data else f"random probe {i - n_data}"


def check_function(emb: Embedding, params: Any, X: Any, *, probes: int = 32, seed: int = 0, tol: float = 1e-9) -> Check:
    """``Phi~(T theta; x) = Phi(theta; x)`` on the data and ``probes`` random inputs, at ``params`` and a random theta."""
    Xall, n_data = _inputs(emb, X, probes, seed)
    worst = (-1.0, "", 0, 0, 0.0, 0.0)
    for label, th in _points(emb, params, seed):
        out = forward(emb.net, th, Xall)
        wout = forward(emb.wide_net, emb.apply(th), Xall)
        scale = float(np.abs(out).max())
        scale = scale if scale > 0 else 1.0
        diff = np.abs(wout - out) / scale
        i, c = map(int, np.unravel_index(int(np.argmax(diff)), diff.shape))
        if diff[i, c] > worst[0]:
            worst = (float(diff[i, c]), label, i, c, float(out[i, c]), float(wout[i, c]))
    fig, label, i, c, a, b = worst
    where = f"{n_data} data samples and {probes} random probes" if n_data else f"{probes} random probes"
    if fig <= tol:
        return Check(True, fig, f"Phi~(T theta; x) = Phi(theta; x) on {where} at the given and a random theta "
                                f"(largest relative difference {fig:.2g} <= tol {tol:g})", tol=tol)
    reason = _function_reason(emb)
    detail = (f"Phi~(T theta; x) != Phi(theta; x): relative difference {fig:.3g} > tol {tol:g} at {label}, "
              f"{_where(i, n_data)}, output {c} (Phi = {a:.6g}, Phi~ = {b:.6g})" + (f" -- {reason}" if reason else ""))
    return Check(False, fig, detail, tol=tol)


def _output_jacobian(net, theta: np.ndarray, X: np.ndarray, *, fp: Any = None,
                     samples: np.ndarray | None = None) -> np.ndarray:
    """Rows ``(sample, output unit)``: ``grad_theta Phi_c(theta; x_i)`` (the engine's backward pass).

    ``fp`` reuses a forward pass of ``net`` at ``theta`` on ``X``; ``samples`` selects its rows.
    """
    if fp is None:
        fp = run_forward(net, theta, X)
    n, C = fp.output.shape
    idx = np.arange(n) if samples is None else np.asarray(samples, dtype=np.int64)
    cons = Constraints(np.repeat(idx, C), np.tile(np.eye(C), (idx.size, 1)), -np.ones(idx.size * C, dtype=np.int64), n)
    return jacobian_from(fp, cons)


def check_gradient(emb: Embedding, params: Any, X: Any, *, probes: int = 32, seed: int = 0, tol: float = 1e-9,
                   function_ok: bool | None = None, kink_tol: float = 1e-9) -> Check:
    """``grad Phi~(T theta; x) = T grad Phi(theta; x)`` (engine Jacobians) on data and probes.

    Inputs at which a narrow pre-activation lies within ``kink_tol`` (relative to the largest
    pre-activation magnitude of that node) of a kink *that matters* are left out: the gradient
    is set-valued there, and rounding ``alpha_k z`` in the wide network can select another
    branch than the narrow network's convention.  A kink matters only when its selection can
    change the gradient (:func:`_samples_at_kinks_that_matter`: e.g. a max-pooling window of
    four zero ReLU outputs does not).  The detail says how many were left out.
    """
    from ..numeric.engine import kinks_from, run_forward

    Xall, n_data = _inputs(emb, X, probes, seed)
    C = emb.net.num_outputs
    worst = (-1.0, "", 0, 0)
    skipped = 0
    compared = 0
    for label, th in _points(emb, params, seed):
        fp = run_forward(emb.net, th, Xall)
        kinked = _samples_at_kinks_that_matter(fp, kinks_from(fp, 0.0) + _relative_kinks(fp, kink_tol))
        keep = np.array([i for i in range(Xall.shape[0]) if i not in kinked], dtype=np.int64)
        skipped = max(skipped, Xall.shape[0] - keep.size)
        if keep.size == 0:
            continue
        compared += 1
        J = _output_jacobian(emb.net, th, Xall, fp=fp, samples=keep)
        Jw = _output_jacobian(emb.wide_net, emb.apply(th), Xall[keep])
        TJ = np.asarray((emb.T @ J.T).T)
        scale = float(np.abs(J).max())
        scale = scale if scale > 0 else 1.0
        diff = np.abs(Jw - TJ) / scale
        r, k = map(int, np.unravel_index(int(np.argmax(diff)), diff.shape))
        if diff[r, k] > worst[0]:
            worst = (float(diff[r, k]), label, int(keep[r // C]) * C + r % C, k)
    if compared == 0:
        return Check(False, float("nan"), f"every one of the {Xall.shape[0]} inputs sits at a kink of the narrow network, "
                                          "where the gradient is set-valued; nothing to compare", tol=tol, status="error")
    fig, label, r, k = worst
    left_out = (f"; {skipped} input(s) at a kink left out (set-valued gradient)" if skipped else "")
    data = {"inputs": int(Xall.shape[0]), "left_out": int(skipped)}
    if fig <= tol:
        return Check(True, fig, f"grad Phi~(T theta; x) = T grad Phi(theta; x) on {Xall.shape[0] - skipped} inputs x "
                                f"{C} output(s) (largest relative difference {fig:.2g} <= tol {tol:g}){left_out}", tol=tol,
                     data=data)
    reason = _gradient_reason(emb, function_ok)
    detail = (f"grad Phi~(T theta) != T grad Phi(theta): relative difference {fig:.3g} > tol {tol:g} in the "
              f"derivative with respect to {emb.wide_name(k)} at {label}, {_where(r // C, n_data)}, output {r % C}"
              + (f" -- {reason}" if reason else ""))
    return Check(False, fig, detail, tol=tol, data=data)


def _samples_at_kinks_that_matter(fp: Any, kinks: list[Any]) -> set[int]:
    """Samples with a kink whose selection can change ``grad_theta Phi`` (the others keep a unique gradient).

    Kinked nodes are visited in topological order; a sample is out at its first kink that
    matters, so every kink tested has a unique upstream Jacobian (the engine's).  The entries the
    kink selects among -- the pre-activation of an elementwise unit (derivative in an interval),
    the tied entries of a max-pooling window (routing) -- are seeded in the kinked node's input and
    their gradients with respect to theta computed: the kink matters iff they are not all equal
    (elementwise: iff the pre-activation's gradient is not 0).  A window of four zero ReLU outputs
    with negative (or parameter-free) pre-activations therefore does not count.
    """
    from ..kkt._backprop import row_gradients

    net = fp.net
    rank = {n: i for i, n in enumerate(net.order)}
    scale = 1.0 + sum(float(np.abs(v).sum()) for v in fp.params.values())
    by_node: dict[str, list[Any]] = {}
    for k in kinks:
        by_node.setdefault(k.node, []).append(k)
    out: set[int] = set()
    for node in sorted(by_node, key=rank.__getitem__):  # units of one node are not upstream of each other
        ks = [k for k in by_node[node] if k.sample not in out]
        if not ks:
            continue
        src = net.nodes[node].inputs[0]
        shape = net.shapes[src]
        spans: list[tuple[int, int]] = []
        positions: list[tuple[int, ...]] = []
        rows: list[int] = []
        for k in ks:
            nd = net.nodes[node]
            if nd.impl.kink_kind(nd.attrs) == "elementwise":
                pos = [tuple(k.unit) if len(k.unit) == len(shape) else
                       tuple(int(i) for i in np.unravel_index(k.unit[0], shape))]
            else:  # the op says where its tied entries sit in its input
                pos = nd.impl.tie_groups(fp.ctx[node], nd.attrs, [k.sample], [tuple(k.unit)], [0.0])[0]
            spans.append((len(positions), len(positions) + len(pos)))
            positions += pos
            rows += [k.sample] * len(pos)
        seed = np.zeros((len(positions), *shape))
        for r, at in enumerate(positions):
            seed[(r,) + tuple(at)] = 1.0
        Jz = row_gradients(fp, np.array(rows, dtype=np.int64), None, seeds={src: seed})
        for k, (a, b) in zip(ks, spans):
            J = Jz[a:b]
            spread = np.abs(J - J[:1]).max(initial=0.0) if b - a > 1 else np.abs(J).max(initial=0.0)
            if spread > 1e-15 * scale:
                out.add(k.sample)
    return out


def _relative_kinks(fp: Any, rel_tol: float) -> list[Any]:
    """Kinks whose pre-activation is within ``rel_tol`` of 0 relative to the node's largest magnitude."""
    from ..numeric.engine import Kink

    out = []
    for name in fp.net.order:
        node = fp.net.nodes[name]
        if not node.impl.is_kinked(node.attrs) or name not in fp.ctx:
            continue
        z = fp.ctx[name].get("z")
        if z is None:
            continue
        zz = np.abs(z.reshape(z.shape[0], -1))
        scale = float(zz.max()) if zz.size else 0.0
        for r, u in zip(*np.nonzero(zz <= rel_tol * max(scale, 1e-300))):
            out.append(Kink(name, int(r), (int(u),), float(zz[r, u])))
    return out


# ---------------------------------------------------------------------------
# 4. KKT
# ---------------------------------------------------------------------------
def check_kkt_transfer(emb: Embedding, params: Any, X: Any, y: Any, *, tol: float = 1e-6,
                       kkt_kwargs: Mapping[str, Any] | None = None, reason: str = "") -> Check:
    """Narrow and wide :func:`verifier.check_kkt` reports agree: verdict, ``eps``, ``delta``, multipliers."""
    from ..kkt import check_kkt

    kw = dict(kkt_kwargs or {})
    try:
        rn = check_kkt(emb.net, params, X, y, **kw)
        rw = check_kkt(emb.wide_net, emb.apply(params), X, y, **kw)
    except VerifierError as e:
        return Check(False, float("nan"), f"could not run check_kkt: {e}", tol=tol, status="error")
    data: dict[str, Any] = {"narrow": {"verdict": rn.verdict, "eps": rn.eps, "delta": rn.delta},
                            "wide": {"verdict": rw.verdict, "eps": rw.eps, "delta": rw.delta}}
    if rn.verdict == "infeasible" or rw.verdict == "infeasible":
        ok = rn.verdict == rw.verdict
        det = ("both infeasible: theta does not separate the data, so there is no KKT statement to compare"
               if ok else f"verdicts differ: narrow {rn.verdict}, wide {rw.verdict}")
        if not ok and reason:
            det += f" -- {reason}"
        return Check(ok, 0.0 if ok else float("inf"), det, tol=tol, data=data)
    n_eps, n_delta, n_dmax = _residuals(rn)
    w_eps, w_delta, w_dmax = _residuals(rw)
    nrm = float(np.linalg.norm(np.asarray(rn.theta_hat, dtype=float)))
    s1, s2 = max(1.0, nrm), max(1.0, nrm ** 2)
    d_eps = abs(w_eps - n_eps) / s1
    d_delta = abs(w_delta - n_delta) / s2
    d_dmax = abs(w_dmax - n_dmax) / s2
    lam_n = np.asarray(rn.multipliers, dtype=float)
    lam_w = np.asarray(rw.multipliers, dtype=float)
    lam_scale = max(1.0, float(np.abs(lam_n).sum()))
    d_lam = float(np.abs(lam_w - lam_n).max()) / lam_scale if lam_n.size == lam_w.size and lam_n.size else 0.0
    figure = max(d_eps, d_delta, d_dmax, d_lam)
    data.update({"d_eps": d_eps, "d_delta": d_delta, "d_delta_max": d_dmax, "d_multipliers": d_lam})
    same_verdict = rn.verdict == rw.verdict
    numbers_ok = max(d_eps, d_delta, d_dmax) <= tol
    lam_ok = d_lam <= tol
    transfer_note = ""
    if same_verdict and numbers_ok and not lam_ok:
        gap = _gap_with(emb.wide_net, np.asarray(rw.theta_hat, dtype=float), X, y, lam_n)
        wide_gap = 0.5 * w_eps ** 2 + w_delta
        if gap is not None and abs(gap - wide_gap) <= tol * s2:
            lam_ok = True
            transfer_note = (f"; the solvers returned different multipliers (dual optimum not unique, difference "
                             f"{d_lam:.2g}) but the narrow multipliers certify the wide point with the same gap "
                             f"{gap:.3g}")
    ok = same_verdict and numbers_ok and lam_ok
    summary = (f"narrow {rn.verdict} (eps {n_eps:.3g}, delta {n_delta:.3g}), wide {rw.verdict} "
               f"(eps {w_eps:.3g}, delta {w_delta:.3g})")
    if ok:
        return Check(True, figure, f"{summary}; same multipliers (max difference {d_lam:.2g} relative to sum lambda)"
                                   f"{transfer_note}", tol=tol, data=data)
    what = []
    if not same_verdict:
        what.append(f"verdict {rn.verdict} -> {rw.verdict}")
    if not numbers_ok:
        what.append(f"(eps, delta) differ by {max(d_eps, d_delta, d_dmax):.3g} > tol {tol:g}")
    if not lam_ok:
        what.append(f"multipliers differ by {d_lam:.3g} (relative to sum lambda) > tol {tol:g}")
    detail = f"KKT status not preserved: {'; '.join(what)}: {summary}" + (f" -- {reason}" if reason else "")
    return Check(False, figure, detail, tol=tol, data=data)


def _residuals(r: KKTReport) -> tuple[float, float, float]:
    """``eps``, ``delta`` and ``delta_max`` of a report whose verdict is not ``"infeasible"`` (then all are set)."""
    assert r.eps is not None and r.delta is not None and r.delta_max is not None, r.verdict
    return float(r.eps), float(r.delta), float(r.delta_max)


def _gap_with(net, theta_hat: np.ndarray, X: Any, y: Any, lam: np.ndarray) -> float | None:
    """Duality gap ``1/2 ||theta||^2 - D(lambda)`` of ``lam`` at ``theta_hat`` (docs/math.md sections 4-5)."""
    from ..numeric import gram_from, margins_from, prepare

    try:
        fp, cons = prepare(net, theta_hat, X, y)
        if lam.size != cons.m:
            return None
        G = gram_from(fp, cons)
        q = margins_from(fp, cons)
        L = float(degree(net))
    except VerifierError:
        return None
    c = 1.0 - q + L * q
    return float(0.5 * theta_hat @ theta_hat - (lam @ c - 0.5 * lam @ G @ lam))


# ---------------------------------------------------------------------------
# 5.-7. trajectories and direction
# ---------------------------------------------------------------------------
def _deviation(emb: Embedding, narrow: np.ndarray, wide: np.ndarray) -> tuple[float, int, float, float]:
    """``max_k ||wide_k - T narrow_k||`` relative to how far the narrow trajectory moved, ``max_k ||narrow_k - narrow_0||``.

    Relative to the displacement (not to ``||theta||``), so a late-phase run whose iterates
    barely move still shows a broken commutation; returns (figure, worst index, deviation, displacement).
    """
    mapped = emb.apply(narrow)
    dev = np.linalg.norm(wide - mapped, axis=1)
    disp = float(np.linalg.norm(narrow - narrow[0], axis=1).max())
    k = int(np.argmax(dev))
    d = float(dev[k])
    fig = d / disp if disp > 0 else (0.0 if d == 0 else math.inf)
    return fig, k, d, disp


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 0 else v


def check_embedding(
    emb: Embedding,
    params: Any = None,
    X: Any = None,
    y: Any = None,
    *,
    checks: Iterable[str] = ALL_CHECKS,
    gd_steps: int = 200,
    lr: float = 0.05,
    flow_time: float = 5.0,
    method: str = "gd",
    loss: str = "exp",
    probes: int = 32,
    seed: int = 0,
    exact: bool = True,
    tol: float = 1e-9,
    iso_tol: float = 1e-12,
    kkt_tol: float = 1e-6,
    traj_tol: float = 1e-8,
    flow_tol: float = 1e-6,
    direction_tol: float = 1e-6,
    n_eval: int = 50,
    flow_rtol: float = 1e-10,
    flow_atol: float = 1e-12,
    kkt_kwargs: Mapping[str, Any] | None = None,
    trajectory_start: Any = "auto",
    flow_max_evals: int = 20_000,
) -> EmbeddingReport:
    """Run the checks of docs/math.md section 10 on ``emb`` at narrow parameters ``params`` (default ``emb.params``).

    ``checks`` selects among ``isometry, function, gradient, kkt, gd_trajectory, flow_trajectory,
    direction`` (the last four need labelled data ``X, y``).  Tolerances (all relative):
    ``tol`` for function and gradient (default ``1e-9``); ``iso_tol`` for the float isometry test
    when ``exact=False`` (by default ``T^T T = I`` is decided exactly); ``kkt_tol`` (``1e-6``) for
    ``eps``, ``delta`` and multipliers; ``traj_tol`` (``1e-8``) for ``gd_steps`` fixed steps of size
    ``lr`` with ``method`` (``gd``; ``sign``, ``coordinate`` or ``adam`` to see the failure);
    ``flow_tol`` (``1e-6``) for the gradient flow to ``flow_time`` sampled at ``n_eval`` times
    (its ODE solver, run with ``flow_rtol``/``flow_atol``, adapts its steps to each system separately,
    so the two flows agree to about the solver tolerance, not to rounding); ``direction_tol`` (``1e-6``) for
    the final directions.  ``kkt_kwargs`` are passed to :func:`verifier.check_kkt`.

    ``flow_max_evals`` (default 20,000) caps the gradient evaluations of each flow: a flow that
    slides along a ReLU kink makes any ODE solver crawl, and the check then reports an error
    (status ``"error"``) instead of hanging.

    ``trajectory_start`` is where the trajectory checks start: ``"given"`` (``params``),
    ``"unit"`` (``params / ||params||``: the same direction and activation pattern), a flat
    narrow parameter vector, or ``"auto"`` (default): ``"given"`` unless the dynamics would
    not move from there -- at a well-trained point the loss and its gradient underflow, and a
    trajectory that stays put would make the trajectory checks pass vacuously -- in which
    case ``"unit"``; the check's detail says which start ran.

    Every failure's ``detail`` says which condition failed and why.
    """
    wanted = list(checks)
    unknown = [c for c in wanted if c not in ALL_CHECKS]
    if unknown:
        raise EmbeddingError(f"check_embedding: unknown check(s) {unknown}; valid: {', '.join(ALL_CHECKS)}")
    if not isinstance(emb, Embedding):
        raise EmbeddingError(f"check_embedding: emb must be an Embedding, got {type(emb).__name__}")
    for name, v in (("tol", tol), ("iso_tol", iso_tol), ("kkt_tol", kkt_tol), ("traj_tol", traj_tol),
                    ("flow_tol", flow_tol), ("direction_tol", direction_tol)):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            raise EmbeddingError(f"check_embedding: {name}={v!r} must be a finite number >= 0")
    if isinstance(probes, bool) or not isinstance(probes, (int, np.integer)) or probes < 0:
        raise EmbeddingError(f"check_embedding: probes={probes!r} must be an integer >= 0")
    if method not in ("gd", "sign", "coordinate", "adam"):
        raise EmbeddingError(f"check_embedding: method={method!r} must be one of gd, sign, coordinate, adam")
    if params is None:
        params = emb.params
    needs_data = [c for c in wanted if c in ("kkt", "gd_trajectory", "flow_trajectory", "direction")]
    if needs_data:
        if X is None or y is None:
            raise EmbeddingError(f"check_embedding: checks {needs_data} need labelled data X and y; pass them or "
                                 "select checks=('isometry', 'function', 'gradient')")
        if params is None:
            raise EmbeddingError(f"check_embedding: checks {needs_data} need narrow parameters; pass params")
    if params is not None:
        params = emb.net.check_params(params)
    out: dict[str, Check] = {}
    iso = fun = grad = None
    if "isometry" in wanted:
        out["isometry"] = iso = check_isometry(emb, exact=exact, tol=iso_tol)
    if "function" in wanted:
        out["function"] = fun = check_function(emb, params, X, probes=probes, seed=seed, tol=tol)
    if "gradient" in wanted:
        out["gradient"] = grad = check_gradient(emb, params, X, probes=probes, seed=seed, tol=tol,
                                                function_ok=None if fun is None else fun.passed)
    why = _global_reason(emb, iso, fun, grad)
    if "kkt" in wanted:
        out["kkt"] = check_kkt_transfer(emb, params, X, y, tol=kkt_tol, kkt_kwargs=kkt_kwargs, reason=why)
    ends: list[tuple[str, np.ndarray, np.ndarray]] = []
    theta0 = emb.net.flatten(params) if params is not None else None
    start_note = ""
    if any(c in wanted for c in ("gd_trajectory", "flow_trajectory", "direction")):
        assert theta0 is not None  # these checks need params: refused above without them
        theta0, start_note = _trajectory_start(emb, theta0, X, y, loss, lr, gd_steps, trajectory_start)
    if "gd_trajectory" in wanted or "direction" in wanted:
        out_gd, end = _gd_check(emb, theta0, X, y, gd_steps, lr, method, loss, traj_tol, why)
        if "gd_trajectory" in wanted:
            out["gd_trajectory"] = out_gd
        if end is not None:
            ends.append((f"after {gd_steps} {_method_name(method)} steps", *end))
    if "flow_trajectory" in wanted or ("direction" in wanted and method == "gd"):
        out_fl, end = _flow_check(emb, theta0, X, y, flow_time, loss, n_eval, flow_tol, method, why,
                                  flow_rtol, flow_atol, flow_max_evals)
        if "flow_trajectory" in wanted:
            out["flow_trajectory"] = out_fl
        if end is not None:
            ends.append((f"at t = {flow_time:g} of the gradient flow", *end))
    if "direction" in wanted:
        out["direction"] = _direction_check(ends, emb, direction_tol, method, why)
    if start_note:
        for name in ("gd_trajectory", "flow_trajectory", "direction"):
            if name in out:
                out[name] = replace(out[name], detail=f"{out[name].detail} [{start_note}]")
    settings = {"checks": wanted, "gd_steps": gd_steps, "lr": lr, "flow_time": flow_time, "method": method,
                "loss": loss, "probes": probes, "seed": seed, "exact": exact, "tol": tol, "iso_tol": iso_tol,
                "kkt_tol": kkt_tol, "traj_tol": traj_tol, "flow_tol": flow_tol, "direction_tol": direction_tol,
                "n_eval": n_eval, "flow_rtol": flow_rtol, "flow_atol": flow_atol, "kkt_kwargs": dict(kkt_kwargs or {}),
                "trajectory_start": trajectory_start if isinstance(trajectory_start, str) else "custom",
                "flow_max_evals": flow_max_evals}
    return EmbeddingReport(emb, out, settings)


def _trajectory_start(emb: Embedding, theta: np.ndarray, X: Any, y: Any, loss: str, lr: float, steps: int,
                      how: Any) -> tuple[np.ndarray, str]:
    """The narrow starting point of the trajectory checks and a note saying which one it is."""
    if not isinstance(how, str):
        start = emb.net.flatten(emb.net.check_params(how, where="trajectory_start"))
        return start, "trajectories start at the given trajectory_start point"
    if how not in ("auto", "given", "unit"):
        raise EmbeddingError(f"check_embedding: trajectory_start={how!r} must be 'auto', 'given', 'unit' "
                             "or a narrow parameter vector")
    norm = float(np.linalg.norm(theta))
    if how == "given" or norm == 0:
        return theta, ""
    if how == "unit":
        return theta / norm, "trajectories start at params/||params||"
    from ..dynamics import loss_and_grad

    try:
        _, g = loss_and_grad(emb.net, theta, X, y, loss=loss)
        stuck = float(np.linalg.norm(g)) * lr * max(steps, 1) <= 1e-9 * max(1.0, norm)
    except VerifierError:  # the loss overflows or underflows beyond float64
        stuck = True
    if not stuck:
        return theta, ""
    return theta / norm, ("the given point is so well trained that its loss gradient underflows and the dynamics "
                          "would not move (a vacuous comparison), so trajectories start at params/||params|| "
                          "(same direction, same activation pattern)")


def _method_name(method: str) -> str:
    return {"gd": "gradient-descent", "sign": "sign-descent", "coordinate": "coordinate-descent",
            "adam": "Adam"}[method]


def _gd_check(emb, theta0, X, y, steps, lr, method, loss, tol, why):
    from ..dynamics import iterates

    try:
        a = iterates(emb.net, theta0, X, y, steps=steps, lr=lr, loss=loss, method=method)
        b = iterates(emb.wide_net, emb.apply(theta0), X, y, steps=steps, lr=lr, loss=loss, method=method)
    except VerifierError as e:
        return Check(False, float("nan"), f"could not run {_method_name(method)}: {e}", tol=tol, status="error"), None
    fig, k, dev, disp = _deviation(emb, a, b)
    name = _method_name(method)
    data = {"steps": steps, "lr": lr, "method": method, "worst_step": k, "deviation": dev, "displacement": disp}
    if fig <= tol:
        return Check(True, fig, f"{steps} {name} steps (lr {lr:g}) from theta_0 and T theta_0: theta~_k = T theta_k "
                                f"(max ||theta~_k - T theta_k|| = {dev:.2g}, {fig:.2g} of the distance moved "
                                f"{disp:.3g}; tol {tol:g})", tol=tol, data=data), (a[-1], b[-1])
    reason = _combine(method, why)
    detail = (f"{name} trajectories differ: max ||theta~_k - T theta_k|| = {dev:.3g} is {fig:.3g} of the distance "
              f"moved {disp:.3g} > tol {tol:g} (largest at step {k} of {steps}, lr {lr:g})"
              + (f" -- {reason}" if reason else ""))
    return Check(False, fig, detail, tol=tol, data=data), (a[-1], b[-1])


def _flow_check(emb, theta0, X, y, t_end, loss, n_eval, tol, method, why, rtol, atol, max_evals):
    from ..dynamics import gradient_flow

    try:
        ta, a = gradient_flow(emb.net, theta0, X, y, t_end=t_end, loss=loss, n_eval=n_eval, rtol=rtol, atol=atol,
                              max_evals=max_evals)
        tb, b = gradient_flow(emb.wide_net, emb.apply(theta0), X, y, t_end=t_end, loss=loss, n_eval=n_eval,
                              rtol=rtol, atol=atol, max_evals=max_evals)
    except VerifierError as e:
        return Check(False, float("nan"), f"could not integrate the gradient flow: {e}", tol=tol, status="error"), None
    if ta.shape != tb.shape or not np.allclose(ta, tb):
        b = np.stack([np.interp(ta, tb, b[:, j]) for j in range(b.shape[1])], axis=1)
    fig, k, dev, disp = _deviation(emb, a, b)
    note = "" if method == "gd" else f" (the flow is always the gradient flow; method={method!r} applies to the steps)"
    data = {"t_end": t_end, "n_eval": n_eval, "worst_time": float(ta[k]), "deviation": dev, "displacement": disp}
    allowed, err_note = tol * disp, ""
    if dev > allowed:
        # the two flows are integrated separately, each with its own adaptive steps: they agree only up to the
        # integrators' errors.  Estimate the narrow one's by re-integrating at 1/FLOW_REF_FACTOR of the
        # tolerances; allow FLOW_ERR_SLACK times it (the wide run's error is of the same size).
        try:
            _, ref = gradient_flow(emb.net, theta0, X, y, t_end=t_end, loss=loss, n_eval=n_eval,
                                   rtol=rtol / FLOW_REF_FACTOR, atol=atol / FLOW_REF_FACTOR, max_evals=max_evals)
            err = float(np.linalg.norm(a - ref[: a.shape[0]], axis=1).max()) if ref.shape == a.shape else None
        except VerifierError:
            err = None
        if err is not None:
            allowed = tol * disp + FLOW_ERR_SLACK * err
            data["integrator_error"] = err
            err_note = (f"; integrator error about {err:.2g} (narrow flow re-integrated at rtol/{FLOW_REF_FACTOR:g}), "
                        f"allowed {tol:g} x move + {FLOW_ERR_SLACK:g} x error = {allowed:.2g}")
    data["allowed_deviation"] = allowed
    if dev <= allowed:
        return Check(True, fig, f"gradient flows from theta_0 and T theta_0 over [0, {t_end:g}]: theta~(t) = T theta(t) "
                                f"(max ||theta~(t) - T theta(t)|| = {dev:.2g}, {fig:.2g} of the distance moved "
                                f"{disp:.3g}; tol {tol:g}{err_note}){note}", tol=tol, data=data), (a[-1], b[-1])
    detail = (f"gradient-flow trajectories differ: max_t ||theta~(t) - T theta(t)|| = {dev:.3g} is {fig:.3g} of the "
              f"distance moved {disp:.3g} > tol {tol:g}{err_note} (largest at t = {float(ta[k]):.3g})"
              + (f" -- {why}" if why else "") + note)
    return Check(False, fig, detail, tol=tol, data=data), (a[-1], b[-1])


def _direction_check(ends, emb, tol, method, why):
    if not ends:
        return Check(False, float("nan"), "no trajectory could be computed, so there is no final direction to compare",
                     tol=tol, status="error")
    worst = (-1.0, "")
    for label, a_end, b_end in ends:
        na = float(np.linalg.norm(a_end))
        mapped = emb.apply(a_end) / na if na > 0 else emb.apply(a_end)
        d = float(np.linalg.norm(mapped - _unit(b_end)))
        if d > worst[0]:
            worst = (d, label)
    fig, label = worst
    where = " and ".join(label for label, _a, _b in ends)
    if fig <= tol:
        return Check(True, fig, f"T theta/||theta|| = theta~/||theta~|| {where} (largest distance {fig:.2g} <= tol "
                                f"{tol:g})", tol=tol)
    reason = _combine(method, why) if "steps" in label else why
    detail = (f"final directions differ {label}: ||T theta/||theta|| - theta~/||theta~|||| = {fig:.3g} > tol {tol:g}"
              + (f" -- {reason}" if reason else ""))
    return Check(False, fig, detail, tol=tol)
