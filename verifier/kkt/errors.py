"""Errors of the KKT layer (subclasses of :class:`verifier.errors.VerifierError`)."""

from __future__ import annotations

from ..errors import VerifierError


class KKTError(VerifierError):
    """A KKT check cannot be carried out as asked (bad option, unsupported case, solver failure)."""
