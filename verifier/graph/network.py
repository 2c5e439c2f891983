"""The network IR: a validated ``networkx.DiGraph`` of operations.

A node is ``{"name", "op", "inputs", "params", "attrs"}``: ``op`` is drawn
from the registry in :mod:`verifier.ops`, ``inputs`` are node names (order
matters for ops with several inputs), ``params`` maps the op's roles
(``"weight"``, ``"scale"``, ``"bias"``) to parameter-tensor names, and
``attrs`` are the op's attributes.  Exactly one ``input`` and one ``output``
node.  Parameters are named tensors; the flat vector concatenates them in
order of first use in the node list, row-major (``torch``'s
``parameters_to_vector`` order for the built-in architectures).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import networkx as nx
import numpy as np

from .._json import check_header
from ..errors import FormatError, GraphError, ParameterError, ShapeError
from ..ops import REGISTRY, get_op
from ..ops.base import Op, Shape

#: JSON network format.  Changes:
#:   1 -- first version: nodes (name, op, inputs, params, attrs) and parameters (name, shape).
FORMAT_NAME = "kkt-verifier/network"
FORMAT_VERSION = 1

Params = dict[str, np.ndarray]


@dataclass(frozen=True)
class Node:
    """One operation of the graph (immutable)."""

    name: str
    op: str
    inputs: tuple[str, ...] = ()
    params: Mapping[str, str] = field(default_factory=dict)
    attrs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def impl(self) -> Op:
        return REGISTRY[self.op]

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"name": self.name, "op": self.op}
        if self.inputs:
            d["inputs"] = list(self.inputs)
        if self.params:
            d["params"] = dict(self.params)
        attrs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.attrs.items() if v is not None}
        if attrs:
            d["attrs"] = attrs
        return d


class Network:
    """A validated computation graph ``Phi(theta; x)`` (see the module docstring).

    >>> import verifier
    >>> net = verifier.mlp([2, 8, 8, 1])
    >>> verifier.degree(net)
    3
    >>> net.param_names, net.num_params
    (['W1', 'W2', 'W3'], 88)
    """

    def __init__(self, nodes: Iterable[Mapping[str, Any] | Node]):
        self.graph = nx.DiGraph()
        self.nodes: dict[str, Node] = {}
        parsed = [n if isinstance(n, Node) else _parse_node(n, i) for i, n in enumerate(nodes)]
        for node in parsed:
            if node.name in self.nodes:
                raise GraphError(f"duplicate node name {node.name!r}; node names must be unique")
            self.nodes[node.name] = node
            self.graph.add_node(node.name, node=node)
        for node in parsed:
            for src in node.inputs:
                if src not in self.nodes:
                    raise GraphError(
                        f"node {node.name!r} ({node.op}): input {src!r} is not a node of the network"
                    )
                self.graph.add_edge(src, node.name)
        self._validate_structure()
        position = {name: i for i, name in enumerate(self.nodes)}  # ties broken by the order given
        self.order: list[str] = list(nx.lexicographical_topological_sort(self.graph, key=position.__getitem__))
        self.shapes: dict[str, Shape] = {}
        self.param_shapes: dict[str, Shape] = {}
        self.param_owner: dict[str, tuple[str, str]] = {}
        self._infer_shapes()
        self.param_names: list[str] = [p for n in parsed for p in n.params.values()]
        sizes = [int(np.prod(self.param_shapes[p])) for p in self.param_names]
        self.offsets: dict[str, tuple[int, int]] = {}
        start = 0
        for p, s in zip(self.param_names, sizes):
            self.offsets[p] = (start, start + s)
            start += s
        self.num_params = start

    # -- structure ------------------------------------------------------------
    def _validate_structure(self) -> None:
        try:
            cycle = nx.find_cycle(self.graph)
        except nx.NetworkXNoCycle:
            cycle = None
        if cycle:
            path = " -> ".join([e[0] for e in cycle] + [cycle[0][0]])
            raise GraphError(f"the network has a cycle: {path}; it must be a directed acyclic graph")
        inputs = [n for n, v in self.nodes.items() if v.op == "input"]
        outputs = [n for n, v in self.nodes.items() if v.op == "output"]
        if len(inputs) != 1:
            raise GraphError(f"the network needs exactly one 'input' node, found {len(inputs)}: {inputs}")
        if len(outputs) != 1:
            raise GraphError(f"the network needs exactly one 'output' node, found {len(outputs)}: {outputs}")
        self.input, self.output = inputs[0], outputs[0]
        for name, node in self.nodes.items():
            lo, hi = node.impl.arity
            k = len(node.inputs)
            if k < lo or (hi is not None and k > hi):
                want = f"{lo}" if lo == hi else f"{lo} or more" if hi is None else f"{lo} to {hi}"
                raise GraphError(f"node {name!r} ({node.op}) takes {want} input(s), got {k}")
            if self.graph.out_degree(name) and node.op == "output":
                raise GraphError(f"node {name!r} (output) must be the last node; {list(self.graph.successors(name))} use it")
        feeding = nx.ancestors(self.graph, self.output) | {self.output}
        stray = [n for n in self.nodes if n not in feeding]
        if stray:
            raise GraphError(f"node(s) {stray} do not feed the output {self.output!r}; remove them")

    def _infer_shapes(self) -> None:
        seen: dict[str, str] = {}
        for name in self.order:
            node = self.nodes[name]
            impl = node.impl
            ins = [self.shapes[i] for i in node.inputs]
            attrs = dict(node.attrs)
            self.shapes[name] = impl.out_shape(name, ins, attrs)
            wanted = impl.param_shapes(name, ins, attrs)
            if set(node.params) != set(wanted):
                raise GraphError(
                    f"node {name!r} ({node.op}) needs parameter roles {sorted(wanted) or 'none'}, "
                    f"got {sorted(node.params) or 'none'}"
                )
            for role, pname in node.params.items():
                if not isinstance(pname, str) or not pname:
                    raise GraphError(f"node {name!r}: parameter name for role {role!r} must be a non-empty string")
                if pname in seen:
                    raise GraphError(
                        f"parameter {pname!r} is used by nodes {seen[pname]!r} and {name!r}; "
                        "weight sharing is not supported, give each tensor its own name"
                    )
                seen[pname] = name
                self.param_shapes[pname] = tuple(wanted[role])
                self.param_owner[pname] = (name, role)

    # -- facts ----------------------------------------------------------------
    @property
    def input_shape(self) -> Shape:
        return self.shapes[self.input]

    @property
    def num_outputs(self) -> int:
        return self.shapes[self.output][0]

    def node(self, name: str) -> Node:
        return self.nodes[name]

    #: analyses that used to be methods; the IR is the ground floor and imports no analysis
    _MOVED = {"degree": "verifier.degree(net)", "degrees": "verifier.degrees(net)",
              "quasi_homogeneous_weights": "verifier.quasi_homogeneous_weights(net)",
              "forward": "verifier.forward(net, params, X)"}

    def __getattr__(self, name: str) -> Any:
        if name in Network._MOVED:
            raise AttributeError(f"Network.{name}() moved out of the graph IR: use {Network._MOVED[name]}")
        raise AttributeError(f"'Network' object has no attribute {name!r}")

    def describe(self) -> str:
        lines = [f"{'node':<14} {'op':<12} {'shape':<16} params"]
        for name in self.order:
            n = self.nodes[name]
            ps = ", ".join(f"{r}={p}{list(self.param_shapes[p])}" for r, p in n.params.items())
            lines.append(f"{name:<14} {n.op:<12} {str(list(self.shapes[name])):<16} {ps}")
        return "\n".join(lines)

    # -- parameters -----------------------------------------------------------
    def check_params(self, params: Mapping[str, Any] | np.ndarray | Iterable[float], *, where: str = "params") -> Params:
        """Validate parameters (dict of named arrays or a flat vector) and return float64 arrays."""
        if not isinstance(params, Mapping):
            return self.unflatten(params)
        missing = [p for p in self.param_names if p not in params]
        extra = [p for p in params if p not in self.param_shapes]
        if missing or extra:
            msg = []
            if missing:
                msg.append(f"missing {missing}")
            if extra:
                msg.append(f"unexpected {sorted(extra)}")
            raise ParameterError(f"{where}: {'; '.join(msg)}; the network's parameters are {self.param_names}")
        out: Params = {}
        for p in self.param_names:
            try:
                a = np.asarray(params[p], dtype=np.float64)
            except (TypeError, ValueError):
                raise ParameterError(f"{where}: tensor {p!r} is not numeric") from None
            want = self.param_shapes[p]
            if a.shape != want:
                raise ParameterError(f"{where}: tensor {p!r} has shape {a.shape}, expected {want}")
            bad = np.argwhere(~np.isfinite(a))
            if len(bad):
                raise ParameterError(
                    f"{where}: tensor {p!r} has a non-finite entry {a[tuple(bad[0])]} at index {tuple(int(i) for i in bad[0])}; "
                    "parameters must be finite"
                )
            out[p] = a
        return out

    def flatten(self, params: Mapping[str, Any]) -> np.ndarray:
        """Named tensors -> flat vector (order :attr:`param_names`, row-major)."""
        ps = self.check_params(params)
        if not ps:
            return np.zeros(0)
        return np.concatenate([ps[p].ravel() for p in self.param_names])

    def unflatten(self, theta: Any) -> Params:
        """Flat vector -> named tensors (copies), validated."""
        try:
            t = np.asarray(theta, dtype=np.float64)
        except (TypeError, ValueError):
            raise ParameterError("params: the flat parameter vector is not numeric") from None
        if t.ndim != 1 or t.size != self.num_params:
            raise ParameterError(
                f"params: flat vector has shape {t.shape}, expected ({self.num_params},) for parameters {self.param_names}"
            )
        bad = np.flatnonzero(~np.isfinite(t))
        if len(bad):
            raise ParameterError(f"params: flat vector has a non-finite entry at index {int(bad[0])}")
        return {p: t[a:b].reshape(self.param_shapes[p]).copy() for p, (a, b) in self.offsets.items()}

    def init_params(self, seed: int = 0, scale: float = 1.0) -> Params:
        """A reproducible random point: weights ``N(0, scale^2/fan_in)``, scales ``N(0, scale^2)``, biases ``N(0, (0.1 scale)^2)``."""
        rng = np.random.default_rng(seed)
        out: Params = {}
        for p in self.param_names:
            shape = self.param_shapes[p]
            role = self.param_owner[p][1]
            if role == "weight":
                fan_in = int(np.prod(shape[1:]))
                std = scale / np.sqrt(fan_in)
            elif role == "bias":
                std = 0.1 * scale
            else:
                std = scale
            out[p] = rng.normal(0.0, std, size=shape)
        return out

    # -- (de)serialisation ---------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "nodes": [self.nodes[n].to_dict() for n in self.nodes],
            "parameters": [{"name": p, "shape": list(self.param_shapes[p])} for p in self.param_names],
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = "network") -> "Network":
        if not isinstance(d, Mapping):
            raise FormatError(f"{source}: expected a JSON object with fields 'format', 'version', 'nodes'")
        check_header(d, FORMAT_NAME, (FORMAT_VERSION,), where=source)
        nodes = d.get("nodes")
        if not isinstance(nodes, list) or not nodes:
            raise FormatError(f"{source}: field 'nodes' must be a non-empty list of node objects")
        try:
            net = cls(nodes)
        except (GraphError, ShapeError) as e:
            raise type(e)(f"{source}: {e}") from None
        declared = d.get("parameters")
        if declared is not None:
            if not isinstance(declared, list):
                raise FormatError(f"{source}: field 'parameters' must be a list of {{name, shape}} objects")
            for i, entry in enumerate(declared):
                if not isinstance(entry, Mapping) or "name" not in entry or "shape" not in entry:
                    raise FormatError(f"{source}: parameters[{i}] must be an object with 'name' and 'shape'")
                name = entry["name"]
                if name not in net.param_shapes:
                    raise FormatError(f"{source}: parameters[{i}] names {name!r}, which no node uses; used: {net.param_names}")
                if tuple(entry["shape"]) != net.param_shapes[name]:
                    raise FormatError(
                        f"{source}: parameters[{i}] ({name!r}) declares shape {list(entry['shape'])}, "
                        f"but the graph implies {list(net.param_shapes[name])}"
                    )
            names = [e["name"] for e in declared]
            if sorted(names) != sorted(net.param_names):
                raise FormatError(f"{source}: field 'parameters' lists {names}, the graph uses {net.param_names}")
        return net

    def to_json(self, path: str | Path | None = None, indent: int = 1) -> str:
        """Serialise to JSON (written to ``path`` if given); returns the text."""
        text = json.dumps(self.to_dict(), indent=indent)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_json(cls, path_or_text: str | Path) -> "Network":
        """Read a network from a JSON file path (or a JSON string)."""
        p = Path(path_or_text) if not str(path_or_text).lstrip().startswith("{") else None
        if p is not None:
            try:
                text = p.read_text()
            except OSError as e:
                raise FormatError(f"cannot read network file {str(p)!r}: {e.strerror}") from None
            source = str(p)
        else:
            text, source = str(path_or_text), "network"
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise FormatError(f"{source}: not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
        return cls.from_dict(d, source=source)

    def __repr__(self) -> str:
        return f"Network({len(self.nodes)} nodes, params={self.param_names}, input={list(self.input_shape)}, outputs={self.num_outputs})"


def _parse_node(d: Any, i: int) -> Node:
    if isinstance(d, Node):
        return d
    if not isinstance(d, Mapping):
        raise FormatError(f"nodes[{i}] must be an object with 'name' and 'op', got {type(d).__name__}")
    unknown = set(d) - {"name", "op", "inputs", "params", "attrs"}
    if unknown:
        raise FormatError(f"nodes[{i}] has unknown field(s) {sorted(unknown)}; valid: name, op, inputs, params, attrs")
    name = d.get("name")
    if not isinstance(name, str) or not name:
        raise FormatError(f"nodes[{i}]: field 'name' must be a non-empty string, got {name!r}")
    op = get_op(d.get("op"), name)
    inputs = d.get("inputs", [])
    if isinstance(inputs, str) or not isinstance(inputs, (list, tuple)) or not all(isinstance(s, str) for s in inputs):
        raise FormatError(f"node {name!r}: field 'inputs' must be a list of node names, got {inputs!r}")
    params = d.get("params", {}) or {}
    if not isinstance(params, Mapping):
        raise FormatError(f"node {name!r}: field 'params' must map roles to tensor names, got {params!r}")
    attrs = d.get("attrs", {}) or {}
    if not isinstance(attrs, Mapping):
        raise FormatError(f"node {name!r}: field 'attrs' must be an object, got {attrs!r}")
    return Node(name, op.name, tuple(inputs), dict(params), op.check_attrs(name, dict(attrs)))
