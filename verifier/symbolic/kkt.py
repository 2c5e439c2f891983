"""KKT systems of the max-margin problem as sympy objects, and their exact solutions.

(P_Phi) (docs/math.md sections 2-3): minimise ``1/2 ||theta||^2`` subject to
``q_r(theta) >= 1``.  :func:`kkt_system` writes the Lagrangian
``1/2 ||theta||^2 - sum_r lambda_r (q_r - 1)``, stationarity
``theta_j - sum_r lambda_r dq_r/dtheta_j = 0``, primal feasibility
``q_r >= 1``, complementary slackness ``lambda_r (q_r - 1) = 0`` and dual
feasibility ``lambda_r >= 0``, with ``relu' = step`` (``step(0)`` is any
``s`` in the Clarke interval, see :mod:`verifier.symbolic.functions`).

Activation regions.  Every kinked unit of every sample (ReLU, leaky ReLU,
abs, ReLU power, a max-pooling window) gets a *choice*:

* ``+`` (pre-activation ``z > 0``), ``-`` (``z < 0``) or ``0`` (``z = 0``, a
  kink: the unit's derivative is a variable ``s`` in its Clarke interval,
  ``[0, 1]`` for ReLU, ``[min(a, 1), max(a, 1)]`` for leaky ReLU, ``[-1, 1]``
  for abs);
* for a max-pooling window, the set ``S`` of entries attaining the maximum
  (ties ``|S| >= 2``: gradient ``sum_{k in S} s_k grad z_k`` with ``s >= 0``,
  ``sum s = 1``).

In a region the margins are polynomials in ``theta`` and the KKT system is
polynomial (:class:`RegionSystem`).  :func:`solve_kkt` enumerates regions and
active sets, solves each polynomial system exactly with sympy, and keeps the
real solutions that satisfy their region (strict inequalities for ``+``/``-``,
equations for ``0``), ``lambda_r > 0`` on the active set, ``q_r >= 1`` off it,
and ``s`` in its interval.  Each point is found in exactly one region/active
set (the one its signs and positive multipliers define).  At kinks the
gradient is the chain rule with the selected derivatives: for kinks in one
elementwise node fed by ``input -> dense [-> bias]`` this is the exact Clarke
subdifferential (``relaxation = "exact"``); otherwise it is the chain-rule
superset (``relaxation = "chain-rule"``), as in :mod:`verifier.kkt`.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np
import sympy as sp

from ..analysis.homogeneity import degree
from ..analysis.symbolic_eval import param_symbols, symbolic_forward
from ..errors import VerifierError
from ..kkt.kinks import exact_relaxation
from ..numeric.data import check_inputs, check_labels, constraints
from ..ops.base import SymFns
from ._common import (Budget, SymbolicLimitError, UndecidedError, check_limit, is_finite_expr, is_real, is_zero, sign,
                      to_rational)
from .expressions import network_expr

__all__ = ["KKTSystem", "RegionSystem", "KKTPoint", "KKTSolution", "kkt_system", "solve_kkt"]


# ----------------------------------------------------------------------------- data


def _data(net, X: Any, y: Any) -> tuple[list[np.ndarray], Any, list[str]]:
    Xa = check_inputs(net, X)
    ya = check_labels(net, y, Xa.shape[0])
    cons = constraints(net, ya)
    Xs = []
    for i in range(Xa.shape[0]):
        xi = np.empty(Xa.shape[1:], dtype=object)
        for idx in np.ndindex(xi.shape):
            xi[idx] = to_rational(Xa[i][idx])
        Xs.append(xi)
    labels = [cons.label(r) for r in range(cons.m)]
    return Xs, cons, labels


def _row_value(cons, r: int, out: Sequence[sp.Expr]) -> sp.Expr:
    return sp.Add(*[int(round(c)) * o for c, o in zip(cons.coef[r], out) if c != 0])


def _units(net) -> list[tuple[str, tuple[int, ...], str, Any]]:
    """Piecewise units of one sample in the order ``symbolic_forward`` visits them: (node, unit, kind, arg).

    Asked of the op: ``"max"`` (window size) for a max-pooling kink, ``"pl"``
    (the exact Clarke interval) for an elementwise kink, ``"smooth"`` for a
    piecewise op that is differentiable (``relu^k``, ``k >= 2``).
    """
    out = []
    for name in net.order:
        node = net.nodes[name]
        impl, attrs = node.impl, node.attrs
        if not impl.is_piecewise(attrs):
            continue
        kind = impl.kink_kind(attrs)
        if kind == "maxpool":
            unit = ("max", impl.window_size(attrs))
        elif kind == "elementwise":
            unit = ("pl", impl.clarke_interval(attrs))
        else:
            unit = ("smooth", None)  # differentiable at 0: no Clarke variable
        for idx in np.ndindex(net.shapes[name]):
            out.append((name, idx, *unit))
    return out


def _unit_name(node: str, idx: tuple[int, ...]) -> str:
    return f"{node}[{','.join(map(str, idx))}]"


def _choices(kind: str, arg: Any) -> list[Any]:
    if kind in ("pl", "smooth"):
        return ["+", "-", "0"]
    w = int(arg)
    return [S for k in range(1, w + 1) for S in itertools.combinations(range(w), k)]


def _choice_str(ch: Any) -> str:
    return ch if isinstance(ch, str) else "max" + "=".join(map(str, ch))


# ----------------------------------------------------------------------------- one sample in one pattern


class _PatternFns(SymFns):
    """Replace kinked pieces by the branch of a fixed pattern; record pre-activations.

    A kink (``0``) is ``s (z - Z)`` with ``Z`` a placeholder substituted by
    ``z`` after differentiation: the value is 0 and the gradient
    ``s grad z`` (chain rule with derivative ``s``).  Ties of a max work alike.
    """

    def __init__(self, choices: Sequence[Any], units: list, sample: int):
        self.choices = choices
        self.units = units
        self.sample = sample
        self.i = 0
        self.zmap: dict[sp.Dummy, sp.Expr] = {}
        self.records: list[Any] = []
        self.svars: dict[int, Any] = {}

    def _clean(self, z: sp.Expr) -> sp.Expr:
        return sp.expand(sp.sympify(z).xreplace(self.zmap))

    def _svar(self, suffix: str = "") -> sp.Symbol:
        node, idx, _, _ = self.units[self.i]
        return sp.Symbol(f"s_{self.sample}_{node}_{'_'.join(map(str, idx))}{suffix}", real=True)

    def pl(self, z: sp.Expr, pos: sp.Expr, neg: sp.Expr) -> sp.Expr:
        i = self.i
        ch = self.choices[i]
        self.records.append(self._clean(z))
        try:
            if ch == "+":
                return pos * z
            if ch == "-":
                return neg * z
            if self.units[i][2] == "smooth":
                return sp.Integer(0)  # relu(z)^k, k >= 2: value and gradient 0 at z = 0
            Z = sp.Dummy()
            self.zmap[Z] = self.records[-1]
            s = self._svar()
            self.svars[i] = s
            return s * (z - Z)
        finally:
            self.i += 1

    def max(self, zs):
        i = self.i
        S = self.choices[i]
        self.records.append([self._clean(z) for z in zs])
        try:
            if len(S) == 1:
                return zs[S[0]]
            Zs = {k: sp.Dummy() for k in S}
            for k in S:
                self.zmap[Zs[k]] = self.records[-1][k]
            ss = {k: self._svar(f"__{k}") for k in S}
            self.svars[i] = ss
            return Zs[S[0]] + sp.Add(*[ss[k] * (zs[k] - Zs[k]) for k in S])
        finally:
            self.i += 1

    def sigmoid(self, z):  # pragma: no cover - rejected by the degree check first
        raise SymbolicLimitError("sigmoid is not piecewise polynomial")

    tanh = sigmoid


@dataclass
class _SamplePiece:
    """One sample in one pattern: margins, gradients, region conditions, Clarke variables."""

    sample: int
    choices: tuple[Any, ...]
    rows: list[int]
    values: dict[int, sp.Expr]  # row -> polynomial q_r
    grads: dict[int, list[sp.Expr]]  # row -> gradient (polynomials in theta and s)
    equalities: list[sp.Expr]  # = 0
    strict: list[sp.Expr]  # > 0
    svars: list[sp.Symbol]
    s_bounds: list[tuple[sp.Symbol, sp.Expr, sp.Expr]]  # lo <= s <= hi
    s_sums: list[sp.Expr]  # = 0 (max ties: sum s - 1)
    kinks: list[tuple[int, str, tuple[int, ...]]]
    kink_nodes: set[str]


class _Builder:
    def __init__(self, net, Xs: list[np.ndarray], cons, labels: list[str]):
        self.net = net
        self.Xs = Xs
        self.cons = cons
        self.labels = labels
        self.syms = param_symbols(net)
        self.theta = [s for p in net.param_names for s in self.syms[p].ravel()]
        self.units = _units(net)
        self.rows_of = {i: [r for r in range(cons.m) if int(cons.sample[r]) == i] for i in range(cons.n)}

    def n_patterns(self) -> int:
        return math.prod(len(_choices(k, a)) for _, _, k, a in self.units)

    def patterns(self) -> Iterator[tuple[Any, ...]]:
        return itertools.product(*[_choices(k, a) for _, _, k, a in self.units])

    def piece(self, i: int, choices: tuple[Any, ...]) -> _SamplePiece | None:
        """The sample in the pattern, or None when the pattern is empty or makes a margin identically 0."""
        fns = _PatternFns(choices, self.units, i)
        out = list(symbolic_forward(self.net, self.Xs[i], self.syms, fns).ravel())
        if fns.i != len(self.units):  # pragma: no cover - the visiting order is the op contract
            raise RuntimeError(f"symbolic_forward visited {fns.i} kinked units, expected {len(self.units)}")
        eqs, strict, bounds, sums, svars, kinks, knodes = [], [], [], [], [], [], set()
        for u, (ch, rec) in enumerate(zip(choices, fns.records)):
            node, idx, kind, arg = self.units[u]
            if kind == "smooth":
                if ch == "0":
                    eqs.append(rec)
                else:
                    strict.append(rec if ch == "+" else -rec)
            elif kind == "pl":
                if ch == "+":
                    strict.append(rec)
                elif ch == "-":
                    strict.append(-rec)
                else:
                    eqs.append(rec)
                    s = fns.svars[u]
                    svars.append(s)
                    bounds.append((s, arg[0], arg[1]))
                    kinks.append((i, node, idx))
                    knodes.add(node)
            else:
                k0 = ch[0]
                for k in range(len(rec)):
                    if k in ch[1:]:
                        eqs.append(sp.expand(rec[k] - rec[k0]))
                    elif k not in ch:
                        strict.append(sp.expand(rec[k0] - rec[k]))
                if len(ch) > 1:
                    ss = fns.svars[u]
                    svars.extend(ss.values())
                    bounds.extend((s, sp.Integer(0), sp.Integer(1)) for s in ss.values())
                    sums.append(sp.Add(*ss.values()) - 1)
                    kinks.append((i, node, idx))
                    knodes.add(node)
        for e in strict:
            if e.is_number and not e > 0:
                return None
        for e in eqs:
            if e.is_number and e != 0:
                return None
        values, grads = {}, {}
        zmap = fns.zmap
        for r in self.rows_of[i]:
            q = _row_value(self.cons, r, out)
            v = sp.expand(q.xreplace(zmap))
            if v.is_number and not v >= 1:
                return None  # q_r is a constant < 1 (typically 0) throughout the region: infeasible
            values[r] = v
            grads[r] = [sp.expand(sp.diff(q, t).xreplace(zmap)) for t in self.theta]
        return _SamplePiece(i, tuple(choices), self.rows_of[i], values, grads, eqs, strict, svars, bounds, sums,
                            kinks, knodes)


# ----------------------------------------------------------------------------- the system, printed


def _latex_block(title: str, items: Sequence[Any]) -> str:
    return rf"&\text{{{title}}}\\" + "\n" + "\\\\\n".join("&\\quad " + sp.latex(e) for e in items) + r"\\"


@dataclass
class RegionSystem:
    """The polynomial KKT system of one activation region (see the module docstring).

    ``choices[i]`` is the per-unit choice of sample ``i`` (units in ``units``);
    ``margins[r]`` the polynomial ``q_r``; ``gradients[r]`` its chain-rule
    gradient (with Clarke variables ``s``); ``equalities`` (``= 0``) and
    ``strict`` (``> 0``) describe the region; ``s_bounds`` the Clarke
    intervals.  :meth:`equations` gives the square-ish system for an active set.
    """

    theta: list[sp.Symbol]
    lambdas: list[sp.Symbol]
    units: list[str]
    choices: tuple[tuple[Any, ...], ...]
    margins: dict[int, sp.Expr]
    gradients: dict[int, list[sp.Expr]]
    equalities: list[sp.Expr]
    strict: list[sp.Expr]
    s_bounds: list[tuple[sp.Symbol, sp.Expr, sp.Expr]]
    s_sums: list[sp.Expr]
    s_of_sample: dict[int, list[sp.Symbol]]
    samples_of_row: dict[int, int]
    kinks: list[tuple[int, str, tuple[int, ...]]]
    kink_nodes_of_sample: dict[int, set[str]]

    @property
    def label(self) -> str:
        if not self.units:
            return "(no kinked units: one region)"
        return "; ".join(f"x{i}: " + " ".join(_choice_str(c) for c in ch) for i, ch in enumerate(self.choices))

    def equations(self, active: Sequence[int]) -> tuple[list[sp.Expr], list[sp.Symbol]]:
        """Polynomial equations (``= 0``) and unknowns for the active set ``active`` (other ``lambda_r = 0``)."""
        act = sorted(active)
        lam = {r: self.lambdas[r] for r in act}
        eqs = [t - sp.Add(*[lam[r] * self.gradients[r][j] for r in act]) for j, t in enumerate(self.theta)]
        eqs += [self.margins[r] - 1 for r in act]
        eqs += list(self.equalities)
        samples = {self.samples_of_row[r] for r in act}
        svars = [s for i in sorted(samples) for s in self.s_of_sample.get(i, [])]
        sset = set(svars)
        eqs += [e for e in self.s_sums if e.free_symbols & sset]
        eqs = [sp.expand(e) for e in eqs]
        eqs = [e for e in eqs if e != 0]
        used = set().union(*(e.free_symbols for e in eqs)) if eqs else set()
        unknowns = list(self.theta) + [lam[r] for r in act] + [s for s in svars if s in used]
        return eqs, unknowns


@dataclass
class KKTSystem:
    """The KKT conditions of (P_Phi) for data ``(X, y)`` as sympy objects.

    ``theta`` (flat order), ``lambdas`` (one per constraint row, labelled by
    ``labels``), ``margins`` ``q_r(theta)`` (with :class:`relu`),
    ``lagrangian``, ``stationarity`` (``Eq(dL/dtheta_j, 0)``), ``primal``
    (``q_r >= 1``), ``slackness`` (``Eq(lambda_r (q_r - 1), 0)``), ``dual``
    (``lambda_r >= 0``).  Derivatives use ``relu' = step``; ``step(0)`` is any
    value in the unit's Clarke interval.
    """

    theta: list[sp.Symbol]
    lambdas: list[sp.Symbol]
    labels: list[str]
    margins: list[sp.Expr]
    lagrangian: sp.Expr
    stationarity: list[sp.Eq]
    primal: list[sp.Rel]
    slackness: list[sp.Eq]
    dual: list[sp.Rel]
    degree: Any
    _builder: Any = field(default=None, repr=False)

    def __str__(self) -> str:
        lines = [f"KKT system of min 1/2 ||theta||^2 s.t. q_r(theta) >= 1  ({len(self.theta)} parameters, "
                 f"{len(self.lambdas)} constraints, degree L = {self.degree})",
                 f"Lagrangian: {self.lagrangian}", "margins:"]
        lines += [f"  q_{r} [{self.labels[r]}] = {q}" for r, q in enumerate(self.margins)]
        lines.append("stationarity (dL/dtheta_j = 0; relu' = step, step(0) = any s in the Clarke interval):")
        lines += [f"  {e.lhs} = 0" for e in self.stationarity]
        lines.append("primal feasibility:")
        lines += [f"  {e}" for e in self.primal]
        lines.append("complementary slackness:")
        lines += [f"  {e.lhs} = 0" for e in self.slackness]
        lines.append("dual feasibility:")
        lines += [f"  {e}" for e in self.dual]
        return "\n".join(lines)

    def latex(self) -> str:
        """The system as one LaTeX ``aligned`` block."""
        parts = [r"\begin{aligned}",
                 r"&\mathcal{L}(\theta,\lambda) = " + sp.latex(self.lagrangian) + r"\\",
                 _latex_block("margins", [sp.Eq(sp.Symbol(f"q_{{{r}}}"), q, evaluate=False) for r, q in enumerate(self.margins)]),
                 _latex_block("stationarity", self.stationarity),
                 _latex_block("primal feasibility", self.primal),
                 _latex_block("complementary slackness", self.slackness),
                 _latex_block("dual feasibility", self.dual),
                 r"\end{aligned}"]
        return "\n".join(parts)

    def n_regions(self) -> int:
        """Number of activation patterns before pruning (choices per unit, over all samples)."""
        return self._builder.n_patterns() ** len(self._builder.Xs)

    def region(self, choices: Sequence[Sequence[Any]]) -> RegionSystem | None:
        """The polynomial system of one region (``choices[i]`` per sample), or None if it is empty/infeasible.

        Choices are ``"+"``, ``"-"``, ``"0"`` per elementwise unit and a tuple of
        tied indices per max-pooling window.
        """
        b = self._builder
        if len(choices) != len(b.Xs):
            raise VerifierError(f"region: {len(choices)} per-sample patterns for {len(b.Xs)} samples; give one per sample")
        pieces = []
        for i, ch in enumerate(choices):
            ch = tuple(ch)
            if len(ch) != len(b.units):
                raise VerifierError(f"region: sample {i} has {len(ch)} choices, the network has {len(b.units)} kinked "
                                    f"units {[_unit_name(n, u) for n, u, _, _ in b.units]}")
            for u, c in enumerate(ch):
                valid = _choices(b.units[u][2], b.units[u][3])
                if c not in valid:
                    raise VerifierError(f"region: sample {i}, unit {_unit_name(*b.units[u][:2])}: choice {c!r} is not "
                                        f"one of {valid[:6]}{' ...' if len(valid) > 6 else ''}")
            pc = b.piece(i, ch)
            if pc is None:
                return None
            pieces.append(pc)
        return _combine(b, self.lambdas, pieces)


def _combine(b: _Builder, lambdas: list[sp.Symbol], pieces: Sequence[_SamplePiece]) -> RegionSystem:
    margins, grads, eqs, strict, bounds, sums, s_of, kinks, knodes = {}, {}, [], [], [], [], {}, [], {}
    for pc in pieces:
        margins.update(pc.values)
        grads.update(pc.grads)
        eqs += pc.equalities
        strict += pc.strict
        bounds += pc.s_bounds
        sums += pc.s_sums
        s_of[pc.sample] = pc.svars
        kinks += pc.kinks
        knodes[pc.sample] = pc.kink_nodes
    return RegionSystem(
        theta=b.theta, lambdas=lambdas, units=[_unit_name(n, i) for n, i, _, _ in b.units],
        choices=tuple(pc.choices for pc in pieces), margins=margins, gradients=grads, equalities=eqs,
        strict=strict, s_bounds=bounds, s_sums=sums, s_of_sample=s_of,
        samples_of_row={r: int(b.cons.sample[r]) for r in range(b.cons.m)}, kinks=kinks, kink_nodes_of_sample=knodes,
    )


def kkt_system(net, X: Any, y: Any, *, max_params: int | None = 64, max_samples: int | None = 64) -> KKTSystem:
    """The KKT conditions of (P_Phi) as sympy objects (see :class:`KKTSystem`).

    >>> import numpy as np, verifier
    >>> net = verifier.mlp([2, 1])
    >>> sys_ = kkt_system(net, np.array([[1.0, 0.0], [0.0, 2.0]]), np.array([1, -1]))
    >>> sys_.margins
    [W1_0_0, -2*W1_0_1]
    >>> sys_.stationarity[1]
    Eq(W1_0_1 + 2*lambda_1, 0)
    >>> sys_.slackness[0]
    Eq(lambda_0*(W1_0_0 - 1), 0)
    """
    L = degree(net)
    check_limit("the number of parameters", net.num_params, max_params, "max_params")
    Xs, cons, labels = _data(net, X, y)
    check_limit("the number of samples", len(Xs), max_samples, "max_samples")
    b = _Builder(net, Xs, cons, labels)
    theta = b.theta
    lambdas = [sp.Symbol(f"lambda_{r}", real=True) for r in range(cons.m)]
    outs = []
    for xi in Xs:
        o = network_expr(net, xi, max_params=None)
        outs.append(list(o) if isinstance(o, sp.MatrixBase) else [o])
    margins = [_row_value(cons, r, outs[int(cons.sample[r])]) for r in range(cons.m)]
    lag = sp.Rational(1, 2) * sp.Add(*[t**2 for t in theta]) - sp.Add(*[lam * (q - 1) for lam, q in zip(lambdas, margins)])
    stat = [sp.Eq(sp.diff(lag, t), 0) for t in theta]
    primal = [sp.Ge(q, 1, evaluate=False) for q in margins]
    slack = [sp.Eq(lam * (q - 1), 0) for lam, q in zip(lambdas, margins)]
    dual = [sp.Ge(lam, 0, evaluate=False) for lam in lambdas]
    return KKTSystem(theta, lambdas, labels, margins, lag, stat, primal, slack, dual, L, b)


# ----------------------------------------------------------------------------- exact points


@dataclass
class KKTPoint:
    """One exact KKT point (all numbers exact sympy algebraic numbers).

    ``theta`` (flat, the network's order) and ``params`` (named object
    arrays); ``multipliers`` (one per constraint row, 0 off the support);
    ``margins``; ``norm_sq``/``norm``; ``region`` (per-sample choices) and its
    ``label``; ``active`` rows; ``selections`` (Clarke derivative chosen at
    each kink of an active sample); ``kinks`` ``(sample, node, unit)`` with
    ``z = 0``; ``relaxation`` (``"none"``, ``"exact"``, ``"chain-rule"``);
    ``unique`` is False when the multipliers/selections are not unique and one
    valid choice is shown; ``is_min_norm`` marks the smallest norm found.
    """

    theta: list[sp.Expr]
    params: dict[str, np.ndarray]
    multipliers: list[sp.Expr]
    margins: list[sp.Expr]
    norm_sq: sp.Expr
    norm: sp.Expr
    region: tuple[tuple[Any, ...], ...]
    label: str
    active: tuple[int, ...]
    selections: dict[str, sp.Expr]
    kinks: list[tuple[int, str, tuple[int, ...]]]
    relaxation: str
    unique: bool
    euler_ok: bool
    is_min_norm: bool = False

    def theta_float(self) -> np.ndarray:
        return np.array([float(sp.N(v, 30)) for v in self.theta])

    def params_float(self) -> dict[str, np.ndarray]:
        return {k: np.array([float(sp.N(v, 30)) for v in a.ravel()]).reshape(a.shape) for k, a in self.params.items()}

    def multipliers_float(self) -> np.ndarray:
        return np.array([float(sp.N(v, 30)) for v in self.multipliers])

    def to_dict(self) -> dict[str, Any]:
        return {
            "theta": [str(v) for v in self.theta], "theta_float": self.theta_float().tolist(),
            "multipliers": [str(v) for v in self.multipliers], "margins": [str(v) for v in self.margins],
            "norm_sq": str(self.norm_sq), "norm": str(self.norm), "norm_float": float(sp.N(self.norm, 30)),
            "region": self.label, "active": list(self.active),
            "selections": {k: str(v) for k, v in self.selections.items()},
            "kinks": [{"sample": s, "node": n, "unit": list(u)} for s, n, u in self.kinks],
            "relaxation": self.relaxation, "unique_multipliers": self.unique, "min_norm": self.is_min_norm,
        }


@dataclass
class KKTFamily:
    """A positive-dimensional set of KKT points (e.g. rotations inside a hidden layer).

    ``theta``/``multipliers`` are expressions in the ``free`` symbols, valid
    where ``conditions`` hold; ``witness`` is one member verified exactly.
    """

    region: str
    active: list[int]
    free: list[sp.Symbol]
    theta: list[sp.Expr]
    multipliers: list[sp.Expr]
    conditions: list[str]
    witness: KKTPoint
    #: the open conditions as ``(kind, expression)`` (kind ``zero``/``pos``/``nonneg``), for exact membership tests
    pending: list[tuple[str, sp.Expr]] = field(default_factory=list, repr=False)

    def norm_sq_expr(self) -> sp.Expr:
        """``||theta||^2`` on the family, as an expression in ``free``."""
        return sp.expand(sp.Add(*[t**2 for t in self.theta]))

    def to_dict(self) -> dict[str, Any]:
        return {"region": self.region, "active": self.active, "free": [str(f) for f in self.free],
                "theta": [str(t) for t in self.theta], "multipliers": [str(v) for v in self.multipliers],
                "conditions": self.conditions, "witness": self.witness.to_dict()}


@dataclass
class KKTSolution:
    """Every exact KKT point found by :func:`solve_kkt`, grouped by region.

    ``complete`` is True when every region/active-set system was solved and
    decided; otherwise ``undecided`` lists what was not (never silently dropped).
    ``families`` lists positive-dimensional solution sets (e.g. rotations of a
    hidden layer) with their parametrisation and one verified member.
    """

    points: list[KKTPoint]
    families: list[KKTFamily]
    undecided: list[dict[str, Any]]
    degree: Any
    labels: list[str]
    param_names: list[str]
    stats: dict[str, Any]

    @property
    def complete(self) -> bool:
        return not self.undecided

    @property
    def by_region(self) -> dict[str, list[KKTPoint]]:
        out: dict[str, list[KKTPoint]] = {}
        for p in self.points:
            out.setdefault(p.label, []).append(p)
        return out

    def __len__(self) -> int:
        return len(self.points)

    def __str__(self) -> str:
        st = self.stats
        lines = [f"{len(self.points)} exact KKT point(s), {len(self.families)} famil(y/ies), "
                 f"{len(self.undecided)} undecided system(s); degree L = {self.degree}; "
                 f"{st['regions']} region(s) after pruning, {st['systems']} system(s) solved in {st['seconds']:.2f} s"]
        for label, pts in self.by_region.items():
            lines.append(f"region {label}:")
            for p in pts:
                tag = " (global minimum of the norm among KKT points)" if p.is_min_norm else ""
                lines.append(f"  theta = {list(map(str, p.theta))}  ||theta||^2 = {p.norm_sq}{tag}")
                lines.append(f"    lambda = {list(map(str, p.multipliers))}  margins = {list(map(str, p.margins))}"
                             + ("" if p.unique else "  (multipliers not unique: one choice)"))
                if p.kinks:
                    lines.append(f"    kinks: {[f'x{s} {_unit_name(n, u)}' for s, n, u in p.kinks]}; "
                                 f"selections {dict((k, str(v)) for k, v in p.selections.items())}; relaxation {p.relaxation}")
        for f in self.families:
            lines.append(f"family in region {f.region}, free {list(map(str, f.free))}: theta = {list(map(str, f.theta))}"
                         + (f" where {f.conditions}" if f.conditions else ""))
            tag = " (global minimum of the norm among KKT points)" if f.witness.is_min_norm else ""
            lines.append(f"    member: theta = {list(map(str, f.witness.theta))}, ||theta||^2 = {f.witness.norm_sq}{tag}")
        for u in self.undecided:
            lines.append(f"UNDECIDED: region {u['region']}, active {u['active']}: {u['reason']}")
        if str(st.get("min_norm", "")).startswith("not decided"):
            lines.append(f"minimum norm {st['min_norm']}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"degree": str(self.degree), "constraints": self.labels, "param_names": self.param_names,
                "points": [p.to_dict() for p in self.points], "families": [f.to_dict() for f in self.families],
                "undecided": self.undecided, "complete": self.complete, "stats": self.stats}


def _nonempty_subsets(rows: Sequence[int]) -> Iterator[tuple[int, ...]]:
    for k in range(1, len(rows) + 1):
        yield from itertools.combinations(rows, k)


_GRID = [sp.Integer(0), sp.Rational(1, 2), sp.Integer(1), sp.Integer(2), sp.Rational(1, 4), sp.Integer(-1),
         sp.Rational(-1, 2), sp.Integer(3)]


def _witness(free: list[sp.Symbol], sol: dict, test, bounds: dict[sp.Symbol, tuple[sp.Expr, sp.Expr]],
             max_tries: int = 2000) -> dict | None:
    """Values for the free symbols (Clarke variables from their interval, others from a small grid) passing ``test``."""
    cands = []
    for f in free:
        if f in bounds:
            lo, hi = bounds[f]
            cands.append([lo, hi, (lo + hi) / 2])
        else:
            cands.append(_GRID)
    for n, vals in enumerate(itertools.product(*cands)):
        if n >= max_tries:
            break
        sub = dict(zip(free, vals))
        try:
            if test(sub):
                full = {k: sp.expand(sp.sympify(v).xreplace(sub)) for k, v in sol.items()}
                full.update(sub)
                return full
        except UndecidedError:
            continue
    return None


class DegenerateSolutionError(ValueError):
    """sympy returned a solution with ``nan``/``zoo`` entries even after the Groebner-basis retry."""


def _finite_solutions(sols: list[dict]) -> bool:
    return all(is_finite_expr(v) for sol in sols for v in sol.values())


def _solve_system(eqs: list[sp.Expr], unknowns: list[sp.Symbol]) -> list[dict] | Exception:
    """Every solution of a polynomial system (``sp.solve``), or the exception that says why not.

    ``sp.solve`` with ``check=False`` can return a branch with ``nan``/``zoo``
    entries (a parametrisation divided by 0 on that branch: the branch's
    solutions are lost, and testing them crashed before).  Then the system is
    replaced by its lex Groebner basis (the same solution set, triangular) and
    solved again; a still degenerate answer is returned as an exception, so
    the region/active set lands in ``undecided`` and ``complete`` is False.
    """
    try:
        sols = sp.solve(eqs, unknowns, dict=True, simplify=False, check=False)
        if _finite_solutions(sols):
            return sols
        G = sp.groebner(eqs, *unknowns, order="lex")
        if list(G) == [1]:
            return []
        sols = sp.solve(list(G), unknowns, dict=True, simplify=False, check=False)
        if _finite_solutions(sols):
            return sols
        return DegenerateSolutionError("sympy returned a solution branch with nan/zoo entries, also from the "
                                       "Groebner basis")
    except (NotImplementedError, sp.polys.polyerrors.PolynomialError) as exc:
        return exc


def solve_kkt(net, X: Any, y: Any, *, max_params: int | None = 8, max_samples: int | None = 4,
              max_regions: int | None = 5000, time_budget: float | None = 60.0) -> KKTSolution:
    """Every exact KKT point of (P_Phi) for a small network and data set.

    Enumerates activation regions (per-sample patterns of the kinked units,
    pruned where a margin is identically 0) and active sets, solves each
    polynomial system with sympy (``solve``, Groebner bases for polynomial
    systems), keeps the real solutions consistent with the region, the signs
    of the multipliers, feasibility and the Clarke intervals, and returns them
    with multipliers, margins and norm as exact algebraic numbers.

    Every acceptance test is exact (zero tests by minimal polynomials, signs
    of non-zero algebraic numbers by evaluation to certified precision).
    Inputs are read as the rationals their floats print as (``0.1 -> 1/10``).
    Kinks (a pre-activation exactly 0) are regions of their own with a Clarke
    variable per unit (exact Clarke subdifferential for one hidden layer,
    chain-rule superset otherwise: ``KKTPoint.relaxation``).  When sympy
    returns a positive-dimensional solution set the result lists it as a
    :class:`KKTFamily` with one exactly verified member; multipliers that are
    not unique are shown by one valid choice.  Anything that cannot be
    decided is listed in ``undecided`` (``complete`` is then False), never
    dropped.  Completeness rests on sympy's ``solve`` returning every solution
    of each polynomial system.

    Limits (each raises :class:`~verifier.symbolic.SymbolicLimitError` with
    the size and how to raise it): ``max_params`` parameters, ``max_samples``
    samples, ``max_regions`` activation regions (per-sample patterns and
    their product after pruning).  ``time_budget`` seconds (``None``: no
    limit) raises :class:`~verifier.symbolic.TimeBudgetError`, interrupting a
    long sympy call when running in the main thread.

    >>> import numpy as np, verifier
    >>> net = verifier.mlp([2, 1])                  # linear model, no intercept
    >>> X = np.array([[1.0, 0.0], [0.0, 1.0]]); y = np.array([1, -1])
    >>> sol = solve_kkt(net, X, y)
    >>> [(p.theta, p.multipliers, p.norm_sq) for p in sol.points]
    [([1, -1], [1, 1], 2)]
    """
    L = degree(net)
    if not (sp.sympify(L) > 0):
        raise VerifierError(f"the network has degree {L}; the max-margin problem needs degree L > 0")
    check_limit("the number of parameters", net.num_params, max_params, "max_params",
                "the polynomial systems have one unknown per parameter")
    Xs, cons, labels = _data(net, X, y)
    check_limit("the number of samples", len(Xs), max_samples, "max_samples")
    budget = Budget(time_budget, "solve_kkt")
    b = _Builder(net, Xs, cons, labels)
    npat = b.n_patterns()
    check_limit(f"the number of activation patterns per sample ({len(b.units)} kinked units)", npat, max_regions,
                "max_regions")
    lambdas = [sp.Symbol(f"lambda_{r}", real=True) for r in range(cons.m)]
    theta = b.theta

    # per-sample patterns, pruned
    per_sample: list[list[_SamplePiece]] = []
    for i in range(len(Xs)):
        keep = []
        for n, ch in enumerate(b.patterns()):
            if n % 16 == 0:
                budget.progress = f"building patterns of sample {i}"
                budget.check()
            with budget.guard():
                pc = b.piece(i, ch)
            if pc is not None:
                keep.append(pc)
        per_sample.append(keep)
    n_regions = math.prod(len(k) for k in per_sample)
    check_limit(f"the number of activation regions after pruning ({' x '.join(str(len(k)) for k in per_sample)})",
                n_regions, max_regions, "max_regions")
    n_sys_total = n_regions * (2 ** cons.m - 1)

    found: list[KKTPoint] = []
    families: list[KKTFamily] = []
    undecided: list[dict[str, Any]] = []
    n_sys = n_solved = 0
    cache: dict[Any, Any] = {}
    for combo in itertools.product(*per_sample):
        reg = _combine(b, lambdas, combo)
        for active in _nonempty_subsets(list(range(cons.m))):
            budget.progress = f"{n_sys} of {n_sys_total} region/active-set systems"
            budget.check()
            n_sys += 1
            eqs, unknowns = reg.equations(active)
            key = (frozenset(eqs), tuple(unknowns))
            if key not in cache:
                with budget.guard():
                    cache[key] = _solve_system(eqs, unknowns)
                n_solved += 1
            sols = cache[key]
            if isinstance(sols, Exception):
                undecided.append({"region": reg.label, "active": list(active),
                                  "reason": f"sympy could not solve the system ({type(sols).__name__}: {sols})"})
                continue
            for sol in sols:
                try:
                    with budget.guard():
                        _accept(net, L, reg, active, sol, unknowns, lambdas, theta, cons, found, families, undecided)
                except (TypeError, ValueError, ArithmeticError, NotImplementedError,
                        sp.polys.polyerrors.PolynomialError) as exc:  # sympy internals: never a crash, never dropped
                    undecided.append({"region": reg.label, "active": list(active),
                                      "reason": f"checking a solution failed ({type(exc).__name__}: {exc})"})
    found = [p for p in found if not any(_on_family(p, f) for f in families)]
    min_note = _mark_min_norm(found, families)
    found.sort(key=lambda p: (float(sp.N(p.norm_sq, 30)), [float(sp.N(v, 30)) for v in p.theta]))
    stats = {"min_norm": min_note, "kinked_units_per_sample": len(b.units), "patterns_per_sample": npat,
             "patterns_kept": [len(k) for k in per_sample], "regions": n_regions, "systems": n_sys,
             "distinct_systems_solved": n_solved,
             "seconds": budget.elapsed}
    return KKTSolution(found, families, undecided, L, labels, list(net.param_names), stats)


def _mark_min_norm(found: list[KKTPoint], families: list[KKTFamily]) -> str:
    """Set ``is_min_norm`` on the points and family witnesses of smallest norm; say how sure that is.

    The minimum is taken over every isolated point *and* every family: a
    family whose norm is constant on it (rotations, rescalings inside a layer)
    contributes that constant; a family whose norm varies contributes its
    witness only, and then no point is marked (the infimum over the family is
    not computed) and the returned note says so.
    """
    cands = [p for p in found] + [f.witness for f in families]
    for p in cands:
        p.is_min_norm = False
    if not cands:
        return "no KKT point found"
    varying = [f for f in families if f.norm_sq_expr().free_symbols and
               sp.simplify(f.norm_sq_expr()).free_symbols]
    if varying:
        return (f"not decided: the norm varies on {len(varying)} famil(y/ies) (first in region {varying[0].region}); "
                "no point is marked as the minimum")
    best = min(cands, key=lambda p: sp.N(p.norm_sq, 30))
    try:
        marks = [is_zero(p.norm_sq - best.norm_sq) for p in cands]
    except UndecidedError as exc:
        return f"not decided: comparing the norms failed ({exc}); no point is marked as the minimum"
    for p, mk in zip(cands, marks):
        p.is_min_norm = mk
    return f"||theta||^2 = {best.norm_sq}, compared over {len(found)} point(s) and {len(families)} famil(y/ies)"


def _conditions(reg: RegionSystem, active, unknowns: list, lambdas, theta, cons) -> list[tuple[str, sp.Expr, str]]:
    """Every condition a KKT point of this region/active set must satisfy: (kind, expression, description)."""
    act = set(active)
    unk = set(unknowns)
    out: list[tuple[str, sp.Expr, str]] = []
    for r in sorted(act):
        out.append(("pos", lambdas[r], f"lambda_{r} > 0"))
    for r in range(cons.m):
        out.append(("zero" if r in act else "nonneg", reg.margins[r] - 1, f"q_{r} {'=' if r in act else '>='} 1"))
    out += [("pos", e, "region: pre-activation sign") for e in reg.strict]
    out += [("zero", e, "region: kink/tie") for e in reg.equalities]
    for s, lo, hi in reg.s_bounds:
        if s in unk:
            out += [("nonneg", s - lo, f"{s} >= {lo}"), ("nonneg", hi - s, f"{s} <= {hi}")]
    out += [("zero", e, "max tie: sum s = 1") for e in reg.s_sums if e.free_symbols & unk]
    for j, t in enumerate(theta):
        g = t - sp.Add(*[lambdas[r] * reg.gradients[r][j] for r in sorted(act)])
        out.append(("zero", g, f"stationarity in {t}"))
    return out


def _holds(kind: str, v: sp.Expr) -> bool:
    if kind == "zero":
        return is_zero(v)
    sg = sign(v)
    return sg > 0 if kind == "pos" else sg >= 0


def _on_family(p: KKTPoint, fam: KKTFamily) -> bool:
    """True when the isolated point ``p`` is a member of ``fam`` (then it is listed with the family only).

    Membership needs values of the free symbols that give ``p.theta`` *and*
    satisfy every open condition of the family exactly: a point on the
    closure of a family (e.g. its endpoint ``W2_0_1 = 0`` where the family
    demands ``W2_0_1 > 0``) is not a member and stays in the list.
    """
    try:
        eqs = [sp.expand(a - b) for a, b in zip(fam.theta, p.theta)]
        eqs = [e for e in eqs if e != 0]
        cands = [{}] if not eqs else sp.solve(eqs, fam.free, dict=True)
        for s2 in cands:
            if any(sp.sympify(e).xreplace(s2).free_symbols for e in eqs):
                continue
            if not all(is_zero(sp.sympify(e).xreplace(s2)) for e in eqs):
                continue
            conds = [(k, sp.expand(v.xreplace(s2))) for k, v in fam.pending]
            if any(v.free_symbols for _, v in conds):
                continue  # the point does not pin the free symbols down: not decided, keep the point
            if all(_holds(k, v) for k, v in conds):
                return True
    except (NotImplementedError, UndecidedError, TypeError, ValueError, sp.polys.polyerrors.PolynomialError):
        return False
    return False


def _lp_witness(free: list[sp.Symbol], full: dict, pending, test) -> dict | None:
    """When the open conditions are linear in the free symbols: an LP proposes a point, exact arithmetic checks it."""
    from fractions import Fraction

    from scipy.optimize import linprog

    A_eq, b_eq, A_ub, b_ub = [], [], [], []
    try:
        for kind, v, _ in pending:
            P = sp.Poly(v, *free)
            if P.total_degree() > 1:
                return None
            row = [float(P.coeff_monomial(f)) for f in free]
            c0 = float(P.coeff_monomial(1))
            if kind == "zero":
                A_eq.append(row + [0.0])
                b_eq.append(-c0)
            else:  # row.x + c0 >= t (pos) or >= 0: -row.x + t <= c0
                A_ub.append([-a for a in row] + [1.0 if kind == "pos" else 0.0])
                b_ub.append(c0)
    except (sp.polys.polyerrors.PolynomialError, TypeError):
        return None
    k = len(free)
    c = [0.0] * k + [-1.0]
    res = linprog(c, A_ub=A_ub or None, b_ub=b_ub or None, A_eq=A_eq or None, b_eq=b_eq or None,
                  bounds=[(-1e3, 1e3)] * k + [(None, 1.0)], method="highs")
    if res.status != 0 or res.x[-1] <= 1e-12:
        return None
    for den in (10**3, 10**6, 10**9):
        sub = {f: sp.Rational(Fraction(float(v)).limit_denominator(den)) for f, v in zip(free, res.x[:k])}
        try:
            if test(sub):
                out = {key: sp.expand(sp.sympify(val).xreplace(sub)) for key, val in full.items()}
                out.update(sub)
                return out
        except UndecidedError:
            continue
    return None


def _feasible_set(f: sp.Symbol, pending, values: list[sp.Expr], bounds) -> sp.Set | None:
    """The set of real ``f`` satisfying the open conditions (None if sympy cannot describe it)."""
    rels = []
    for kind, v, _ in pending:
        rels.append(sp.Eq(v, 0) if kind == "zero" else (v > 0 if kind == "pos" else v >= 0))
    for v in values:  # real square roots etc.: radicands with even root index must be >= 0
        for pw in v.atoms(sp.Pow):
            if pw.exp.is_Rational and not pw.exp.is_Integer and pw.exp.q % 2 == 0 and f in pw.base.free_symbols:
                rels.append(pw.base >= 0)
    if f in bounds:
        lo, hi = bounds[f]
        rels += [f >= lo, f <= hi]
    S: sp.Set = sp.S.Reals
    try:
        for r in rels:
            if r is sp.true:
                continue
            if r is sp.false:
                return sp.S.EmptySet
            part = sp.solveset(r, f, domain=sp.S.Reals)
            if isinstance(part, sp.ConditionSet):
                return None
            S = sp.Intersection(S, part)
            if S is sp.S.EmptySet:
                return S
    except (NotImplementedError, ValueError, TypeError):
        return None
    if isinstance(S, (sp.Intersection, sp.ConditionSet)):
        return None
    return S


def _pick(S: sp.Set) -> list[sp.Expr]:
    """A few exact points of a real set (interval midpoints, finite elements)."""
    parts = list(S.args) if isinstance(S, sp.Union) else [S]
    out = []
    for P in parts:
        if isinstance(P, sp.FiniteSet):
            out += [e for e in P if e.is_finite]
        elif isinstance(P, sp.Interval):
            a, b = P.start, P.end
            if a.is_finite and b.is_finite:
                out.append(sp.nsimplify((a + b) / 2) if (a + b).is_Rational else (a + b) / 2)
            elif a.is_finite:
                out.append(sp.floor(a) + 1)
            elif b.is_finite:
                out.append(sp.ceiling(b) - 1)
            else:
                out.append(sp.Integer(0))
    return out[:8]


def _accept(net, L, reg: RegionSystem, active, sol: dict, unknowns: list, lambdas, theta, cons,
            found: list, families: list, undecided: list, depth: int = 0) -> None:
    """Validate one solution of a region system exactly and record it.

    Conditions that no longer depend on free symbols are decided exactly; if
    one fails the solution is rejected.  The rest (when sympy returned a
    positive-dimensional solution) need a witness: small rationals for free
    multipliers/parameters and the interval ends/midpoint for Clarke variables.
    """
    act = set(active)
    unk = set(unknowns)
    label = reg.label
    full = {u: sp.expand(sp.sympify(sol.get(u, u))) for u in unknowns}
    free = sorted({s for v in full.values() for s in v.free_symbols} & unk, key=str)
    fset = set(free)
    conds = _conditions(reg, active, unknowns, lambdas, theta, cons)
    pending: list[tuple[str, sp.Expr, str]] = []
    try:
        for u, v in full.items():
            if not (v.free_symbols & fset) and not is_real(v):
                return
        for kind, e, what in conds:
            v = sp.expand(e.xreplace(full))
            if v.free_symbols & fset:
                pending.append((kind, v, what))
            elif not _holds(kind, v):
                return
    except UndecidedError as exc:
        undecided.append({"region": label, "active": list(active), "reason": str(exc)})
        return
    if depth < 3 and any(k == "zero" for k, _, _ in pending):
        # sympy's solve (check=False) may leave equations unused: solve them for the free symbols
        zeq = [v for k, v, _ in pending if k == "zero"]
        try:
            subs = sp.solve(zeq, free, dict=True, simplify=False, check=False)
        except (NotImplementedError, sp.polys.polyerrors.PolynomialError):
            subs = None
        if subs is not None:
            for s2 in subs:
                sol2 = {u: sp.sympify(v).xreplace(s2) for u, v in full.items()}
                _accept(net, L, reg, active, sol2, unknowns, lambdas, theta, cons, found, families, undecided,
                        depth + 1)
            return
    vals: dict | None
    vals = full  # a separate statement, so mypy narrows vals to dict here
    if free:
        def test(sub: dict) -> bool:
            if not all(is_real(v.xreplace(sub)) for v in full.values() if v.free_symbols & fset):
                return False
            return all(_holds(kind, sp.expand(v.xreplace(sub))) for kind, v, _ in pending)

        bounds = {s: (lo, hi) for s, lo, hi in reg.s_bounds}
        theta_free = [f for f in free if any(f in full[t].free_symbols for t in theta)]
        vals = _witness(free, full, test, bounds)
        if vals is None:
            vals = _lp_witness(free, full, pending, test)
        if vals is None and len(free) == 1:
            region = _feasible_set(free[0], pending, [full[u] for u in unknowns], bounds)
            if region is sp.S.EmptySet:
                return
            for c in _pick(region) if region is not None else []:
                try:
                    if test({free[0]: c}):
                        vals = {k: sp.expand(sp.sympify(v).xreplace({free[0]: c})) for k, v in full.items()}
                        vals[free[0]] = c
                        break
                except UndecidedError:
                    continue
        if vals is None:
            what = "positive-dimensional solution set" if theta_free else "multipliers/selections free"
            undecided.append({"region": label, "active": list(active),
                              "reason": f"{what} in {[str(f) for f in free]} with no verified member on the search "
                                        f"grid: theta = {[str(full[t]) for t in theta]}; open conditions: "
                                        f"{[f'{w}: {v}' for _, v, w in pending]}"})
            return
        if theta_free:
            point = _make_point(net, L, reg, act, vals, lambdas, theta, cons, unique=False)
            fam = KKTFamily(label, sorted(act), free, [full[t] for t in theta],
                            [full[lambdas[r]] if r in act else sp.Integer(0) for r in range(cons.m)],
                            [f"{v} {'= 0' if k == 'zero' else '> 0' if k == 'pos' else '>= 0'}" for k, v, _ in pending],
                            point, [(k, v) for k, v, _ in pending])
            if not any(f.theta == fam.theta for f in families):
                families.append(fam)
            return
    point = _make_point(net, L, reg, act, vals, lambdas, theta, cons, unique=not free)
    for p in found:  # the same theta from another system: the multipliers are not unique
        if all(is_zero(a - b) for a, b in zip(p.theta, point.theta)):
            if not all(is_zero(a - b) for a, b in zip(p.multipliers, point.multipliers)):
                p.unique = False
            return
    found.append(point)


def _make_point(net, L, reg: RegionSystem, act: set, vals: dict, lambdas, theta, cons, unique: bool) -> KKTPoint:
    th = [sp.radsimp(vals[t]) for t in theta]
    sub = dict(zip(theta, th))
    lam = [sp.radsimp(vals[lambdas[r]]) if r in act else sp.Integer(0) for r in range(cons.m)]
    margins = [sp.radsimp(sp.expand(reg.margins[r].xreplace(sub))) for r in range(cons.m)]
    nsq = sp.radsimp(sp.expand(sp.Add(*[t**2 for t in th])))
    norm = sp.sqrt(nsq)
    if not nsq.is_Rational:
        norm = sp.radsimp(sp.simplify(norm))
    euler_ok = is_zero(sp.Add(*lam) - nsq / L)
    sels = {str(s): vals[s] for s, _, _ in reg.s_bounds if s in vals}
    samples = {reg.samples_of_row[r] for r in act}
    kinks_active = [k for k in reg.kinks if k[0] in samples]
    if not kinks_active:
        relax = "none"
    elif exact_relaxation(net, reg.kink_nodes_of_sample, samples):  # the one definition (docs/math.md section 7)
        relax = "exact"
    else:
        relax = "chain-rule"
    params = {}
    for p in net.param_names:
        a0, a1 = net.offsets[p]
        params[p] = np.array(th[a0:a1], dtype=object).reshape(net.param_shapes[p])
    return KKTPoint(th, params, lam, margins, nsq, norm, reg.choices, reg.label, tuple(sorted(act)), sels,
                    list(reg.kinks), relax, unique, euler_ok)
