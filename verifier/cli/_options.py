"""Validated option types shared by the sub-commands: one message format for every bad value.

An invalid value makes the parser print one line, ``verifier CMD: error: argument --seed: -1 is not
valid; expected an integer in [0, 4294967295]``, and exit with status 2.

>>> seed("7"), int_range(1, 50)("12")
(7, 12)
>>> seed("-1")
Traceback (most recent call last):
...
argparse.ArgumentTypeError: -1 is not valid; expected an integer in [0, 4294967295] (a random seed)
"""

from __future__ import annotations

import argparse
import math
from typing import Callable

#: largest seed numpy's generators and hypothesis accept from the command line
MAX_SEED = 2**32 - 1


def int_range(lo: int | None = None, hi: int | None = None, what: str = "") -> Callable[[str], int]:
    """An argparse ``type``: an integer in ``[lo, hi]`` (either bound may be open)."""
    rng = f"[{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
    note = f" ({what})" if what else ""

    def parse(text: str) -> int:
        try:
            v = int(text.strip().replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer; expected an integer in {rng}{note}") from None
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise argparse.ArgumentTypeError(f"{v} is not valid; expected an integer in {rng}{note}")
        return v

    parse.__name__ = "integer"
    return parse


def float_range(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
                what: str = "") -> Callable[[str], float]:
    """An argparse ``type``: a finite float ``>= lo`` (``> lo`` with ``lo_open``) and ``<= hi``."""
    left = "(" if lo_open else "["
    rng = f"{left}{lo if lo is not None else '-inf'}, {hi if hi is not None else 'inf'}]"
    note = f" ({what})" if what else ""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number; expected a number in {rng}{note}") from None
        bad = not math.isfinite(v) or (lo is not None and (v <= lo if lo_open else v < lo)) or (hi is not None and v > hi)
        if bad:
            raise argparse.ArgumentTypeError(f"{text} is not valid; expected a finite number in {rng}{note}")
        return v

    parse.__name__ = "number"
    return parse


seed = int_range(0, MAX_SEED, "a random seed")
positive_int = int_range(1, None)
