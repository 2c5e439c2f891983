"""Evaluate a network on sympy expressions (the oracle for the degree rules).

:func:`symbolic_forward` runs every op's ``sympy_forward`` with parameters as
symbols.  With :func:`region_functions` the piecewise pieces (ReLU, abs, max)
are replaced by the branch that is active at a given numeric point, so in that
activation region the output is a polynomial in the parameters, and sympy's
``homogeneous_order`` gives its degree independently of our rule table.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import sympy as sp

from ..ops.base import SymFns


def param_symbols(net) -> dict[str, np.ndarray]:
    """Object arrays of sympy symbols, ``W1_0_1`` for ``W1[0, 1]``."""
    out = {}
    for p in net.param_names:
        shape = net.param_shapes[p]
        arr = np.empty(shape, dtype=object)
        for idx in np.ndindex(shape):
            arr[idx] = sp.Symbol(p + "_" + "_".join(map(str, idx)), real=True)
        out[p] = arr
    return out


def symbolic_forward(net, x: Any, params: Mapping[str, np.ndarray] | None = None, fns: SymFns | None = None) -> np.ndarray:
    """Output of ``net`` for one input ``x`` (numbers or sympy) as an object array."""
    fns = fns or SymFns()
    ps = params if params is not None else param_symbols(net)
    xin = np.empty(net.input_shape, dtype=object)
    xa = np.asarray(x, dtype=object).reshape(net.input_shape)
    for idx in np.ndindex(net.input_shape):
        xin[idx] = sp.nsimplify(xa[idx], rational=True) if not isinstance(xa[idx], sp.Basic) else xa[idx]
    env: dict[str, np.ndarray] = {}
    for name in net.order:
        node = net.nodes[name]
        if node.op == "input":
            env[name] = xin
            continue
        nps = {role: ps[p] for role, p in node.params.items()}
        env[name] = node.impl.sympy_forward([env[i] for i in node.inputs], nps, node.attrs, fns)
    return env[net.output]


class _Region(SymFns):
    def __init__(self, point: dict[sp.Symbol, Any]):
        self.point = point

    def _val(self, z: sp.Expr) -> float:
        return float(sp.sympify(z).subs(self.point))

    def pl(self, z, pos, neg):
        return pos * z if self._val(z) >= 0 else neg * z

    def max(self, zs):
        vals = [self._val(z) for z in zs]
        return zs[int(np.argmax(vals))]


def region_functions(net, params: Mapping[str, np.ndarray]) -> SymFns:
    """Branch selector for the activation region containing the numeric point ``params``."""
    syms = param_symbols(net)
    point = {}
    for p in net.param_names:
        for idx in np.ndindex(net.param_shapes[p]):
            point[syms[p][idx]] = sp.nsimplify(float(params[p][idx]), rational=True)
    return _Region(point)
