"""The op sweep: every registered op, at every one of its example attributes, against independent oracles.

* ``vjp`` and ``param_grads`` against central finite differences of ``forward``
  (and the default ``gram`` against the per-row gradients it summarises);
* ``sympy_forward`` against ``forward`` (numbers in, numbers out);
* the ``degree`` rule against ``sympy.homogeneous_order`` of the op's own sympy
  form in one activation region (inputs of degree 1 and of degree 0);
* the kink facts (``is_kinked``, ``kinks``, ``clarke_interval``) against a
  brute-force scan of one-sided directional derivatives at points with planted
  zeros and ties;
* the scaling facts (``scaling_exponent``, ``is_positively_homogeneous``) against
  ``f(c x)`` for several ``c > 0``, and ``split_role`` against the op's
  Jacobian sparsity (an elementwise op acts entrywise, a pool within channels).

An op added without its facts (or with wrong ones) fails here: see
``test_an_op_without_its_kink_facts_fails_the_sweep``.  The checker-vs-engine
part of the sweep lives with the certificate checker.
"""

from __future__ import annotations

import numpy as np
import pytest
import sympy as sp

from verifier.errors import NotHomogeneousError, ShapeError
from verifier.ops import REGISTRY, SymFns
from verifier.ops.activations import Elementwise

SHAPES = [(4,), (2, 3, 3)]
H = 1e-6


def _cases() -> list[tuple[str, int]]:
    return [(name, i) for name, op in sorted(REGISTRY.items()) for i in range(len(op.examples))]


class Case:
    """One op at one example: input shapes, parameter shapes and random values (2 samples)."""

    def __init__(self, name: str, i: int, seed: int = 0):
        self.name = name
        self.op = REGISTRY[name]
        self.attrs = self.op.check_attrs("n", dict(self.op.examples[i]))
        self.rng = np.random.default_rng(seed)
        self.ins: list[tuple[int, ...]] = []
        self.out: tuple[int, ...] = ()
        self.pshapes: dict[str, tuple[int, ...]] = {}
        lo = self.op.arity[0]
        for shape in SHAPES:
            ins = [shape] * max(lo, 1)
            try:
                self.out = self.op.out_shape("n", ins, self.attrs)
                self.pshapes = self.op.param_shapes("n", ins, self.attrs)
            except ShapeError:
                continue
            self.ins = ins
            break
        self.xs = [self.rng.normal(size=(2, *s)) for s in self.ins]
        self.ps = {r: self.rng.normal(size=s) for r, s in self.pshapes.items()}

    @property
    def runs(self) -> bool:
        return self.op.arity[0] > 0

    def f(self, xs: list[np.ndarray], ps: dict[str, np.ndarray] | None = None) -> np.ndarray:
        return self.op.forward(xs, self.ps if ps is None else ps, self.attrs)[0]


def _all_cases():
    return [pytest.param(n, i, id=f"{n}-{i}") for n, i in _cases()]


def _computing_cases():
    """The cases of ops with a forward rule (every op but ``input``, whose values the engine feeds)."""
    return [pytest.param(n, i, id=f"{n}-{i}") for n, i in _cases() if REGISTRY[n].arity != (0, 0)]


def test_every_op_has_valid_examples_and_declares_its_facts():
    for name, op in REGISTRY.items():
        assert op.examples, name
        for ex in op.examples:
            attrs = op.check_attrs("n", dict(ex))
            kind = op.kink_kind(attrs)
            assert kind in (None, "elementwise", "maxpool"), (name, kind)
            assert op.is_kinked(attrs) == (kind is not None)
            assert (op.clarke_interval(attrs) is not None) == (kind == "elementwise"), name
            assert op.split_role(attrs) in (None, "reader", "grow", "elementwise", "pool", "reshape"), name
            assert op.unit_params(attrs) in (None, "row", "bias"), name


# --------------------------------------------------------------------------- derivatives


def _rowdot(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a.reshape(a.shape[0], -1) * b.reshape(b.shape[0], -1)).sum(axis=1)


@pytest.mark.parametrize("name,i", _computing_cases())
def test_vjp_and_param_grads_match_finite_differences(name, i):
    c = Case(name, i)
    assert c.runs
    y, ctx = c.op.forward(c.xs, c.ps, c.attrs)
    g = c.rng.normal(size=y.shape)
    grads = c.op.vjp(ctx, g, c.ps, c.attrs)
    assert len(grads) == len(c.xs)
    for k, x in enumerate(c.xs):
        dx = c.rng.normal(size=x.shape)
        plus = [xx + H * dx if j == k else xx for j, xx in enumerate(c.xs)]
        minus = [xx - H * dx if j == k else xx for j, xx in enumerate(c.xs)]
        fd = _rowdot(g, (c.f(plus) - c.f(minus)) / (2 * H))
        an = _rowdot(grads[k], dx)
        np.testing.assert_allclose(an, fd, rtol=1e-5, atol=1e-6)
    pg = c.op.param_grads(ctx, g, c.ps, c.attrs)
    assert set(pg) == set(c.ps)
    for role, p in c.ps.items():
        dp = c.rng.normal(size=p.shape)
        fd = _rowdot(g, (c.f(c.xs, {**c.ps, role: p + H * dp}) - c.f(c.xs, {**c.ps, role: p - H * dp})) / (2 * H))
        an = _rowdot(pg[role], np.broadcast_to(dp, pg[role].shape))
        np.testing.assert_allclose(an, fd, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(c.op.param_grad_sum(ctx, g, c.ps, c.attrs)[role], pg[role].sum(axis=0), atol=1e-12)
    fac = c.op.gram_factor(ctx, g, c.ps, c.attrs)
    if pg:
        flat = np.concatenate([a.reshape(a.shape[0], -1) for a in pg.values()], axis=1)
        np.testing.assert_allclose(c.op.gram_cross(fac, fac), flat @ flat.T, rtol=1e-10, atol=1e-12)
        rows = np.arange(flat.shape[0])[::2]  # a row block against all rows: the tiled product
        np.testing.assert_allclose(c.op.gram_cross(c.op.gram_factor_rows(fac, rows), fac), (flat @ flat.T)[rows],
                                   rtol=1e-10, atol=1e-12)
    else:
        assert fac is None
    # forward mode: the jvp rule against central differences of the forward pass along (dx, dp)
    dxs = [c.rng.normal(size=x.shape) for x in c.xs]
    dps = {role: c.rng.normal(size=p.shape) for role, p in c.ps.items()}
    plus = c.f([x + H * d for x, d in zip(c.xs, dxs)], {r: p + H * dps[r] for r, p in c.ps.items()})
    minus = c.f([x - H * d for x, d in zip(c.xs, dxs)], {r: p - H * dps[r] for r, p in c.ps.items()})
    tan = c.op.jvp(ctx, dxs, dps, c.ps, c.attrs)
    np.testing.assert_allclose(tan, (plus - minus) / (2 * H), rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- sympy form


def _obj(a: np.ndarray, conv=sp.Float) -> np.ndarray:
    out = np.empty(a.shape, dtype=object)
    for idx in np.ndindex(a.shape):
        out[idx] = conv(float(a[idx]))
    return out


@pytest.mark.parametrize("name,i", _computing_cases())
def test_sympy_form_matches_numpy(name, i):
    c = Case(name, i)
    assert c.runs
    y = c.f(c.xs)
    sym = c.op.sympy_forward([_obj(x[0]) for x in c.xs], {r: _obj(p) for r, p in c.ps.items()}, c.attrs, SymFns())
    got = np.array([float(v) for v in np.asarray(sym, dtype=object).ravel()])
    np.testing.assert_allclose(got, y[0].ravel(), rtol=1e-12, atol=1e-12)


class _RegionAt(SymFns):
    """The test's own branch selector: each piece replaced by the branch active at ``point``."""

    def __init__(self, point: dict[sp.Symbol, float]):
        self.point = point

    def _v(self, z: sp.Expr) -> float:
        return float(sp.sympify(z).xreplace(self.point))

    def pl(self, z, pos, neg):
        return pos * z if self._v(z) >= 0 else neg * z

    def max(self, zs):
        return zs[int(np.argmax([self._v(z) for z in zs]))]


def _symbols(prefix: str, shape: tuple[int, ...]) -> np.ndarray:
    out = np.empty(shape, dtype=object)
    for idx in np.ndindex(shape):
        out[idx] = sp.Symbol(prefix + "_".join(map(str, idx)), real=True)
    return out


@pytest.mark.parametrize("name,i", _all_cases())
@pytest.mark.parametrize("in_deg", [0, 1])
def test_degree_rule_matches_sympy_homogeneous_order(name, i, in_deg):
    c = Case(name, i)
    if not c.runs:
        assert c.op.degree("n", [], {}, c.attrs, lambda a, b, why: None) == 0  # the data has degree 0
        return
    xs = [_symbols(f"x{k}_", s) if in_deg else _obj(c.xs[k][0], lambda v: sp.nsimplify(v, rational=True)
                                                                     ) for k, s in enumerate(c.ins)]
    ps = {r: _symbols(f"p{r}_", s) for r, s in c.pshapes.items()}
    point = {}
    for k, x in enumerate(xs):
        if in_deg:
            point.update({x[idx]: sp.Float(c.xs[k][0][idx]) for idx in np.ndindex(x.shape)})
    for r, p in ps.items():
        point.update({p[idx]: sp.Float(c.ps[r][idx]) for idx in np.ndindex(p.shape)})
    out = np.asarray(c.op.sympy_forward(xs, ps, c.attrs, _RegionAt(point)), dtype=object).ravel()
    syms = [s for x in xs if in_deg for s in x.ravel()] + [s for p in ps.values() for s in p.ravel()]
    orders = set()
    for e in out[:6]:  # a few output entries suffice (every entry has the same form)
        e = sp.expand(e)
        if e == 0:
            continue
        orders.add(sp.homogeneous_order(e, *syms) if syms else (0 if e.is_number else None))

    def equal(a, b, why):
        if sp.simplify(a - b) != 0:
            raise NotHomogeneousError(why())

    try:
        rule = c.op.degree("n", [sp.Integer(in_deg)] * len(xs), {r: sp.Integer(1) for r in ps}, c.attrs, equal)
    except NotHomogeneousError:
        rule = None
    if rule is None:  # the rule may reject a function of the data alone (degree 0), never a homogeneous layer
        assert in_deg == 0 or None in orders or len(orders) > 1, f"{name}: the rule rejects what sympy finds homogeneous {orders}"
    else:
        assert orders <= {int(rule)}, f"{name}: rule says degree {rule}, sympy finds {orders}"


# --------------------------------------------------------------------------- kinks


def _planted(c: Case) -> list[np.ndarray]:
    """Inputs with exact zeros (elementwise kinks) and exact ties in every 2x2 block (max-pooling kinks)."""
    xs = [x.copy() for x in c.xs]
    x = xs[0]
    flat = x.reshape(2, -1)
    flat[:, ::3] = 0.0
    if x.ndim == 4:
        x[:, :, 0, 1] = x[:, :, 0, 0] = np.abs(x[:, :, 0, 0]) + 3.0  # a tie at the top-left corner
        x[:, :, 2, 2] = x[:, :, 1, 2] = np.abs(x[:, :, 2, 2]) + 2.0
    return xs


def _brute_kinks(c: Case, xs: list[np.ndarray], h: float = 1e-5) -> tuple[set[tuple[int, int]], dict]:
    """Units whose one-sided derivatives along some input coordinate differ (by more than O(h))."""
    base = c.f(xs).reshape(2, -1)
    found: set[tuple[int, int]] = set()
    slopes: dict[tuple[int, int], tuple[float, float]] = {}
    x = xs[0]
    for j in range(x[0].size):
        e = np.zeros(x.shape)
        e.reshape(2, -1)[:, j] = h
        right = (c.f([x + e] + xs[1:]).reshape(2, -1) - base) / h
        left = (base - c.f([x - e] + xs[1:]).reshape(2, -1)) / h
        for r, u in zip(*np.nonzero(np.abs(right - left) > 1e-2)):
            found.add((int(r), int(u)))
            slopes[(int(r), int(u))] = (float(left[r, u]), float(right[r, u]))
    return found, slopes


@pytest.mark.parametrize("name,i", _all_cases())
def test_kink_facts_match_a_brute_force_scan(name, i):
    c = Case(name, i)
    if not c.runs:
        return
    xs = _planted(c)
    found, slopes = _brute_kinks(c, xs)
    _, ctx = c.op.forward(xs, c.ps, c.attrs)
    declared = {(r, u) for r, u, _v in c.op.kinks(ctx, c.attrs, 0.0)} if c.op.is_kinked(c.attrs) else set()
    assert c.op.is_kinked(c.attrs) == bool(found), f"{name} {c.attrs}: is_kinked says {c.op.is_kinked(c.attrs)}, scan finds {len(found)} kinks"
    assert declared == found, f"{name}: kinks() reports {sorted(declared)}, the scan {sorted(found)}"
    iv = c.op.clarke_interval(c.attrs)
    if c.op.kink_kind(c.attrs) == "elementwise":
        for (lft, rgt) in slopes.values():
            assert (min(lft, rgt), max(lft, rgt)) == pytest.approx((float(iv[0]), float(iv[1])), abs=1e-6)
        # the engine's default derivative lies in the interval; the kink value is the pre-activation
        assert float(iv[0]) - 1e-12 <= float(c.op.df(np.zeros(1), c.attrs)[0]) <= float(iv[1]) + 1e-12


# --------------------------------------------------------------------------- scaling and splitting facts


@pytest.mark.parametrize("name,i", _all_cases())
def test_scaling_and_split_facts(name, i):
    c = Case(name, i)
    if not c.runs:
        return
    role = c.op.split_role(c.attrs)
    if role in ("elementwise", "pool", "reshape"):
        p = c.op.scaling_exponent(c.attrs)
        y = c.f(c.xs)
        ok = {cc: np.allclose(c.f([cc * x for x in c.xs]), (cc ** (p or 0)) * y, rtol=1e-12, atol=1e-12)
              for cc in (0.5, 3.0, 7.25)}
        if p is None:
            assert not all(any(np.allclose(c.f([cc * x for x in c.xs]), cc ** q * y, rtol=1e-9) for q in range(4))
                           for cc in (0.5, 3.0)), f"{name}: scaling_exponent None but the op is homogeneous"
        else:
            assert all(ok.values()), f"{name}: f(c x) != c^{p} f(x)"
        assert c.op.is_positively_homogeneous(c.attrs) == (p == 1)
    # Jacobian sparsity from finite differences: which input entries each output entry reads
    x = c.xs[0]
    base = c.f(c.xs)[0]
    reads = np.zeros((base.size, x[0].size), dtype=bool)
    for j in range(x[0].size):
        e = np.zeros(x.shape)
        e.reshape(2, -1)[0, j] = 1e-3
        reads[:, j] = np.abs((c.f([x + e] + c.xs[1:])[0] - base).ravel()) > 0
    if role == "elementwise":
        assert c.out == c.ins[0] and not c.pshapes
        assert not np.any(reads & ~np.eye(base.size, dtype=bool)), f"{name}: not entrywise"
    elif role == "pool":
        ch_out = np.repeat(np.arange(c.out[0]), int(np.prod(c.out[1:])))
        ch_in = np.repeat(np.arange(c.ins[0][0]), int(np.prod(c.ins[0][1:])))
        assert not np.any(reads & (ch_out[:, None] != ch_in[None, :])), f"{name}: mixes channels"
    elif role == "reshape":
        assert reads.sum(axis=1).tolist() == [1] * base.size and int(np.prod(c.out)) == int(np.prod(c.ins[0]))
    elif role == "reader":
        assert "weight" in c.pshapes and c.op.split_units(c.attrs) == c.out[0]
        assert c.op.widen(dict(c.attrs), 7) != c.attrs
    elif role == "grow":
        assert c.pshapes and all(s[0] == c.out[0] for s in c.pshapes.values())
    if c.op.unit_params(c.attrs) == "row":  # z_u reads its own parameter row only
        for r, p in c.ps.items():
            dp = np.zeros(p.shape)
            dp[0] = 1.0
            moved = np.abs(c.f(c.xs, {**c.ps, r: p + dp}) - c.f(c.xs)).reshape(2, -1).max(axis=0) > 0
            assert moved.tolist() == [True] + [False] * (moved.size - 1)


# --------------------------------------------------------------------------- the sweep catches a missing fact


class _AbsWithoutFacts(Elementwise):
    """abs, but its author forgot the kink facts (no ``slopes``)."""

    name = "abs_without_facts"

    def f(self, z, attrs):
        return np.abs(z)

    def df(self, z, attrs):
        return np.sign(z)

    def sym(self, z, attrs, fns):
        return sp.Abs(z)


def test_an_op_without_its_kink_facts_fails_the_sweep():
    REGISTRY[_AbsWithoutFacts.name] = _AbsWithoutFacts()
    try:
        with pytest.raises(AssertionError, match="is_kinked says False"):
            test_kink_facts_match_a_brute_force_scan(_AbsWithoutFacts.name, 0)
        with pytest.raises(AssertionError, match="scaling_exponent None but the op is homogeneous"):
            test_scaling_and_split_facts(_AbsWithoutFacts.name, 0)
    finally:
        del REGISTRY[_AbsWithoutFacts.name]


def test_sweep_covers_two_slope_and_relu_power_one():
    names = {n for n, _ in _cases()}
    assert {"two_slope", "relu_power", "maxpool2d", "dense", "conv2d"} <= names
    op = REGISTRY["relu_power"]
    assert op.is_kinked(op.check_attrs("n", {"k": 1})) and not op.is_kinked(op.check_attrs("n", {"k": 2}))




def test_strategy_activations_are_positively_homogeneous_by_the_ops_facts():
    from verifier.graph.builders import parse_activation
    from verifier.strategies import HOMOGENEOUS_ACTIVATIONS

    for spec in HOMOGENEOUS_ACTIVATIONS:
        name, attrs = parse_activation(spec)
        op = REGISTRY[name]
        assert op.is_positively_homogeneous(op.check_attrs("n", attrs)), spec
