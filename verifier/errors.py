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


class OutputPathError(VerifierError):
    """An output path cannot be written (missing or read-only folder, a folder, an input of the same command)."""


# -- errors of the feature layers (one module for all of them; the layers re-export their own) --------------

class KKTError(VerifierError):
    """A KKT check cannot be carried out as asked (bad option, unsupported case, solver failure)."""


class TrainingError(VerifierError):
    """Bad training arguments, or training cannot continue (non-finite iterate or loss: the message names the step)."""


class EmbeddingError(VerifierError):
    """Bad input to an embedding (layer/unit out of range, bad ratios, wrong map shape...)."""


class SpecError(EmbeddingError):
    """A malformed split specification (``--split`` / ``--channel`` / ``--add-zero`` string)."""


class UnsupportedModelError(GraphError):
    """The model uses a layer, function or construct that has no counterpart in the network IR."""


class MissingDependencyError(VerifierError, ImportError):
    """An optional extra (``torch``, ``onnx``) is needed but not installed."""


class ImportCheckError(VerifierError):
    """The imported network does not reproduce the original model's outputs."""


class TheoremError(VerifierError):
    """Bad use of a theorem: unknown name, unknown assumption, malformed counterexample file..."""
