"""Operation registry: importing this package registers every op of every module in it.

A new op is one new module here (or a class in an existing one): the modules
are discovered, so nothing else needs an import (see ``docs/ops.md``).
"""

import importlib as _importlib
import pkgutil as _pkgutil

from .base import REGISTRY, Attr, Op, SymFns, get_op, register

for _m in sorted(m.name for m in _pkgutil.iter_modules(__path__)):
    if _m != "base" and not _m.startswith("_"):
        _importlib.import_module(f"{__name__}.{_m}")

__all__ = ["REGISTRY", "Attr", "Op", "SymFns", "get_op", "register"]
