"""Builders for the architectures the theory talks about.

Weight tensors are named ``W1..WL`` in layer order (convolutions and dense
layers alike), biases ``b1..``; the flat parameter vector concatenates them in
that order (torch's ``parameters_to_vector`` for the same model).
"""

from __future__ import annotations

from typing import Any, Sequence

from ..errors import GraphError
from .network import Network

ACTIVATIONS = ("relu", "identity", "abs", "leaky_relu:<slope>", "power:<k>", "relu_power:<k>", "sigmoid", "tanh")


def parse_activation(spec: str) -> tuple[str, dict[str, Any]]:
    """``"leaky_relu:0.1"`` -> ``("leaky_relu", {"slope": 0.1})``.

    >>> parse_activation("relu_power:2")
    ('relu_power', {'k': 2})
    """
    if not isinstance(spec, str):
        raise GraphError(f"activation={spec!r} must be a string, one of {', '.join(ACTIVATIONS)}")
    name, _, arg = spec.partition(":")
    try:
        if name in ("relu", "identity", "abs", "sigmoid", "tanh") and not arg:
            return name, {}
        if name == "leaky_relu":
            return name, {"slope": float(arg) if arg else 0.01}
        if name in ("power", "relu_power") and arg:
            k = int(arg)
            if k < 1 or str(k) != arg.strip():
                raise ValueError
            return name, {"k": k}
    except ValueError:
        pass
    generic = _registered_activation(name, arg)
    if generic is not None:
        return generic
    raise GraphError(f"activation={spec!r} is not valid; use one of {', '.join(ACTIVATIONS)} (k an integer >= 1), "
                     "or any registered elementwise op as name:attr1,attr2 (attributes in the op's order)")


def _registered_activation(name: str, arg: str) -> tuple[str, dict[str, Any]] | None:
    """``"two_slope:1,0.5"`` -> ``("two_slope", {"a": 1.0, "b": 0.5})`` for any registered elementwise op."""
    from ..ops import REGISTRY

    op = REGISTRY.get(name)
    if op is None or name in {a.partition(":")[0] for a in ACTIVATIONS} or op.split_role({}) != "elementwise":
        return None
    values = [v.strip() for v in arg.split(",")] if arg else []
    if len(values) > len(op.attrs):
        return None
    attrs: dict[str, Any] = dict(zip(op.attrs, values))
    return name, op.check_attrs(f"activation {name}", attrs)


def _check_bias(bias: str) -> None:
    if bias not in ("none", "first", "all"):
        raise GraphError(f"bias={bias!r} must be one of 'none', 'first', 'all'")


def _widths(widths: Sequence[int], name: str = "widths", min_len: int = 2) -> list[int]:
    try:
        w = [int(v) for v in widths]
    except (TypeError, ValueError):
        raise GraphError(f"{name}={widths!r} must be a list of positive integers") from None
    if len(w) < min_len or min(w) < 1 or any(a != b for a, b in zip(w, widths)):
        raise GraphError(f"{name}={list(widths)!r} must be at least {min_len} positive integers, e.g. [2, 8, 1]")
    return w


def _layer(nodes: list, prev: str, l: int, out: int, bias: bool, act: tuple[str, dict] | None, op: str = "dense", **attrs) -> str:
    size_key = "out_features" if op == "dense" else "out_channels"
    nodes.append({"name": f"fc{l}" if op == "dense" else f"conv{l}", "op": op, "inputs": [prev],
                  "params": {"weight": f"W{l}"}, "attrs": {size_key: out, **attrs}})
    prev = nodes[-1]["name"]
    if bias:
        nodes.append({"name": f"{prev}_bias", "op": "bias", "inputs": [prev], "params": {"bias": f"b{l}"}})
        prev = nodes[-1]["name"]
    if act is not None:
        nodes.append({"name": f"act{l}", "op": act[0], "inputs": [prev], "attrs": act[1]})
        prev = nodes[-1]["name"]
    return prev


def mlp(widths: Sequence[int], activation: str = "relu", bias: str = "none") -> Network:
    """Fully connected ``widths[0] -> ... -> widths[-1]`` with ``activation`` after each hidden layer.

    >>> import verifier
    >>> net = mlp([2, 8, 8, 1])
    >>> verifier.degree(net), net.param_shapes["W2"]
    (3, (8, 8))
    >>> verifier.degree(mlp([2, 4, 4, 1], activation="relu_power:2"))
    7
    """
    w = _widths(widths)
    act = parse_activation(activation)
    _check_bias(bias)
    nodes: list[dict[str, Any]] = [{"name": "x", "op": "input", "attrs": {"shape": [w[0]]}}]
    prev = "x"
    L = len(w) - 1
    for l in range(1, L + 1):
        has_bias = bias == "all" or (bias == "first" and l == 1)
        prev = _layer(nodes, prev, l, w[l], has_bias, act if l < L else None)
    nodes.append({"name": "out", "op": "output", "inputs": [prev]})
    return Network(nodes)


def cnn(
    input_shape: Sequence[int] = (1, 8, 8),
    channels: Sequence[int] = (4,),
    *,
    kernel_size: int = 3,
    stride: int = 1,
    padding: int = 1,
    pool: str | None = "max",
    pool_size: int = 2,
    hidden: Sequence[int] = (),
    outputs: int = 1,
    activation: str = "relu",
    bias: str = "none",
) -> Network:
    """Conv/activation/pool blocks, then flatten and dense layers (``hidden`` widths, then ``outputs``).

    >>> import verifier
    >>> net = cnn((1, 6, 6), channels=[2, 3], pool="avg")
    >>> verifier.degree(net), net.param_shapes["W1"], net.param_shapes["W3"]
    (3, (2, 1, 3, 3), (1, 3))
    """
    shape = _widths(input_shape, "input_shape", 3)
    if len(shape) != 3:
        raise GraphError(f"input_shape={list(input_shape)!r} must be (channels, height, width)")
    chans = _widths(channels, "channels", 1)
    hid = _widths(hidden, "hidden", 0) if len(hidden) else []
    if pool not in (None, "max", "avg"):
        raise GraphError(f"pool={pool!r} must be 'max', 'avg' or None")
    act = parse_activation(activation)
    _check_bias(bias)
    nodes: list[dict[str, Any]] = [{"name": "x", "op": "input", "attrs": {"shape": shape}}]
    prev = "x"
    l = 0
    for c in chans:
        l += 1
        has_bias = bias == "all" or (bias == "first" and l == 1)
        prev = _layer(nodes, prev, l, c, has_bias, act, op="conv2d", kernel_size=kernel_size, stride=stride, padding=padding)
        if pool is not None:
            nodes.append({"name": f"pool{l}", "op": f"{pool}pool2d", "inputs": [prev], "attrs": {"kernel_size": pool_size}})
            prev = nodes[-1]["name"]
    nodes.append({"name": "flat", "op": "flatten", "inputs": [prev]})
    prev = "flat"
    widths = hid + [_widths([outputs], "outputs", 1)[0]]
    for i, width in enumerate(widths):
        l += 1
        has_bias = bias == "all"
        prev = _layer(nodes, prev, l, width, has_bias, act if i < len(widths) - 1 else None)
    nodes.append({"name": "out", "op": "output", "inputs": [prev]})
    return Network(nodes)


def diagonal_linear(d: int, depth: int = 2) -> Network:
    """Diagonal linear network ``Phi = <u_1 * ... * u_{depth-1} * v, x>`` (degree ``depth``).

    Depth 2 names the tensors ``u`` (shape ``(d,)``) and ``v`` (shape ``(1, d)``).

    >>> import verifier
    >>> net = diagonal_linear(3)
    >>> net.param_names, verifier.degree(net)
    (['u', 'v'], 2)
    """
    (d,) = _widths([d], "d", 1)
    if not isinstance(depth, int) or depth < 2:
        raise GraphError(f"depth={depth!r} must be an integer >= 2")
    nodes: list[dict[str, Any]] = [{"name": "x", "op": "input", "attrs": {"shape": [d]}}]
    prev = "x"
    names = ["u"] if depth == 2 else [f"u{k}" for k in range(1, depth)]
    for k, pname in enumerate(names, 1):
        nodes.append({"name": f"diag{k}", "op": "scale", "inputs": [prev], "params": {"scale": pname}})
        prev = nodes[-1]["name"]
    nodes.append({"name": "sum", "op": "dense", "inputs": [prev], "params": {"weight": "v"}, "attrs": {"out_features": 1}})
    nodes.append({"name": "out", "op": "output", "inputs": ["sum"]})
    return Network(nodes)
