"""The operation protocol and its registry.

An operation declares, in one class, every fact an analysis needs:

* ``attrs``: the attributes it accepts (name -> :class:`Attr`), validated up front;
* ``arity``: how many inputs it takes;
* ``out_shape`` / ``param_shapes``: per-sample shape inference and the shapes of
  the parameter tensors it owns (``roles`` such as ``"weight"``);
* ``degree``: its homogeneity rule (one rule serves both the plain degree and
  the quasi-homogeneous weights, through the ``equal`` callback);
* ``forward`` / ``vjp`` / ``param_grads`` / ``gram``: the batched numpy
  forward pass, the vector-Jacobian product, per-row parameter gradients and
  that tensor's contribution to the margin Gram matrix ``G = J J^T``;
* ``sympy_forward``: the same map on sympy expressions (one sample);
* the *kink facts* (CVXPY-atom style, each a small method of the op):
  ``kink_kind`` (``"elementwise"``, ``"maxpool"`` or ``None``; ``is_kinked``
  derives from it), ``clarke_interval`` (the exact derivative interval at an
  elementwise kink), ``is_piecewise`` (branches that the symbolic layer
  enumerates), ``kinks`` / ``kink_scale`` / ``constant_outputs`` (where, at a
  point, the op is not differentiable, at what scale, and which outputs have
  gradient exactly 0 whatever the kink selections);
* the *splitting facts*: ``scaling_exponent`` (``f(c z) = c^p f(z)``),
  ``is_positively_homogeneous`` (``p == 1``, what splitting needs) and
  ``split_role`` (how a split unit passes through the op).

Adding an operation means writing one subclass in one module of this package
(every module is imported, so a new file is enough) and decorating it with
:func:`register`; every analysis picks it up from :data:`REGISTRY`.  See
``docs/ops.md``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping

import numpy as np
import sympy as sp

from ..errors import GraphError, NotHomogeneousError, ShapeError, UnknownOpError

Shape = tuple[int, ...]
#: Saved forward state.  Arrays whose key has no leading underscore have the
#: sample on their first axis (the engine gathers them per constraint row);
#: keys starting with ``_`` are metadata (shapes, counts) and are passed as is.
Ctx = dict[str, Any]
#: ``equal(a, b, why)`` asserts two degrees are equal; ``why`` is a callable
#: producing the explanation used when they are not.
EqualFn = Callable[[sp.Expr, sp.Expr, Callable[[], str]], None]

REGISTRY: dict[str, "Op"] = {}


def register(cls: type["Op"]) -> type["Op"]:
    """Class decorator: instantiate the op and add it to :data:`REGISTRY`."""
    if cls.name in REGISTRY:
        raise RuntimeError(f"op {cls.name!r} registered twice")
    REGISTRY[cls.name] = cls()
    return cls


def get_op(name: Any, node: str = "?") -> "Op":
    """The registered op called ``name`` (anything else, e.g. a non-string from a file, is an unknown op);
    the error lists the known ops."""
    try:
        return REGISTRY[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(REGISTRY))
        raise UnknownOpError(
            f"node {node!r}: unknown op {name!r}; known ops are: {known}"
        ) from None


@dataclass(frozen=True)
class Attr:
    """One attribute of an op: its kind, default and a validity predicate."""

    kind: str  # "int", "float", "pair" (an int or a pair of ints), "shape"
    default: Any = None
    required: bool = False
    check: Callable[[Any], bool] | None = None
    valid: str = ""  # human description of valid values, used in errors


def _coerce(node: str, op: str, key: str, spec: Attr, value: Any) -> Any:
    where = f"node {node!r} ({op}): attribute {key}={value!r}"
    try:
        if spec.kind == "int":
            if isinstance(value, bool) or int(value) != value:
                raise ValueError
            out: Any = int(value)
        elif spec.kind == "float":
            out = float(value)
            if not np.isfinite(out):
                raise ValueError
        elif spec.kind == "pair":  # int or pair of ints
            if isinstance(value, (list, tuple)):
                if len(value) != 2:
                    raise ValueError
                out = tuple(int(v) for v in value)
                if any(o != v for o, v in zip(out, value)):
                    raise ValueError
            else:
                if isinstance(value, bool) or int(value) != value:
                    raise ValueError
                out = (int(value), int(value))
        elif spec.kind == "shape":
            out = tuple(int(v) for v in value)
            if any(o != v for o, v in zip(out, value)):
                raise ValueError
        else:  # pragma: no cover - programming error
            raise RuntimeError(spec.kind)
    except (TypeError, ValueError):
        raise GraphError(f"{where} is not valid; expected {spec.valid or spec.kind}") from None
    if spec.check is not None and not spec.check(out):
        raise GraphError(f"{where} is not valid; expected {spec.valid}")
    return out


class Op:
    """Base class of all operations (see the module docstring)."""

    name: ClassVar[str] = ""
    #: (min, max) number of inputs; max ``None`` means unbounded.
    arity: ClassVar[tuple[int, int | None]] = (1, 1)
    attrs: ClassVar[dict[str, Attr]] = {}
    #: parameter roles this op owns, in flattening order.
    roles: ClassVar[tuple[str, ...]] = ()
    #: representative attribute sets (for the op sweep test and the docs); ``[{}]`` when the op has none.
    examples: ClassVar[tuple[dict[str, Any], ...]] = ({},)

    # -- static facts -------------------------------------------------------
    def check_attrs(self, node: str, attrs: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and normalise ``attrs`` (fill defaults, coerce types)."""
        unknown = sorted(set(attrs) - set(self.attrs))
        if unknown:
            valid = ", ".join(sorted(self.attrs)) or "none"
            raise GraphError(
                f"node {node!r} ({self.name}): unknown attribute(s) {unknown}; valid: {valid}"
            )
        out: dict[str, Any] = {}
        for key, spec in self.attrs.items():
            if key in attrs and attrs[key] is not None:
                out[key] = _coerce(node, self.name, key, spec, attrs[key])
            elif spec.required:
                raise GraphError(
                    f"node {node!r} ({self.name}): missing attribute {key!r} ({spec.valid})"
                )
            else:
                out[key] = spec.default
        return out

    def out_shape(self, node: str, in_shapes: list[Shape], attrs: Mapping[str, Any]) -> Shape:
        """Per-sample output shape; default: same as the (single) input."""
        return in_shapes[0]

    def param_shapes(self, node: str, in_shapes: list[Shape], attrs: Mapping[str, Any]) -> dict[str, Shape]:
        """Shapes of the parameter tensors this op owns, by role."""
        return {}

    def degree(
        self,
        node: str,
        in_degs: list[sp.Expr],
        param_degs: dict[str, sp.Expr],
        attrs: Mapping[str, Any],
        equal: EqualFn,
    ) -> sp.Expr:
        """Degree of the output in the parameters; default: unchanged."""
        return in_degs[0]

    def scaling_exponent(self, attrs: Mapping[str, Any]) -> int | None:
        """``p`` with ``f(c z) = c^p f(z)`` for all ``c > 0``, or ``None`` if there is none.

        Neuron/channel splitting needs ``p == 1`` for the op that follows the
        split unit (ReLU, leaky ReLU, abs, identity, pooling).
        """
        return 1

    def is_positively_homogeneous(self, attrs: Mapping[str, Any]) -> bool:
        """``f(c z) = c f(z)`` for every ``c > 0``: a split unit passes through unchanged."""
        return self.scaling_exponent(attrs) == 1

    # -- kink facts ---------------------------------------------------------------
    def kink_kind(self, attrs: Mapping[str, Any]) -> str | None:
        """Where the op is not differentiable, or ``None`` if it is differentiable everywhere.

        * ``"elementwise"``: a scalar map ``a = f(z)`` with one kink at ``z = 0``;
          the op saves ``ctx["z"]`` (the pre-activation), has ``df(z, attrs)``
          (the default derivative, used by the engine) and ``clarke_interval``;
        * ``"maxpool"``: a maximum over windows; the op saves its input ``ctx["x"]`` and
          ``ctx["arg"]`` (its windows on demand) and has ``ties`` / ``tie_positions`` / ``window_size``.
        """
        return None

    def is_kinked(self, attrs: Mapping[str, Any]) -> bool:
        """True when the op (with these attributes) has non-differentiable points."""
        return self.kink_kind(attrs) is not None

    def is_piecewise(self, attrs: Mapping[str, Any]) -> bool:
        """True when the op has branches the symbolic layer must enumerate (kinked or not, e.g. ``relu^2``)."""
        return self.is_kinked(attrs)

    def clarke_interval(self, attrs: Mapping[str, Any]) -> tuple[sp.Rational, sp.Rational] | None:
        """The Clarke derivative interval ``[lo, hi]`` (exact) at an elementwise kink; ``None`` otherwise."""
        return None

    def unit_params(self, attrs: Mapping[str, Any]) -> str | None:
        """How output unit ``u`` depends on the op's parameters (what the "exact" kink structure needs).

        * ``"row"``: ``z_u = <W[u, :], h>``, its own parameter row (dense);
        * ``"bias"``: ``z_u = h_u + b_u``, its own parameter entry (bias);
        * ``None``: no parameters, or parameters shared between units (conv2d).
        """
        return None

    def split_role(self, attrs: Mapping[str, Any]) -> str | None:
        """How a split unit (neuron or channel, docs/math.md section 10) passes through this op.

        * ``"reader"``: the op reads units through its ``weight`` (dense, conv2d): the
          split grows the weight's input axis and stops here;
        * ``"grow"``: the op owns a per-unit tensor (bias) that is split with the unit;
        * ``"elementwise"``: the op acts on each unit separately; the unit passes with
          exponent ``scaling_exponent`` (only ``1`` preserves the function);
        * ``"pool"``: acts within each channel (pooling): passes unchanged;
        * ``"reshape"``: re-indexes units (flatten): passes, the block size changes;
        * ``None``: a split unit cannot pass (add, output, ...).
        """
        return None

    def split_units(self, attrs: Mapping[str, Any]) -> int:
        """A ``"reader"`` that also produces units: how many (what a split can split)."""
        raise NotImplementedError(f"op {self.name!r} produces no splittable units")

    def widen(self, attrs: Mapping[str, Any], units: int) -> dict[str, Any]:
        """``attrs`` of the same layer producing ``units`` units (the wide network of a split)."""
        raise NotImplementedError(f"op {self.name!r} produces no splittable units")

    def split_reader_block(self, block: int | None) -> int:
        """A ``"reader"``: entries of its ``weight``'s input axis per split unit of its input."""
        raise NotImplementedError(f"op {self.name!r} does not read split units")

    def split_block(self, in_shape: Shape, block: int | None) -> int | None:
        """Entries per unit in the output, given ``block`` entries per unit in the input (``None``: a channel)."""
        return block

    def kink_scale(self, ctx: Ctx, attrs: Mapping[str, Any]) -> np.ndarray:
        """Per-sample scale (shape ``(rows,)``) that :meth:`kinks` tolerances are relative to."""
        return np.zeros(0)

    def constant_outputs(self, ctx: Ctx, xs: list[np.ndarray], consts: list[np.ndarray | None],
                         attrs: Mapping[str, Any], tol: np.ndarray | float) -> np.ndarray | None:
        """Boolean ``(rows, *out_shape)``: outputs whose gradient in theta is exactly 0 under every kink selection.

        ``xs`` are the op's input values and ``consts`` the inputs' masks of the
        same kind (``None``: nothing known, treat as all False); ``tol`` is this
        op's absolute kink tolerance per sample.  The rule is local (JAX-style, one
        per op) and the engine composes it in topological order, starting from
        the data (all constant).  Returning ``None`` (the default) claims nothing
        and is always sound.  A kink whose input is constant cannot change any
        gradient, and neither can a tie among constant entries: neither is
        reported (e.g. ReLU zeros on an all-zero image patch, or below the kink).
        """
        return None
    # -- numerics (batched: first axis is the sample / constraint row) --------
    def forward(self, xs: list[np.ndarray], ps: dict[str, np.ndarray], attrs: Mapping[str, Any]) -> tuple[np.ndarray, Ctx]:
        raise NotImplementedError(f"forward rule for {self.name!r} not implemented")

    def vjp(self, ctx: Ctx, g: np.ndarray, ps: dict[str, np.ndarray], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        """Gradients with respect to each input, given ``g = dq/d out`` per row."""
        raise NotImplementedError(f"vjp rule for {self.name!r} not implemented")

    def jvp(self, ctx: Ctx, dxs: list[np.ndarray | None], dps: dict[str, np.ndarray], ps: dict[str, np.ndarray],
            attrs: Mapping[str, Any]) -> np.ndarray | None:
        """Forward mode: the output's tangent given input tangents ``dxs`` (``None`` = zero, e.g. the data)
        and parameter tangents ``dps`` (role -> array shaped like the tensor).  ``None`` if it is zero."""
        raise NotImplementedError(f"jvp rule for {self.name!r} not implemented")

    def param_grads(self, ctx: Ctx, g: np.ndarray, ps: dict[str, np.ndarray], attrs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """Per-row gradients of every owned tensor: role -> array ``(rows, *shape)``."""
        return {}

    def param_grad_sum(self, ctx: Ctx, g: np.ndarray, ps: dict[str, np.ndarray], attrs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """``sum_r`` of the per-row gradients (what training needs); override when cheaper."""
        return {role: a.sum(axis=0) for role, a in self.param_grads(ctx, g, ps, attrs).items()}

    def gram_factor(self, ctx: Ctx, g: np.ndarray, ps: dict[str, np.ndarray], attrs: Mapping[str, Any]) -> Any:
        """What this op needs to form its block of ``G = J J^T`` between row sets (see :meth:`gram_cross`).

        The default materialises the per-row gradients of the op's tensors,
        flattened (small for scale/bias, fine for convolutions); dense
        overrides it with the pair ``(g, h)`` of the factored form.
        """
        grads = self.param_grads(ctx, g, ps, attrs)
        if not grads:
            return None
        return np.concatenate([a.reshape(a.shape[0], -1) for a in grads.values()], axis=1)

    def gram_cross(self, fa: Any, fb: Any) -> np.ndarray:
        """``<grad_r, grad_s>`` over this op's tensors for rows ``r`` of ``fa`` and ``s`` of ``fb``
        (both from :meth:`gram_factor`): the block ``G[A, B]`` of the op's contribution."""
        return fa @ fb.T

    def gram_factor_rows(self, fa: Any, rows: np.ndarray | slice) -> Any:
        """The rows ``rows`` of a :meth:`gram_factor` (to tile ``G`` in row blocks)."""
        return fa[rows]

    def kinks(self, ctx: Ctx, attrs: Mapping[str, Any], tol: np.ndarray | float,
              frozen: np.ndarray | None = None) -> list[tuple[int, int, float]]:
        """Non-differentiable points: ``(sample, flat unit index, value)``.

        ``tol`` is absolute, a number or one per sample (the engine passes
        ``kink_tol * kink_scale``); ``frozen`` is the input node's
        :meth:`constant_outputs` mask when known: a kink whose input is constant
        (elementwise), or a tie among constant entries (max-pooling), is skipped.
        """
        return []

    # -- symbolic -------------------------------------------------------------
    def sympy_forward(self, xs: list[np.ndarray], ps: dict[str, np.ndarray], attrs: Mapping[str, Any], fns: "SymFns") -> np.ndarray:
        """The op on object arrays of sympy expressions (one sample, no batch axis)."""
        raise NotImplementedError(f"sympy rule for {self.name!r} not implemented")


class SymFns:
    """The non-polynomial pieces used by :meth:`Op.sympy_forward`.

    The default maps ``relu`` to ``Max(0, z)``; a region evaluator (see
    :func:`verifier.analysis.region_functions`) replaces them by the polynomial
    branch active at a point, and the symbolic layer may plug in its own.

    Every scalar piecewise-linear activation goes through one hook,
    :meth:`pl` (``z -> pos z`` for ``z >= 0``, ``neg z`` for ``z < 0``);
    ``relu``, ``abs`` and ``leaky_relu`` are its special cases, so a
    subclass that overrides :meth:`pl` handles all of them (and new ops such
    as ``two_slope``).
    """

    def pl(self, z: sp.Expr, pos: sp.Expr, neg: sp.Expr) -> sp.Expr:
        if (pos, neg) == (1, 0):
            return sp.Max(0, z)
        if (pos, neg) == (1, -1):
            return sp.Abs(z)
        return pos * sp.Max(0, z) + neg * sp.Min(0, z)

    def relu(self, z: sp.Expr) -> sp.Expr:
        return self.pl(z, sp.Integer(1), sp.Integer(0))

    def abs(self, z: sp.Expr) -> sp.Expr:
        return self.pl(z, sp.Integer(1), sp.Integer(-1))

    def max(self, zs: list[sp.Expr]) -> sp.Expr:
        return sp.Max(*zs)

    def leaky_relu(self, z: sp.Expr, slope: sp.Expr) -> sp.Expr:
        return self.pl(z, sp.Integer(1), slope)

    def sigmoid(self, z: sp.Expr) -> sp.Expr:
        return 1 / (1 + sp.exp(-z))

    def tanh(self, z: sp.Expr) -> sp.Expr:
        return sp.tanh(z)


def const_mask(c: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    """``c`` or, for ``None`` (nothing known), an all-False mask of ``shape``."""
    return np.zeros(shape, dtype=bool) if c is None else c


def require_flat(node: str, op: str, shape: Shape) -> int:
    if len(shape) != 1:
        raise ShapeError(
            f"node {node!r} ({op}) needs a flat input of shape (features,), got {shape}; "
            "insert a 'flatten' node before it"
        )
    return shape[0]


def require_image(node: str, op: str, shape: Shape) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise ShapeError(
            f"node {node!r} ({op}) needs an input of shape (channels, height, width), got {shape}"
        )
    return shape  # type: ignore[return-value]


def not_homogeneous(node: str, reason: str) -> NotHomogeneousError:
    return NotHomogeneousError(f"network is not positively homogeneous: node {node!r}: {reason}")
