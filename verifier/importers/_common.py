"""Shared pieces of the importers: errors, optional-dependency loading, the graph builder."""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import (GraphError, ImportCheckError, MissingDependencyError, ShapeError,  # noqa: F401
                      UnsupportedModelError)
from ..graph import Network
from ..ops import get_op

#: The one-line summary of what the importers map, used in error messages.
SUPPORTED_OPS = ("Linear/Gemm/MatMul (+bias), Conv2d (+bias, zero padding), ReLU, LeakyReLU, Sigmoid, Tanh, "
                 "MaxPool2d/AvgPool2d (no padding, ceil_mode off), Flatten from dim 1, residual add, "
                 "Identity, Dropout in eval mode")


def require(module: str, extra: str) -> ModuleType:
    """Import an optional dependency or raise a one-line :class:`MissingDependencyError`."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(
            f"this needs the optional dependency {module!r}, which is not installed; "
            f"install it with: pip install 'kkt-verifier[{extra}]'"
        ) from None


class Builder:
    """Accumulates nodes and named parameter tensors; keeps node names unique."""

    def __init__(self) -> None:
        self.nodes: list[dict[str, Any]] = []
        self.params: dict[str, np.ndarray] = {}
        self.param_source: dict[str, str] = {}  # param name -> where it came from (for errors)
        self._names: set[str] = set()
        self.shapes: dict[str, tuple[int, ...]] = {}  # per-sample output shape of every node added so far

    def unique(self, name: str) -> str:
        base = name or "node"
        out, k = base, 1
        while out in self._names:
            out = f"{base}_{k}"
            k += 1
        self._names.add(out)
        return out

    def add(self, name: str, op: str, inputs: list[str] | tuple[str, ...] = (), *,
            params: dict[str, tuple[str, np.ndarray]] | None = None, where: str = "", **attrs: Any) -> str:
        """Append a node; ``params`` maps role -> (tensor name, value).  Returns the node name."""
        name = self.unique(name)
        node: dict[str, Any] = {"name": name, "op": op, "inputs": list(inputs)}
        if params:
            node["params"] = {}
            for role, (pname, value) in params.items():
                if pname in self.params:
                    raise UnsupportedModelError(
                        f"{where or name}: parameter {pname!r} is already used by {self.param_source[pname]}; "
                        "weight sharing is not supported (each layer needs its own tensors)"
                    )
                self.params[pname] = np.array(value, dtype=np.float64)
                self.param_source[pname] = where or name
                node["params"][role] = pname
        if attrs:
            node["attrs"] = {k: (list(v) if isinstance(v, tuple) else v) for k, v in attrs.items()}
        impl = get_op(op, name)
        try:
            checked = impl.check_attrs(name, dict(node.get("attrs", {})))
            self.shapes[name] = tuple(impl.out_shape(name, [self.shapes[i] for i in inputs], checked))
        except (GraphError, ShapeError) as e:
            raise type(e)(f"{where or name}: {e}") from None
        self.nodes.append(node)
        return name

    def network(self, source: str) -> Network:
        try:
            return Network(self.nodes)
        except (GraphError, ShapeError) as e:
            raise type(e)(f"{source}: the imported graph is not valid: {e}") from None


def pair(v: Any) -> tuple[int, int]:
    """``3 -> (3, 3)``, ``(2, 3) -> (2, 3)``."""
    if isinstance(v, (list, tuple)):
        if len(v) == 1:
            return (int(v[0]), int(v[0]))
        return (int(v[0]), int(v[1]))
    return (int(v), int(v))


def compare_outputs(ours: np.ndarray, ref: np.ndarray, tol: float, what: str) -> float:
    """Max abs difference scaled by ``max(1, max|ref|)``; raises :class:`ImportCheckError` above ``tol``."""
    if ours.shape != ref.shape:
        raise ImportCheckError(f"{what}: the imported network outputs shape {ours.shape}, the model {ref.shape}")
    scale = max(1.0, float(np.max(np.abs(ref))) if ref.size else 1.0)
    err = float(np.max(np.abs(ours - ref))) / scale if ref.size else 0.0
    if not err <= tol:
        raise ImportCheckError(
            f"{what}: the imported network disagrees with the model on the example input "
            f"(max |difference| / max(1, max|output|) = {err:.3g} > tol={tol:g}); "
            "the model probably uses an operation with semantics the importer does not capture"
        )
    return err
