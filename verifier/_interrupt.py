"""Ctrl-C before the command-line interface is running: one line and exit status 130, never a traceback.

``import verifier`` takes about a second (numpy, sympy, networkx); a Ctrl-C in that window used to print
a ``KeyboardInterrupt`` traceback from deep inside an import.  :func:`guard_startup` is the first thing
``verifier/__init__.py`` runs: *only when the process is the ``verifier`` command* (the console script or
``python -m verifier``) it installs a SIGINT handler that prints one line and exits 130 at once.
:func:`verifier.cli.main` replaces it by Python's default handler (``KeyboardInterrupt``) as soon as it
runs, so writes in progress clean up their temporary files and the previous outputs stay intact.  A
library user's process is never touched.

Stdlib only: this module runs before anything else of the verifier is imported.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType

#: test hook: when set to a path, the startup guard creates that file and waits for a signal, so a test can
#: interrupt the CLI during its imports at a known point (no clock)
PAUSE_ENV = "VERIFIER_TEST_PAUSE_AT_STARTUP"


def running_as_cli() -> bool:
    """Is this process the ``verifier`` command (console script or ``python -m verifier``)?"""
    argv0 = os.path.basename(sys.argv[0]) if sys.argv else ""
    if argv0 in ("verifier", "verifier.exe", "verifier-script.py"):
        return True
    orig = list(getattr(sys, "orig_argv", []))
    if "-m" in orig:
        i = orig.index("-m")
        return orig[i + 1: i + 2] in (["verifier"], ["verifier.cli"])
    return False


def _exit_130(signum: int, frame: FrameType | None) -> None:
    try:
        os.write(2, b"verifier: interrupted\n")
    finally:
        os._exit(130)


def guard_startup() -> None:
    if not running_as_cli():
        return
    try:
        signal.signal(signal.SIGINT, _exit_130)
    except (ValueError, OSError):  # not the main thread, or no signals here
        return
    marker = os.environ.get(PAUSE_ENV)
    if marker:
        with open(marker, "w") as f:
            f.write("startup\n")
        signal.pause()
