"""The independent exact checker of certificates (MATH.md section 8).

``check_certificate(path_or_dict)`` re-derives every claimed figure of a
certificate in exact rational arithmetic and accepts only if every claimed
inequality holds exactly.  It shares no numeric code with the producer: it
parses the network dictionary itself (its own graph walk, shape inference and
degree calculus), runs its own forward and backward passes on exact integer
tensors (:mod:`verifier.certificates.exact`: numerators as Python ints over
one common denominator per tensor, integer matrix products done exactly with
float64 BLAS on small limbs), and never imports ``verifier.numeric``,
``verifier.ops`` or ``verifier.graph``.

What it recomputes at the stored point ``theta`` (the parameters in the file):

* the margins ``q_r`` (binary: ``y_i Phi(x_i)``; multiclass: one row per wrong class),
  ``min_margin``, ``normalized_margin = min q / ||theta||^L`` (compared exactly through squares);
* the activation pattern: where a pre-activation is exactly 0 (a max-pool window has an exact
  tie) the derivative is the certificate's kink selection ``s`` (default: ``relu'(0) = 0``,
  ``leaky'(0) = slope``, ``abs'(0) = 0``, first maximum), and the subgradient notion this needs
  (``"none"``: no kink, plain gradients; ``"exact"``: kinks only in the one hidden layer of a
  ``dense -> activation -> dense`` network, where the selections are Clarke subgradients;
  ``"chain-rule"``: anything else);
* ``v = sum_r lambda_r h_r`` by one weighted backward pass, ``eps2 = ||theta - v||^2``,
  ``delta = sum_r lambda_r (q_r - 1)``, ``delta_max = max_r lambda_r (q_r - 1)``;
  Euler's identity ``<theta, v> = L sum_r lambda_r q_r`` as an internal consistency check;
* the degree ``L`` by its own walk over the graph;
* for embeddings: ``T^T T = I``, ``theta~ = T theta``, ``Phi~(theta~; x_i) = Phi(theta; x_i)`` for
  every sample, ``v~ = T v`` and the wide network's ``eps2``, ``delta``, ``min_margin``.

Errors: a malformed, unreadable or inconsistent file raises
:class:`CertificateError` (a :class:`~verifier.errors.FormatError`; the CLI exits
with status 2) whose message names the field; a false claim is not an error:
the result has ``ok == False`` and the failing claim says by how much.

>>> import verifier
>>> from verifier.certificates import certify_kkt
>>> net = verifier.mlp([2, 2, 1], activation="relu")
>>> params = {"W1": [[1.0, 0.0], [0.0, 1.0]], "W2": [[1.0, 1.0]]}
>>> cert = certify_kkt(net, params, [[1.0, 0.0]], [1], multipliers=["1/2"], normalize=False)
>>> res = check_certificate(cert)
>>> res.ok, res.figures["eps2"], res.figures["min_margin"], res.figures["relaxation"]
(True, Fraction(5, 2), Fraction(1, 1), 'exact')
>>> res.figures["kinks"]      # W1[1] . x = 0 exactly: relu'(0) = 0 unless a selection says otherwise
[{'node': 'act1', 'sample': 0, 'unit': [1]}]
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import time
import zipfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..errors import FormatError
from . import exact as E
from .exact import Q
from .format import (CLAIMS, EMBEDDING_CLAIMS, ENCODINGS, FORMAT_NAME, RELAXATIONS, SUPPORTED_VERSIONS,
                     sha256_f64, sha256_file, sha256_i64, sha256_json)

NETWORK_FORMAT = "kkt-verifier/network"
#: ops the checker evaluates exactly
OPS = ("input", "dense", "conv2d", "scale", "bias", "relu", "leaky_relu", "abs", "identity", "power",
       "relu_power", "maxpool2d", "avgpool2d", "flatten", "add", "output")
_ACT = ("relu", "leaky_relu", "abs", "identity", "power", "relu_power")
_MAX_DIGITS = 20000
#: claims stated as {"relation", "value"}; all others as {"relation", "bound"}
VALUE_CLAIMS = ("degree", "relaxation", "isometry", "output_preserved", "gradient_commutes")  # longest integer text accepted in a rational (guards against huge exponents)


class CertificateError(FormatError):
    """The certificate is unreadable, malformed or inconsistent; ``.field`` names the offending field."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field


# ---------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------
@dataclass
class ClaimResult:
    """One claim: ``name``, ``relation``, ``claimed`` and ``actual`` values and whether it ``holds`` exactly."""

    name: str
    relation: str
    claimed: Any
    actual: Any
    holds: bool
    detail: str = ""
    claimed_text: str | None = None

    @property
    def excess(self) -> Fraction | None:
        """By how much the claim fails (``> 0``) or holds (``<= 0``), for numeric bounds."""
        if not isinstance(self.claimed, Fraction) or not isinstance(self.actual, Fraction):
            return None
        if self.relation == "<=":
            return self.actual - self.claimed
        if self.relation == ">=":
            return self.claimed - self.actual
        return abs(self.actual - self.claimed)

    def describe(self) -> str:
        rel = {"<=": "<=", ">=": ">=", "=": "="}[self.relation]
        status = "holds" if self.holds else "FAILS"
        shown = self.claimed_text if self.claimed_text is not None else _show(self.claimed)
        text = f"claims.{self.name}: {status}: claimed {self.name} {rel} {shown}, actual {_show(self.actual)}"
        ex = self.excess
        if ex is not None and not self.holds:
            text += f" (off by {_show(ex)})"
        if self.detail:
            text += f"; {self.detail}"
        return text


@dataclass
class CheckResult:
    """Outcome of :func:`check_certificate`: ``ok`` iff every claim holds exactly."""

    ok: bool
    kind: str
    claims: list[ClaimResult]
    figures: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def claim(self, name: str) -> ClaimResult:
        for c in self.claims:
            if c.name == name:
                return c
        raise KeyError(name)

    @property
    def failed(self) -> list[ClaimResult]:
        return [c for c in self.claims if not c.holds]

    def summary(self) -> str:
        lines = [f"certificate ({self.kind}): {'all ' + str(len(self.claims)) + ' claims hold exactly' if self.ok else str(len(self.failed)) + ' claim(s) FAIL'}"]
        lines += ["  " + c.describe() for c in self.claims]
        lines += [f"  note: {n}" for n in self.notes]
        took = f"{self.seconds * 1000:.0f} ms" if self.seconds < 1 else f"{self.seconds:.2f} s"
        lines.append(f"  checked exactly in {took}")
        return "\n".join(lines)


def _show(v: Any) -> str:
    """Human form of an exact value: the fraction when short, else the nearest float (shortest repr)."""
    if isinstance(v, Fraction):
        if v.denominator == 1 and len(str(v.numerator)) <= 24:
            return str(v.numerator)
        text = str(v)
        if len(text) <= 24:
            return text
        f = float(v)
        return repr(f) if Fraction(f) == v else "~" + repr(f)
    if isinstance(v, float):
        return repr(v)
    return str(v)


# ---------------------------------------------------------------------------
# low-level parsing helpers
# ---------------------------------------------------------------------------
_INT_RE = re.compile(r"^[+-]?\d+$")
_FRAC_RE = re.compile(r"^[+-]?\d+/\d+$")
_DEC_RE = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_HEX_RE = re.compile(r"^[+-]?0x[0-9a-fA-F]+(\.[0-9a-fA-F]*)?p[+-]?\d+$|^[+-]?0x0p\+0$|^[+-]?0x0\.0p\+0$")


def parse_rational(v: Any, where: str) -> Fraction:
    """An exact rational from a JSON value: an integer, or a string ``"p/q"``, ``"p"`` or a decimal."""
    if isinstance(v, bool):
        raise CertificateError(where, f"{v!r} is not a rational; write it as a string \"p/q\"")
    if isinstance(v, int):
        return Fraction(v)
    if isinstance(v, float):
        raise CertificateError(where, f"{v!r} is a JSON floating-point number; exact values must be strings "
                                      f"\"p/q\" (or a decimal string such as \"0.25\")")
    if not isinstance(v, str):
        raise CertificateError(where, f"{v!r} is not a rational; write it as a string \"p/q\"")
    t = v.strip()
    if len(t) > _MAX_DIGITS:
        raise CertificateError(where, f"rational of {len(t)} characters is too long")
    if _INT_RE.match(t) or _FRAC_RE.match(t):
        p, _, q = t.partition("/")
        if q and int(q) == 0:
            raise CertificateError(where, f"{v!r} has denominator 0")
        return Fraction(int(p), int(q) if q else 1)
    m = _DEC_RE.match(t)
    if m:
        if m.group(2) and abs(int(m.group(2)[1:])) > _MAX_DIGITS:
            raise CertificateError(where, f"{v!r} has an exponent out of range")
        return Fraction(t)
    raise CertificateError(where, f"{v!r} is not a rational; valid forms: \"3/5\", \"-2\", \"1.5e-9\"")


def _int(v: Any, where: str, *, lo: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise CertificateError(where, f"{v!r} must be an integer")
    if lo is not None and v < lo:
        raise CertificateError(where, f"{v!r} must be >= {lo}")
    return v


def _obj(d: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(d, Mapping):
        raise CertificateError(where, f"must be a JSON object, got {type(d).__name__}")
    return d


def _get(d: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in d:
        raise CertificateError(f"{where}.{key}" if where else key, "missing field")
    return d[key]


def _shape(v: Any, where: str) -> tuple[int, ...]:
    if not isinstance(v, list) or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in v):
        raise CertificateError(where, f"{v!r} must be a list of non-negative integers")
    return tuple(v)


def _sha(v: Any, where: str) -> str:
    if not isinstance(v, str) or not re.fullmatch(r"[0-9a-f]{64}", v):
        raise CertificateError(where, f"{v!r} is not a SHA-256 digest (64 lowercase hex digits)")
    return v


def _check_hash(actual: str, recorded: str, where: str) -> None:
    if actual != recorded:
        raise CertificateError(
            where, f"SHA-256 of the stored content is {actual[:16]}..., the certificate records {recorded[:16]}...: "
                   "the content was modified after the certificate was written (or the hash was)")


# ---------------------------------------------------------------------------
# tensors, data, references
# ---------------------------------------------------------------------------
def _decode_tensor(t: Any, where: str) -> tuple[Q, np.ndarray | None]:
    """A stored tensor -> (exact value, float64 array when it is float-encoded)."""
    t = _obj(t, where)
    shape = _shape(_get(t, "shape", where), f"{where}.shape")
    enc = _get(t, "encoding", where)
    if enc not in ENCODINGS:
        raise CertificateError(f"{where}.encoding", f"{enc!r} is not one of {list(ENCODINGS)}")
    values = _get(t, "values", where)
    recorded = _sha(_get(t, "sha256", where), f"{where}.sha256")
    size = int(np.prod(shape)) if shape else 1
    if enc == "f64-base64":
        if not isinstance(values, str):
            raise CertificateError(f"{where}.values", "must be a base64 string for encoding 'f64-base64'")
        try:
            raw = base64.b64decode(values.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise CertificateError(f"{where}.values", "is not valid base64") from None
        if len(raw) != 8 * size:
            raise CertificateError(f"{where}.values", f"holds {len(raw) // 8} float64 values, shape {list(shape)} needs {size}")
        arr = np.frombuffer(raw, dtype="<f8").astype(np.float64).reshape(shape)
    elif enc == "f64-hex":
        if not isinstance(values, list):
            raise CertificateError(f"{where}.values", "must be a list of float.hex strings")
        if len(values) != size:
            raise CertificateError(f"{where}.values", f"has {len(values)} entries, shape {list(shape)} needs {size}")
        try:
            arr = np.array([float.fromhex(v) for v in values], dtype=np.float64).reshape(shape)
        except (TypeError, ValueError):
            bad = next(i for i, v in enumerate(values) if not _is_hex(v))
            raise CertificateError(f"{where}.values[{bad}]", f"{values[bad]!r} is not a float.hex string such as '0x1.8p-1'") from None
    else:
        if not isinstance(values, list):
            raise CertificateError(f"{where}.values", "must be a list of rationals \"p/q\"")
        if len(values) != size:
            raise CertificateError(f"{where}.values", f"has {len(values)} entries, shape {list(shape)} needs {size}")
        fr = [parse_rational(v, f"{where}.values[{i}]") for i, v in enumerate(values)]
        _check_hash(sha256_json(values), recorded, f"{where}.sha256")
        return E.from_fractions(fr, shape), None
    if not np.all(np.isfinite(arr)):
        i = int(np.flatnonzero(~np.isfinite(arr.ravel()))[0])
        raise CertificateError(f"{where}.values[{i}]", "is not finite; certificates hold finite numbers only")
    _check_hash(sha256_f64(arr), recorded, f"{where}.sha256")
    return E.from_float64(arr), arr


def _is_hex(v: Any) -> bool:
    try:
        float.fromhex(v)
        return True
    except (TypeError, ValueError):
        return False


def _read_npz(path: Path, where: str) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise CertificateError(f"{where}.path", f"{str(path)!r} is not a readable .npz archive ({type(e).__name__})") from None


def _resolve_ref(ref: Mapping[str, Any], where: str, base_dir: Path) -> dict[str, np.ndarray]:
    p = _get(ref, "path", where)
    if not isinstance(p, str) or not p:
        raise CertificateError(f"{where}.path", f"{p!r} must be a file path")
    recorded = _sha(_get(ref, "sha256", where), f"{where}.sha256")
    path = Path(p) if Path(p).is_absolute() else base_dir / p
    if not path.is_file():
        raise CertificateError(f"{where}.path", f"file {str(path)!r} does not exist")
    _check_hash(sha256_file(path), recorded, f"{where}.sha256")
    return _read_npz(path, where)


def _float_array(a: np.ndarray, where: str) -> np.ndarray:
    if a.dtype.kind not in "fiu":
        raise CertificateError(where, f"has dtype {a.dtype}, expected float64")
    arr = a.astype(np.float64)
    if a.dtype.kind in "iu" and not np.array_equal(arr.astype(a.dtype), a):
        raise CertificateError(where, "has integers too large to be exact in float64")
    if not np.all(np.isfinite(arr)):
        raise CertificateError(where, "has a non-finite value")
    return arr


# ---------------------------------------------------------------------------
# the network: own parser, shape inference, degree walk
# ---------------------------------------------------------------------------
@dataclass
class _Node:
    name: str
    op: str
    inputs: list[str]
    params: dict[str, str]
    attrs: dict[str, Any]


class _Net:
    """The checker's own reading of a network dictionary."""

    def __init__(self, d: Any, where: str):
        self.where = where
        d = _obj(d, where)
        if d.get("format", NETWORK_FORMAT) != NETWORK_FORMAT:
            raise CertificateError(f"{where}.format", f"{d.get('format')!r}, expected {NETWORK_FORMAT!r}")
        if d.get("version", 1) != 1:
            raise CertificateError(f"{where}.version", f"{d.get('version')!r}; this checker reads network version 1")
        nodes = _get(d, "nodes", where)
        if not isinstance(nodes, list) or not nodes:
            raise CertificateError(f"{where}.nodes", "must be a non-empty list of nodes")
        self.nodes: dict[str, _Node] = {}
        self.pnames: list[str] = []
        self.pnode: dict[str, tuple[str, str]] = {}
        for i, nd in enumerate(nodes):
            w = f"{where}.nodes[{i}]"
            nd = _obj(nd, w)
            name = _get(nd, "name", w)
            op = _get(nd, "op", w)
            if not isinstance(name, str) or not name:
                raise CertificateError(f"{w}.name", f"{name!r} must be a non-empty string")
            if name in self.nodes:
                raise CertificateError(f"{w}.name", f"duplicate node name {name!r}")
            if op not in OPS:
                raise CertificateError(f"{w}.op", f"op {op!r} of node {name!r} cannot be checked exactly; "
                                                  f"supported: {', '.join(OPS)}")
            inputs = nd.get("inputs", [])
            if not isinstance(inputs, list) or not all(isinstance(s, str) for s in inputs):
                raise CertificateError(f"{w}.inputs", f"{inputs!r} must be a list of node names")
            params = nd.get("params", {}) or {}
            if not isinstance(params, Mapping) or not all(isinstance(v, str) and v for v in params.values()):
                raise CertificateError(f"{w}.params", f"{params!r} must map roles to tensor names")
            attrs = nd.get("attrs", {}) or {}
            if not isinstance(attrs, Mapping):
                raise CertificateError(f"{w}.attrs", f"{attrs!r} must be an object")
            want_roles = {"dense": {"weight"}, "conv2d": {"weight"}, "scale": {"scale"}, "bias": {"bias"}}.get(op, set())
            if set(params) != want_roles:
                raise CertificateError(f"{w}.params", f"node {name!r} ({op}) needs roles {sorted(want_roles) or 'none'}, got {sorted(params)}")
            for role, p in params.items():
                if p in self.pnode:
                    raise CertificateError(f"{w}.params", f"tensor {p!r} is used twice (by {self.pnode[p][0]!r} and {name!r})")
                self.pnode[p] = (name, role)
                self.pnames.append(p)
            self.nodes[name] = _Node(name, op, list(inputs), dict(params), dict(attrs))
        ins = [n for n, v in self.nodes.items() if v.op == "input"]
        outs = [n for n, v in self.nodes.items() if v.op == "output"]
        if len(ins) != 1 or len(outs) != 1:
            raise CertificateError(f"{where}.nodes", f"needs exactly one input and one output node, found {ins} and {outs}")
        self.input, self.output = ins[0], outs[0]
        self._order()
        self._shapes()
        self.consumers: dict[str, list[str]] = {n: [] for n in self.nodes}
        for n in self.order:
            for s in self.nodes[n].inputs:
                self.consumers[s].append(n)
        # nodes whose value depends on some parameter (they need a cotangent)
        self.param_dep: set[str] = set()
        for n in self.order:
            nd = self.nodes[n]
            if nd.params or any(s in self.param_dep for s in nd.inputs):
                self.param_dep.add(n)

    def _err(self, node: str, msg: str) -> CertificateError:
        i = list(self.nodes).index(node)
        return CertificateError(f"{self.where}.nodes[{i}]", f"node {node!r} ({self.nodes[node].op}): {msg}")

    def _order(self) -> None:
        indeg = {n: 0 for n in self.nodes}
        for n, nd in self.nodes.items():
            arity = {"input": (0, 0), "add": (2, None)}.get(nd.op, (1, 1))
            k = len(nd.inputs)
            if k < arity[0] or (arity[1] is not None and k > arity[1]):
                raise self._err(n, f"takes {arity[0]}{'+' if arity[1] is None else ''} input(s), got {k}")
            for s in nd.inputs:
                if s not in self.nodes:
                    raise self._err(n, f"input {s!r} is not a node")
                indeg[n] += 1
        ready = [n for n in self.nodes if indeg[n] == 0]
        order: list[str] = []
        users: dict[str, list[str]] = {n: [] for n in self.nodes}
        for n, nd in self.nodes.items():
            for s in nd.inputs:
                users[s].append(n)
        while ready:
            n = ready.pop(0)
            order.append(n)
            for u in users[n]:
                indeg[u] -= 1
                if indeg[u] == 0:
                    ready.append(u)
        if len(order) != len(self.nodes):
            raise CertificateError(f"{self.where}.nodes", "the graph has a cycle")
        self.order = order
        if users[self.output]:
            raise self._err(self.output, "the output node must not feed other nodes")

    def _pair(self, n: str, key: str, default: Any) -> tuple[int, int]:
        v = self.nodes[n].attrs.get(key, default)
        if v is None:
            v = default
        if isinstance(v, int) and not isinstance(v, bool):
            v = [v, v]
        if not (isinstance(v, list) and len(v) == 2 and all(isinstance(a, int) and not isinstance(a, bool) for a in v)):
            raise self._err(n, f"attribute {key}={v!r} must be an integer or a pair of integers")
        return int(v[0]), int(v[1])

    def _shapes(self) -> None:
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.pshapes: dict[str, tuple[int, ...]] = {}
        for n in self.order:
            nd = self.nodes[n]
            ins = [self.shapes[s] for s in nd.inputs]
            a = nd.attrs
            op = nd.op
            if op == "input":
                s = a.get("shape")
                if not isinstance(s, list) or not s or not all(isinstance(v, int) and v >= 1 for v in s):
                    raise self._err(n, f"attribute shape={s!r} must be a list of positive integers")
                out = tuple(s)
            elif op == "dense":
                if len(ins[0]) != 1:
                    raise self._err(n, f"needs a flat input, got shape {list(ins[0])}")
                k = a.get("out_features")
                if not isinstance(k, int) or k < 1:
                    raise self._err(n, f"attribute out_features={k!r} must be a positive integer")
                out = (k,)
                self.pshapes[nd.params["weight"]] = (k, ins[0][0])
            elif op == "conv2d":
                if len(ins[0]) != 3:
                    raise self._err(n, f"needs an input (C, H, W), got {list(ins[0])}")
                c, h, w = ins[0]
                co = a.get("out_channels")
                if not isinstance(co, int) or co < 1:
                    raise self._err(n, f"attribute out_channels={co!r} must be a positive integer")
                kh, kw = self._pair(n, "kernel_size", None)
                sh, sw = self._pair(n, "stride", 1)
                ph, pw = self._pair(n, "padding", 0)
                if min(kh, kw, sh, sw) < 1 or min(ph, pw) < 0:
                    raise self._err(n, "kernel_size and stride must be >= 1, padding >= 0")
                ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
                if ho < 1 or wo < 1:
                    raise self._err(n, "kernel does not fit the input")
                out = (co, ho, wo)
                self.pshapes[nd.params["weight"]] = (co, c, kh, kw)
            elif op == "scale":
                out = ins[0]
                self.pshapes[nd.params["scale"]] = ins[0]
            elif op == "bias":
                out = ins[0]
                self.pshapes[nd.params["bias"]] = ins[0] if len(ins[0]) == 1 else (ins[0][0],)
            elif op in ("maxpool2d", "avgpool2d"):
                if len(ins[0]) != 3:
                    raise self._err(n, f"needs an input (C, H, W), got {list(ins[0])}")
                c, h, w = ins[0]
                kh, kw = self._pair(n, "kernel_size", None)
                sh, sw = self._pair(n, "stride", [kh, kw])
                if min(kh, kw, sh, sw) < 1 or kh > h or kw > w:
                    raise self._err(n, "invalid pooling window")
                out = (c, (h - kh) // sh + 1, (w - kw) // sw + 1)
            elif op == "flatten":
                out = (int(np.prod(ins[0])),)
            elif op == "add":
                if any(s != ins[0] for s in ins):
                    raise self._err(n, f"summands have different shapes {ins}")
                out = ins[0]
            elif op == "output":
                if len(ins[0]) != 1:
                    raise self._err(n, f"needs a flat input, got {list(ins[0])}")
                out = ins[0]
            else:  # activations
                if op in ("power", "relu_power"):
                    k = a.get("k")
                    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
                        raise self._err(n, f"attribute k={k!r} must be an integer >= 1")
                out = ins[0]
            self.shapes[n] = out
        self.num_params = sum(int(np.prod(self.pshapes[p])) for p in self.pnames)

    def slope(self, n: str) -> Fraction:
        v = self.nodes[n].attrs.get("slope", 0.01)
        if isinstance(v, float):
            if not math.isfinite(v):
                raise self._err(n, "slope must be finite")
            return Fraction(v)  # the exact float64 the network uses
        return parse_rational(v, f"{self.where}.nodes[{list(self.nodes).index(n)}].attrs.slope")

    def degree(self) -> tuple[Fraction | None, str]:
        """Own degree calculus: (L, "") or (None, reason)."""
        deg: dict[str, Fraction] = {}
        for n in self.order:
            nd = self.nodes[n]
            ins = [deg[s] for s in nd.inputs]
            op = nd.op
            if op == "input":
                d = Fraction(0)
            elif op in ("dense", "conv2d", "scale"):
                d = ins[0] + 1
            elif op == "bias":
                if ins[0] != 1:
                    return None, f"node {n!r}: bias of degree 1 added to an input of degree {ins[0]}"
                d = ins[0]
            elif op == "add":
                if any(x != ins[0] for x in ins):
                    return None, f"node {n!r}: add has summands of degrees {[str(x) for x in ins]}"
                d = ins[0]
            elif op in ("power", "relu_power"):
                d = nd.attrs["k"] * ins[0]
            else:
                d = ins[0]
            deg[n] = d
        return deg[self.output], ""

    def one_hidden_layer(self) -> str | None:
        """The kinked node if the net is ``input -> dense [-> bias] -> act -> dense -> output``, else None."""
        chain = self.order
        ops = [self.nodes[n].op for n in chain]
        if len(set(len(self.nodes[n].inputs) for n in chain[1:])) != 1:
            return None
        pattern = ops[1:]
        if pattern[:1] != ["dense"] or pattern[-2:] != ["dense", "output"]:
            return None
        mid = pattern[1:-2]
        if mid and mid[0] == "bias":
            mid = mid[1:]
        if len(mid) != 1 or mid[0] not in ("relu", "leaky_relu", "abs", "relu_power"):
            return None
        # a straight chain
        for a, b in zip(chain, chain[1:]):
            if self.nodes[b].inputs != [a]:
                return None
        return [n for n in chain if self.nodes[n].op == mid[0]][0]


# ---------------------------------------------------------------------------
# exact forward and weighted backward passes
# ---------------------------------------------------------------------------
@dataclass
class _SelEntry:
    """One kink selection: activation ``s`` or max-pool ``weights`` at (node, sample[, row], unit)."""

    index: int
    node: str
    sample: int
    row: int | None
    unit: tuple[int, ...]
    s: Fraction | None = None
    weights: list[Fraction] | None = None


@dataclass
class _Sel:
    entries: list[_SelEntry]


def _windows(num: np.ndarray, k: tuple[int, int], s: tuple[int, int]) -> np.ndarray:
    """(n, C, H, W) -> (n, C, Ho, Wo, kh*kw) windows (no padding)."""
    from numpy.lib.stride_tricks import sliding_window_view

    win = sliding_window_view(num, k, axis=(2, 3))[:, :, ::s[0], ::s[1]]
    n, c, ho, wo = win.shape[:4]
    return win.reshape(n, c, ho, wo, k[0] * k[1])


def _scatter_windows(gw: np.ndarray, in_shape: tuple[int, ...], k, s) -> np.ndarray:
    """Adjoint of :func:`_windows`: add ``(n, C, Ho, Wo, kh*kw)`` back onto ``(n, C, H, W)``."""
    out = E.zeros(in_shape)
    n, c, ho, wo, kk = gw.shape
    for i in range(k[0]):
        for j in range(k[1]):
            out[:, :, i:i + s[0] * ho:s[0], j:j + s[1] * wo:s[1]] += gw[..., i * k[1] + j]
    return out


def _im2col(num: np.ndarray, k, s, p) -> tuple[np.ndarray, int, int]:
    n, c, h, w = num.shape
    if p[0] or p[1]:
        padded = E.zeros((n, c, h + 2 * p[0], w + 2 * p[1]))
        padded[:, :, p[0]:p[0] + h, p[1]:p[1] + w] = num
        num = padded
    win = _windows(num, k, s)  # (n, c, ho, wo, kh*kw)
    ho, wo = win.shape[2], win.shape[3]
    cols = win.transpose(0, 2, 3, 1, 4).reshape(n * ho * wo, c * k[0] * k[1])
    return cols, ho, wo


class _Eval:
    """Exact forward pass (with the activation pattern) and weighted backward pass of one network."""

    def __init__(self, net: _Net, params: dict[str, Q], X: Q):
        self.net, self.params = net, params
        self.vals: dict[str, Q] = {}
        self.kinks: list[tuple[str, int, tuple[int, ...]]] = []
        self.used: set[int] = set()
        self.argmax: dict[str, np.ndarray] = {}
        #: per node, units whose value is locally constant 0 in theta (no kink can come from them)
        self.const_zero: dict[str, np.ndarray] = {}
        self._forward(X)

    def _forward(self, X: Q) -> None:
        net = self.net
        for name in net.order:
            nd = net.nodes[name]
            op = nd.op
            xs = [self.vals[s] for s in nd.inputs]
            if op == "input":
                out = X
            elif op == "dense":
                W = self.params[nd.params["weight"]]
                out = Q(E.imatmul(xs[0].num, W.num.T), xs[0].den * W.den)
                if nd.inputs[0] not in net.param_dep:  # z = W x: identically 0 in theta where x = 0
                    allzero = np.all((xs[0].num == 0).astype(bool), axis=1)
                    self.const_zero[name] = np.repeat(allzero[:, None], out.num.shape[1], axis=1)
            elif op == "conv2d":
                W = self.params[nd.params["weight"]]
                k, s, p = net._pair(name, "kernel_size", None), net._pair(name, "stride", 1), net._pair(name, "padding", 0)
                cols, ho, wo = _im2col(xs[0].num, k, s, p)
                z = E.imatmul(cols, W.num.reshape(W.num.shape[0], -1).T)  # (n*ho*wo, co)
                n = xs[0].num.shape[0]
                out = Q(z.reshape(n, ho, wo, -1).transpose(0, 3, 1, 2).copy(), xs[0].den * W.den)
                if nd.inputs[0] not in net.param_dep:  # a zero input patch (e.g. padding): z = 0 for every W
                    allzero = np.all((cols == 0).astype(bool), axis=1).reshape(n, 1, ho, wo)
                    self.const_zero[name] = np.broadcast_to(allzero, out.num.shape)
            elif op == "scale":
                out = E.mul(xs[0], self.params[nd.params["scale"]])
            elif op == "bias":
                b = self.params[nd.params["bias"]]
                (h, bb), D = E.align(xs[0], b)
                if h.ndim > 2:
                    bb = bb.reshape((1, -1) + (1,) * (h.ndim - 2))
                out = Q(h + bb, D)
            elif op in ("identity", "output"):
                out = xs[0]
            elif op == "flatten":
                out = xs[0].reshape(xs[0].num.shape[0], -1)
            elif op == "add":
                nums, D = E.align(*xs)
                acc = nums[0]
                for v in nums[1:]:
                    acc = acc + v
                out = Q(acc, D)
            elif op in ("relu", "leaky_relu", "abs", "relu_power", "power"):
                z = xs[0]
                ident0 = self.const_zero.get(nd.inputs[0])  # pre-activation identically 0 near theta
                if op in ("relu", "relu_power"):
                    neg = (z.num < 0).astype(bool)
                    self.const_zero[name] = neg if ident0 is None else (neg | ident0)
                if op != "power" and not (op == "relu_power" and nd.attrs["k"] > 1):
                    zmask = (z.num == 0).astype(bool)
                    if ident0 is not None:
                        zmask &= ~ident0
                    zero = np.argwhere(zmask.reshape(z.num.shape[0], -1))
                    sh = z.num.shape[1:]
                    for i, u in zero:
                        self.kinks.append((name, int(i), tuple(int(v) for v in np.unravel_index(int(u), sh))))
                if op == "relu":
                    out = Q(np.where(z.num > 0, z.num, 0), z.den)
                elif op == "abs":
                    out = Q(np.abs(z.num), z.den)
                elif op == "leaky_relu":
                    a = net.slope(name)
                    out = Q(np.where(z.num > 0, z.num * a.denominator, z.num * a.numerator), z.den * a.denominator)
                else:
                    k = nd.attrs["k"]
                    base = np.where(z.num > 0, z.num, 0) if op == "relu_power" else z.num
                    out = Q(base ** k if k > 1 else base, z.den ** k)
            elif op == "maxpool2d":
                k, s = net._pair(name, "kernel_size", None), net._pair(name, "stride", None)
                win = _windows(xs[0].num, k, s)
                mx = win.max(axis=-1)
                ties = (win == mx[..., None]).astype(bool)
                self.argmax[name] = ties.argmax(axis=-1)
                multi = ties.sum(axis=-1) > 1
                cz = self.const_zero.get(nd.inputs[0])
                if multi.any() and cz is not None:
                    # a tie of values that are all locally constant zeros (ReLU of strictly negative, or of
                    # identically zero, pre-activations) is locally constant: not a kink
                    czw = _windows(np.ascontiguousarray(cz), k, s)
                    flat_zero = (mx == 0).astype(bool) & np.all(~ties | czw, axis=-1)
                    multi &= ~flat_zero
                for i, c, a_, b_ in np.argwhere(multi):
                    self.kinks.append((name, int(i), (int(c), int(a_), int(b_))))
                out = Q(mx, xs[0].den)
            elif op == "avgpool2d":
                k, s = net._pair(name, "kernel_size", None), net._pair(name, "stride", None)
                win = _windows(xs[0].num, k, s)
                out = Q(win.sum(axis=-1), xs[0].den * k[0] * k[1])
            else:  # pragma: no cover - guarded by the parser
                raise AssertionError(op)
            self.vals[name] = out

    # -- derivative of an activation, with kink selections -------------------
    def _act_derivative(self, name: str, z: Q, vsel: dict[tuple[str, int, tuple[int, ...]], _SelEntry]) -> Q:
        net = self.net
        nd = net.nodes[name]
        op = nd.op
        zn = z.num
        if op == "identity" or (op == "power" and nd.attrs["k"] == 1):
            return Q(np.ones_like(zn), 1)
        if op == "power" or (op == "relu_power" and nd.attrs["k"] > 1):
            k = nd.attrs["k"]
            base = np.where(zn > 0, zn, 0) if op == "relu_power" else zn
            return Q(k * base ** (k - 1) if k > 2 else k * base, z.den ** (k - 1))
        if op in ("relu", "relu_power"):
            default, pos, neg = Fraction(0), Fraction(1), Fraction(0)
        elif op == "leaky_relu":
            a = net.slope(name)
            default, pos, neg = a, Fraction(1), a
        else:  # abs
            default, pos, neg = Fraction(0), Fraction(1), Fraction(-1)
        sels = {key[1:]: e for key, e in vsel.items() if key[0] == name}
        fr = [pos, neg, default, *(e.s for e in sels.values())]
        D = E.lcm(*(f.denominator for f in fr))
        d = np.where(zn > 0, pos.numerator * (D // pos.denominator), neg.numerator * (D // neg.denominator))
        d = d.astype(object)
        zero = (zn == 0).astype(bool)
        if zero.any():
            d[zero] = default.numerator * (D // default.denominator)
            for (v, unit), e in sels.items():
                if zn[(v, *unit)] == 0:
                    d[(v, *unit)] = e.s.numerator * (D // e.s.denominator)
                    self.used.add(e.index)
        return Q(d, D)

    def weighted_gradient(self, gout: Q, idx: np.ndarray,
                          vsel: dict[tuple[str, int, tuple[int, ...]], _SelEntry]) -> dict[str, Q]:
        """``sum_v grad_theta <gout_v, Phi(theta; x_idx[v])>`` with the activation pattern of each entry.

        ``idx`` maps entries of the (virtual) batch to samples; ``vsel`` holds the kink
        selections keyed by (node, entry, unit).  Returns tensor -> exact gradient.
        """
        net = self.net
        cot: dict[str, Q] = {net.output: gout}
        grads: dict[str, Q] = {}
        plain = len(idx) == self.vals[net.input].num.shape[0] and bool(np.all(idx == np.arange(len(idx))))
        cache: dict[str, Q] = {}

        def val(s: str) -> Q:
            if plain:
                return self.vals[s]
            if s not in cache:
                v = self.vals[s]
                cache[s] = Q(v.num[idx], v.den)
            return cache[s]

        def send(src: str, g: Q) -> None:
            if src not in net.param_dep:
                return
            cot[src] = E.add(cot[src], g) if src in cot else g

        for name in reversed(net.order):
            if name not in cot:
                continue
            g = cot.pop(name)
            nd = net.nodes[name]
            op = nd.op
            if op == "input":
                continue
            xs = [val(s) for s in nd.inputs]
            if op in ("output", "identity"):
                send(nd.inputs[0], g)
            elif op == "flatten":
                send(nd.inputs[0], g.reshape(g.num.shape[0], *net.shapes[nd.inputs[0]]))
            elif op == "add":
                for s in nd.inputs:
                    send(s, g)
            elif op == "dense":
                W = self.params[nd.params["weight"]]
                grads[nd.params["weight"]] = Q(E.imatmul(g.num.T, xs[0].num), g.den * xs[0].den)
                if nd.inputs[0] in net.param_dep:
                    send(nd.inputs[0], Q(E.imatmul(g.num, W.num), g.den * W.den))
            elif op == "conv2d":
                W = self.params[nd.params["weight"]]
                k, s, p = net._pair(name, "kernel_size", None), net._pair(name, "stride", 1), net._pair(name, "padding", 0)
                cols, ho, wo = _im2col(xs[0].num, k, s, p)
                n, co = g.num.shape[0], g.num.shape[1]
                gm = g.num.transpose(0, 2, 3, 1).reshape(n * ho * wo, co)
                gw = E.imatmul(gm.T, cols)  # (co, c*kh*kw)
                grads[nd.params["weight"]] = Q(gw.reshape(W.num.shape), g.den * xs[0].den)
                if nd.inputs[0] in net.param_dep:
                    gc = E.imatmul(gm, W.num.reshape(co, -1))  # (n*ho*wo, c*kh*kw)
                    c = xs[0].num.shape[1]
                    gc = gc.reshape(n, ho, wo, c, k[0] * k[1]).transpose(0, 3, 1, 2, 4)
                    h, w = xs[0].num.shape[2], xs[0].num.shape[3]
                    full = _scatter_windows(gc, (n, c, h + 2 * p[0], w + 2 * p[1]), k, s)
                    send(nd.inputs[0], Q(full[:, :, p[0]:p[0] + h, p[1]:p[1] + w].copy(), g.den * W.den))
            elif op == "scale":
                S = self.params[nd.params["scale"]]
                grads[nd.params["scale"]] = Q((g.num * xs[0].num).sum(axis=0), g.den * xs[0].den)
                send(nd.inputs[0], E.mul(g, S))
            elif op == "bias":
                gb = g.num.sum(axis=0)
                if gb.ndim > 1:
                    gb = gb.reshape(gb.shape[0], -1).sum(axis=1)
                grads[nd.params["bias"]] = Q(gb, g.den)
                send(nd.inputs[0], g)
            elif op in _ACT:
                send(nd.inputs[0], E.mul(g, self._act_derivative(name, xs[0], vsel)))
            elif op == "maxpool2d":
                k, s = net._pair(name, "kernel_size", None), net._pair(name, "stride", None)
                kk = k[0] * k[1]
                arg = self.argmax[name] if plain else self.argmax[name][idx]
                sels = {key[1:]: e for key, e in vsel.items() if key[0] == name}
                D = E.lcm(*(f.denominator for e in sels.values() for f in e.weights)) if sels else 1
                onehot = np.arange(kk)[None, None, None, None, :] == arg[..., None]
                wts = np.where(onehot, D, 0).astype(object)
                if sels:
                    win = _windows(xs[0].num, k, s)
                    for (v, unit), e in sels.items():
                        c_, a_, b_ = unit
                        cell = win[v, c_, a_, b_]
                        top = max(cell)
                        if sum(1 for t in range(kk) if cell[t] == top) > 1:
                            if any(e.weights[t] != 0 and cell[t] != top for t in range(kk)):
                                raise CertificateError(
                                    f"witnesses.kink_selections[{e.index}].weights",
                                    "puts weight on a window entry that is not a maximum")
                            wts[v, c_, a_, b_, :] = [f.numerator * (D // f.denominator) for f in e.weights]
                            self.used.add(e.index)
                gw = g.num[..., None] * wts
                send(nd.inputs[0], Q(_scatter_windows(gw, xs[0].num.shape, k, s), g.den * D))
            elif op == "avgpool2d":
                k, s = net._pair(name, "kernel_size", None), net._pair(name, "stride", None)
                kk = k[0] * k[1]
                gw = np.repeat(g.num[..., None], kk, axis=-1)
                send(nd.inputs[0], Q(_scatter_windows(gw, xs[0].num.shape, k, s), g.den * kk))
        for p in net.pnames:  # tensors no margin depends on get a zero gradient
            if p not in grads:
                grads[p] = Q(E.zeros(net.pshapes[p]), 1)
        return grads


# ---------------------------------------------------------------------------
# exact figures of one network at one point
# ---------------------------------------------------------------------------
def _sumsq(a: Q) -> Fraction:
    f = a.num.ravel()
    return Fraction(int(f.dot(f)) if f.size else 0, a.den * a.den)


def _dot(a: Q, b: Q) -> Fraction:
    x, y = a.num.ravel(), b.num.ravel()
    return Fraction(int(x.dot(y)) if x.size else 0, a.den * b.den)


def _diff(a: Q, b: Q) -> Q:
    (x, y), D = E.align(a, b)
    return Q(x - y, D)


def _rows(C: int, y: list[int]) -> list[tuple[int, int]]:
    """Constraint rows (sample, other class); other = -1 for binary."""
    if C == 1:
        return [(i, -1) for i in range(len(y))]
    return [(i, j) for i in range(len(y)) for j in range(C) if j != y[i]]


def _margins(out: Q, y: list[int], rows: list[tuple[int, int]]) -> np.ndarray:
    num = out.num
    q = np.empty(len(rows), dtype=object)
    for r, (i, j) in enumerate(rows):
        q[r] = y[i] * num[i, 0] if j < 0 else num[i, y[i]] - num[i, j]
    return q


def evaluate_point(net: _Net, params: dict[str, Q], X: Q, y: list[int], lam: list[Fraction] | None,
                   sel: _Sel, *, gradient: bool = True) -> dict[str, Any]:
    """Exact margins and, with multipliers, ``v``, ``eps2``, ``delta``, ``delta_max`` of one network."""
    ev = _Eval(net, params, X)
    out = ev.vals[net.output]
    C = net.shapes[net.output][0]
    rows = _rows(C, y)
    qnum = _margins(out, y, rows)
    qden = out.den
    fig: dict[str, Any] = {"evaluator": ev, "rows": rows, "q_num": qnum, "q_den": qden}
    fig["margins"] = [Fraction(int(v), qden) for v in qnum]
    fig["min_margin"] = min(fig["margins"]) if rows else None
    fig["theta_norm2"] = sum((_sumsq(params[p]) for p in net.pnames), Fraction(0))
    fig["kinks"] = ev.kinks
    if lam is None:
        return fig
    Dl = E.lcm(*(f.denominator for f in lam)) if lam else 1
    lnum = np.empty(len(lam), dtype=object)
    lnum[:] = [f.numerator * (Dl // f.denominator) for f in lam]
    excess = lnum * (qnum - qden)  # lambda_r (q_r - 1) * Dl * qden
    fig["delta"] = Fraction(int(excess.sum()) if len(lam) else 0, Dl * qden)
    fig["delta_max"] = Fraction(int(max(excess)), Dl * qden) if len(lam) else Fraction(0)
    fig["sum_multipliers"] = Fraction(int(lnum.sum()) if len(lam) else 0, Dl)
    fig["support"] = [r for r, f in enumerate(lam) if f != 0]
    fig["support_samples"] = sorted({rows[r][0] for r in fig["support"]})
    if not gradient:
        return fig
    # virtual batch: rows of one sample that share their kink selections are summed into one entry
    by_sample: dict[int, list[_SelEntry]] = {}
    for e in sel.entries:
        by_sample.setdefault(e.sample, []).append(e)
    groups: dict[tuple[int, tuple[int, ...]], int] = {}
    idx: list[int] = []
    vsel: dict[tuple[str, int, tuple[int, ...]], _SelEntry] = {}
    gout_rows: list[list[Any]] = []
    for r, (i, j) in enumerate(rows):
        if lnum[r] == 0:
            continue
        es = [e for e in by_sample.get(i, []) if e.row is None or e.row == r]
        key = (i, tuple(sorted(e.index for e in es)))
        v = groups.get(key)
        if v is None:
            v = groups[key] = len(idx)
            idx.append(i)
            gout_rows.append([0] * C)
            for e in sorted(es, key=lambda e: e.row is not None):  # row-specific entries win
                vsel[(e.node, v, e.unit)] = e
        g = gout_rows[v]
        if j < 0:
            g[0] += y[i] * lnum[r]
        else:
            g[y[i]] += lnum[r]
            g[j] -= lnum[r]
    gout = E.zeros((len(idx), C))
    for v, g in enumerate(gout_rows):
        gout[v, :] = g
    v = ev.weighted_gradient(Q(gout, Dl), np.array(idx, dtype=np.int64), vsel)
    fig["v"] = v
    fig["eps2"] = sum((_sumsq(_diff(params[p], v[p])) for p in net.pnames), Fraction(0))
    fig["theta_dot_v"] = sum((_dot(params[p], v[p]) for p in net.pnames), Fraction(0))
    fig["lambda_dot_q"] = Fraction(int((lnum * qnum).sum()) if len(lam) else 0, Dl * qden)
    return fig


def _relaxation_needed(net: _Net, kinks: list[tuple[str, int, tuple[int, ...]]],
                       samples: list[int] | None) -> tuple[str, str]:
    """The subgradient notion the statement needs, from the exact kinks of the samples that carry weight."""
    if samples is not None:
        keep = set(samples)
        kinks = [k for k in kinks if k[1] in keep]
    if not kinks:
        return "none", ("no pre-activation of a supported sample is exactly 0: the margins are differentiable "
                        "there, the h_r are gradients")
    node, i, unit = kinks[0]
    where = f"{len(kinks)} exact kink(s) at supported samples, e.g. node {node!r} sample {i} unit {list(unit)}"
    hidden = net.one_hidden_layer()
    if hidden is not None and all(k[0] == hidden for k in kinks):
        return "exact", where + " (one hidden layer: the selections are Clarke subgradients)"
    return "chain-rule", where + " (kinks beyond one hidden layer: chain-rule selections, a superset of the Clarke subdifferential)"


# ---------------------------------------------------------------------------
# the certificate
# ---------------------------------------------------------------------------
def _selections(lst: Any, net: _Net, n: int, rows: list[tuple[int, int]], where: str) -> _Sel:
    sel = _Sel([])
    if lst is None:
        return sel
    if not isinstance(lst, list):
        raise CertificateError(where, "must be a list of {node, sample, unit, s} objects")
    seen: set[tuple[str, int, int | None, tuple[int, ...]]] = set()
    for k, e in enumerate(lst):
        w = f"{where}[{k}]"
        e = _obj(e, w)
        unknown = sorted(set(e) - {"node", "sample", "row", "unit", "s", "weights"})
        if unknown:
            raise CertificateError(w, f"unknown field(s) {unknown}; valid: node, sample, row, unit, s, weights")
        node = _get(e, "node", w)
        if node not in net.nodes:
            raise CertificateError(f"{w}.node", f"{node!r} is not a node of the network")
        op = net.nodes[node].op
        i = _int(_get(e, "sample", w), f"{w}.sample", lo=0)
        if i >= n:
            raise CertificateError(f"{w}.sample", f"{i} is out of range (n = {n})")
        row = e.get("row")
        if row is not None:
            row = _int(row, f"{w}.row", lo=0)
            if row >= len(rows) or rows[row][0] != i:
                raise CertificateError(f"{w}.row", f"{row} is not a constraint row of sample {i}")
        unit = _get(e, "unit", w)
        if isinstance(unit, int) and not isinstance(unit, bool):
            unit = [unit]
        shape = net.shapes[node]
        if (not isinstance(unit, list) or len(unit) != len(shape)
                or not all(isinstance(u, int) and not isinstance(u, bool) and 0 <= u < s for u, s in zip(unit, shape))):
            raise CertificateError(f"{w}.unit", f"{unit!r} is not a unit of node {node!r} (shape {list(shape)})")
        key = (node, i, row, tuple(unit))
        if key in seen:
            raise CertificateError(w, f"duplicate selection for node {node!r} sample {i} unit {unit}")
        seen.add(key)
        if op == "maxpool2d":
            kh, kw = net._pair(node, "kernel_size", None)
            ws = _get(e, "weights", w)
            if not isinstance(ws, list) or len(ws) != kh * kw:
                raise CertificateError(f"{w}.weights", f"must list {kh * kw} rationals, one per window entry")
            fr = [parse_rational(x, f"{w}.weights[{t}]") for t, x in enumerate(ws)]
            if any(f < 0 for f in fr) or sum(fr) != 1:
                raise CertificateError(f"{w}.weights", "must be non-negative and sum to 1 (a convex combination)")
            sel.entries.append(_SelEntry(k, node, i, row, tuple(unit), weights=fr))
            continue
        if op not in ("relu", "leaky_relu", "abs", "relu_power") or (op == "relu_power" and net.nodes[node].attrs.get("k") != 1):
            raise CertificateError(f"{w}.node", f"node {node!r} ({op}) has no kinks to select at")
        s = parse_rational(_get(e, "s", w), f"{w}.s")
        lo, hi = (Fraction(0), Fraction(1))
        if op == "leaky_relu":
            a = net.slope(node)
            lo, hi = min(a, Fraction(1)), max(a, Fraction(1))
        elif op == "abs":
            lo = Fraction(-1)
        if not lo <= s <= hi:
            raise CertificateError(f"{w}.s", f"{s} is outside the Clarke interval [{lo}, {hi}] of {op} at 0")
        sel.entries.append(_SelEntry(k, node, i, row, tuple(unit), s=s))
    return sel


def load(cert: Any) -> tuple[dict[str, Any], Path]:
    """A certificate from a path, JSON text or dict; returns (dict, folder for relative paths)."""
    if isinstance(cert, Mapping):
        return dict(cert), Path.cwd()
    p = Path(cert)
    try:
        text = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise CertificateError("file", f"cannot read certificate {str(p)!r}: {getattr(e, 'strerror', None) or e}") from None
    try:
        d = json.loads(text)
    except json.JSONDecodeError as e:
        raise CertificateError("file", f"{str(p)!r} is not valid JSON ({e.msg} at line {e.lineno}, column {e.colno})") from None
    if not isinstance(d, dict):
        raise CertificateError("file", f"{str(p)!r} must hold a JSON object")
    return d, p.resolve().parent


def _meta(d: Mapping[str, Any]) -> str:
    meta = _obj(_get(d, "meta", ""), "meta")
    fmt = _get(meta, "format", "meta")
    if fmt != FORMAT_NAME:
        raise CertificateError("meta.format", f"{fmt!r} is not a certificate of this tool; expected {FORMAT_NAME!r}")
    version = _get(meta, "format_version", "meta")
    if version not in SUPPORTED_VERSIONS or isinstance(version, bool):
        raise CertificateError("meta.format_version", f"{version!r} is not supported; this checker reads version(s) "
                                                      f"{', '.join(map(str, SUPPORTED_VERSIONS))}")
    kind = _get(meta, "kind", "meta")
    if kind not in ("kkt", "embedding"):
        raise CertificateError("meta.kind", f"{kind!r} must be 'kkt' or 'embedding'")
    for key in ("created", "tool"):
        if not isinstance(_get(meta, key, "meta"), str):
            raise CertificateError(f"meta.{key}", "must be a string")
    known = {"meta", "network", "params", "data", "witnesses", "claims", "measured", "embedding"}
    unknown = sorted(set(d) - known)
    if unknown:
        raise CertificateError(unknown[0], f"unknown top-level field(s) {unknown}; valid: {sorted(known)}")
    return kind


def _params(d: Mapping[str, Any], net: _Net, base: Path) -> dict[str, Q]:
    block = _obj(_get(d, "params", ""), "params")
    out: dict[str, Q] = {}
    if "path" in block:
        arrays = _resolve_ref(block, "params", base)
        for p in net.pnames:
            if p not in arrays:
                raise CertificateError("params", f"file lacks tensor {p!r}; the network's tensors are {net.pnames}")
        extra = sorted(set(arrays) - set(net.pnames))
        if extra:
            raise CertificateError("params", f"file has tensor(s) {extra} the network does not use")
        for p in net.pnames:
            a = _float_array(arrays[p], f"params.{p}")
            if a.shape != net.pshapes[p]:
                raise CertificateError(f"params.{p}", f"has shape {list(a.shape)}, the network needs {list(net.pshapes[p])}")
            out[p] = E.from_float64(a)
        return out
    tensors = _obj(_get(block, "tensors", "params"), "params.tensors")
    missing = [p for p in net.pnames if p not in tensors]
    extra = sorted(set(tensors) - set(net.pnames))
    if missing or extra:
        raise CertificateError("params.tensors", f"missing {missing}, unexpected {extra}; the network's tensors are {net.pnames}")
    for p in net.pnames:
        q, _ = _decode_tensor(tensors[p], f"params.tensors.{p}")
        if q.shape != net.pshapes[p]:
            raise CertificateError(f"params.tensors.{p}.shape", f"{list(q.shape)}, the network needs {list(net.pshapes[p])}")
        out[p] = q
    return out


def _labels(vals: Any, C: int, where: str) -> list[int]:
    if isinstance(vals, np.ndarray):
        if vals.dtype.kind not in "fiu" or not np.all(np.isfinite(vals)) or not np.all(vals == np.round(vals)):
            raise CertificateError(where, "labels must be integers")
        ys = [int(v) for v in vals.reshape(-1)]
    else:
        if not isinstance(vals, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in vals):
            raise CertificateError(where, "must be a list of integer labels")
        ys = list(vals)
    for i, v in enumerate(ys):
        ok = v in (-1, 1) if C == 1 else 0 <= v < C
        if not ok:
            want = "+1 or -1 (one output unit)" if C == 1 else f"0..{C - 1}"
            raise CertificateError(f"{where}[{i}]", f"label {v} is not allowed; valid: {want}")
    return ys


def _data(d: Mapping[str, Any], net: _Net, base: Path) -> tuple[Q, list[int], np.ndarray | None]:
    block = _obj(_get(d, "data", ""), "data")
    C = net.shapes[net.output][0]
    if "path" in block:
        arrays = _resolve_ref(block, "data", base)
        for k in ("X", "y"):
            if k not in arrays:
                raise CertificateError("data", f"file lacks array {k!r} (has {sorted(arrays)})")
        Xf = _float_array(arrays["X"], "data.X")
        y = _labels(arrays["y"], C, "data.y")
        Xq = E.from_float64(Xf)
    else:
        Xq, Xf = _decode_tensor(_get(block, "X", "data"), "data.X")
        yb = _obj(_get(block, "y", "data"), "data.y")
        y = _labels(_get(yb, "values", "data.y"), C, "data.y.values")
        _check_hash(sha256_i64(np.array(y, dtype=np.int64)), _sha(_get(yb, "sha256", "data.y"), "data.y.sha256"), "data.y.sha256")
    want = tuple(net.shapes[net.input])
    if Xq.shape[1:] != want or len(Xq.shape) != len(want) + 1:
        raise CertificateError("data.X", f"has shape {list(Xq.shape)}, the network's input needs (n, {', '.join(map(str, want))})")
    if Xq.shape[0] == 0:
        raise CertificateError("data.X", "has no samples")
    if len(y) != Xq.shape[0]:
        raise CertificateError("data.y", f"has {len(y)} labels for {Xq.shape[0]} samples")
    return Xq, y, Xf


def _hashed_list(block: Mapping[str, Any], key: str, where: str, hashes: Mapping[str, Any]) -> Any:
    v = block.get(key)
    if v is None:
        return None
    if key not in hashes:
        raise CertificateError(f"{where}.sha256.{key}", "missing field (every stored witness carries its SHA-256)")
    _check_hash(sha256_json(v), _sha(hashes[key], f"{where}.sha256.{key}"), f"{where}.{key}")
    return v


def _multipliers(lst: Any, m: int, where: str) -> list[Fraction]:
    if not isinstance(lst, list):
        raise CertificateError(where, "must be a list of rationals \"p/q\", one per constraint")
    if len(lst) != m:
        raise CertificateError(where, f"has {len(lst)} entries; the data give {m} margin constraints")
    lam = [parse_rational(v, f"{where}[{r}]") for r, v in enumerate(lst)]
    for r, f in enumerate(lam):
        if f < 0:
            raise CertificateError(f"{where}[{r}]", f"{f} is negative; KKT multipliers must be >= 0")
    return lam


def _map(block: Mapping[str, Any], P_wide: int, P: int) -> tuple[np.ndarray, np.ndarray, list[Fraction]]:
    w = "embedding.map"
    mp = _obj(_get(block, "map", "embedding"), w)
    shape = _shape(_get(mp, "shape", w), f"{w}.shape")
    if shape != (P_wide, P):
        raise CertificateError(f"{w}.shape", f"{list(shape)}, expected [P~, P] = [{P_wide}, {P}]")
    rows, cols, vals = (_get(mp, k, w) for k in ("rows", "cols", "values"))
    for k, v in (("rows", rows), ("cols", cols), ("values", vals)):
        if not isinstance(v, list):
            raise CertificateError(f"{w}.{k}", "must be a list")
    if not (len(rows) == len(cols) == len(vals)):
        raise CertificateError(w, f"rows, cols and values have lengths {len(rows)}, {len(cols)}, {len(vals)}")
    _check_hash(sha256_json({"cols": cols, "rows": rows, "shape": list(shape), "values": vals}),
                _sha(_get(mp, "sha256", w), f"{w}.sha256"), f"{w}.sha256")
    try:
        r = np.array(rows, dtype=np.int64)
        c = np.array(cols, dtype=np.int64)
    except (TypeError, ValueError, OverflowError):
        raise CertificateError(f"{w}.rows", "rows and cols must be integers") from None
    if r.size and (r.min() < 0 or r.max() >= P_wide or c.min() < 0 or c.max() >= P):
        raise CertificateError(w, "an index is out of range of the map's shape")
    cache: dict[Any, Fraction] = {}
    fr = []
    for t, v in enumerate(vals):
        key = v if isinstance(v, (str, int)) and not isinstance(v, bool) else None
        if key is None or key not in cache:
            f = parse_rational(v, f"{w}.values[{t}]")
            if key is not None:
                cache[key] = f
        fr.append(cache[key] if key is not None else f)
    if len(set(zip(r.tolist(), c.tolist()))) != len(rows):
        raise CertificateError(w, "an entry (row, col) appears twice")
    return r, c, fr


def _isometry(r: np.ndarray, c: np.ndarray, vals: list[Fraction], P: int) -> tuple[bool, str]:
    """``T^T T = I`` exactly."""
    diag = [Fraction(0)] * P
    by_row: dict[int, list[int]] = {}
    for t in range(len(vals)):
        diag[int(c[t])] += vals[t] * vals[t]
        by_row.setdefault(int(r[t]), []).append(t)
    for j, v in enumerate(diag):
        if v != 1:
            return False, f"(T^T T)[{j},{j}] = {v}, not 1"
    off: dict[tuple[int, int], Fraction] = {}
    for ts in by_row.values():
        if len(ts) > 1:
            for a in range(len(ts)):
                for b in range(a + 1, len(ts)):
                    i, j = sorted((int(c[ts[a]]), int(c[ts[b]])))
                    off[(i, j)] = off.get((i, j), Fraction(0)) + vals[ts[a]] * vals[ts[b]]
    for (i, j), v in off.items():
        if v != 0:
            return False, f"(T^T T)[{i},{j}] = {v}, not 0"
    return True, "T^T T = I"


def _apply_map(r: np.ndarray, c: np.ndarray, vals: list[Fraction], vec: dict[str, Q], src: _Net, dst: _Net) -> dict[str, Q]:
    """``T u`` exactly, tensor by tensor of the destination network."""
    nums, D = E.align(*(vec[p] for p in src.pnames))
    flat = np.concatenate([n.ravel() for n in nums]) if nums else E.zeros((0,))
    Dt = E.lcm(*(f.denominator for f in vals)) if vals else 1
    tv = np.array([f.numerator * (Dt // f.denominator) for f in vals] or [0], dtype=object)[:len(vals)]
    out = E.zeros((dst.num_params,))
    if len(vals):
        np.add.at(out, r, flat[c] * tv)
    res: dict[str, Q] = {}
    start = 0
    for p in dst.pnames:
        size = int(np.prod(dst.pshapes[p]))
        res[p] = Q(out[start:start + size].reshape(dst.pshapes[p]), D * Dt)
        start += size
    return res


def _equal_q(a: Q, b: Q) -> np.ndarray:
    return (a.num * b.den == b.num * a.den).astype(bool)


def _compare(name: str, claimed_raw: Any, actual: Any, where: str, extra: dict[str, Any]) -> ClaimResult:
    rel = CLAIMS[name]
    if name == "relaxation":
        if claimed_raw not in RELAXATIONS:
            raise CertificateError(where, f"{claimed_raw!r} must be one of {list(RELAXATIONS)}")
        holds = RELAXATIONS.index(actual) <= RELAXATIONS.index(claimed_raw)
        return ClaimResult(name, rel, claimed_raw, actual, holds, extra.get("relaxation_detail", ""))
    if name in ("isometry", "output_preserved", "gradient_commutes"):
        if claimed_raw is not True:
            raise CertificateError(where, f"{claimed_raw!r}: this claim can only state true")
        return ClaimResult(name, rel, True, bool(actual), bool(actual), extra.get(f"{name}_detail", ""))
    claimed = parse_rational(claimed_raw, where)
    if actual is None:
        return ClaimResult(name, rel, claimed, "undefined", False, extra.get(f"{name}_detail", ""))
    if name == "normalized_margin":
        qmin, n2, L = actual
        holds = _normalized_margin_at_least(qmin, n2, L, claimed)
        approx = float(qmin) / float(n2) ** (float(L) / 2) if n2 else float("nan")
        return ClaimResult(name, rel, claimed, approx, holds, "compared exactly: min q vs bound * ||theta||^L via squares")
    if rel == "<=":
        holds = actual <= claimed
    elif rel == ">=":
        holds = actual >= claimed
    else:
        holds = actual == claimed
    return ClaimResult(name, rel, claimed, actual, holds, extra.get(f"{name}_detail", ""))


def _normalized_margin_at_least(qmin: Fraction, n2: Fraction, L: Fraction, g: Fraction) -> bool:
    """``qmin / n2^(L/2) >= g`` exactly (``n2 = ||theta||^2 > 0``, ``L`` a positive integer or rational)."""
    if n2 == 0:
        return False
    # compare qmin with g * n2^(L/2): raise to the power 2*den(L) to clear the root
    t = 2 * L.denominator
    rhs_pow = n2 ** (L.numerator)  # (n2^(L/2))^(2 den) = n2^(L num)
    if g <= 0 and qmin >= 0:
        return True
    if g > 0 and qmin <= 0:
        return False
    if g > 0:  # both positive
        return qmin ** t >= g ** t * rhs_pow
    # g < 0, qmin < 0: |qmin| <= |g| n2^(L/2)
    return (-qmin) ** t <= (-g) ** t * rhs_pow


def check_certificate(cert: Any, *, base_dir: str | Path | None = None) -> CheckResult:
    """Check every claim of a certificate exactly (see the module docstring).

    ``cert`` is a path, or the certificate as a dict (then relative paths are
    resolved against ``base_dir``, default the current folder).  Raises
    :class:`CertificateError` (field named) when the file is unreadable or
    malformed; returns a :class:`CheckResult` otherwise.
    """
    t0 = time.perf_counter()
    d, folder = load(cert)
    if base_dir is not None:
        folder = Path(base_dir)
    figs = evaluate(d, base_dir=folder)
    claims_block = _obj(_get(d, "claims", ""), "claims")
    if not claims_block:
        raise CertificateError("claims", "is empty; a certificate must claim something")
    kind = figs["kind"]
    results: list[ClaimResult] = []
    for name, entry in claims_block.items():
        w = f"claims.{name}"
        if name not in CLAIMS:
            raise CertificateError(w, f"unknown claim; valid: {sorted(CLAIMS)}")
        if name in EMBEDDING_CLAIMS and kind != "embedding":
            raise CertificateError(w, "is an embedding claim, but meta.kind is 'kkt'")
        entry = _obj(entry, w)
        rel = _get(entry, "relation", w)
        if rel != CLAIMS[name]:
            raise CertificateError(f"{w}.relation", f"{rel!r}; the claim {name} is stated with {CLAIMS[name]!r}")
        key = "value" if name in VALUE_CLAIMS else "bound"
        raw = _get(entry, key, w)
        needs_lambda = name in ("eps2", "delta", "delta_max", "wide_eps2", "wide_delta", "wide_delta_max", "gradient_commutes")
        if needs_lambda and figs.get("lambda") is None:
            raise CertificateError(w, "needs witnesses.multipliers, which the certificate does not give")
        actual = figs["claim_values"][name]
        res = _compare(name, raw, actual, f"{w}.{key}", figs["details"])
        res.claimed_text = str(raw) if isinstance(raw, (str, int)) and not isinstance(raw, bool) else None
        results.append(res)
    res = CheckResult(all(c.holds for c in results), kind, results, figs["public"], figs["notes"],
                      time.perf_counter() - t0)
    return res


def evaluate(d: Mapping[str, Any], *, base_dir: str | Path = ".") -> dict[str, Any]:
    """Parse and verify the stored content, then compute every figure exactly (no claims compared).

    Returns a dict with ``kind``, ``claim_values`` (name -> exact actual value),
    ``public`` (figures for reports: Fractions and lists), ``details`` and ``notes``.
    """
    base = Path(base_dir)
    kind = _meta(d)
    net = _Net(_get(d, "network", ""), "network")
    params = _params(d, net, base)
    X, y, _ = _data(d, net, base)
    n = X.shape[0]
    C = net.shapes[net.output][0]
    m = n if C == 1 else n * (C - 1)
    notes: list[str] = []
    wit = _obj(d.get("witnesses", {}), "witnesses")
    hashes = _obj(wit.get("sha256", {}), "witnesses.sha256")
    lam_raw = _hashed_list(wit, "multipliers", "witnesses", hashes)
    lam = _multipliers(lam_raw, m, "witnesses.multipliers") if lam_raw is not None else None
    rows = _rows(C, y)
    sel = _selections(_hashed_list(wit, "kink_selections", "witnesses", hashes), net, n, rows,
                      "witnesses.kink_selections")
    L, why = net.degree()
    fig = evaluate_point(net, params, X, y, lam, sel)
    ev: _Eval = fig["evaluator"]
    unused = [e for e in sel.entries if e.index not in ev.used]
    if unused and lam is not None:
        e = unused[0]
        notes.append(f"{len(unused)} kink selection(s) not used: the pre-activation is not exactly 0 there or the row "
                     f"has multiplier 0 (e.g. witnesses.kink_selections[{e.index}]: node {e.node!r} sample {e.sample} "
                     f"unit {list(e.unit)})")
    relax, relax_detail = _relaxation_needed(net, ev.kinks, fig.get("support_samples"))
    details: dict[str, Any] = {"relaxation_detail": relax_detail}
    if L is None:
        details["degree_detail"] = f"not homogeneous: {why}"
    values: dict[str, Any] = {
        "degree": L, "relaxation": relax, "min_margin": fig["min_margin"],
        "normalized_margin": (fig["min_margin"], fig["theta_norm2"], L) if L is not None and L > 0 else None,
        "eps2": fig.get("eps2"), "delta": fig.get("delta"), "delta_max": fig.get("delta_max"),
    }
    public: dict[str, Any] = {
        "n": n, "m": m, "num_params": net.num_params, "degree": L, "relaxation": relax,
        "min_margin": fig["min_margin"], "margins": fig["margins"], "theta_norm2": fig["theta_norm2"],
        "kinks": [{"node": k[0], "sample": k[1], "unit": list(k[2])} for k in ev.kinks],
    }
    if lam is not None:
        for k in ("eps2", "delta", "delta_max", "sum_multipliers", "support", "theta_dot_v", "lambda_dot_q"):
            public[k] = fig[k]
        public["multipliers"] = lam
        if L is not None:
            euler = fig["theta_dot_v"] == L * fig["lambda_dot_q"]
            public["euler_identity"] = euler
            if not euler:
                notes.append("Euler's identity <theta, sum lambda h> = L sum lambda q FAILS exactly: the network "
                             "is not homogeneous of the stated degree, or the checker is wrong")
    if kind == "embedding":
        emb = _obj(_get(d, "embedding", ""), "embedding")
        wide = _Net(_get(emb, "wide_network", "embedding"), "embedding.wide_network")
        if wide.shapes[wide.input] != net.shapes[net.input] or wide.shapes[wide.output] != net.shapes[net.output]:
            raise CertificateError("embedding.wide_network", "input or output shape differs from the network's")
        r, c, tv = _map(emb, wide.num_params, net.num_params)
        iso, iso_detail = _isometry(r, c, tv, net.num_params)
        wparams = _apply_map(r, c, tv, params, net, wide)
        ehashes = _obj(emb.get("sha256", {}), "embedding.sha256")
        wsel = _selections(_hashed_list(emb, "wide_kink_selections", "embedding", ehashes), wide, n, rows,
                           "embedding.wide_kink_selections")
        wfig = evaluate_point(wide, wparams, X, y, lam, wsel)
        same = _equal_q(wfig["evaluator"].vals[wide.output], ev.vals[net.output])
        if same.all():
            out_detail = f"Phi~(T theta; x_i) = Phi(theta; x_i) for all {n} samples"
        else:
            i, j = (int(v) for v in np.argwhere(~same)[0])
            diff = wfig["evaluator"].vals[wide.output].fraction((i, j)) - ev.vals[net.output].fraction((i, j))
            out_detail = f"sample {i} output {j}: Phi~(T theta) - Phi(theta) = {_show(diff)}"
        values.update({"isometry": iso, "output_preserved": bool(same.all()), "wide_min_margin": wfig["min_margin"]})
        details.update({"isometry_detail": iso_detail, "output_preserved_detail": out_detail})
        public.update({"isometry": iso, "output_preserved": bool(same.all()), "wide_num_params": wide.num_params,
                       "wide_min_margin": wfig["min_margin"],
                       "wide_kinks": [{"node": k[0], "sample": k[1], "unit": list(k[2])} for k in wfig["kinks"]]})
        if lam is not None:
            Tv = _apply_map(r, c, tv, fig["v"], net, wide)
            bad = [p for p in wide.pnames if not _equal_q(Tv[p], wfig["v"][p]).all()]
            values.update({"gradient_commutes": not bad, "wide_eps2": wfig["eps2"], "wide_delta": wfig["delta"],
                           "wide_delta_max": wfig["delta_max"]})
            details["gradient_commutes_detail"] = ("sum lambda h~(T theta) = T sum lambda h(theta)" if not bad else
                                                   f"differs on wide tensor {bad[0]!r}")
            public.update({"gradient_commutes": not bad, "wide_eps2": wfig["eps2"], "wide_delta": wfig["delta"],
                           "wide_delta_max": wfig["delta_max"]})
        wL, _ = wide.degree()
        public["wide_degree"] = wL
    return {"kind": kind, "claim_values": values, "public": public, "details": details, "notes": notes,
            "lambda": lam}


def exact_min_margin(network: Mapping[str, Any], params: Mapping[str, np.ndarray], X: np.ndarray,
                     y: Any) -> Fraction:
    """Exact ``min_r q_r`` of float64 ``params`` on float64 data (used by producers to normalise a point)."""
    net = _Net(network, "network")
    P = {p: E.from_float64(np.asarray(params[p], dtype=np.float64)) for p in net.pnames}
    Xq = E.from_float64(np.asarray(X, dtype=np.float64))
    ys = _labels(np.asarray(y), net.shapes[net.output][0], "y")
    return evaluate_point(net, P, Xq, ys, None, _Sel([]), gradient=False)["min_margin"]
