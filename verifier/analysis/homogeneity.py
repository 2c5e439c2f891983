"""Homogeneity calculus: one degree rule per op, composed by a walk over the graph.

The same walk serves two analyses (docs/math.md section 1):

* :func:`node_degrees`: every parameter tensor has degree 1; an ``add`` (or
  ``bias``) whose summands disagree raises :class:`NotHomogeneousError` naming
  the node and both degrees.
* :func:`quasi_homogeneous_weights`: tensor ``j`` has unknown degree ``r_j``;
  every ``add``/``bias`` becomes a linear equation, the output gets
  ``deg = 1``; the system is solved exactly (sympy rationals) and a point with
  all ``r_j > 0`` is searched for (an LP proposes it in floats, it is then
  rounded to rationals and re-checked exactly on the exact solution family).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable

import numpy as np
import sympy as sp

from ..errors import NotHomogeneousError
from ..ops.base import not_homogeneous


def _walk(net, param_degree: Callable[[str], sp.Expr], equal: Callable[[str, sp.Expr, sp.Expr, Callable[[], str]], None]) -> dict[str, sp.Expr]:
    degs: dict[str, sp.Expr] = {}
    for name in net.order:
        node = net.nodes[name]
        ins = [degs[i] for i in node.inputs]
        pd = {role: param_degree(p) for role, p in node.params.items()}
        d = node.impl.degree(name, ins, pd, node.attrs, lambda a, b, why, name=name: equal(name, a, b, why))
        degs[name] = sp.expand(sp.sympify(d))
    return degs


def node_degrees(net) -> dict[str, sp.Expr]:
    """Exact degree of every node (parameters have degree 1, the input 0).

    >>> import verifier
    >>> verifier.degrees(verifier.mlp([2, 3, 1], activation="power:2"))["out"]
    3
    """

    def equal(node: str, a: sp.Expr, b: sp.Expr, why: Callable[[], str]) -> None:
        if sp.simplify(a - b) != 0:
            err = not_homogeneous(node, why())
            try:
                q = quasi_homogeneous_weights(net)
            except NotHomogeneousError:
                q = None
            if q is not None and q.exists:
                err = NotHomogeneousError(f"{err} (it is quasi-homogeneous: see quasi_homogeneous_weights())")
            raise err

    return _walk(net, lambda p: sp.Integer(1), equal)


def degree(net) -> int | sp.Rational:
    """Degree ``L`` of positive homogeneity in the parameters: ``Phi(c theta) = c^L Phi(theta)`` for ``c > 0``.

    Raises :class:`~verifier.errors.NotHomogeneousError` naming the node and the reason when the network is
    not homogeneous.

    >>> import verifier
    >>> verifier.degree(verifier.mlp([2, 8, 8, 1])), verifier.degree(verifier.mlp([2, 3, 1], activation="power:2"))
    (3, 3)
    """
    d = node_degrees(net)[net.output]
    return int(d) if d.is_Integer else d


def input_degree(net) -> sp.Expr | None:
    """Degree of ``Phi`` in the input ``x`` at fixed parameters, or ``None`` when ``Phi`` is not positively
    homogeneous in ``x`` (e.g. a bias adds a constant): ``Phi(theta; b x) = b^deg Phi(theta; x)`` for ``b > 0``.

    The same rules as :func:`node_degrees` with the input of degree 1 and every parameter of degree 0.

    >>> import verifier
    >>> input_degree(verifier.mlp([2, 3, 1])), input_degree(verifier.mlp([2, 3, 1], bias="first")) is None
    (1, True)
    """

    class _Unequal(Exception):
        pass

    def equal(node: str, a: sp.Expr, b: sp.Expr, why: Callable[[], str]) -> None:
        if sp.simplify(a - b) != 0:
            raise _Unequal

    degs: dict[str, sp.Expr] = {}
    try:
        for name in net.order:
            node = net.nodes[name]
            if node.op == "input":
                degs[name] = sp.Integer(1)
                continue
            pd = {role: sp.Integer(0) for role in node.params}
            d = node.impl.degree(name, [degs[i] for i in node.inputs], pd, node.attrs,
                                 lambda a, b, why, name=name: equal(name, a, b, why))
            degs[name] = sp.expand(sp.sympify(d))
    except (_Unequal, NotHomogeneousError):
        return None
    return degs[net.output]


@dataclass
class QuasiHomogeneity:
    """Result of :func:`quasi_homogeneous_weights`.

    ``weights`` is one exact positive solution (the one that maximises the
    smallest weight, rounded to rationals), ``general`` the whole solution
    family in terms of free symbols, ``equations`` the linear system.
    ``exists`` is False with ``reason`` when no positive solution exists.
    """

    exists: bool
    weights: dict[str, sp.Rational] = field(default_factory=dict)
    general: dict[str, sp.Expr] = field(default_factory=dict)
    equations: list[sp.Expr] = field(default_factory=list)
    reason: str = ""

    @property
    def homogeneous(self) -> bool:
        """True when equal weights solve the system (then the network is homogeneous of degree 1/r)."""
        return self.exists and len(set(self.weights.values())) == 1


def quasi_homogeneous_weights(net) -> QuasiHomogeneity:
    """Solve exactly for ``r_j > 0`` with ``Phi(exp(s r) . theta) = exp(s) Phi(theta)``.

    >>> import verifier
    >>> q = verifier.quasi_homogeneous_weights(verifier.mlp([2, 3, 1], bias="all"))
    >>> q.exists, {k: str(v) for k, v in q.weights.items()}
    (True, {'W1': '1/2', 'b1': '1/2', 'W2': '1/2', 'b2': '1'})
    """
    r = {p: sp.Symbol(f"r_{p}", real=True) for p in net.param_names}
    eqs: list[sp.Expr] = []

    def equal(node: str, a: sp.Expr, b: sp.Expr, why: Callable[[], str]) -> None:
        eqs.append(sp.expand(a - b))

    degs = _walk(net, lambda p: r[p], equal)  # non-homogeneous ops raise here
    eqs.append(sp.expand(degs[net.output] - 1))
    eqs = [e for e in eqs if e != 0]
    syms = [r[p] for p in net.param_names]
    sol = sp.linsolve(eqs, syms)
    if sol == sp.EmptySet or not sol:
        return QuasiHomogeneity(False, equations=eqs, reason="the degree equations have no solution")
    (point,) = list(sol)
    general = dict(zip(net.param_names, point))
    free = sorted(set().union(*(sp.sympify(e).free_symbols for e in point)), key=str)
    if not free:
        w = {p: sp.Rational(v) for p, v in general.items()}
        ok = all(v > 0 for v in w.values())
        bad = [p for p, v in w.items() if v <= 0]
        return QuasiHomogeneity(ok, w if ok else {}, general, eqs,
                                "" if ok else f"the unique solution gives weight <= 0 to {bad}")
    # Floats propose a point maximising the smallest weight; exact arithmetic decides.
    from scipy.optimize import linprog

    A = np.array([[float(sp.diff(e, s)) for s in free] for e in point])
    b0 = np.array([float(e.subs({s: 0 for s in free})) for e in point])
    k = len(free)
    # maximise t s.t. b0 + A s >= t, t <= 1, |s| <= 1e3
    c = np.zeros(k + 1)
    c[-1] = -1.0
    A_ub = np.hstack([-A, np.ones((len(point), 1))])
    res = linprog(c, A_ub=A_ub, b_ub=b0, bounds=[(-1e3, 1e3)] * k + [(None, 1.0)], method="highs")
    if res.status != 0 or res.x[-1] <= 1e-12:
        return QuasiHomogeneity(False, general=general, equations=eqs,
                                reason="no assignment of the free weights makes every weight positive")
    s_exact = {s: sp.Rational(Fraction(v).limit_denominator(10**6)) for s, v in zip(free, res.x[:k])}
    w = {p: sp.Rational(sp.sympify(e).subs(s_exact)) for p, e in general.items()}
    if not all(v > 0 for v in w.values()):  # pragma: no cover - rounding pushed a weight to <= 0
        return QuasiHomogeneity(False, general=general, equations=eqs,
                                reason="rounded LP point is not positive; the positive region is too thin")
    return QuasiHomogeneity(True, w, general, eqs)
