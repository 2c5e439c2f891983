"""``verifier`` / ``python -m verifier``: the command-line interface.

Every module in this package that defines ``register(subparsers)`` adds its
sub-commands; a feature ships its CLI next to itself without editing a shared
file.  A command handler returns the exit status.  Any
:class:`~verifier.errors.VerifierError` becomes one line on stderr and exit
status 2 (never a traceback); so does a malformed option (the parser prints
one line, not the usage block).  Ctrl-C at any moment prints one line and
exits 130; every output is written atomically (:func:`verifier.io.atomic_write`),
so an interrupted command leaves the previous output intact.  A closed stdout
(``verifier degree net.json --json | head -5``) ends the command quietly with
status 141 (128 + SIGPIPE, what a C tool killed by SIGPIPE reports).
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import signal
import sys
from typing import Any, NoReturn, Sequence

from ..errors import VerifierError

EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141


def one_line(text: str) -> str:
    """A message on one line: inner line breaks (e.g. from a parser library) become ``"; "``.

    >>> one_line("cannot parse:\\n  field a\\n\\n  field b")
    'cannot parse: field a; field b'
    """
    parts = [p.strip() for p in str(text).splitlines() if p.strip()]
    if not parts:
        return ""
    out = parts[0]
    for p in parts[1:]:
        out += (" " if out.endswith(":") else "; ") + p
    return out


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (``verifier train: error: argument --seed: ...``)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {one_line(message)} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__

    parser = _Parser(
        prog="verifier",
        description="Verify KKT points and embedding theorems of homogeneous neural networks.",
    )
    parser.add_argument("--version", action="version", version=f"verifier {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(mod, "register"):
            mod.register(sub)
    return parser


def _default_sigint() -> Any:
    """Python's own SIGINT handler (``KeyboardInterrupt``) in place of the startup guard; the previous one."""
    try:
        return signal.signal(signal.SIGINT, signal.default_int_handler)
    except (ValueError, OSError):  # not the main thread
        return None


def _quiet_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so the interpreter's final flush is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: Sequence[str] | None = None) -> int:
    previous = _default_sigint()
    command = "verifier"
    try:
        parser = build_parser()
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:  # --help, --version, or a malformed option (one line already printed)
            return e.code if isinstance(e.code, int) else (0 if e.code is None else EXIT_BAD_INPUT)
        command = f"verifier {args.command}"
        return int(args.handler(args) or 0)
    except VerifierError as e:
        print(f"{command}: error: {one_line(str(e))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"{command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_BROKEN_PIPE
    except MemoryError:
        print(f"{command}: error: out of memory; the input is too large for this machine (see the size limits "
              "in docs/robustness.md)", file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        if previous is not None and previous is not signal.default_int_handler:
            try:
                signal.signal(signal.SIGINT, previous)
            except (ValueError, OSError, TypeError):
                pass
