"""Sympy functions for the positively homogeneous pieces of a network.

``Max(0, z)`` with ``simplify`` does not prove ``Max(0, c z) = c Max(0, z)``
for a positive symbol ``c``; these functions do it by construction: their
``eval`` pulls positive factors out of the argument, so homogeneity
identities cancel automatically.

* :class:`relu` -- ``relu(z) = max(0, z)``; ``relu(c z) = c relu(z)`` for ``c > 0``.
  Leaky ReLU and ``abs`` are written through it (exact identities):
  ``leaky_relu(z) = relu(z) - a relu(-z)`` and ``|z| = relu(z) + relu(-z)``.
* :class:`step` -- the derivative ``relu'(z)``: 1 for ``z > 0``, 0 for
  ``z < 0``; ``step(c z) = step(z)``.
* :class:`pmax` -- ``max(z_1, ..., z_k)`` (max pooling), pulling common positive
  factors out; its partial derivatives are :class:`maxind`.
* :class:`maxind` -- ``maxind(k, z_1..z_w)``: 1 where ``z_{k+1}`` is the unique
  maximum, 0 where another entry is strictly larger.

Clarke convention (docs/math.md section 7), explicit: ``step(0)`` is left
unevaluated; it stands for *any* ``s`` in the Clarke interval of the unit,
``[0, 1]`` for ReLU (:func:`clarke_interval`).  ``leaky_relu`` and ``abs`` are
sums of two ReLUs, so their derivatives contain ``step(z)`` and ``step(-z)``;
off the kink ``step(-z) = 1 - step(z)`` exactly, and at a kink the convention
is to read them as ``s`` and ``1 - s`` with one ``s`` in ``[0, 1]`` (not two
independent values): the derivative ``s + a (1 - s)`` resp. ``2 s - 1`` then
sweeps exactly the Clarke interval ``[min(a, 1), max(a, 1)]`` resp. ``[-1, 1]``.
At ties of ``pmax`` the Clarke set is the convex hull of the tied ``maxind``
vertices.  Away from
kinks the derivatives are classical.  :class:`step` and :class:`maxind` are
treated as locally constant (derivative 0, which holds off the kink set).

>>> import sympy as sp
>>> c = sp.Symbol("c", positive=True); a, b = sp.symbols("a b", real=True)
>>> relu(c * a + 2 * c * b)
c*relu(a + 2*b)
>>> relu(c * a) - c * relu(a)
0
>>> sp.diff(relu(a * b), a)
b*step(a*b)
>>> step(3 * c * a), relu(-2), step(5), step(0)
(step(a), 0, 1, step(0))
>>> pmax(c * a, 2 * c * b)
c*pmax(a, 2*b)
"""

from __future__ import annotations

from typing import Any, Sequence

import sympy as sp
from sympy import S

from ..ops.base import SymFns

__all__ = ["relu", "step", "pmax", "maxind", "HomogeneousFns", "clarke_interval", "euler_rewrite", "positive_part"]


def positive_part(z: sp.Expr) -> tuple[sp.Expr, sp.Expr]:
    """Split ``z = c * r`` with ``c > 0`` collecting every provably positive factor.

    Sums are first written with their common factors pulled out
    (``factor_terms``), so ``c a + c b`` gives ``(c, a + b)``.

    >>> import sympy as sp
    >>> c = sp.Symbol("c", positive=True); a = sp.Symbol("a")
    >>> positive_part(-6 * c**2 * a)
    (6*c**2, -a)
    """
    z2 = sp.factor_terms(z) if z.is_Add else z
    coeff, rest = z2.as_coeff_Mul()
    pos: list[sp.Expr] = []
    other: list[sp.Expr] = []
    for f in sp.Mul.make_args(rest):
        (pos if f.is_positive else other).append(f)
    c = abs(coeff) * sp.Mul(*pos)
    r = sp.sign(coeff) * sp.Mul(*other)
    return c, r


def _common_positive(zs: Sequence[sp.Expr]) -> tuple[sp.Expr, list[sp.Expr]]:
    zs = [sp.factor_terms(z) if z.is_Add else z for z in zs]
    ds = [sp.Dummy() for _ in zs]
    ft = sp.factor_terms(sp.Add(*[d * z for d, z in zip(ds, zs)]))
    coeff, rest = ft.as_coeff_Mul()
    pos = [f for f in sp.Mul.make_args(rest) if f.is_positive and not (f.free_symbols & set(ds))]
    return abs(coeff) * sp.Mul(*pos), zs


class relu(sp.Function):
    """``max(0, z)``, evaluated on numbers and pulling positive factors out.

    Its derivative is :class:`step`; at ``z = 0`` the Clarke subdifferential
    is the interval ``[0, 1]`` (``step(0)`` stays unevaluated).
    """

    nargs = 1

    @classmethod
    def eval(cls, z: sp.Expr) -> sp.Expr | None:
        if z.is_extended_nonnegative:
            return z
        if z.is_extended_nonpositive:
            return S.Zero
        c, r = positive_part(z)
        if c != 1:
            return c * cls(r)
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return step(self.args[0])

    def _eval_is_extended_real(self) -> bool | None:
        return self.args[0].is_extended_real

    def _eval_is_extended_nonnegative(self) -> bool | None:
        return True if self.args[0].is_extended_real else None

    def _eval_rewrite_as_Max(self, z: sp.Expr, **kw: Any) -> sp.Expr:
        return sp.Max(0, z)

    def _eval_rewrite_as_Heaviside(self, z: sp.Expr, **kw: Any) -> sp.Expr:
        return z * sp.Heaviside(z)

    def _latex(self, printer: Any) -> str:
        return r"\operatorname{relu}\left(%s\right)" % printer._print(self.args[0])


class step(sp.Function):
    """``relu'(z)``: 1 for ``z > 0``, 0 for ``z < 0``; ``step(0)`` is any ``s`` in ``[0, 1]`` (Clarke)."""

    nargs = 1

    @classmethod
    def eval(cls, z: sp.Expr) -> sp.Expr | None:
        if z.is_extended_positive:
            return S.One
        if z.is_extended_negative:
            return S.Zero
        if z.is_zero:
            return None
        c, r = positive_part(z)
        if c != 1:
            return cls(r)
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return S.Zero  # locally constant off the kink set

    def _eval_rewrite_as_Heaviside(self, z: sp.Expr, **kw: Any) -> sp.Expr:
        return sp.Heaviside(z)

    def _latex(self, printer: Any) -> str:
        return r"\operatorname{step}\left(%s\right)" % printer._print(self.args[0])


class pmax(sp.Function):
    """``max(z_1, ..., z_k)`` pulling a common positive factor out; derivatives are :class:`maxind`."""

    @classmethod
    def eval(cls, *zs: sp.Expr) -> sp.Expr | None:
        if len(zs) == 1:
            return zs[0]
        if all(z.is_number for z in zs):
            return sp.Max(*zs)
        c, zz = _common_positive(zs)
        if c != 1:
            return c * cls(*[z / c for z in zz])
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return maxind(argindex - 1, *self.args)

    def _eval_rewrite_as_Max(self, *zs: sp.Expr, **kw: Any) -> sp.Expr:
        return sp.Max(*zs)

    def _latex(self, printer: Any) -> str:
        return r"\max\left(%s\right)" % ", ".join(printer._print(a) for a in self.args)


class maxind(sp.Function):
    """``d pmax / d z_{k+1}``: 1 if entry ``k`` (0-based) is the strict maximum, 0 if it is not a maximum.

    At ties it stays unevaluated: the Clarke set is the convex hull of the
    tied entries' indicator vectors.
    """

    @classmethod
    def eval(cls, k: sp.Expr, *zs: sp.Expr) -> sp.Expr | None:
        if all(z.is_number for z in zs) and k.is_Integer:
            zk = zs[int(k)]
            others = [z for i, z in enumerate(zs) if i != int(k)]
            if all(bool(zk > z) for z in others):
                return S.One
            if any(bool(z > zk) for z in others):
                return S.Zero
            return None
        c, zz = _common_positive(zs)
        if c != 1:
            return cls(k, *[z / c for z in zz])
        return None

    def fdiff(self, argindex: int = 1) -> sp.Expr:
        return S.Zero


def euler_rewrite(expr: sp.Expr) -> sp.Expr:
    """Rewrite ``relu(u) -> u step(u)`` and ``pmax(z) -> sum_k z_k maxind(k, z)`` (exact identities).

    With these the Euler identity of a piecewise-linear expression becomes a
    polynomial identity in the parameters and the opaque ``step``/``maxind``
    atoms (valid for every value ``step(0)`` may take).

    >>> import sympy as sp
    >>> a, b = sp.symbols("a b", real=True)
    >>> e = b * relu(a)
    >>> sp.expand(euler_rewrite(a * sp.diff(e, a) + b * sp.diff(e, b) - 2 * e))
    0
    """
    out = expr.replace(relu, lambda u: u * step(u))
    return out.replace(pmax, lambda *zs: sp.Add(*[z * maxind(k, *zs) for k, z in enumerate(zs)]))


class HomogeneousFns(SymFns):
    """The :class:`~verifier.ops.base.SymFns` hooks mapped onto :class:`relu` and :class:`pmax`.

    Every two-slope piecewise-linear map is ``pl(z, a, b) = a relu(z) - b relu(-z)``
    (``abs(z) = relu(z) + relu(-z)``, ``leaky_relu(z) = relu(z) - slope relu(-z)``);
    sigmoid and tanh keep sympy's forms (they are not homogeneous).
    """

    def pl(self, z: sp.Expr, pos: sp.Expr, neg: sp.Expr) -> sp.Expr:
        out = sp.Integer(0)
        if pos != 0:
            out += relu(z) if pos == 1 else pos * relu(z)
        if neg != 0:
            out -= neg * relu(-z)
        return out

    def max(self, zs: list[sp.Expr]) -> sp.Expr:
        return pmax(*zs)


def clarke_interval(op: str, slope: Any = None, **attrs: Any) -> sp.Interval:
    """Clarke subdifferential at 0 of a kinked scalar activation (the op's own fact, exact).

    ``attrs`` are the op's attributes (``slope`` is accepted positionally for ``leaky_relu``);
    required attributes not given are taken from the op's first example (``relu_power``: ``k = 1``).

    >>> clarke_interval("relu"), clarke_interval("abs"), clarke_interval("leaky_relu", 0.1)
    (Interval(0, 1), Interval(-1, 1), Interval(1/10, 1))
    >>> clarke_interval("two_slope", a=2, b=-0.5)
    Interval(-1/2, 2)
    """
    from ..errors import VerifierError
    from ..ops import REGISTRY, get_op

    impl = get_op(op, node="clarke_interval")
    if slope is not None:
        attrs = {"slope": slope, **attrs}
    attrs = {**{k: v for k, v in impl.examples[0].items() if impl.attrs[k].required}, **attrs}
    iv = impl.clarke_interval(impl.check_attrs("clarke_interval", attrs))
    if iv is None:
        kinked = sorted(n for n, o in REGISTRY.items()
                        if any(o.kink_kind(o.check_attrs(n, dict(e))) == "elementwise" for e in o.examples))
        raise VerifierError(f"clarke_interval: op {op!r} has no scalar kink with attributes {attrs}; "
                            f"ops with one: {', '.join(kinked)}")
    return sp.Interval(*iv)
