"""Executable theorem statements (one module per theorem) and the registry.

Each module defines ``THEOREM`` (a :class:`~theorems.base.Theorem`) and
``THEOREMS`` (every claim it registers: the theorem, sometimes variants and
known-false claims).  A claim is stated once, checked on one instance
(``THEOREM.check(instance) -> Evidence``), searched over generated instances
(``THEOREM.search(examples=300)``), and negated (``THEOREM.negated(name)``)
to hunt for counterexamples when an assumption is dropped.

>>> import theorems
>>> "kkt-embedding-neuron-split" in theorems.names()
True
>>> theorems.get("euler-identity").title
"Euler's identity for positively homogeneous networks"
>>> theorems.get("kkt-embedding-neuron-split/without-isometric-ratios").dropped
('isometric-ratios',)
"""

from __future__ import annotations

import importlib

from .base import (Assumption, Check, Counterexample, Evidence, Instance, SearchResult, Theorem, TheoremError,
                   load_counterexample, sub_check, within)

#: theorem modules, in the order ``verifier theorems list`` shows them
MODULES = ("euler", "degree", "linear_svm", "dual_gap", "neuron_splitting", "channel_splitting", "trajectories",
           "limit_direction", "lyu_li", "false_claims")

_REGISTRY: dict[str, Theorem] | None = None


def registry() -> dict[str, Theorem]:
    """Every registered claim by name (theorems and known-false claims)."""
    global _REGISTRY
    if _REGISTRY is None:
        reg: dict[str, Theorem] = {}
        for m in MODULES:
            mod = importlib.import_module(f"{__name__}.{m}")
            for th in getattr(mod, "THEOREMS", [mod.THEOREM]):
                if th.name in reg:
                    raise RuntimeError(f"theorem {th.name!r} registered twice")
                reg[th.name] = th
        _REGISTRY = reg
    return _REGISTRY


def names() -> list[str]:
    return list(registry())


def get(name: str) -> Theorem:
    """A claim by name; ``"NAME/without-ASSUMPTION"`` is ``get(NAME).negated(ASSUMPTION)``."""
    reg = registry()
    if name in reg:
        return reg[name]
    base, sep, rest = name.partition("/without-")
    if sep and base in reg:
        return reg[base].negated(rest)
    close = [n for n in reg if name.split("/")[0] in n or n in name]
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise TheoremError(f"no theorem named {name!r}{hint} (`verifier theorems list` shows them all)")


__all__ = ["Assumption", "Check", "Counterexample", "Evidence", "Instance", "MODULES", "SearchResult", "Theorem",
           "TheoremError", "get", "load_counterexample", "names", "registry", "sub_check", "within"]
