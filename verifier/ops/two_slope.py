"""The two-slope piecewise-linear activation ``z -> a z (z >= 0), b z (z < 0)``.

One op covers ReLU (``a = 1, b = 0``), leaky ReLU (``a = 1, b = slope``),
abs (``a = 1, b = -1``) and their positive multiples.  It is positively
1-homogeneous for every ``a, b``; for ``a != b`` it has a kink at 0 whose
Clarke derivative interval is ``[min(a, b), max(a, b)]``.  The engine's
derivative at ``z = 0`` is ``b`` (the left slope, torch's convention for
ReLU).

This module is the whole op: the engine, the kink handling, the symbolic
layer and neuron/channel splitting ask it for its facts (``slopes`` drives
them all, see :class:`~verifier.ops.activations.Elementwise`).

>>> import numpy as np
>>> from verifier.ops import get_op
>>> op = get_op("two_slope")
>>> attrs = op.check_attrs("act", {"a": 2.0, "b": -0.5})
>>> op.forward([np.array([[-2.0, 0.0, 3.0]])], {}, attrs)[0].tolist()
[[1.0, 0.0, 6.0]]
>>> op.clarke_interval(attrs), op.is_positively_homogeneous(attrs)
((-1/2, 2), True)
"""

from __future__ import annotations

import numpy as np
import sympy as sp

from .activations import Elementwise
from .base import Attr, register

_finite = "a finite number"


@register
class TwoSlope(Elementwise):
    name = "two_slope"
    attrs = {
        "a": Attr("float", required=True, valid=_finite + " (the slope for z >= 0)"),
        "b": Attr("float", required=True, valid=_finite + " (the slope for z < 0)"),
    }
    examples = ({"a": 1.0, "b": 0.0}, {"a": 1.0, "b": -1.0}, {"a": 2.0, "b": 0.5}, {"a": -1.5, "b": 0.25},
                {"a": 0.75, "b": 0.75})

    def slopes(self, attrs):
        return (sp.nsimplify(attrs["a"], rational=True), sp.nsimplify(attrs["b"], rational=True))

    def f(self, z, attrs):
        return np.where(z >= 0, attrs["a"] * z, attrs["b"] * z)

    def df(self, z, attrs):
        return np.where(z > 0, attrs["a"], attrs["b"]).astype(z.dtype, copy=False)

    def sym(self, z, attrs, fns):
        a, b = self.slopes(attrs)
        return fns.pl(z, a, b)
