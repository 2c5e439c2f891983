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
* ``kinks``: where the op is not differentiable (pre-activations near 0).

Adding an operation means writing one subclass and decorating it with
:func:`register`; every analysis picks it up from :data:`REGISTRY`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar

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


def get_op(name: str, node: str = "?") -> "Op":
    """The registered op called ``name``; the error lists the known ops."""
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

    kind: str  # "int", "float", "rational", "ints", "shape"
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
    #: True for piecewise ops with non-differentiable points (reported as kinks).
    has_kinks: ClassVar[bool] = False

    # -- static facts -------------------------------------------------------
    def check_attrs(self, node: str, attrs: dict[str, Any]) -> dict[str, Any]:
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

    def out_shape(self, node: str, in_shapes: list[Shape], attrs: dict[str, Any]) -> Shape:
        """Per-sample output shape; default: same as the (single) input."""
        return in_shapes[0]

    def param_shapes(self, node: str, in_shapes: list[Shape], attrs: dict[str, Any]) -> dict[str, Shape]:
        """Shapes of the parameter tensors this op owns, by role."""
        return {}

    def degree(
        self,
        node: str,
        in_degs: list[sp.Expr],
        param_degs: dict[str, sp.Expr],
        attrs: dict[str, Any],
        equal: EqualFn,
    ) -> sp.Expr:
        """Degree of the output in the parameters; default: unchanged."""
        return in_degs[0]

    def scaling_exponent(self, attrs: dict[str, Any]) -> int | None:
        """``p`` with ``f(c z) = c^p f(z)`` for all ``c > 0``, or ``None`` if there is none.

        Neuron/channel splitting needs ``p == 1`` for the op that follows the
        split unit (ReLU, leaky ReLU, abs, identity, pooling).
        """
        return 1

    # -- numerics (batched: first axis is the sample / constraint row) --------
    def forward(self, xs: list[np.ndarray], ps: dict[str, np.ndarray], attrs: dict[str, Any]) -> tuple[np.ndarray, Ctx]:
        raise NotImplementedError(f"forward rule for {self.name!r} not implemented")

    def vjp(self, ctx: Ctx, g: np.ndarray, ps: dict[str, np.ndarray], attrs: dict[str, Any]) -> list[np.ndarray]:
        """Gradients with respect to each input, given ``g = dq/d out`` per row."""
        raise NotImplementedError(f"vjp rule for {self.name!r} not implemented")

    def jvp(self, ctx: Ctx, dxs: list[np.ndarray | None], dps: dict[str, np.ndarray], ps: dict[str, np.ndarray],
            attrs: dict[str, Any]) -> np.ndarray | None:
        """Forward mode: the output's tangent given input tangents ``dxs`` (``None`` = zero, e.g. the data)
        and parameter tangents ``dps`` (role -> array shaped like the tensor).  ``None`` if it is zero."""
        raise NotImplementedError(f"jvp rule for {self.name!r} not implemented")

    def param_grads(self, ctx: Ctx, g: np.ndarray, ps: dict[str, np.ndarray], attrs: dict[str, Any]) -> dict[str, np.ndarray]:
        """Per-row gradients of every owned tensor: role -> array ``(rows, *shape)``."""
        return {}

    def param_grad_sum(self, ctx: Ctx, g: np.ndarray, ps: dict[str, np.ndarray], attrs: dict[str, Any]) -> dict[str, np.ndarray]:
        """``sum_r`` of the per-row gradients (what training needs); override when cheaper."""
        return {role: a.sum(axis=0) for role, a in self.param_grads(ctx, g, ps, attrs).items()}

    def gram_factor(self, ctx: Ctx, g: np.ndarray, ps: dict[str, np.ndarray], attrs: dict[str, Any]) -> Any:
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

    def kinks(self, ctx: Ctx, attrs: dict[str, Any], tol: float) -> list[tuple[int, int, float]]:
        """Non-differentiable points: ``(sample, flat unit index, pre-activation)``."""
        return []

    # -- symbolic -------------------------------------------------------------
    def sympy_forward(self, xs: list[np.ndarray], ps: dict[str, np.ndarray], attrs: dict[str, Any], fns: "SymFns") -> np.ndarray:
        """The op on object arrays of sympy expressions (one sample, no batch axis)."""
        raise NotImplementedError(f"sympy rule for {self.name!r} not implemented")


class SymFns:
    """The non-polynomial pieces used by :meth:`Op.sympy_forward`.

    The default maps ``relu`` to ``Max(0, z)``; a region evaluator (see
    :func:`verifier.analysis.region_functions`) replaces them by the polynomial
    branch active at a point, and the symbolic layer may plug in its own.
    """

    def relu(self, z: sp.Expr) -> sp.Expr:
        return sp.Max(0, z)

    def abs(self, z: sp.Expr) -> sp.Expr:
        return sp.Abs(z)

    def max(self, zs: list[sp.Expr]) -> sp.Expr:
        return sp.Max(*zs)

    def leaky_relu(self, z: sp.Expr, slope: sp.Expr) -> sp.Expr:
        return sp.Max(0, z) + slope * sp.Min(0, z)

    def sigmoid(self, z: sp.Expr) -> sp.Expr:
        return 1 / (1 + sp.exp(-z))

    def tanh(self, z: sp.Expr) -> sp.Expr:
        return sp.tanh(z)


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
