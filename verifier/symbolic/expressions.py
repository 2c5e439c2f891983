"""Network expressions with parameters as symbols, and proofs of (quasi-)homogeneity.

``network_expr`` runs the core's :func:`~verifier.analysis.symbolic_eval.symbolic_forward`
with :class:`~verifier.symbolic.functions.HomogeneousFns`, so ReLU-type pieces
are the factor-pulling :class:`~verifier.symbolic.functions.relu` and
homogeneity identities cancel by themselves.

``prove_homogeneity`` establishes, for symbolic inputs ``x`` and a positive
symbol ``c``:

1. the identity ``Phi(c theta; x) - c^L Phi(theta; x) = 0`` (expanded to 0);
2. Euler's identity ``sum_j theta_j dPhi/dtheta_j - L Phi = 0`` from explicit
   partial derivatives (``relu' = step``; the identity holds for every value
   ``step(0)`` may take in its Clarke interval, see
   :func:`~verifier.symbolic.functions.euler_rewrite`);
3. agreement with the graph calculus ``verifier.degree(net)`` and with sympy's
   ``homogeneous_order`` on the polynomial of a few activation regions (an
   oracle independent of our relu function).

For a quasi-homogeneous network (weights ``r`` from
``verifier.quasi_homogeneous_weights(net)``) the weighted versions
``Phi(c^r . theta) = c Phi(theta)`` and ``sum_j r_j theta_j dPhi/dtheta_j = Phi``
are proved instead, and each region monomial is checked to have weighted degree 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import sympy as sp

from ..analysis.homogeneity import degree, quasi_homogeneous_weights
from ..analysis.symbolic_eval import param_symbols, region_functions, symbolic_forward
from ..errors import DataError, NotHomogeneousError, ParameterError
from ._common import Budget, check_limit, to_rational
from .functions import HomogeneousFns, euler_rewrite

__all__ = ["network_expr", "input_symbols", "theta_symbols", "HomogeneityProof", "prove_homogeneity"]


def input_symbols(net) -> np.ndarray:
    """Object array of real input symbols of the network's input shape (``x_0``, ``x_0_1_2`` for images)."""
    shape = tuple(net.input_shape)
    arr = np.empty(shape, dtype=object)
    for idx in np.ndindex(shape):
        arr[idx] = sp.Symbol("x_" + "_".join(map(str, idx)), real=True)
    return arr


def theta_symbols(net) -> list[sp.Symbol]:
    """The parameter symbols in flat-vector order (``W1_0_1`` is ``W1[0, 1]``)."""
    ps = param_symbols(net)
    return [s for p in net.param_names for s in ps[p].ravel()]


def _sym_params(net, params: Mapping[str, Any] | None) -> dict[str, np.ndarray]:
    if params is None:
        return param_symbols(net)
    missing = [p for p in net.param_names if p not in params]
    extra = [p for p in params if p not in net.param_shapes]
    if missing or extra:
        raise ParameterError(f"params: missing {missing}, unexpected {sorted(extra)}; the network's parameters are {net.param_names}")
    out = {}
    for p in net.param_names:
        a = np.asarray(params[p], dtype=object)
        if a.shape != tuple(net.param_shapes[p]):
            raise ParameterError(f"params: tensor {p!r} has shape {a.shape}, expected {tuple(net.param_shapes[p])}")
        b = np.empty(a.shape, dtype=object)
        for idx in np.ndindex(a.shape):
            b[idx] = to_rational(a[idx])
        out[p] = b
    return out


def _one_input(net, x: Any) -> np.ndarray:
    shape = tuple(net.input_shape)
    a = np.asarray(x, dtype=object)
    if a.shape != shape:
        raise DataError(f"x: one input of shape {a.shape}, expected {shape} for input node {net.input!r}")
    out = np.empty(shape, dtype=object)
    for idx in np.ndindex(shape):
        v = a[idx]
        if not isinstance(v, sp.Basic):
            try:
                fv = float(v)
            except (TypeError, ValueError):
                raise DataError(f"x: entry {idx} = {v!r} is not a number or sympy expression") from None
            if not np.isfinite(fv):
                raise DataError(f"x: entry {idx} = {v!r} is not finite")
        out[idx] = to_rational(v)
    return out


def _as_output(vals: np.ndarray) -> sp.Expr | sp.Matrix:
    v = list(np.asarray(vals, dtype=object).ravel())
    return v[0] if len(v) == 1 else sp.Matrix(v)


def network_expr(net, x: Any = None, *, params: Mapping[str, Any] | None = None, max_params: int | None = 500) -> Any:
    """Sympy expression of ``Phi(theta; x)`` with the parameters as symbols.

    ``x=None`` uses input symbols (:func:`input_symbols`); one input (numbers
    or sympy) gives that sample; an ``(n, *input_shape)`` batch gives a list.
    ``params`` (optional) substitutes numbers (floats are read as the
    rationals they print as, ``0.1 -> 1/10``) or expressions for the symbols.
    One output unit gives an expression, ``C`` units a ``C x 1`` Matrix.

    >>> import verifier
    >>> net = verifier.mlp([2, 2, 1])
    >>> network_expr(net, [1, 2])
    W2_0_0*relu(W1_0_0 + 2*W1_0_1) + W2_0_1*relu(W1_1_0 + 2*W1_1_1)
    >>> network_expr(verifier.mlp([1, 1], activation="identity"))
    W1_0_0*x_0
    """
    check_limit("the number of parameters", net.num_params, max_params, "max_params")
    ps = _sym_params(net, params)
    fns = HomogeneousFns()
    if x is None:
        return _as_output(symbolic_forward(net, input_symbols(net), ps, fns))
    a = np.asarray(x, dtype=object)
    shape = tuple(net.input_shape)
    if a.shape == shape:
        return _as_output(symbolic_forward(net, _one_input(net, a), ps, fns))
    if a.ndim == len(shape) + 1 and a.shape[1:] == shape:
        return [_as_output(symbolic_forward(net, _one_input(net, a[i]), ps, fns)) for i in range(a.shape[0])]
    raise DataError(f"x: shape {a.shape} is neither one input {shape} nor a batch (n, {', '.join(map(str, shape))})")


def _outputs(e: Any) -> list[sp.Expr]:
    return list(e) if isinstance(e, sp.MatrixBase) else [e]


@dataclass
class HomogeneityProof:
    """What :func:`prove_homogeneity` established (all residuals exact sympy expressions).

    ``kind`` is ``"homogeneous"`` (``Phi(c theta) = c^degree Phi(theta)``) or
    ``"quasi-homogeneous"`` (``Phi(c^r . theta) = c Phi(theta)`` with
    ``weights`` ``r`` per tensor; ``degree`` is then 1).  ``proved`` is True
    when every residual is 0 and every cross-check agrees.
    """

    kind: str
    degree: Any
    weights: dict[str, sp.Rational] | None
    expression: Any
    scale: sp.Symbol
    scaled: Any
    identity_residual: list[sp.Expr]
    euler_residual: list[sp.Expr]
    graph_degree: Any
    region_orders: list[Any] = field(default_factory=list)
    region_checks: list[bool] = field(default_factory=list)

    @property
    def identity_holds(self) -> bool:
        return all(r == 0 for r in self.identity_residual)

    @property
    def euler_holds(self) -> bool:
        return all(r == 0 for r in self.euler_residual)

    @property
    def proved(self) -> bool:
        return self.identity_holds and self.euler_holds and all(self.region_checks)

    def statement(self) -> tuple[str, str]:
        """The identity and the Euler relation proved, as plain-text formulas."""
        c = self.scale
        if self.kind == "homogeneous":
            ident = f"Phi({c}*theta; x) - {c}**{self.degree} * Phi(theta; x)"
            eul = f"sum_j theta_j dPhi/dtheta_j - {self.degree} * Phi"
        else:
            ident = f"Phi({c}**r . theta; x) - {c} * Phi(theta; x)"
            eul = "sum_j r_j theta_j dPhi/dtheta_j - Phi"
        return ident, eul

    def __str__(self) -> str:
        ident, eul = self.statement()
        lines = []
        if self.kind == "homogeneous":
            lines.append(f"positively homogeneous of degree L = {self.degree} (c > 0 a symbol, x symbolic)")
        else:
            w = ", ".join(f"{k}: {v}" for k, v in (self.weights or {}).items())
            lines.append(f"quasi-homogeneous with weights r = {{{w}}} (c > 0 a symbol, x symbolic)")
        lines.append(f"  {ident}  =  {', '.join(map(str, self.identity_residual))}")
        lines.append(f"  Euler: {eul}  =  {', '.join(map(str, self.euler_residual))}   (relu' = step, any step(0) in [0, 1])")
        if self.kind == "homogeneous":
            lines.append(f"  graph calculus verifier.degree(net) = {self.graph_degree}")
            lines.append(f"  sympy homogeneous_order on {len(self.region_orders)} activation-region polynomials: {self.region_orders}")
        else:
            lines.append(f"  graph calculus weights = {self.graph_degree}")
            lines.append(f"  weighted degree of every monomial in {len(self.region_checks)} activation-region polynomials: "
                         f"{'all 1' if all(self.region_checks) else 'NOT all 1'}")
        lines.append("  PROVED" if self.proved else "  NOT PROVED")
        return "\n".join(lines)

    def latex(self) -> str:
        c = sp.latex(self.scale)
        if self.kind == "homogeneous":
            return (rf"\Phi({c}\theta; x) - {c}^{{{sp.latex(self.degree)}}}\Phi(\theta; x) = "
                    + ", ".join(sp.latex(r) for r in self.identity_residual)
                    + rf", \qquad \sum_j \theta_j \partial_{{\theta_j}}\Phi - {sp.latex(self.degree)}\Phi = "
                    + ", ".join(sp.latex(r) for r in self.euler_residual))
        return (rf"\Phi({c}^{{r}}\cdot\theta; x) - {c}\,\Phi(\theta; x) = "
                + ", ".join(sp.latex(r) for r in self.identity_residual)
                + r", \qquad \sum_j r_j \theta_j \partial_{\theta_j}\Phi - \Phi = "
                + ", ".join(sp.latex(r) for r in self.euler_residual))

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "degree": str(self.degree),
            "weights": None if self.weights is None else {k: str(v) for k, v in self.weights.items()},
            "identity_residual": [str(r) for r in self.identity_residual],
            "euler_residual": [str(r) for r in self.euler_residual],
            "graph_degree": str(self.graph_degree) if not isinstance(self.graph_degree, dict)
            else {k: str(v) for k, v in self.graph_degree.items()},
            "region_orders": [str(o) for o in self.region_orders], "region_checks": list(self.region_checks),
            "proved": self.proved,
        }


def _random_rational_point(net, rng: np.random.Generator) -> tuple[dict[str, np.ndarray], np.ndarray]:
    params = {p: np.round(rng.normal(size=net.param_shapes[p]) * 16) / 16 for p in net.param_names}
    x = np.round(rng.normal(size=net.input_shape) * 16) / 16
    return params, x


def prove_homogeneity(net, *, regions: int = 3, seed: int = 0, max_params: int | None = 64,
                      time_budget: float | None = 120.0) -> HomogeneityProof:
    """Prove ``Phi(c theta) = c^L Phi(theta)`` (or the quasi-homogeneous version) symbolically.

    Raises the core's :class:`~verifier.errors.NotHomogeneousError` (naming
    the node) when the network is neither homogeneous nor quasi-homogeneous;
    :class:`~verifier.symbolic.SymbolicLimitError` above ``max_params``;
    :class:`~verifier.symbolic.TimeBudgetError` after ``time_budget`` seconds.
    ``regions`` random rational points (seeded) give the activation-region
    polynomials for the ``homogeneous_order`` cross-check.

    >>> import verifier
    >>> proof = prove_homogeneity(verifier.mlp([2, 2, 1]))
    >>> proof.degree, proof.identity_residual, proof.euler_residual, proof.region_orders, proof.proved
    (2, [0], [0], [2, 2, 2], True)
    >>> prove_homogeneity(verifier.mlp([2, 2, 1], bias="all")).weights
    {'W1': 1/2, 'b1': 1/2, 'W2': 1/2, 'b2': 1}
    """
    check_limit("the number of parameters", net.num_params, max_params, "max_params",
                "the expressions grow with the parameters and the depth")
    budget = Budget(time_budget, "prove_homogeneity")
    try:
        L = degree(net)
        weights = None
    except NotHomogeneousError as err:
        try:
            q = quasi_homogeneous_weights(net)
        except NotHomogeneousError:
            raise err from None
        if not q.exists:
            raise err from None
        weights = dict(q.weights)
        L = sp.Integer(1)
    c = sp.Symbol("c", positive=True)
    syms = param_symbols(net)
    flat = [s for p in net.param_names for s in syms[p].ravel()]
    rate = {s: (sp.Integer(1) if weights is None else weights[p]) for p in net.param_names for s in syms[p].ravel()}
    with budget.guard():
        phi = network_expr(net, max_params=None)
        outs = _outputs(phi)
        scaled = [o.xreplace({s: c ** rate[s] * s for s in flat}) for o in outs]
        factor = c ** L
        ident = [sp.expand(sc - factor * o) for sc, o in zip(scaled, outs)]
        budget.progress = "the scaling identity"
        budget.check()
        euler = []
        for o in outs:
            e = sp.Add(*[rate[s] * s * sp.diff(o, s) for s in flat]) - L * o
            euler.append(sp.expand(euler_rewrite(e)))
        budget.progress = "the scaling identity and Euler's identity"
        orders: list[Any] = []
        checks: list[bool] = []
        rng = np.random.default_rng(seed)
        for _ in range(regions):
            budget.check()
            params, x = _random_rational_point(net, rng)
            fns = region_functions(net, params)
            for poly in symbolic_forward(net, x, syms, fns).ravel():
                poly = sp.expand(poly)
                if poly == 0:
                    continue  # every unit off: the zero polynomial has every degree
                if weights is None:
                    o = sp.homogeneous_order(poly, *flat)
                    orders.append(o)
                    checks.append(o == L)
                else:
                    P = sp.Poly(poly, *flat)
                    ok = all(sum(rate[s] * e for s, e in zip(flat, mon)) == 1 for mon in P.monoms())
                    orders.append("weighted degree 1" if ok else "mixed weighted degrees")
                    checks.append(ok)
    graph = L if weights is None else dict(weights)
    return HomogeneityProof(
        kind="homogeneous" if weights is None else "quasi-homogeneous",
        degree=L, weights=weights, expression=phi, scale=c,
        scaled=scaled[0] if len(scaled) == 1 else sp.Matrix(scaled),
        identity_residual=ident, euler_residual=euler, graph_degree=graph,
        region_orders=orders, region_checks=checks,
    )
