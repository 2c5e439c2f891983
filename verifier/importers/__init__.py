"""Bring your own model: import PyTorch / ONNX models into the network IR and export parameters back.

* :func:`from_torch` -- a ``torch.nn.Module`` traced with ``torch.fx``;
* :func:`from_onnx` -- an ONNX file or ``onnx.ModelProto``;
* :func:`to_torch_state_dict` -- parameters as a torch state dict.

``torch`` and ``onnx`` are optional extras (``pip install 'kkt-verifier[torch,onnx]'``);
they are imported on first use, and a missing one gives a one-line
:class:`MissingDependencyError`.  Unsupported layers raise
:class:`UnsupportedModelError` naming the layer and listing what is supported.
"""

from __future__ import annotations

from ._common import SUPPORTED_OPS, ImportCheckError, MissingDependencyError, UnsupportedModelError
from .onnx_import import from_onnx
from .torch_import import from_torch, to_torch_state_dict

__all__ = ["from_torch", "from_onnx", "to_torch_state_dict", "UnsupportedModelError", "MissingDependencyError",
           "ImportCheckError", "SUPPORTED_OPS"]
