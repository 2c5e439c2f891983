"""Reading untrusted input safely: resource bounds, exact scalars, confined paths, npz headers.

Everything the checker reads comes from a file somebody else wrote.  This
module bounds every size *before* allocating or computing with it and turns
every problem into a :class:`CertificateError` naming the field and the limit
(the CLI exits with status 2).  The bounds live in :class:`Limits`; each has a
``check-cert`` flag to raise it (see ``docs/certificates.md``).

>>> parse_rational("3/5", "x"), parse_rational("-2", "x"), parse_rational("1.5e-3", "x")
(Fraction(3, 5), Fraction(-2, 1), Fraction(3, 2000))
>>> parse_rational("1" * 5000, "claims.eps2.bound")
Traceback (most recent call last):
...
verifier.certificates.checker.limits.CertificateError: claims.eps2.bound: a number of 5000 digits exceeds the limit of 4000 digits (raise it with --max-digits)
"""

from __future__ import annotations

import json
import os
import re
import sys
import zipfile
from contextlib import contextmanager
from dataclasses import dataclass, fields
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np

from ...errors import FormatError


class CertificateError(FormatError):
    """The certificate is unreadable, malformed, too large or inconsistent; ``.field`` names the field."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


@dataclass(frozen=True)
class Limits:
    """Resource bounds of the checker (every size read from a file is checked against one of these).

    ``check-cert`` flags: ``--max-file-mb``, ``--max-digits``, ``--max-entries``, ``--max-power``,
    ``--max-depth``.
    """

    #: bytes of the certificate file and of each referenced ``.npz`` file
    max_file_bytes: int = 2 * 1024 ** 3
    #: decimal digits of one integer or rational (numerator and denominator each), and of a decimal exponent
    max_digits: int = 4000
    #: entries of one tensor: a parameter, X, the activations of one node over all samples, the map T
    max_entries: int = 50_000_000
    #: exponent ``k`` of ``power`` / ``relu_power`` and the network's degree L
    max_power: int = 64
    #: nesting depth of the JSON document
    max_depth: int = 64

    FLAGS = {"max_file_bytes": "--max-file-mb", "max_digits": "--max-digits", "max_entries": "--max-entries",
             "max_power": "--max-power", "max_depth": "--max-depth"}

    def flag(self, name: str) -> str:
        return self.FLAGS[name]

    def to_dict(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


DEFAULT_LIMITS = Limits()
_LIMITS: list[Limits] = [DEFAULT_LIMITS]


def current() -> Limits:
    """The limits in force (set by :func:`using`)."""
    return _LIMITS[-1]


@contextmanager
def using(limits: Limits | None) -> Iterator[Limits]:
    """Check with ``limits`` (and let Python parse integers of up to ``max_digits`` digits)."""
    lim = limits or DEFAULT_LIMITS
    old = sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else None
    _LIMITS.append(lim)
    try:
        if old is not None and old and lim.max_digits + 10 > old:
            sys.set_int_max_str_digits(lim.max_digits + 10)
        yield lim
    finally:
        _LIMITS.pop()
        if old is not None:
            sys.set_int_max_str_digits(old)


def too_big(field: str, what: str, value: Any, limit_name: str) -> CertificateError:
    lim = current()
    limit = getattr(lim, limit_name)
    shown = f"{limit / 1024 ** 2:.0f} MB" if limit_name == "max_file_bytes" else f"{limit:,}"
    return CertificateError(field, f"{what} {value} exceeds the limit of {shown} (raise it with {lim.flag(limit_name)})")


# ---------------------------------------------------------------------------
# JSON
# ---------------------------------------------------------------------------
def depth_ok(obj: Any, field: str = "file") -> None:
    """Nesting depth of a parsed JSON value against ``max_depth`` (iterative: no recursion)."""
    limit = current().max_depth
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        v, d = stack.pop()
        if d > limit:
            raise CertificateError(field, f"JSON nesting deeper than the limit of {limit} levels "
                                          f"(raise it with {current().flag('max_depth')})")
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values() if isinstance(x, (dict, list)))
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v if isinstance(x, (dict, list)))


def loads(text: str, field: str = "file") -> Any:
    """``json.loads`` with every failure (syntax, digits, recursion, NaN) as a one-line error."""
    def _const(name: str) -> Any:
        raise ValueError(f"{name} is not valid JSON (certificates hold finite numbers only)")

    try:
        d = json.loads(text, parse_constant=_const)
    except json.JSONDecodeError as e:
        raise CertificateError(field, f"not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    except RecursionError:
        raise CertificateError(field, f"JSON nesting deeper than the limit of {current().max_depth} levels "
                                      f"(raise it with {current().flag('max_depth')})") from None
    except ValueError as e:  # an integer literal beyond Python's digit limit, or NaN / Infinity
        msg = str(e)
        if "digits" in msg or "int" in msg:
            raise CertificateError(field, f"a JSON integer has more than the limit of {current().max_digits} digits "
                                          f"(raise it with {current().flag('max_digits')})") from None
        raise CertificateError(field, msg) from None
    depth_ok(d, field)
    return d


def read_text(path: Path, field: str = "file") -> str:
    """A file's text, refusing files above ``max_file_bytes`` before reading them."""
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise CertificateError(field, f"{str(path)!r} is not a regular file")
        if size > current().max_file_bytes:
            raise too_big(field, f"file {str(path)!r} of", f"{size / 1024 ** 2:.1f} MB", "max_file_bytes")
        return path.read_text(encoding="utf-8")
    except CertificateError:
        raise
    except (OSError, UnicodeDecodeError) as e:
        raise CertificateError(field, f"cannot read certificate {str(path)!r}: "
                                      f"{getattr(e, 'strerror', None) or e}") from None


# ---------------------------------------------------------------------------
# exact scalars
# ---------------------------------------------------------------------------
_INT_RE = re.compile(r"^[+-]?\d+$")
_FRAC_RE = re.compile(r"^[+-]?\d+/\d+$")
_DEC_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def parse_rational(v: Any, where: str) -> Fraction:
    """An exact rational from a JSON value: an integer, or a string ``"p/q"``, ``"p"`` or a decimal."""
    if isinstance(v, bool):
        raise CertificateError(where, f"{v!r} is not a rational; write it as a string \"p/q\"")
    lim = current().max_digits
    if isinstance(v, int):
        if v.bit_length() > 3.33 * lim:
            raise CertificateError(where, f"an integer of about {int(v.bit_length() / 3.33)} digits exceeds the limit "
                                          f"of {lim} digits (raise it with --max-digits)")
        return Fraction(v)
    if isinstance(v, float):
        raise CertificateError(where, f"{v!r} is a JSON floating-point number; exact values must be strings "
                                      f"\"p/q\" (or a decimal string such as \"0.25\")")
    if not isinstance(v, str):
        raise CertificateError(where, f"{type(v).__name__} value is not a rational; write it as a string \"p/q\"")
    t = v.strip()
    digits = sum(c.isdigit() for c in t) if len(t) > lim else 0
    if len(t) > 2 * lim + 8 or max((len(p) for p in re.split(r"[/.eE+-]", t)), default=0) > lim:
        raise CertificateError(where, f"a number of {digits or len(t)} digits exceeds the limit of {lim} digits "
                                      f"(raise it with --max-digits)")
    if _INT_RE.match(t) or _FRAC_RE.match(t):
        p, _, q = t.partition("/")
        if q and int(q) == 0:
            raise CertificateError(where, f"{v!r} has denominator 0")
        return Fraction(int(p), int(q) if q else 1)
    m = _DEC_RE.match(t)
    if m:
        if m.group(2) and abs(int(m.group(2)[1:])) > lim:
            raise CertificateError(where, f"{v[:40]!r} has a decimal exponent beyond the limit of {lim} "
                                          f"(raise it with --max-digits)")
        return Fraction(t)
    raise CertificateError(where, f"{v[:40]!r} is not a rational; valid forms: \"3/5\", \"-2\", \"1.5e-9\"")


def common_denominator(fracs: Any, where: str) -> int:
    """Least common denominator of ``fracs``, refused when it has more than ``max_digits`` digits.

    (Rationals of a few digits each can have an astronomically large common denominator.)
    """
    import math

    lim = current().max_digits
    bits = int(3.33 * lim) + 4
    D = 1
    for f in fracs:
        d = f.denominator
        if d != 1:
            D = D * d // math.gcd(D, d)
            if D.bit_length() > bits:
                raise CertificateError(where, f"the common denominator of these rationals exceeds the limit of {lim} "
                                              "digits (raise it with --max-digits)")
    return D


def check_int(v: Any, where: str, *, lo: int | None = None, hi: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise CertificateError(where, f"{str(v)[:40]!r} must be an integer")
    if lo is not None and v < lo:
        raise CertificateError(where, f"{v!r} must be >= {lo}")
    if hi is not None and v > hi:
        raise CertificateError(where, f"{v!r} must be <= {hi}")
    return v


def obj(d: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(d, Mapping):
        raise CertificateError(where, f"must be a JSON object, got {type(d).__name__}")
    return d


def get(d: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in d:
        raise CertificateError(f"{where}.{key}" if where else key, "missing field")
    return d[key]


def shape(v: Any, where: str) -> tuple[int, ...]:
    """A list of non-negative integers whose product is at most ``max_entries`` (exact, no overflow)."""
    if (not isinstance(v, list) or len(v) > 8
            or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in v)):
        raise CertificateError(where, f"{str(v)[:60]} must be a list of at most 8 non-negative integers")
    size = 1
    for s in v:
        size *= s
    if size > current().max_entries:
        raise too_big(where, "a shape of", f"{size:,} entries", "max_entries")
    return tuple(v)


def entries(shape_: tuple[int, ...]) -> int:
    size = 1
    for s in shape_:
        size *= int(s)
    return size


def sha(v: Any, where: str) -> str:
    if not isinstance(v, str) or not re.fullmatch(r"[0-9a-f]{64}", v):
        raise CertificateError(where, f"{str(v)[:70]!r} is not a SHA-256 digest (64 lowercase hex digits)")
    return v


def check_hash(actual: str, recorded: str, where: str) -> None:
    if actual != recorded:
        raise CertificateError(
            where, f"SHA-256 of the stored content is {actual[:16]}..., the certificate records {recorded[:16]}...: "
                   "the content was modified after the certificate was written (or the hash was)")


# ---------------------------------------------------------------------------
# referenced files: confined to the certificate's folder, sizes read before loading
# ---------------------------------------------------------------------------
def confined(p: Any, base: Path, where: str) -> Path:
    """``p`` resolved inside ``base`` (the certificate's folder), refused without reading it otherwise.

    Absolute paths, ``..`` and symbolic links leading out of the folder are "not allowed"; the
    file is neither opened nor hashed.
    """
    if not isinstance(p, str) or not p or "\x00" in p:
        raise CertificateError(where, f"{str(p)[:60]!r} must be a file name relative to the certificate's folder")
    if os.path.isabs(p) or p.startswith("~") or re.match(r"^[A-Za-z]:", p):
        raise CertificateError(where, f"{p!r}: absolute paths are not allowed; give a path relative to the "
                                      "certificate's folder")
    root = base.resolve()
    try:
        target = (root / p).resolve()
    except (OSError, RuntimeError):
        raise CertificateError(where, f"{p!r} cannot be resolved (a symbolic link loop?)") from None
    if target != root and root not in target.parents:
        raise CertificateError(where, f"{p!r} leads outside the certificate's folder (through '..' or a symbolic "
                                      "link): not allowed")
    if not target.is_file():
        raise CertificateError(where, f"file {p!r} does not exist in the certificate's folder")
    size = target.stat().st_size
    if size > current().max_file_bytes:
        raise too_big(where, f"file {p!r} of", f"{size / 1024 ** 2:.1f} MB", "max_file_bytes")
    return target


#: npz dtypes read exactly as float64 (the values in the file, not a rounding of them)
_EXACT_FLOAT_KINDS = {("f", 2), ("f", 4), ("f", 8)}


def read_npz(path: Path, where: str) -> dict[str, np.ndarray]:
    """Arrays of an ``.npz`` archive; every member's header (dtype, shape) is checked before its data is read."""
    lim = current()
    out: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            if len(infos) > 1000:
                raise CertificateError(f"{where}.path", f"archive has {len(infos)} members; at most 1000 allowed")
            for info in infos:
                name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
                if info.file_size > lim.max_file_bytes:
                    raise too_big(f"{where}.{name}", "an array of", f"{info.file_size / 1024 ** 2:.1f} MB",
                                  "max_file_bytes")
                with zf.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    if version == (1, 0):
                        shp, fortran, dtype = np.lib.format.read_array_header_1_0(f, max_header_size=10000)
                    elif version in ((2, 0), (3, 0)):
                        shp, fortran, dtype = np.lib.format.read_array_header_2_0(f, max_header_size=10000)
                    else:
                        raise ValueError(f"unsupported .npy version {version}")
                    shape((list(shp)), f"{where}.{name}.shape")
                    exact_dtype(dtype, f"{where}.{name}")
                    need = entries(tuple(shp)) * dtype.itemsize
                    if info.file_size < need:
                        raise CertificateError(f"{where}.{name}", f"header claims {entries(tuple(shp)):,} entries but "
                                                                  f"the member holds only {info.file_size} bytes")
                    raw = f.read(need)
                arr = np.frombuffer(raw, dtype=dtype)
                arr = arr.reshape(shp, order="F" if fortran else "C")
                out[name] = np.ascontiguousarray(arr)
    except CertificateError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, KeyError, NotImplementedError, RuntimeError) as e:
        raise CertificateError(f"{where}.path", f"{path.name!r} is not a readable .npz archive "
                                                f"({type(e).__name__}: {str(e)[:80]})") from None
    return out


def read_npz_file(path: Any, what: str, limits: Limits | None = None) -> dict[str, np.ndarray]:
    """A user's ``.npz`` (``verifier certify`` / ``kkt`` / ``train`` inputs) with the checker's guards: size cap,
    headers read before the data, dtypes float64 can hold exactly (no complex, float128, object)."""
    p = Path(path)
    with using(limits):
        if not p.is_file():
            raise CertificateError(what, f"file {str(p)!r} does not exist")
        size = p.stat().st_size
        if size > current().max_file_bytes:
            raise too_big(what, f"file {str(p)!r} of", f"{size / 1024 ** 2:.1f} MB", "max_file_bytes")
        return read_npz(p, what)


def exact_dtype(dtype: np.dtype, where: str) -> None:
    """Refuse dtypes whose values float64 cannot hold exactly (float128, complex, object, strings, ...)."""
    if dtype.hasobject or dtype.fields is not None or dtype.subdtype is not None:
        raise CertificateError(where, f"has dtype {dtype}: only float16/32/64 and integer arrays are accepted")
    k = dtype.kind
    if (k, dtype.itemsize) in _EXACT_FLOAT_KINDS or k in "iu" or k == "b":
        return
    raise CertificateError(where, f"has dtype {dtype}, whose values float64 cannot hold exactly (float128, complex, "
                                  "strings and objects are refused); store float64 (or an integer type)")


def float64_exact(a: np.ndarray, where: str) -> np.ndarray:
    """``a`` as float64, refusing anything that would be rounded or is not finite."""
    exact_dtype(a.dtype, where)
    if a.dtype.kind == "b":
        raise CertificateError(where, f"has dtype {a.dtype}; expected float64")
    arr = a.astype(np.float64)
    if a.dtype.kind in "iu" and not np.array_equal(arr.astype(a.dtype), a):
        raise CertificateError(where, "has integers too large to be exact in float64")
    if not np.all(np.isfinite(arr)):
        i = int(np.flatnonzero(~np.isfinite(arr.ravel()))[0])
        raise CertificateError(where, f"entry {i} is not finite; certificates hold finite numbers only")
    return arr
