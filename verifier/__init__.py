"""A symbolic-numeric verifier for KKT points and embedding theorems of homogeneous networks.

>>> import verifier
>>> net = verifier.mlp([2, 8, 8, 1])
>>> verifier.degree(net)
3

The core (IR, homogeneity calculus, numeric engine) is imported eagerly; the
feature layers (KKT, training, embeddings, symbolic, importers, certificates)
are imported on first use of one of their names, so ``import verifier`` stays
fast and optional extras (torch, onnx) are only needed when used.
"""

from __future__ import annotations

from ._interrupt import guard_startup as _guard_startup

_guard_startup()  # the `verifier` command only: Ctrl-C while importing -> one line, exit 130

import importlib  # noqa: E402
from typing import Any  # noqa: E402

from . import errors, ops  # noqa: E402
from .errors import (DataError, FormatError, GraphError, NotHomogeneousError, ParameterError, ShapeError,
                     UnknownOpError, VerifierError)
from .analysis import degree, quasi_homogeneous_weights  # noqa: E402
from .analysis import node_degrees as degrees  # noqa: E402
from .graph import Network, Node, cnn, diagonal_linear, mlp
from .numeric import forward, gram, kinks, margin_jacobian, margins

__version__ = "0.1.0"

#: public name -> module that defines it (imported lazily)
_LAZY = {
    # KKT verification (verifier.kkt) and training (verifier.dynamics)
    "check_kkt": "verifier.kkt",
    "KKTReport": "verifier.kkt",
    "train": "verifier.dynamics",
    "TrainResult": "verifier.dynamics",
    # embeddings (verifier.embed)
    "neuron_split": "verifier.embed",
    "channel_split": "verifier.embed",
    "add_zero_neuron": "verifier.embed",
    "Embedding": "verifier.embed",
    "check_embedding": "verifier.embed",
    # importers (verifier.importers)
    "from_torch": "verifier.importers",
    "from_onnx": "verifier.importers",
    "to_torch_state_dict": "verifier.importers",
}
_SUBMODULES = ("symbolic", "strategies", "kkt", "dynamics", "embed", "importers", "certificates", "report", "io",
               "torch")  # verifier.torch: the PyTorch workflow (imports the real torch on first use)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        mod = importlib.import_module(f"{__name__}.{name}")
        globals()[name] = mod
        return mod
    raise AttributeError(f"module 'verifier' has no attribute {name!r}")


__all__ = [
    "DataError", "FormatError", "GraphError", "Network", "Node", "NotHomogeneousError", "ParameterError",
    "ShapeError", "UnknownOpError", "VerifierError", "cnn", "degree", "degrees", "diagonal_linear", "errors", "forward",
    "gram", "quasi_homogeneous_weights",
    "kinks", "margin_jacobian", "margins", "mlp", "ops", "__version__", *_LAZY,
]
