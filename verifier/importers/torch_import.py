"""Import a PyTorch model (traced with ``torch.fx``) into the network IR, and export parameters back.

What is mapped (anything else raises :class:`UnsupportedModelError` naming the
module path and type, or the function and the module whose ``forward`` calls it):

=========================================  ===========================================
torch                                      network IR
=========================================  ===========================================
``nn.Linear`` / ``F.linear`` (+ bias)      ``dense`` (+ a separate ``bias`` node)
``nn.Conv2d`` / ``F.conv2d`` (+ bias)      ``conv2d`` (+ ``bias``); zero padding only,
                                           ``groups = dilation = 1``
``nn.ReLU``, ``F.relu``, ``x.relu()``      ``relu``
``nn.LeakyReLU``, ``F.leaky_relu``         ``leaky_relu`` (slope = ``negative_slope``)
``nn.Sigmoid``, ``nn.Tanh`` (and fns)      ``sigmoid``, ``tanh`` -- imported faithfully;
                                           the homogeneity calculus then reports the
                                           node (named by its module path) as not
                                           positively homogeneous
``nn.MaxPool2d`` / ``nn.AvgPool2d``        ``maxpool2d`` / ``avgpool2d``: no padding,
(and ``F.max_pool2d`` / ``F.avg_pool2d``)  ``ceil_mode=False``, dilation 1
``nn.Flatten()``, ``torch.flatten(x, 1)``, ``flatten`` (per-sample, row-major)
``x.view(x.size(0), -1)``, ``reshape``
``x + y``, ``torch.add`` (``alpha=1``)     ``add`` (residual connections)
``nn.Identity``, ``nn.Dropout`` (eval)     nothing (the input is passed through)
=========================================  ===========================================

Parameter-free modules built inside ``forward`` (``nn.Flatten()(x)``, ``nn.ReLU()(x)``)
are traced through their ``forward``; one with parameters is refused (its
weights would be new on every call).  ``nn.Sequential`` may nest to any depth
(node names are the full module paths, ``"head.2.0"``).

Tracing: ``torch.fx`` first; where fx cannot trace the forward (a Python ``if``
on a shape, ...), ``torch.export`` (non-strict, batch dimension dynamic) gives
a graph of aten ops (``aten.linear``, ``aten.conv2d``, ``aten.relu``,
``aten.view``/``reshape`` with ``sym_size``, ...) that the same importer maps,
naming nodes by the module path recorded in ``nn_module_stack``.
``from_torch(..., tracer="fx" | "export")`` forces one route.

Refused with a one-line error: BatchNorm and other normalisation layers,
Dropout in train mode, attention, weight sharing (a parametrised module called
twice or a tensor registered under two names), several model inputs, tuple
outputs, and ``forward`` code neither ``torch.fx`` nor ``torch.export`` can trace
(``if``/``for`` on tensor *values*).  Sigmoid/Tanh are *imported* (the IR has these ops, so the
network can still be evaluated) and the calculus names them when homogeneity is
asked for -- e.g. by :meth:`Network.degree` or the KKT check.

Names: node names are the module paths (``"0"``, ``"features.3"``; functions get
the ``torch.fx`` node name such as ``"add"``); a module's bias becomes the node
``"<path>.bias"``.  Parameter names are the torch names (``"0.weight"``,
``"fc1.bias"``) with torch's shapes, so :func:`to_torch_state_dict` gives a state
dict that loads straight back into the model.

>>> import torch, verifier
>>> model = torch.nn.Sequential(torch.nn.Linear(3, 5, bias=False), torch.nn.ReLU(),
...                             torch.nn.Linear(5, 1, bias=False))
>>> net, params = verifier.from_torch(model, torch.zeros(2, 3))
>>> net.param_names, verifier.degree(net), params["0.weight"].shape
(['0.weight', '2.weight'], 2, (5, 3))
"""

from __future__ import annotations

import copy
import operator
from collections import OrderedDict
from typing import Any, Mapping

import numpy as np

from ..errors import DataError, ParameterError, ShapeError
from ..graph import Network
from ..numeric.engine import forward
from ._common import Builder, UnsupportedModelError, compare_outputs, pair, require

Params = dict[str, np.ndarray]

_SUPPORTED = (
    "supported: nn.Linear, nn.Conv2d (zero padding, groups=1, dilation=1), nn.ReLU, nn.LeakyReLU, nn.Sigmoid, "
    "nn.Tanh, nn.MaxPool2d / nn.AvgPool2d (padding=0, ceil_mode=False), nn.Flatten(start_dim=1), nn.Identity, "
    "nn.Dropout in eval mode, and in forward: x + y / torch.add, F.relu, F.leaky_relu, torch.sigmoid, torch.tanh, "
    "torch.flatten(x, 1), x.view(x.size(0), -1), F.linear / F.conv2d with registered parameters, "
    "F.max_pool2d / F.avg_pool2d"
)

_HINTS = {
    "BatchNorm": "fold it into the preceding layer (an affine map breaks homogeneity) or remove it",
    "Norm": "normalisation layers are not positively homogeneous in the parameters",
    "Attention": "attention (softmax of products) is not positively homogeneous",
    "Transformer": "attention (softmax of products) is not positively homogeneous",
}


def _torch():
    return require("torch", "torch")


# ----------------------------------------------------------------------------------------------
# tracing
# ----------------------------------------------------------------------------------------------
def _leaf_types(torch) -> tuple[type, ...]:
    nn = torch.nn
    return (nn.Linear, nn.Conv2d, nn.ReLU, nn.LeakyReLU, nn.Sigmoid, nn.Tanh, nn.Identity, nn.MaxPool2d,
            nn.AvgPool2d, nn.Flatten, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
            nn.FeatureAlphaDropout)


class _FreshModuleError(Exception):
    """Raised inside the tracer: a module with parameters is constructed in ``forward``."""


def _trace(model, torch):
    fx = torch.fx
    leaves = _leaf_types(torch)

    class Tracer(fx.Tracer):
        def __init__(self) -> None:
            super().__init__()
            self.stack: list[tuple[str, str]] = []
            self.failed_at: tuple[str, str] | None = None

        def is_leaf_module(self, m, qualname):  # exact types only: a subclass may override forward
            return type(m) in leaves or super().is_leaf_module(m, qualname)

        def call_module(self, m, forward, args, kwargs):
            try:
                path = self.path_of_module(m)
            except NameError:  # a module built inside forward, e.g. nn.Flatten()(x)
                if any(True for _ in m.parameters()) or any(True for _ in m.buffers()):
                    self.failed_at = self.failed_at or ("", type(m).__name__)
                    where = (f"module {self.stack[-1][0]!r} ({self.stack[-1][1]})" if self.stack
                             else f"model {type(self.root).__name__}")
                    raise _FreshModuleError(
                        f"a {type(m).__name__} with parameters or buffers is created inside the forward of {where} "
                        "(its weights are new on every call); create it in __init__ so that it is registered on "
                        "the model"
                    ) from None
                return forward(*args, **kwargs)  # parameter-free: trace through its forward (F.relu, flatten, ...)
            self.stack.append((path, type(m).__name__))
            try:
                return super().call_module(m, forward, args, kwargs)
            except Exception:
                if self.failed_at is None:
                    self.failed_at = self.stack[-1]
                raise
            finally:
                self.stack.pop()

    tracer = Tracer()
    try:
        graph = tracer.trace(model)
    except _FreshModuleError as e:
        raise UnsupportedModelError(str(e)) from None
    except Exception as e:  # fx raises TraceError, TypeError, RuntimeError, ... for untraceable code
        path, typ = tracer.failed_at or ("", type(model).__name__)
        where = f"module {path!r} ({typ})" if path else f"the forward of the model ({typ})"
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UnsupportedModelError(
            f"torch.fx cannot trace {where}: {msg}; data-dependent control flow (if/for/while on tensor values) "
            f"and other dynamic Python are not supported; {_SUPPORTED}"
        ) from None
    gm = fx.GraphModule(tracer.root, graph)
    gm.graph.eliminate_dead_code()
    gm.recompile()
    return gm


def _export(model, x, torch):
    """The model as an fx graph of aten ops via ``torch.export`` (batch dimension dynamic); parameters are
    ``get_attr`` nodes with the model's own names, exactly as in the ``torch.fx`` route."""
    xe = x if x.shape[0] >= 2 else x.expand(2, *x.shape[1:]).contiguous()
    try:
        ep = torch.export.export(model, (xe,), dynamic_shapes=({0: torch.export.Dim("batch")},), strict=False)
        gm = ep.module()
    except Exception as e:  # noqa: BLE001 - export raises many kinds of errors for unexportable code
        msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UnsupportedModelError(f"torch.export cannot export the model ({type(model).__name__}) either: {msg[:300]}") from None
    for n in list(gm.graph.nodes):  # the input guards (shape assertions) are not part of the function
        if n.op == "call_module" and str(n.target).startswith("_guards") and not n.users:
            gm.graph.erase_node(n)
    return gm


def _graph(model, x, torch, tracer: str):
    """``(graph module, 'torch.fx' | 'torch.export')``: fx first; torch.export where fx cannot trace."""
    if tracer not in ("auto", "fx", "export"):
        raise UnsupportedModelError(f"tracer={tracer!r} must be 'auto', 'fx' or 'export'")
    if tracer == "export":
        return _export(model, x, torch), "torch.export"
    try:
        return _trace(model, torch), "torch.fx"
    except UnsupportedModelError as e:
        if tracer == "fx" or not str(e).startswith("torch.fx cannot trace"):
            raise
        fx_error = str(e).split("; data-dependent")[0]
    try:
        return _export(model, x, torch), "torch.export"
    except UnsupportedModelError as e:
        raise UnsupportedModelError(f"{fx_error}; {e}; {_SUPPORTED}") from None


def _export_name(node, leaf_paths: set[str]) -> str | None:
    """The module path of a ``torch.export`` node that comes from a leaf module (``"h.0"``), else None."""
    stack = node.meta.get("nn_module_stack") or {}
    if stack:
        path = list(stack.values())[-1][0]
        if path in leaf_paths:
            return path
    return None


def _where_fn(node, what: str) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    if stack:
        path, (_, typ) = list(stack.items())[-1]
        typ_name = typ.__name__ if isinstance(typ, type) else str(typ).rsplit(".", 1)[-1]
        return f"{what} in the forward of module {path!r} ({typ_name})"
    return f"{what} in the model's forward"


def _fn_name(target: Any) -> str:
    name = getattr(target, "__name__", None) or str(target)
    if name == "fn":  # boolean_dispatch wrappers
        name = str(target)
    mod = getattr(target, "__module__", "") or ""
    if mod in ("_operator", "operator"):
        return f"operator.{name}"
    if mod.startswith("torch.nn.functional"):
        return f"F.{name}"
    if mod.startswith("torch"):
        return f"torch.{name}"
    return name


def _arg(node, i: int, name: str, default: Any = None) -> Any:
    if len(node.args) > i:
        return node.args[i]
    return node.kwargs.get(name, default)


# ----------------------------------------------------------------------------------------------
# the importer
# ----------------------------------------------------------------------------------------------
class _Importer:
    def __init__(self, model, torch) -> None:
        self.torch = torch
        self.model = model
        self.modules = dict(model.named_modules())
        self.named_params = dict(model.named_parameters(remove_duplicate=False))
        self.param_ids: dict[int, str] = {}
        self.b = Builder()
        self.env: dict[Any, Any] = {}  # fx node -> our node name, or a marker tuple for non-tensor values
        self.fns = self._function_table()
        self.called: set[str] = set()  # paths of parametrised modules already called
        self.exported = False  # True for a torch.export graph (aten ops; node names from nn_module_stack)
        self.leaf_paths = {p for p, m in self.modules.items() if p and type(m) in _leaf_types(torch)}

    _METHODS = ("relu", "relu_", "sigmoid", "tanh", "add", "add_", "contiguous", "flatten", "size", "view", "reshape")

    def precheck(self, n) -> None:
        """Refuse unsupported layers/functions by type alone, before the model is run."""
        if n.op == "call_module":
            m = self.modules.get(n.target)
            if m is None:
                raise UnsupportedModelError(f"the traced graph calls {n.target!r}, which is not a module of the model")
            if type(m) not in _leaf_types(self.torch):
                raise self.unsupported_module(n.target, m)
        elif n.op == "call_function" and n.target not in self.fns:
            raise UnsupportedModelError(f"{_where_fn(n, _fn_name(n.target))} is not supported; {_SUPPORTED}")
        elif n.op == "call_method" and n.target not in self._METHODS:
            raise UnsupportedModelError(f"{_where_fn(n, f'tensor method .{n.target}()')} is not supported; {_SUPPORTED}")

    @staticmethod
    def unsupported_module(path: str, m) -> UnsupportedModelError:
        t = type(m).__name__
        hint = next((h for k, h in _HINTS.items() if k in t), None)
        return UnsupportedModelError(
            f"module {path!r} ({t}) is not supported{f' ({hint})' if hint else ''}; {_SUPPORTED}"
        )

    def _function_table(self) -> dict[Any, str]:
        torch, F = self.torch, self.torch.nn.functional
        table: dict[Any, str] = {}
        for f in (F.relu, torch.relu, torch.relu_, getattr(F, "relu_", None)):
            table[f] = "relu"
        for f in (F.leaky_relu, getattr(F, "leaky_relu_", None)):
            table[f] = "leaky_relu"
        for f in (torch.sigmoid, F.sigmoid):
            table[f] = "sigmoid"
        for f in (torch.tanh, F.tanh):
            table[f] = "tanh"
        for f in (operator.add, operator.iadd, torch.add):
            table[f] = "add"
        table[torch.flatten] = "flatten"
        table[F.linear] = "linear"
        table[F.conv2d] = "conv2d"
        table[F.max_pool2d] = "maxpool"
        table[F.avg_pool2d] = "avgpool"
        table[F.dropout] = "dropout"
        table[getattr] = "getattr"
        table[operator.getitem] = "getitem"
        table.pop(None, None)
        # the aten ops torch.export produces (same argument positions as the functions above)
        aten = torch.ops.aten
        for name, kind in (("relu.default", "relu"), ("relu_.default", "relu"), ("leaky_relu.default", "leaky_relu"),
                           ("leaky_relu_.default", "leaky_relu"), ("sigmoid.default", "sigmoid"),
                           ("tanh.default", "tanh"), ("add.Tensor", "add"), ("add_.Tensor", "add"),
                           ("flatten.using_ints", "flatten"), ("linear.default", "linear"),
                           ("conv2d.default", "conv2d"), ("max_pool2d.default", "maxpool"),
                           ("avg_pool2d.default", "avgpool"), ("dropout.default", "dropout"),
                           ("view.default", "reshape"), ("reshape.default", "reshape"), ("sym_size.int", "dim"),
                           ("contiguous.default", "identity"), ("clone.default", "identity"),
                           ("alias.default", "identity")):
            packet, overload = name.split(".")
            op = getattr(getattr(aten, packet, None), overload, None)
            if op is not None:
                table[op] = kind
        return table

    # -- helpers ------------------------------------------------------------------------------
    def shape(self, n) -> tuple[int, ...]:
        tm = n.meta.get("tensor_meta")
        return tuple(int(s) for s in tm.shape)

    def tensor_in(self, n, v, where: str) -> str:
        """Our node name for the fx value ``v`` used as a tensor argument of ``n``."""
        fx = self.torch.fx
        if isinstance(v, fx.Node) and isinstance(self.env.get(v), str):
            return self.env[v]
        if isinstance(v, fx.Node) and v.op == "get_attr":
            raise UnsupportedModelError(
                f"{where}: uses the tensor attribute {v.target!r} as data; tensors registered on a module can only "
                f"be the weight/bias of F.linear or F.conv2d; {_SUPPORTED}"
            )
        raise UnsupportedModelError(
            f"{where}: an argument is the constant {v!r}, not the output of a layer; "
            f"adding or multiplying by constants is not supported (use a bias parameter); {_SUPPORTED}"
        )

    def param(self, n, v, where: str, role: str) -> tuple[str, np.ndarray]:
        fx = self.torch.fx
        if not (isinstance(v, fx.Node) and v.op == "get_attr" and v.target in self.named_params):
            raise UnsupportedModelError(
                f"{where}: the {role} must be a parameter registered on a module (nn.Parameter), got {v!r}; "
                "computed weights (weight normalisation, parametrisations) are not supported"
            )
        return self.param_value(v.target, where)

    def param_value(self, name: str, where: str) -> tuple[str, np.ndarray]:
        p = self.named_params[name]
        other = self.param_ids.setdefault(id(p), name)
        if other != name:
            raise UnsupportedModelError(
                f"{where}: parameter {name!r} is the same tensor as {other!r}; weight sharing is not supported"
            )
        return name, p.detach().to(self.torch.float64).cpu().numpy().copy()

    # -- one fx node -----------------------------------------------------------------------
    def visit(self, n) -> None:
        if n.op == "placeholder":
            if self.b.nodes:
                if n.args or not n.users:  # an optional argument with a default, unused
                    return
                raise UnsupportedModelError(
                    f"the model's forward takes several tensor inputs ({n.name!r} is the second); "
                    "only models with one input tensor are supported"
                )
            shp = self.shape(n)
            self.env[n] = self.b.add("x", "input", shape=shp[1:])
        elif n.op == "get_attr":
            self.env[n] = ("attr", n.target)
        elif n.op == "call_module":
            self.module(n)
        elif n.op == "call_function":
            self.function(n)
        elif n.op == "call_method":
            self.method(n)
        elif n.op == "output":
            v = n.args[0]
            if isinstance(v, (tuple, list)) and len(v) == 1:  # torch.export returns a flat tuple of outputs
                v = v[0]
            if not (isinstance(v, self.torch.fx.Node) and isinstance(self.env.get(v), str)):
                raise UnsupportedModelError(
                    f"the model returns {type(v).__name__} {v!r}; it must return one tensor of scores of shape (N, C)"
                )
            shp = self.shape(v)
            if len(shp) != 2:
                raise UnsupportedModelError(
                    f"the model returns a tensor of shape {shp}; the verifier needs scores of shape (N, C) "
                    "(N samples, C >= 1 outputs)"
                )
            self.b.add("output", "output", [self.env[v]])
        else:  # pragma: no cover - fx has no other node kinds
            raise UnsupportedModelError(f"unknown torch.fx node kind {n.op!r}")

    def linear(self, n, name: str, where: str, x, weight: tuple[str, np.ndarray], bias: tuple[str, np.ndarray] | None) -> None:
        shp = self.shape(n.args[0])
        if len(shp) != 2:
            raise UnsupportedModelError(
                f"{where}: applied to a tensor of shape {shp}; only (N, features) inputs are supported "
                "(flatten first)"
            )
        out = self.b.add(name, "dense", [x], params={"weight": weight}, where=where, out_features=weight[1].shape[0])
        if bias is not None:
            out = self.b.add(f"{name}.bias", "bias", [out], params={"bias": bias}, where=where)
        self.env[n] = out

    def conv(self, n, name: str, where: str, x, weight, bias, stride, padding, dilation, groups) -> None:
        shp = self.shape(n.args[0])
        if len(shp) != 4:
            raise UnsupportedModelError(f"{where}: applied to a tensor of shape {shp}; only (N, C, H, W) inputs are supported")
        if groups != 1 or pair(dilation) != (1, 1):
            raise UnsupportedModelError(f"{where}: groups={groups}, dilation={dilation}; only groups=1, dilation=1 are supported")
        k = weight[1].shape[2:]
        if isinstance(padding, str):
            if padding == "valid":
                padding = (0, 0)
            elif padding == "same" and all(kk % 2 == 1 for kk in k):
                padding = (k[0] // 2, k[1] // 2)
            else:
                raise UnsupportedModelError(
                    f"{where}: padding={padding!r} with kernel {tuple(k)}; only symmetric zero padding is supported "
                    "(an int, a pair, 'valid', or 'same' with an odd kernel)"
                )
        out = self.b.add(name, "conv2d", [x], params={"weight": weight}, where=where, out_channels=weight[1].shape[0],
                         kernel_size=tuple(int(v) for v in k), stride=pair(stride), padding=pair(padding))
        if bias is not None:
            out = self.b.add(f"{name}.bias", "bias", [out], params={"bias": bias}, where=where)
        self.env[n] = out

    def pool(self, n, name: str, where: str, kind: str, x, kernel, stride, padding, dilation, ceil_mode,
             extra_bad: str | None = None) -> None:
        if len(self.shape(n.args[0])) != 4:
            raise UnsupportedModelError(f"{where}: applied to a tensor of shape {self.shape(n.args[0])}; only (N, C, H, W) is supported")
        bad = []
        if pair(padding) != (0, 0):
            bad.append(f"padding={padding}")
        if pair(dilation) != (1, 1):
            bad.append(f"dilation={dilation}")
        if ceil_mode:
            bad.append("ceil_mode=True")
        if extra_bad:
            bad.append(extra_bad)
        if bad:
            raise UnsupportedModelError(
                f"{where}: {', '.join(bad)} is not supported; pooling must have padding=0, dilation=1, ceil_mode=False"
            )
        if stride is None or (isinstance(stride, (list, tuple)) and len(stride) == 0):
            stride = kernel
        self.env[n] = self.b.add(name, kind, [x], kernel_size=pair(kernel), stride=pair(stride))

    def flatten(self, n, name: str, where: str, start: int, end: int) -> None:
        shp = self.shape(n.args[0])
        if start != 1 or end not in (-1, len(shp) - 1):
            raise UnsupportedModelError(
                f"{where}: flattens dims {start}..{end} of a tensor of shape {shp}; only flattening from dim 1 "
                "to the end (keeping the batch dim) is supported"
            )
        x = self.tensor_in(n, n.args[0], where)
        self.env[n] = x if len(shp) == 2 else self.b.add(name, "flatten", [x])

    def act(self, n, name: str, where: str, op: str, **attrs) -> None:
        self.env[n] = self.b.add(name, op, [self.tensor_in(n, n.args[0], where)], **attrs)

    def dropout(self, n, where: str, p: float, training: bool) -> None:
        if training and p > 0:
            raise UnsupportedModelError(
                f"{where}: dropout in train mode (p={p}) makes the network random; call model.eval() first "
                "(in eval mode dropout is the identity)"
            )
        self.env[n] = self.tensor_in(n, n.args[0], where)

    def add(self, n, where: str, a, b, alpha: Any = 1) -> None:
        if alpha != 1:
            raise UnsupportedModelError(f"{where}: alpha={alpha}; only plain sums (alpha=1) are supported")
        self.env[n] = self.b.add(n.name, "add", [self.tensor_in(n, a, where), self.tensor_in(n, b, where)])

    def module(self, n) -> None:
        nn = self.torch.nn
        path = n.target
        m = self.modules[path]
        t = type(m)
        where = f"module {path!r} ({t.__name__})"
        if any(True for _ in m.parameters(recurse=False)):
            if path in self.called:
                raise UnsupportedModelError(f"{where} is called more than once; weight sharing is not supported")
            self.called.add(path)
        if t is nn.Linear:
            w = self.param_value(f"{path}.weight", where)
            b = self.param_value(f"{path}.bias", where) if m.bias is not None else None
            self.linear(n, path, where, self.tensor_in(n, n.args[0], where), w, b)
        elif t is nn.Conv2d:
            if m.padding_mode != "zeros":
                raise UnsupportedModelError(
                    f"{where}: padding_mode={m.padding_mode!r}; only padding_mode='zeros' is supported"
                )
            w = self.param_value(f"{path}.weight", where)
            b = self.param_value(f"{path}.bias", where) if m.bias is not None else None
            self.conv(n, path, where, self.tensor_in(n, n.args[0], where), w, b, m.stride, m.padding, m.dilation, m.groups)
        elif t is nn.ReLU:
            self.act(n, path, where, "relu")
        elif t is nn.LeakyReLU:
            self.act(n, path, where, "leaky_relu", slope=float(m.negative_slope))
        elif t is nn.Sigmoid:
            self.act(n, path, where, "sigmoid")
        elif t is nn.Tanh:
            self.act(n, path, where, "tanh")
        elif t is nn.Identity:
            self.env[n] = self.tensor_in(n, n.args[0], where)
        elif t in (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, nn.FeatureAlphaDropout):
            self.dropout(n, where, float(m.p), m.training)
        elif t is nn.MaxPool2d:
            self.pool(n, path, where, "maxpool2d", self.tensor_in(n, n.args[0], where), m.kernel_size, m.stride,
                      m.padding, m.dilation, m.ceil_mode, "return_indices=True" if m.return_indices else None)
        elif t is nn.AvgPool2d:
            self.pool(n, path, where, "avgpool2d", self.tensor_in(n, n.args[0], where), m.kernel_size, m.stride,
                      m.padding, 1, m.ceil_mode,
                      f"divisor_override={m.divisor_override}" if m.divisor_override is not None else None)
        elif t is nn.Flatten:
            self.flatten(n, path, where, m.start_dim, m.end_dim)
        else:
            raise self.unsupported_module(path, m)

    def function(self, n) -> None:
        kind = self.fns.get(n.target)
        where = _where_fn(n, _fn_name(n.target))
        if kind is None:
            raise UnsupportedModelError(f"{where} is not supported; {_SUPPORTED}")
        name = (_export_name(n, self.leaf_paths) if self.exported else None) or n.name
        if kind in ("relu", "sigmoid", "tanh"):
            self.act(n, name, where, kind)
        elif kind == "leaky_relu":
            self.act(n, name, where, "leaky_relu", slope=float(_arg(n, 1, "negative_slope", 0.01)))
        elif kind == "add":
            self.add(n, where, n.args[0], _arg(n, 1, "other"), n.kwargs.get("alpha", 1))
        elif kind == "flatten":
            self.flatten(n, name, where, int(_arg(n, 1, "start_dim", 0)), int(_arg(n, 2, "end_dim", -1)))
        elif kind == "linear":
            bias = _arg(n, 2, "bias")
            self.linear(n, name, where, self.tensor_in(n, n.args[0], where), self.param(n, _arg(n, 1, "weight"), where, "weight"),
                        None if bias is None else self.param(n, bias, where, "bias"))
        elif kind == "conv2d":
            bias = _arg(n, 2, "bias")
            self.conv(n, name, where, self.tensor_in(n, n.args[0], where), self.param(n, _arg(n, 1, "weight"), where, "weight"),
                      None if bias is None else self.param(n, bias, where, "bias"), _arg(n, 3, "stride", 1),
                      _arg(n, 4, "padding", 0), _arg(n, 5, "dilation", 1), _arg(n, 6, "groups", 1))
        elif kind == "maxpool":
            self.pool(n, name, where, "maxpool2d", self.tensor_in(n, n.args[0], where), _arg(n, 1, "kernel_size"),
                      _arg(n, 2, "stride"), _arg(n, 3, "padding", 0), _arg(n, 4, "dilation", 1), _arg(n, 5, "ceil_mode", False),
                      "return_indices=True" if _arg(n, 6, "return_indices", False) else None)
        elif kind == "avgpool":
            div = _arg(n, 6, "divisor_override")
            self.pool(n, name, where, "avgpool2d", self.tensor_in(n, n.args[0], where), _arg(n, 1, "kernel_size"),
                      _arg(n, 2, "stride"), _arg(n, 3, "padding", 0), 1, _arg(n, 4, "ceil_mode", False),
                      f"divisor_override={div}" if div is not None else None)
        elif kind == "dropout":
            self.dropout(n, where, float(_arg(n, 1, "p", 0.5)), bool(_arg(n, 2, "training", True)))
        elif kind == "reshape":
            self.reshape(n, where)
        elif kind == "dim":  # aten.sym_size.int(x, 0)
            src = n.args[0]
            if not isinstance(self.env.get(src), str):
                raise UnsupportedModelError(f"{where}: size of a non-tensor")
            self.env[n] = ("dim", src, int(n.args[1]))
        elif kind == "identity":
            self.env[n] = self.tensor_in(n, n.args[0], where)
        elif kind == "getattr":  # x.shape
            src, attr = n.args[0], n.args[1]
            if attr != "shape" or not isinstance(self.env.get(src), str):
                raise UnsupportedModelError(f"{where}: attribute {attr!r} is not supported (only x.shape for a reshape)")
            self.env[n] = ("shape", src)
        elif kind == "getitem":
            src, idx = n.args
            marker = self.env.get(src)
            if isinstance(marker, tuple) and marker[0] == "shape" and isinstance(idx, int):
                self.env[n] = ("dim", marker[1], idx)
            else:
                raise UnsupportedModelError(f"{where}: indexing is only supported as x.shape[0] for a reshape; {_SUPPORTED}")

    def method(self, n) -> None:
        m = n.target
        where = _where_fn(n, f"tensor method .{m}()")
        name = n.name
        if m in ("relu", "relu_", "sigmoid", "tanh"):
            self.act(n, name, where, m.rstrip("_"))
        elif m in ("add", "add_"):
            self.add(n, where, n.args[0], _arg(n, 1, "other"), n.kwargs.get("alpha", 1))
        elif m == "contiguous":
            self.env[n] = self.tensor_in(n, n.args[0], where)
        elif m == "flatten":
            self.flatten(n, name, where, int(_arg(n, 1, "start_dim", 0)), int(_arg(n, 2, "end_dim", -1)))
        elif m == "size":
            src = n.args[0]
            if not isinstance(self.env.get(src), str):
                raise UnsupportedModelError(f"{where}: size of a non-tensor")
            dim = _arg(n, 1, "dim")
            self.env[n] = ("shape", src) if dim is None else ("dim", src, dim)
        elif m in ("view", "reshape"):
            self.reshape(n, where)
        else:
            raise UnsupportedModelError(f"{where} is not supported; {_SUPPORTED}")

    def reshape(self, n, where: str) -> None:
        src = n.args[0]
        sizes = list(n.args[1:])
        if len(sizes) == 1 and isinstance(sizes[0], (list, tuple)):
            sizes = list(sizes[0])
        if not sizes:
            sizes = list(n.kwargs.get("shape", n.kwargs.get("size", ())))
        in_shape = self.shape(src)
        per_sample = int(np.prod(in_shape[1:]))

        def is_batch(v) -> bool:
            mk = self.env.get(v) if isinstance(v, self.torch.fx.Node) else None
            # dim 0 of any tensor of the graph is the batch (torch.export shares one symbol for all of them)
            return isinstance(mk, tuple) and mk[0] == "dim" and mk[2] in (0, -len(self.shape(mk[1])))

        ok = (len(sizes) == 2 and (
            (is_batch(sizes[0]) and sizes[1] in (-1, per_sample))
            or (sizes[0] == -1 and sizes[1] == per_sample)
        ))
        if not ok:
            shown = [("x.size(0)" if is_batch(s) else s) for s in sizes]
            raise UnsupportedModelError(
                f"{where}: reshape to {shown} of a tensor of shape {in_shape}; only flattening reshapes "
                "x.view(x.size(0), -1) or x.view(-1, features) are supported"
            )
        x = self.tensor_in(n, src, where)
        self.env[n] = x if len(in_shape) == 2 else self.b.add(n.name, "flatten", [x])


def _as_input(example_input: Any, torch) -> Any:
    if isinstance(example_input, (tuple, list)) and len(example_input) == 1:
        example_input = example_input[0]
    try:
        x = torch.as_tensor(np.asarray(example_input) if not isinstance(example_input, torch.Tensor) else example_input)
    except (TypeError, ValueError, RuntimeError):
        raise DataError(f"example_input must be one tensor of shape (N, ...), got {type(example_input).__name__}") from None
    if x.is_complex() or not (x.is_floating_point() or x.dtype in (torch.int32, torch.int64)):
        raise DataError(f"example_input has dtype {x.dtype}; expected a real floating-point tensor")
    x = x.detach().to(torch.float64).cpu()
    if x.ndim < 2 or x.shape[0] < 1:
        raise DataError(
            f"example_input has shape {tuple(x.shape)}; expected (N, ...) with a batch dimension N >= 1, "
            "e.g. torch.zeros(1, 784) or torch.zeros(1, 1, 28, 28)"
        )
    if not bool(torch.isfinite(x).all()):
        raise DataError("example_input has non-finite entries")
    return x


def from_torch(model: Any, example_input: Any, *, check: bool = True, tol: float = 1e-12,
               tracer: str = "auto") -> tuple[Network, Params]:
    """Import a ``torch.nn.Module``; returns the pair ``(network, params)`` (see the module docstring for what is mapped).

    ``params`` is a dict ``{torch parameter name: float64 array}`` (a copy; the model is not modified).
    ``tracer``: ``"auto"`` (default) traces with ``torch.fx`` and falls back to
    ``torch.export`` (aten ops, batch dimension dynamic) where fx cannot trace the
    forward (Python ``if`` on shapes, ...); ``"fx"`` or ``"export"`` force one.

    ``example_input``: a tensor (or array) of shape ``(N, ...)``; it fixes the
    per-sample input shape.  With ``check`` (default) the model (a float64
    copy, the user's model is not modified) and the imported network are both
    evaluated on it and on a fixed random batch of the same per-sample shape,
    and must agree to ``tol`` (max abs difference relative to
    ``max(1, max|output|)``; default ``1e-12``).

    >>> import torch, verifier
    >>> class Res(torch.nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc1 = torch.nn.Linear(4, 4)
    ...         self.fc2 = torch.nn.Linear(4, 2, bias=False)
    ...     def forward(self, x):
    ...         return self.fc2(torch.relu(self.fc1(x)) + x)
    >>> net, params = verifier.from_torch(Res(), torch.zeros(1, 4))
    >>> net.param_names
    ['fc1.weight', 'fc1.bias', 'fc2.weight']
    >>> verifier.quasi_homogeneous_weights(net).exists   # bias + skip connection: not homogeneous at all
    False
    """
    torch = _torch()
    if not isinstance(model, torch.nn.Module):
        raise UnsupportedModelError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    x = _as_input(example_input, torch)
    try:
        model64 = copy.deepcopy(model).to(device="cpu", dtype=torch.float64)
    except Exception as e:  # noqa: BLE001 - any failure to copy the user's object
        raise UnsupportedModelError(f"cannot copy the model to evaluate it in float64: {type(e).__name__}: {e}") from None
    gm, how = _graph(model64, x, torch, tracer)
    imp = _Importer(model64, torch)
    imp.exported = how == "torch.export"
    from torch.fx.passes.shape_prop import ShapeProp

    nodes = list(gm.graph.nodes)
    required = [n.name for n in nodes if n.op == "placeholder" and not n.args]
    if len(required) != 1:
        raise UnsupportedModelError(
            f"the model's forward takes several tensor inputs {required}; only models with one input tensor are supported"
        )
    for n in nodes:  # unsupported layers are reported before the model is run
        imp.precheck(n)
    try:  # the model itself first (ShapeProp would log a traceback on failure)
        with torch.no_grad():
            model64(x)
    except Exception as e:  # noqa: BLE001 - the user's model failed on the example input
        raise ShapeError(
            f"running the model on example_input of shape {tuple(x.shape)} failed: "
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        ) from None
    with torch.no_grad():
        ShapeProp(gm).propagate(x)
    for n in nodes:
        imp.visit(n)
    net = imp.b.network(f"model {type(model).__name__}")
    params = net.check_params(imp.b.params, where=f"the parameters of model {type(model).__name__}")
    if check:
        gen = torch.Generator().manual_seed(0)
        rand = torch.randn((max(4, x.shape[0]), *x.shape[1:]), generator=gen, dtype=torch.float64)
        for xc, what in ((x, "example_input"), (rand, "a random input")):
            with torch.no_grad():
                ref = model64(xc)
            if not isinstance(ref, torch.Tensor):
                raise UnsupportedModelError(f"the model returns {type(ref).__name__}; it must return one tensor (N, C)")
            compare_outputs(forward(net, params, xc.numpy()), ref.numpy(), tol,
                            f"model {type(model).__name__} on {what}")
    return net, params


def to_torch_state_dict(net: Network, params: Mapping[str, Any] | Any, *, model: Any = None,
                        dtype: Any = None) -> "OrderedDict[str, Any]":
    """Parameters as a torch state dict ``{name: tensor}`` (torch's layouts: dense ``(out, in)``, conv ``(O, C, kh, kw)``).

    For a network imported with :func:`from_torch` the names are the model's,
    so ``model.load_state_dict(sd, strict=False)`` restores the parameters
    (``strict=True`` works when the model has no buffers and every parameter is
    used).  With ``model`` given, the names and shapes are checked against
    ``model.state_dict()`` and each tensor takes the dtype of the model's tensor;
    otherwise tensors are ``dtype`` (default ``torch.float64``).

    >>> import torch, verifier
    >>> model = torch.nn.Sequential(torch.nn.Linear(2, 3, bias=False), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    >>> net, params = verifier.from_torch(model, torch.zeros(1, 2))
    >>> params["0.weight"] *= 2.0
    >>> model.load_state_dict(verifier.to_torch_state_dict(net, params, model=model))
    <All keys matched successfully>
    >>> x = torch.randn(5, 2, dtype=torch.float64)
    >>> bool(abs(model.double()(x).detach().numpy() - verifier.forward(net, params, x.numpy())).max() < 1e-12)
    True
    """
    torch = _torch()
    ps = net.check_params(params)
    target = None
    if model is not None:
        if not isinstance(model, torch.nn.Module):
            raise ParameterError(f"model must be a torch.nn.Module, got {type(model).__name__}")
        target = model.state_dict()
        missing = [p for p in net.param_names if p not in target]
        if missing:
            raise ParameterError(
                f"the network's tensor(s) {missing} are not in the model's state dict (which has {list(target)[:12]}"
                f"{'...' if len(target) > 12 else ''}); was the network imported from this model?"
            )
        for p in net.param_names:
            if tuple(target[p].shape) != ps[p].shape:
                raise ParameterError(
                    f"tensor {p!r} has shape {ps[p].shape} in the network but {tuple(target[p].shape)} in the model"
                )
    out: OrderedDict[str, Any] = OrderedDict()
    for p in net.param_names:
        dt = target[p].dtype if target is not None else (dtype or torch.float64)
        out[p] = torch.tensor(ps[p], dtype=dt)
    return out
