"""One evaluation loop: exact forward pass (with the activation pattern) and weighted backward pass.

The loop knows nothing about individual ops: each node's value and
vector-Jacobian product come from its rule (:mod:`.rules`), in the style of an
``eval_jaxpr`` interpreter.  :func:`evaluate_point` gives the exact figures of
one network at one point: margins, and with multipliers ``v = sum_r lambda_r
h_r``, ``eps2``, ``delta``, ``delta_max``; :func:`relaxation_needed` the
subgradient notion those figures need (docs/math.md section 7).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np

from .. import exact as E
from ..exact import Q
from .ir import Net
from .limits import current, too_big
from .rules import RULES


@dataclass
class SelEntry:
    """One kink selection: activation derivative ``s`` or max-pool ``weights`` at (node, sample[, row], unit)."""

    index: int
    node: str
    sample: int
    row: int | None
    unit: tuple[int, ...]
    s: Fraction | None = None
    weights: list[Fraction] | None = None


class Evaluator:
    """Exact forward pass of one network at one point, and weighted backward passes at it."""

    def __init__(self, net: Net, params: dict[str, Q], X: Q):
        self.net, self.params = net, params
        n = X.shape[0]
        if net.activation_entries(n) > current().max_entries:
            raise too_big(f"{net.where}.nodes", f"a node's value over the {n} samples has",
                          f"{net.activation_entries(n):,} entries", "max_entries")
        self.vals: dict[str, Q] = {}
        #: exact kinks: (node, sample, unit)
        self.kinks: list[tuple[str, int, tuple[int, ...]]] = []
        self.used: set[int] = set()
        self.argmax: dict[str, np.ndarray] = {}
        #: per node, units whose value is locally constant 0 in theta (no kink can come from them)
        self.const_zero: dict[str, np.ndarray] = {}
        self._idx: np.ndarray | None = None
        for name in net.order:
            nd = net.nodes[name]
            self.vals[name] = X if nd.op == "input" else RULES[nd.op].forward(self, nd, [self.vals[s] for s in nd.inputs])

    def record_kinks(self, node: str, mask: np.ndarray) -> None:
        n = mask.shape[0]
        flat = np.argwhere(np.asarray(mask).reshape(n, -1))
        if flat.size:
            units = np.unravel_index(flat[:, 1], mask.shape[1:])
            for t, i in enumerate(flat[:, 0]):
                self.kinks.append((node, int(i), tuple(int(u[t]) for u in units)))

    def argmax_rows(self, node: str) -> np.ndarray:
        a = self.argmax[node]
        return a if self._idx is None else a[self._idx]

    def weighted_gradient(self, gout: Q, idx: np.ndarray, sels: dict[str, dict[tuple[int, tuple[int, ...]], SelEntry]]
                          ) -> dict[str, Q]:
        """``sum_v grad_theta <gout_v, Phi(theta; x_idx[v])>`` with the activation pattern of each entry.

        ``idx`` maps entries of the (virtual) batch to samples; ``sels[node][(entry, unit)]`` holds the
        kink selections.  Returns tensor -> exact gradient.
        """
        net = self.net
        cot: dict[str, Q] = {net.output: gout}
        grads: dict[str, Q] = {}
        plain = len(idx) == self.vals[net.input].shape[0] and bool(np.all(idx == np.arange(len(idx))))
        self._idx = None if plain else idx
        cache: dict[str, Q] = {}

        def val(s: str) -> Q:
            if plain:
                return self.vals[s]
            if s not in cache:
                cache[s] = self.vals[s].take(idx)
            return cache[s]

        for name in reversed(net.order):
            if name not in cot:
                continue
            g = cot.pop(name)
            nd = net.nodes[name]
            if nd.op == "input":
                continue
            backs, pg = RULES[nd.op].backward(self, nd, g, [val(s) for s in nd.inputs], sels)
            grads.update(pg)
            for src, b in zip(nd.inputs, backs):
                if b is None or src not in net.param_dep:
                    continue
                cot[src] = E.add(cot[src], b) if src in cot else b
        self._idx = None
        for p in net.pnames:  # tensors no margin depends on get a zero gradient
            if p not in grads:
                grads[p] = Q(E.zeros(net.pshapes[p]), 1)
        return grads


# ---------------------------------------------------------------------------
# exact figures of one network at one point
# ---------------------------------------------------------------------------
def rows_of(C: int, y: list[int]) -> list[tuple[int, int]]:
    """Constraint rows (sample, other class); other = -1 for binary."""
    if C == 1:
        return [(i, -1) for i in range(len(y))]
    return [(i, j) for i in range(len(y)) for j in range(C) if j != y[i]]


def _margins(out: Q, y: list[int], rows: list[tuple[int, int]]) -> np.ndarray:
    num = out.num
    if rows and rows[0][1] < 0:
        q = np.asarray(y, dtype=np.int64).astype(object) * num[:, 0]
        return q
    q = np.empty(len(rows), dtype=object)
    for r, (i, j) in enumerate(rows):
        q[r] = num[i, y[i]] - num[i, j]
    return q


def sumsq(a: Q) -> Fraction:
    return Fraction(E.dot_int(a.num, a.num), a.den * a.den)


def dot(a: Q, b: Q) -> Fraction:
    return Fraction(E.dot_int(a.num, b.num), a.den * b.den)


def diff(a: Q, b: Q) -> Q:
    (x, y), D = E.align(a, b)
    return Q(x - y, D)


def evaluate_point(net: Net, params: dict[str, Q], X: Q, y: list[int], lam: list[Fraction] | None,
                   sel: list[SelEntry], *, gradient: bool = True, ev: Evaluator | None = None) -> dict[str, Any]:
    """Exact margins and, with multipliers, ``v``, ``eps2``, ``delta``, ``delta_max`` of one network."""
    ev = ev if ev is not None else Evaluator(net, params, X)
    out = ev.vals[net.output]
    C = net.shapes[net.output][0]
    rows = rows_of(C, y)
    qnum = _margins(out, y, rows)
    qden = out.den
    fig: dict[str, Any] = {"evaluator": ev, "rows": rows, "q_num": qnum, "q_den": qden}
    fig["margins"] = [Fraction(int(v), qden) for v in qnum]
    fig["min_margin"] = min(fig["margins"]) if rows else None
    fig["theta_norm2"] = sum((sumsq(params[p]) for p in net.pnames), Fraction(0))
    fig["kinks"] = ev.kinks
    if lam is None:
        return fig
    Dl = E.lcm(*(f.denominator for f in lam)) if lam else 1
    lnum = np.empty(len(lam), dtype=object)
    lnum[:] = [f.numerator * (Dl // f.denominator) for f in lam]
    excess = lnum * (qnum - qden)  # lambda_r (q_r - 1) * Dl * qden
    fig["delta"] = Fraction(int(excess.sum()) if len(lam) else 0, Dl * qden)
    fig["delta_max"] = Fraction(int(max(excess)), Dl * qden) if len(lam) else Fraction(0)
    fig["sum_multipliers"] = Fraction(int(lnum.sum()) if len(lam) else 0, Dl)
    fig["support"] = [r for r, f in enumerate(lam) if f != 0]
    fig["support_samples"] = sorted({rows[r][0] for r in fig["support"]})
    if not gradient:
        return fig
    # virtual batch: rows of one sample that share their kink selections are summed into one entry
    by_sample: dict[int, list[SelEntry]] = {}
    for e in sel:
        by_sample.setdefault(e.sample, []).append(e)
    groups: dict[tuple[int, tuple[int, ...]], int] = {}
    idx: list[int] = []
    vsel: dict[str, dict[tuple[int, tuple[int, ...]], SelEntry]] = {}
    gout_rows: list[list[Any]] = []
    for r, (i, j) in enumerate(rows):
        if lnum[r] == 0:
            continue
        es = [e for e in by_sample.get(i, []) if e.row is None or e.row == r]
        key = (i, tuple(sorted(e.index for e in es)))
        v = groups.get(key)
        if v is None:
            v = groups[key] = len(idx)
            idx.append(i)
            gout_rows.append([0] * C)
            for e in sorted(es, key=lambda e: e.row is not None):  # row-specific entries win
                vsel.setdefault(e.node, {})[(v, e.unit)] = e
        g = gout_rows[v]
        if j < 0:
            g[0] += y[i] * lnum[r]
        else:
            g[y[i]] += lnum[r]
            g[j] -= lnum[r]
    gout = E.zeros((len(idx), C))
    for v, g in enumerate(gout_rows):
        gout[v, :] = g
    vgrad = ev.weighted_gradient(Q(gout, Dl), np.array(idx, dtype=np.int64), vsel)
    fig["v"] = vgrad
    fig["eps2"] = sum((sumsq(diff(params[p], vgrad[p])) for p in net.pnames), Fraction(0))
    fig["theta_dot_v"] = sum((dot(params[p], vgrad[p]) for p in net.pnames), Fraction(0))
    fig["lambda_dot_q"] = Fraction(E.dot_int(lnum, qnum), Dl * qden)
    return fig


RELAXATIONS = ("none", "exact", "chain-rule")


def relaxation_needed(net: Net, kinks: list[tuple[str, int, tuple[int, ...]]],
                      samples: list[int] | None) -> tuple[str, str]:
    """The subgradient notion the statement needs, from the exact kinks of the samples that carry weight.

    docs/math.md section 7, per sample: ``"exact"`` when every kink of every sample with a positive
    multiplier sits in a kinked elementwise activation fed by ``input -> dense [-> bias]`` (the first
    hidden layer, whatever the depth after it), which also means no deeper unit of that sample is at
    a kink; ``"none"`` without kinks; ``"chain-rule"`` otherwise.
    """
    if samples is not None:
        keep = set(samples)
        kinks = [k for k in kinks if k[1] in keep]
    if not kinks:
        return "none", ("no pre-activation of a supported sample is exactly 0: the margins are differentiable "
                        "there, the h_r are gradients")
    node, i, unit = kinks[0]
    where = f"{len(kinks)} exact kink(s) at supported samples, e.g. node {node!r} sample {i} unit {list(unit)}"
    first = {n: net.first_layer(n) for n in {k[0] for k in kinks}}
    deeper = [k for k in kinks if not first[k[0]]]
    if not deeper:
        return "exact", where + (" (all in the first hidden layer, fed by input -> dense: the selections are Clarke "
                                 "subgradients)")
    node, i, unit = deeper[0]
    return "chain-rule", where + (f" (node {node!r} sample {i} unit {list(unit)} is not in the first hidden layer: "
                                  "chain-rule selections, a superset of the Clarke subdifferential)")
