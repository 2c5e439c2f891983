"""Errors of the KKT layer: :class:`~verifier.errors.KKTError`, defined with every other error in
:mod:`verifier.errors` and re-exported here for the modules that import it from ``verifier.kkt``."""

from __future__ import annotations

from ..errors import KKTError

__all__ = ["KKTError"]
