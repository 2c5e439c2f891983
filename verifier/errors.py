"""One exception tree for the whole verifier.

Every message is one line that says *what* is wrong, *where* (node, tensor,
sample index, file field) and *what would be valid*.  The CLI turns any
:class:`VerifierError` into that line on stderr and exit status 2.
"""

from __future__ import annotations


class VerifierError(Exception):
    """Base class of every error the verifier raises on bad input."""


class GraphError(VerifierError):
    """The network graph is malformed (cycle, dangling input, duplicate name...)."""


class UnknownOpError(GraphError):
    """A node uses an operation that is not registered."""


class ShapeError(VerifierError):
    """A tensor has the wrong shape."""


class ParameterError(VerifierError):
    """Parameters are missing, extra, mis-shaped or non-finite."""


class DataError(VerifierError):
    """Inputs or labels are malformed (shape, NaN, label outside the allowed set)."""


class NotHomogeneousError(VerifierError):
    """The network is not positively homogeneous; the message names the node and why."""


class FormatError(VerifierError):
    """A file (JSON network, npz data, certificate) is malformed; the message names the field."""


class ResourceError(VerifierError):
    """A computation would need more memory (or other resources) than allowed; the message names the size and the knob."""
