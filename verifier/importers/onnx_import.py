"""Import an ONNX model into the network IR (initializers become named parameters).

=====================================  =================================================
ONNX                                   network IR
=====================================  =================================================
``Gemm`` (``alpha = beta = 1``,        ``dense`` with weight ``B`` (``transB=1``) or
``transA = 0``)                        ``B^T`` (``transB=0``); ``C`` -> a ``bias`` node
``MatMul`` with a constant ``B``       ``dense`` with weight ``B^T`` (the name of ``B``)
``Conv`` (group 1, dilation 1,         ``conv2d`` (+ ``bias`` from the optional ``B``)
symmetric ``pads``)
``Relu``, ``LeakyRelu``,               ``relu``, ``leaky_relu``, ``sigmoid``, ``tanh``
``Sigmoid``, ``Tanh``                  (the last two are imported; the calculus
                                       reports them as not positively homogeneous)
``MaxPool``, ``AveragePool``           ``maxpool2d``, ``avgpool2d`` (no padding,
                                       ``ceil_mode = 0``, dilation 1)
``Flatten`` (``axis = 1``),            ``flatten``
``Reshape`` to ``(N, -1)``
``Add``                                ``add`` of two layer outputs, or ``bias`` when
                                       one side is a constant
``Identity``, ``Dropout`` (inference)  nothing (passed through)
``Transpose`` / ``Constant``           folded when applied to constants
=====================================  =================================================

Parameter names are the initializer names (``"0.weight"`` after
``torch.onnx.export``).  Torch's exporter stores a bias-free ``Linear`` as
``MatMul`` with a new, transposed initializer named like ``"onnx::MatMul_8"``
(or ``"val_3"``): the weight is transposed back to torch's ``(out, in)`` layout
and such generated names are replaced by a readable one made from the node's
module path -- node ``/fc1/MatMul`` gives ``"fc1.weight"``, a bias added by
``/fc1/Add`` gives ``"fc1.bias"`` -- which is torch's own name for the tensor.
Float attributes (``LeakyRelu.alpha``) are stored as float32 in ONNX; they are
read back as the shortest decimal that rounds to the same float32 (``0.1``,
not ``0.10000000149``), which is what the exporting code wrote.

With ``check=True`` (default) the import is compared with ONNX's own reference
evaluator (``onnx.reference``, run in float64) on a fixed random batch.

>>> import onnx, verifier
>>> from onnx import helper, numpy_helper, TensorProto
>>> W = numpy_helper.from_array(np.array([[1.0, -2.0], [0.5, 1.0], [-1.0, 0.0]], dtype=np.float32), "W")
>>> V = numpy_helper.from_array(np.array([[1.0], [1.0], [-1.0]], dtype=np.float32), "V")
>>> g = helper.make_graph(
...     [helper.make_node("Gemm", ["x", "W"], ["h"], transB=1), helper.make_node("Relu", ["h"], ["a"]),
...      helper.make_node("MatMul", ["a", "V"], ["y"])], "mlp",
...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2])],
...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 1])], [W, V])
>>> net, params = verifier.from_onnx(helper.make_model(g))
>>> net.param_names, params["V"].shape, verifier.degree(net)
(['W', 'V'], (1, 3), 2)
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import FormatError, ShapeError
from ..graph import Network
from ..numeric.engine import forward
from ._common import Builder, UnsupportedModelError, compare_outputs, require

Params = dict[str, np.ndarray]

_SUPPORTED = ("supported ONNX ops: Gemm (alpha=beta=1, transA=0), MatMul with a constant right factor, Conv "
              "(group=1, dilation=1, symmetric pads), Relu, LeakyRelu, Sigmoid, Tanh, MaxPool / AveragePool "
              "(no pads, ceil_mode=0), Flatten (axis=1), Reshape to (N, -1) (also via Shape/Gather/Unsqueeze/Concat), "
              "Add, Identity, Dropout (inference), and Constant / Transpose of constants")


def _onnx():
    return require("onnx", "onnx")


def _float_attr(v: float) -> float:
    """ONNX float attributes are float32: recover the decimal the exporter wrote (0.1, not 0.10000000149)."""
    return float(str(np.float32(v)))


def _load(model: Any, onnx) -> tuple[Any, str]:
    if isinstance(model, onnx.ModelProto):
        return model, "ONNX model"
    if isinstance(model, (bytes, bytearray)):
        source, data = "ONNX bytes", bytes(model)
        path = None
    elif isinstance(model, (str, Path)):
        path = Path(model)
        source = str(path)
        if not path.is_file():
            raise FormatError(f"ONNX file {source!r} does not exist")
        data = None
    else:
        raise FormatError(f"model must be a path to an .onnx file, bytes, or an onnx.ModelProto, got {type(model).__name__}")
    try:
        mp = onnx.load(str(path)) if path is not None else onnx.load_model_from_string(data)
    except Exception as e:  # noqa: BLE001 - protobuf DecodeError, OSError, ...
        raise FormatError(f"{source}: not an ONNX model (cannot parse it: {type(e).__name__}: {str(e)[:120]})") from None
    if not mp.ir_version or not len(mp.graph.node) or not len(mp.graph.output):
        raise FormatError(
            f"{source}: not an ONNX model (no ir_version, graph nodes or graph outputs after parsing); "
            "expected a file written by onnx.save or torch.onnx.export"
        )
    return mp, source


def _is_readable(name: str) -> bool:
    """False for the exporter's generated initializer names (``onnx::MatMul_23``, ``val_4``)."""
    return bool(name) and "::" not in name and not re.fullmatch(r"_?val_\d+", name)


def _readable_name(node_name: str, op: str, i: int, role: str, taken: set[str]) -> str:
    """``/fc1/MatMul`` -> ``fc1.weight`` (torch's module path, as ``torch.onnx.export`` writes node names)."""
    parts = [p for p in (node_name or "").strip("/").split("/") if p]
    # legacy exporter scopes hold full paths (/features/features.3/Conv): the last scope is the module
    base = parts[-2] if len(parts) > 1 else (parts[0] if parts else f"{op}_{i}")
    name, k = f"{base}.{role}", 1
    while name in taken:
        name = f"{base}.{role}_{k}"
        k += 1
    return name


def _attrs(node, onnx) -> dict[str, Any]:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _ints(v: Any) -> tuple[int, ...]:
    return tuple(int(t) for t in v)


class _Const:
    """A constant tensor (initializer, ``Constant`` node, or folded from them) and its parameter name."""

    def __init__(self, value: np.ndarray, name: str) -> None:
        self.value = value
        self.name = name


def from_onnx(model: Any, *, input_shape: Sequence[int] | None = None, check: bool = True,
              tol: float = 1e-6) -> tuple[Network, Params]:
    """Import an ONNX model (path, bytes or ``onnx.ModelProto``) as ``(network, params)``.

    ``input_shape``: the per-sample input shape (without the batch dim), needed
    only when the model declares symbolic non-batch dimensions.  ``check``
    compares with ``onnx.reference`` on a random batch, relative tolerance
    ``tol`` (default ``1e-6``: the reference evaluates float32 attributes as
    stored, see the module docstring).  See the module docstring for the
    supported operators.
    """
    onnx = _onnx()
    from onnx import numpy_helper

    mp, source = _load(model, onnx)
    g = mp.graph
    consts: dict[str, _Const] = {}
    for init in g.initializer:
        try:
            consts[init.name] = _Const(numpy_helper.to_array(init).astype(np.float64), init.name)
        except Exception as e:  # noqa: BLE001
            raise FormatError(f"{source}: initializer {init.name!r} cannot be read ({type(e).__name__}: {e})") from None
    inputs = [v for v in g.input if v.name not in consts]
    if len(inputs) != 1:
        raise UnsupportedModelError(
            f"{source}: the graph has {len(inputs)} data inputs {[v.name for v in inputs]}; exactly one is supported"
        )
    xin = inputs[0]
    dims = xin.type.tensor_type.shape.dim
    if len(dims) < 2:
        raise UnsupportedModelError(
            f"{source}: input {xin.name!r} has rank {len(dims)}; expected (N, features) or (N, C, H, W)"
        )
    if input_shape is not None:
        shape = tuple(int(s) for s in input_shape)
        if len(shape) != len(dims) - 1:
            raise ShapeError(f"input_shape={list(input_shape)} has {len(shape)} dims; input {xin.name!r} has {len(dims) - 1} per-sample dims")
    else:
        if any(not d.HasField("dim_value") or d.dim_value < 1 for d in dims[1:]):
            raise ShapeError(
                f"{source}: input {xin.name!r} has symbolic per-sample dims "
                f"{[d.dim_param or d.dim_value for d in dims[1:]]}; pass input_shape=(...) (without the batch dim)"
            )
        shape = tuple(int(d.dim_value) for d in dims[1:])
    batch = dims[0].dim_value if dims[0].HasField("dim_value") else None

    b = Builder()
    env: dict[str, str] = {xin.name: b.add(xin.name, "input", shape=shape)}
    used_names: set[str] = set()
    taken = {init.name for init in g.initializer if _is_readable(init.name)}  # parameter names in use
    # Shape arithmetic of ``x.view(x.size(0), -1)`` (Shape -> Gather -> Unsqueeze -> Concat -> Reshape):
    # tensor name -> list of entries, each an int or "N" (the batch size); scalars are 0-d lists.
    sym: dict[str, tuple[bool, list[Any]]] = {}

    for i, node in enumerate(g.node):
        op = node.op_type
        name = (node.name or f"{op}_{i}").lstrip("/") or f"{op}_{i}"
        where = f"{source}: node {node.name or name!r} ({op})"
        at = _attrs(node, onnx)
        ins = list(node.input)

        def tensor(k: int) -> str:
            t = ins[k] if k < len(ins) else ""
            if t in env:
                return env[t]
            if t in consts:
                raise UnsupportedModelError(f"{where}: input {k} ({t!r}) is a constant where a layer output is expected")
            raise UnsupportedModelError(f"{where}: input {t!r} is not produced by a supported node")

        def const(k: int, what: str) -> _Const:
            t = ins[k] if k < len(ins) else ""
            if t in consts:
                return consts[t]
            raise UnsupportedModelError(f"{where}: the {what} ({t!r}) must be a constant initializer, not computed")

        def opt(k: int) -> bool:
            return k < len(ins) and ins[k] != ""

        def out(name_: str) -> None:
            env[node.output[0]] = name_
            for extra in node.output[1:]:
                if extra and (any(extra in n2.input for n2 in g.node) or extra in [o.name for o in g.output]):
                    raise UnsupportedModelError(f"{where}: its second output {extra!r} is used; only the first is supported")

        def param(c: _Const, value: np.ndarray, role: str = "weight") -> tuple[str, np.ndarray]:
            if c.name in used_names:
                raise UnsupportedModelError(f"{where}: initializer {c.name!r} is used by two layers; weight sharing is not supported")
            used_names.add(c.name)
            readable = c.name if _is_readable(c.name) else _readable_name(node.name, op, i, role, taken)
            taken.add(readable)
            return readable, value

        def add_bias(prev: str, c: _Const, nm: str, per_channel: bool = False) -> str:
            s = b.shapes[prev]
            v = c.value
            if per_channel:  # Conv's B: one entry per output channel
                want = (s[0],)
                ok = v.shape == want
            elif len(s) == 1:
                want = (s[0],)
                ok = v.size == 1 or v.shape in ((s[0],), (1, s[0]))
            else:
                want = (s[0],)
                ok = v.size == 1 or (v.size == s[0] and v.shape[-2:] == (1, 1) and v.ndim in (3, 4)) or v.shape == (s[0], 1, 1)
            if not ok:
                raise UnsupportedModelError(
                    f"{where}: adds constant {c.name!r} of shape {v.shape} to a layer output of per-sample shape {s}; "
                    f"only a bias per unit / channel is supported (shape {want})"
                )
            return b.add(nm, "bias", [prev], params={"bias": param(c, np.broadcast_to(v.reshape(-1), want).copy(), "bias")}, where=where)

        def entries(k: int) -> list[Any] | None:
            t = ins[k] if k < len(ins) else ""
            if t in sym:
                return sym[t][1]
            if t in consts and consts[t].value.ndim <= 1 and np.all(consts[t].value == np.round(consts[t].value)):
                return [int(v) for v in consts[t].value.ravel()]
            return None

        def concat_entries() -> list[Any] | None:
            out: list[Any] = []
            for k in range(len(ins)):
                part = entries(k)
                if part is None:
                    return None
                out.extend(part)
            return out

        if op == "Shape" and ins[0] in env:
            if at.get("start", 0) != 0 or "end" in at:
                raise UnsupportedModelError(f"{where}: Shape with start/end is not supported")
            sym[node.output[0]] = (False, ["N", *b.shapes[env[ins[0]]]])
        elif op == "Gather" and ins[0] in sym and ins[1] in consts and at.get("axis", 0) == 0:
            idx = consts[ins[1]].value.astype(int)
            src_entries = sym[ins[0]][1]
            picked = [src_entries[i] for i in idx.ravel()]
            sym[node.output[0]] = (idx.ndim == 0, picked)
        elif op == "Unsqueeze" and ins[0] in sym and sym[ins[0]][0]:
            sym[node.output[0]] = (False, list(sym[ins[0]][1]))
        elif op == "Concat" and any(t in sym for t in ins) and (joined := concat_entries()) is not None:
            sym[node.output[0]] = (False, joined)
        elif op == "Cast" and ins[0] in sym:
            sym[node.output[0]] = sym[ins[0]]
        elif op == "Constant":
            if "value" in at:
                val = numpy_helper.to_array(at["value"])
            elif "value_float" in at or "value_floats" in at or "value_int" in at or "value_ints" in at:
                val = np.asarray(next(at[k] for k in ("value_float", "value_floats", "value_int", "value_ints") if k in at))
            else:
                raise UnsupportedModelError(f"{where}: only tensor / number constants are supported")
            consts[node.output[0]] = _Const(np.asarray(val, dtype=np.float64), node.output[0])
        elif op == "Transpose":
            c = const(0, "input of Transpose (transposes of layer outputs are not supported)")
            perm = at.get("perm")
            consts[node.output[0]] = _Const(c.value.transpose(perm if perm is None else _ints(perm)), c.name)
        elif op == "Gemm":
            if _float_attr(at.get("alpha", 1.0)) != 1.0 or _float_attr(at.get("beta", 1.0)) != 1.0 or at.get("transA", 0):
                raise UnsupportedModelError(
                    f"{where}: alpha={at.get('alpha', 1.0)}, beta={at.get('beta', 1.0)}, transA={at.get('transA', 0)}; "
                    "only alpha=1, beta=1, transA=0 are supported"
                )
            x = tensor(0)
            B = const(1, "weight B")
            if B.value.ndim != 2:
                raise UnsupportedModelError(f"{where}: weight {B.name!r} has shape {B.value.shape}; expected a matrix")
            W = B.value if at.get("transB", 0) else B.value.T
            h = b.add(name, "dense", [x], params={"weight": param(B, W.copy())}, where=where, out_features=W.shape[0])
            if opt(2):
                h = add_bias(h, const(2, "bias C"), f"{name}.bias")
            out(h)
        elif op == "MatMul":
            x = tensor(0)
            B = const(1, "right factor B")
            if B.value.ndim != 2 or len(b.shapes[x]) != 1:
                raise UnsupportedModelError(
                    f"{where}: (N, {b.shapes[x]}) @ {B.value.shape}; only (N, features) @ (features, out) is supported"
                )
            out(b.add(name, "dense", [x], params={"weight": param(B, B.value.T.copy())}, where=where, out_features=B.value.shape[1]))
        elif op == "Add":
            a_const, b_const = ins[0] in consts, ins[1] in consts
            if a_const and b_const:
                raise UnsupportedModelError(f"{where}: adds two constants; constant folding is not supported")
            if a_const or b_const:
                x = tensor(1 if a_const else 0)
                out(add_bias(x, consts[ins[0] if a_const else ins[1]], name))
            else:
                out(b.add(name, "add", [tensor(0), tensor(1)], where=where))
        elif op == "Conv":
            x = tensor(0)
            Wc = const(1, "weight W")
            if at.get("group", 1) != 1 or any(d != 1 for d in at.get("dilations", [1, 1])):
                raise UnsupportedModelError(f"{where}: group={at.get('group', 1)}, dilations={at.get('dilations')}; only 1 is supported")
            auto = at.get("auto_pad", b"NOTSET")
            auto = auto.decode() if isinstance(auto, bytes) else auto
            if auto not in ("NOTSET", "VALID"):
                raise UnsupportedModelError(f"{where}: auto_pad={auto}; use explicit symmetric pads")
            pads = _ints(at.get("pads", [0, 0, 0, 0])) if auto == "NOTSET" else (0, 0, 0, 0)
            if len(pads) != 4 or pads[0] != pads[2] or pads[1] != pads[3] or Wc.value.ndim != 4:
                raise UnsupportedModelError(
                    f"{where}: pads={list(pads)}, weight shape {Wc.value.shape}; only 2-D convolutions with symmetric "
                    "pads [p, q, p, q] are supported"
                )
            if "kernel_shape" in at and _ints(at["kernel_shape"]) != Wc.value.shape[2:]:
                raise UnsupportedModelError(f"{where}: kernel_shape {at['kernel_shape']} does not match weight {Wc.value.shape}")
            h = b.add(name, "conv2d", [x], params={"weight": param(Wc, Wc.value)}, where=where,
                      out_channels=Wc.value.shape[0], kernel_size=Wc.value.shape[2:],
                      stride=_ints(at.get("strides", [1, 1])), padding=(pads[0], pads[1]))
            if opt(2):
                h = add_bias(h, const(2, "bias B"), f"{name}.bias", per_channel=True)
            out(h)
        elif op in ("Relu", "Sigmoid", "Tanh"):
            out(b.add(name, op.lower(), [tensor(0)], where=where))
        elif op == "LeakyRelu":
            out(b.add(name, "leaky_relu", [tensor(0)], where=where, slope=_float_attr(at.get("alpha", 0.01))))
        elif op in ("MaxPool", "AveragePool"):
            auto = at.get("auto_pad", b"NOTSET")
            auto = auto.decode() if isinstance(auto, bytes) else auto
            bad = []
            if auto not in ("NOTSET", "VALID"):
                bad.append(f"auto_pad={auto}")
            if any(at.get("pads", [0])):
                bad.append(f"pads={list(at['pads'])}")
            if at.get("ceil_mode", 0):
                bad.append("ceil_mode=1")
            if any(d != 1 for d in at.get("dilations", [1])):
                bad.append(f"dilations={list(at['dilations'])}")
            if bad:
                raise UnsupportedModelError(f"{where}: {', '.join(bad)}; pooling must have no padding, ceil_mode=0, dilation 1")
            k = _ints(at["kernel_shape"])
            if len(k) != 2:
                raise UnsupportedModelError(f"{where}: kernel_shape={list(k)}; only 2-D pooling is supported")
            out(b.add(name, "maxpool2d" if op == "MaxPool" else "avgpool2d", [tensor(0)], where=where,
                      kernel_size=k, stride=_ints(at.get("strides", [1, 1]))))
        elif op == "Flatten":
            x = tensor(0)
            axis = at.get("axis", 1)
            rank = len(b.shapes[x]) + 1
            if axis not in (1, 1 - rank):
                raise UnsupportedModelError(f"{where}: axis={axis}; only axis=1 (keep the batch dim) is supported")
            out(x if rank == 2 else b.add(name, "flatten", [x], where=where))
        elif op == "Reshape":
            x = tensor(0)
            target = entries(1)
            if target is None:
                raise UnsupportedModelError(f"{where}: the target shape {ins[1]!r} is computed in an unsupported way")
            per = int(np.prod(b.shapes[x]))
            ok = len(target) == 2 and (
                (target[0] in (0, -1, "N") and target[1] == per) or (target[0] in (0, "N") and target[1] == -1)
                or (batch is not None and target[0] == batch and target[1] in (-1, per))
            )
            if not ok:
                raise UnsupportedModelError(
                    f"{where}: reshape of per-sample shape {b.shapes[x]} to {target}; only reshapes to (N, -1) are supported"
                )
            out(x if len(b.shapes[x]) == 1 else b.add(name, "flatten", [x], where=where))
        elif op == "Identity":
            out(tensor(0))
        elif op == "Dropout":
            if opt(2) and not (ins[2] in consts and not consts[ins[2]].value.any()):
                raise UnsupportedModelError(f"{where}: training_mode is on or computed; export the model in eval mode")
            out(tensor(0))
        else:
            raise UnsupportedModelError(f"{where} is not supported; {_SUPPORTED}")

    if len(g.output) != 1:
        raise UnsupportedModelError(f"{source}: the graph has {len(g.output)} outputs; exactly one (scores (N, C)) is supported")
    y = g.output[0].name
    if y not in env:
        raise UnsupportedModelError(f"{source}: the output {y!r} is a constant or not computed by a supported node")
    if len(b.shapes[env[y]]) != 1:
        raise UnsupportedModelError(
            f"{source}: the output {y!r} has per-sample shape {b.shapes[env[y]]}; scores of shape (N, C) are needed"
        )
    b.add("output" if "output" not in b._names else "scores", "output", [env[y]])
    net = b.network(source)
    params = net.check_params(b.params)
    if check:
        _check_reference(mp, net, params, xin.name, batch or 3, tol, source, onnx)
    return net, params


def _as_float64(mp, onnx):
    """A copy of the model with every float32 tensor, input and output in float64 (for the reference check)."""
    from onnx import TensorProto, numpy_helper

    m = onnx.ModelProto()
    m.CopyFrom(mp)
    g = m.graph
    for init in g.initializer:
        if init.data_type == TensorProto.FLOAT:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float64), init.name))
    for v in list(g.input) + list(g.output) + list(g.value_info):
        if v.type.tensor_type.elem_type == TensorProto.FLOAT:
            v.type.tensor_type.elem_type = TensorProto.DOUBLE
    for n in g.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT:
                a.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(a.t).astype(np.float64), a.t.name))
    return m


def _check_reference(mp, net: Network, params: Params, xname: str, n: int, tol: float, source: str, onnx) -> None:
    try:
        from onnx.reference import ReferenceEvaluator
    except ImportError:  # pragma: no cover - onnx < 1.13
        warnings.warn("onnx.reference is unavailable; the ONNX import was not checked", stacklevel=3)
        return
    X = np.random.default_rng(0).normal(size=(n, *net.input_shape))
    try:
        outs = ReferenceEvaluator(_as_float64(mp, onnx)).run(None, {xname: X})
        assert isinstance(outs, list)  # run() returns a dict only when intermediate=True
        ref = outs[0]
    except Exception as e:  # noqa: BLE001 - the reference evaluator's own limits
        warnings.warn(f"{source}: onnx.reference could not evaluate the model ({type(e).__name__}: {e}); "
                      "the import was not checked", stacklevel=3)
        return
    compare_outputs(forward(net, params, X), np.asarray(ref, dtype=np.float64).reshape(n, -1), tol,
                    f"{source} (checked against onnx.reference)")


__all__ = ["from_onnx"]
