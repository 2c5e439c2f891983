"""``verifier`` / ``python -m verifier``: the command-line interface.

Every module in this package that defines ``register(subparsers)`` adds its
sub-commands; a feature ships its CLI next to itself without editing a shared
file.  A command handler returns the exit status.  Any
:class:`~verifier.errors.VerifierError` becomes one line on stderr and exit
status 2 (never a traceback).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from typing import Sequence

from ..errors import VerifierError


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = argparse.ArgumentParser(
        prog="verifier",
        description="Verify KKT points and embedding theorems of homogeneous neural networks.",
    )
    parser.add_argument("--version", action="version", version=f"verifier {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(mod, "register"):
            mod.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except VerifierError as e:
        print(f"verifier {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # pragma: no cover
        print("interrupted", file=sys.stderr)
        return 130
