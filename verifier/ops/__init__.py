"""Operation registry: importing this package registers every built-in op."""

from . import activations, linear, pooling, structural  # noqa: F401  (registration)
from .base import REGISTRY, Attr, Op, SymFns, get_op, register

__all__ = ["REGISTRY", "Attr", "Op", "SymFns", "get_op", "register"]
