"""Reading a certificate (sections, stored tensors, witnesses, the embedding map) and checking its claims."""

from __future__ import annotations

import base64
import binascii
import re
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .. import exact as E
from ..exact import Q
from ..format import ENCODINGS, FORMAT_NAME, SUPPORTED_VERSIONS, sha256_f64, sha256_file, sha256_i64, sha256_json
from . import limits as Lm
from .claims import CLAIMS, REQUIRED, CheckResult, ClaimResult, _show, compare, normalized_margin_at_least
from .evaluate import Evaluator, SelEntry, evaluate_point, relaxation_needed, rows_of
from .ir import Net
from .limits import CertificateError, Limits, check_hash, check_int, get, obj, parse_rational, sha
from .rules import RULES


# ---------------------------------------------------------------------------
# loading
# ---------------------------------------------------------------------------
def load(cert: Any) -> tuple[dict[str, Any], Path]:
    """A certificate from a path or dict; returns (dict, folder that confines its relative paths)."""
    if isinstance(cert, Mapping):
        d = dict(cert)
        Lm.depth_ok(d)
        return d, Path.cwd()
    p = Path(cert)
    d = Lm.loads(Lm.read_text(p), "file")
    if not isinstance(d, dict):
        raise CertificateError("file", f"{str(p)!r} must hold a JSON object")
    return d, p.resolve().parent


def read_meta(d: Mapping[str, Any]) -> str:
    meta = obj(get(d, "meta", ""), "meta")
    fmt = get(meta, "format", "meta")
    if fmt != FORMAT_NAME:
        raise CertificateError("meta.format", f"{str(fmt)[:40]!r} is not a certificate of this tool; expected "
                                              f"{FORMAT_NAME!r}")
    version = get(meta, "format_version", "meta")
    if version not in SUPPORTED_VERSIONS or isinstance(version, bool):
        raise CertificateError("meta.format_version", f"{str(version)[:20]!r} is not supported; this checker reads "
                                                      f"version(s) {', '.join(map(str, SUPPORTED_VERSIONS))}")
    kind = get(meta, "kind", "meta")
    if kind not in ("kkt", "embedding"):
        raise CertificateError("meta.kind", f"{str(kind)[:20]!r} must be 'kkt' or 'embedding'")
    for key in ("created", "tool"):
        if not isinstance(get(meta, key, "meta"), str):
            raise CertificateError(f"meta.{key}", "must be a string")
    if "statement" in meta and not isinstance(meta["statement"], str):
        raise CertificateError("meta.statement", "must be a string (it is shown as an unverified note only)")
    known = {"meta", "network", "params", "data", "witnesses", "claims", "measured", "embedding"}
    unknown = sorted(set(d) - known)
    if unknown:
        raise CertificateError(str(unknown[0])[:40], f"unknown top-level field(s) {[str(u)[:40] for u in unknown[:5]]}; "
                                                     f"valid: {sorted(known)}")
    return kind


# ---------------------------------------------------------------------------
# tensors, data, references
# ---------------------------------------------------------------------------
_HEX_RE = re.compile(r"^([+-]?)0x([0-9a-fA-F]+)(?:\.([0-9a-fA-F]*))?p([+-]?\d{1,6})$")


def _hex_exact(v: Any, x: float) -> bool:
    """``v`` (a hex float string) denotes exactly the float64 ``x`` (no rounding by ``float.fromhex``)."""
    if not isinstance(v, str):
        return False
    if x.hex() == v:
        return True
    m = _HEX_RE.match(v.strip())
    if not m:
        return False
    sign, ip, fp, ex = m.groups()
    fp = fp or ""
    mant = int(ip + fp, 16)
    if mant == 0:
        return x == 0
    e = int(ex) - 4 * len(fp)
    if abs(e) > 1200 + 4 * len(ip + fp):
        return False
    val = Fraction(mant * 2 ** e) if e >= 0 else Fraction(mant, 2 ** -e)
    return Fraction(x) == (-val if sign == "-" else val)


def decode_tensor(t: Any, where: str) -> tuple[Q, np.ndarray | None]:
    """A stored tensor -> (exact value, float64 array when it is float-encoded)."""
    t = obj(t, where)
    shape = Lm.shape(get(t, "shape", where), f"{where}.shape")
    enc = get(t, "encoding", where)
    if enc not in ENCODINGS:
        raise CertificateError(f"{where}.encoding", f"{str(enc)[:30]!r} is not one of {list(ENCODINGS)}")
    values = get(t, "values", where)
    recorded = sha(get(t, "sha256", where), f"{where}.sha256")
    size = Lm.entries(shape)
    if enc == "f64-base64":
        if not isinstance(values, str):
            raise CertificateError(f"{where}.values", "must be a base64 string for encoding 'f64-base64'")
        if len(values) > 4 * (8 * size + 2) // 3 + 8:
            raise CertificateError(f"{where}.values", f"is longer than the {size} float64 values of shape {list(shape)}")
        try:
            raw = base64.b64decode(values.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise CertificateError(f"{where}.values", "is not valid base64") from None
        if len(raw) != 8 * size:
            raise CertificateError(f"{where}.values", f"holds {len(raw) // 8} float64 values, shape {list(shape)} "
                                                      f"needs {size}")
        arr = np.frombuffer(raw, dtype="<f8").astype(np.float64).reshape(shape)
    elif enc == "f64-hex":
        if not isinstance(values, list):
            raise CertificateError(f"{where}.values", "must be a list of float.hex strings")
        if len(values) != size:
            raise CertificateError(f"{where}.values", f"has {len(values)} entries, shape {list(shape)} needs {size}")
        try:
            flat = [float.fromhex(v) for v in values]
        except (TypeError, ValueError, OverflowError):
            bad = next(i for i, v in enumerate(values) if not _is_hex(v))
            raise CertificateError(f"{where}.values[{bad}]", f"{str(values[bad])[:40]!r} is not a float.hex string "
                                                             "such as '0x1.8p-1'") from None
        for i, (v, x) in enumerate(zip(values, flat)):
            if not _hex_exact(v, x):
                raise CertificateError(f"{where}.values[{i}]", f"{v[:40]!r} is not exactly a float64 (it would be "
                                                               "rounded); write float.hex() of a float64")
        arr = np.array(flat, dtype=np.float64).reshape(shape)
    else:
        if not isinstance(values, list):
            raise CertificateError(f"{where}.values", "must be a list of rationals \"p/q\"")
        if len(values) != size:
            raise CertificateError(f"{where}.values", f"has {len(values)} entries, shape {list(shape)} needs {size}")
        fr = [parse_rational(v, f"{where}.values[{i}]") for i, v in enumerate(values)]
        Lm.common_denominator(fr, f"{where}.values")
        check_hash(sha256_json(values), recorded, f"{where}.sha256")
        return E.from_fractions(fr, shape), None
    if not np.all(np.isfinite(arr)):
        i = int(np.flatnonzero(~np.isfinite(arr.ravel()))[0])
        raise CertificateError(f"{where}.values[{i}]", "is not finite; certificates hold finite numbers only")
    check_hash(sha256_f64(arr), recorded, f"{where}.sha256")
    return E.from_float64(arr), arr


def _is_hex(v: Any) -> bool:
    try:
        float.fromhex(v)
        return True
    except (TypeError, ValueError, OverflowError):
        return False


def resolve_ref(ref: Mapping[str, Any], where: str, base_dir: Path) -> dict[str, np.ndarray]:
    """A ``{"path", "sha256"}`` reference: confined to ``base_dir``, size-checked, hashed, then read."""
    recorded = sha(get(ref, "sha256", where), f"{where}.sha256")
    path = Lm.confined(get(ref, "path", where), base_dir, f"{where}.path")
    check_hash(sha256_file(path), recorded, f"{where}.sha256")
    return Lm.read_npz(path, where)


def read_params(d: Mapping[str, Any], net: Net, base: Path) -> dict[str, Q]:
    block = obj(get(d, "params", ""), "params")
    out: dict[str, Q] = {}
    if "path" in block:
        arrays = resolve_ref(block, "params", base)
        missing = [p for p in net.pnames if p not in arrays]
        if missing:
            raise CertificateError("params", f"file lacks tensor {missing[0]!r}; the network's tensors are "
                                             f"{net.pnames[:10]}")
        extra = sorted(set(arrays) - set(net.pnames))
        if extra:
            raise CertificateError("params", f"file has tensor(s) {extra[:5]} the network does not use")
        for p in net.pnames:
            a = Lm.float64_exact(arrays[p], f"params.{p}")
            if a.shape != net.pshapes[p]:
                raise CertificateError(f"params.{p}", f"has shape {list(a.shape)}, the network needs "
                                                      f"{list(net.pshapes[p])}")
            out[p] = E.from_float64(a)
        return out
    tensors = obj(get(block, "tensors", "params"), "params.tensors")
    missing = [p for p in net.pnames if p not in tensors]
    extra = sorted(set(tensors) - set(net.pnames))
    if missing or extra:
        raise CertificateError("params.tensors", f"missing {missing[:5]}, unexpected {[str(e)[:40] for e in extra[:5]]}; "
                                                 f"the network's tensors are {net.pnames[:10]}")
    for p in net.pnames:
        w = f"params.tensors.{p}"
        t = obj(tensors[p], w)
        if "shape" in t and isinstance(t["shape"], list) and tuple(t["shape"]) != net.pshapes[p]:
            raise CertificateError(f"{w}.shape", f"{str(t['shape'])[:40]}, the network needs {list(net.pshapes[p])}")
        q, _ = decode_tensor(t, w)
        if q.shape != net.pshapes[p]:
            raise CertificateError(f"{w}.shape", f"{list(q.shape)}, the network needs {list(net.pshapes[p])}")
        out[p] = q
    return out


def read_labels(vals: Any, C: int, where: str) -> list[int]:
    if isinstance(vals, np.ndarray):
        Lm.exact_dtype(vals.dtype, where)
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
            raise CertificateError(f"{where}[{i}]", f"label {str(v)[:20]} is not allowed; valid: {want}")
    return ys


def read_data(d: Mapping[str, Any], net: Net, base: Path) -> tuple[Q, list[int], np.ndarray | None]:
    """The stored data: exact ``X``, labels ``y`` and the float64 ``X`` (when float-encoded)."""
    block = obj(get(d, "data", ""), "data")
    C = net.shapes[net.output][0]
    Xf: np.ndarray | None
    if "path" in block:
        arrays = resolve_ref(block, "data", base)
        for k in ("X", "y"):
            if k not in arrays:
                raise CertificateError("data", f"file lacks array {k!r} (has {sorted(arrays)[:5]})")
        Xf = Lm.float64_exact(arrays["X"], "data.X")
        y = read_labels(arrays["y"], C, "data.y")
        Xq = E.from_float64(Xf)
    else:
        Xq, Xf = decode_tensor(get(block, "X", "data"), "data.X")
        yb = obj(get(block, "y", "data"), "data.y")
        y = read_labels(get(yb, "values", "data.y"), C, "data.y.values")
        check_hash(sha256_i64(np.array(y, dtype=np.int64)), sha(get(yb, "sha256", "data.y"), "data.y.sha256"),
                   "data.y.sha256")
    want = tuple(net.shapes[net.input])
    if Xq.shape[1:] != want or len(Xq.shape) != len(want) + 1:
        raise CertificateError("data.X", f"has shape {list(Xq.shape)}, the network's input needs "
                                         f"(n, {', '.join(map(str, want))})")
    if Xq.shape[0] == 0:
        raise CertificateError("data.X", "has no samples")
    if len(y) != Xq.shape[0]:
        raise CertificateError("data.y", f"has {len(y)} labels for {Xq.shape[0]} samples")
    return Xq, y, Xf


def hashed_list(block: Mapping[str, Any], key: str, where: str, hashes: Mapping[str, Any]) -> Any:
    v = block.get(key)
    if v is None:
        return None
    if key not in hashes:
        raise CertificateError(f"{where}.sha256.{key}", "missing field (every stored witness carries its SHA-256)")
    check_hash(sha256_json(v), sha(hashes[key], f"{where}.sha256.{key}"), f"{where}.{key}")
    return v


def read_multipliers(lst: Any, m: int, where: str) -> list[Fraction]:
    if not isinstance(lst, list):
        raise CertificateError(where, "must be a list of rationals \"p/q\", one per constraint")
    if len(lst) != m:
        raise CertificateError(where, f"has {len(lst)} entries; the data give {m} margin constraints")
    lam = [parse_rational(v, f"{where}[{r}]") for r, v in enumerate(lst)]
    Lm.common_denominator(lam, where)
    for r, f in enumerate(lam):
        if f < 0:
            raise CertificateError(f"{where}[{r}]", f"{_show(f)} is negative; KKT multipliers must be >= 0")
    return lam


# ---------------------------------------------------------------------------
# kink selections
# ---------------------------------------------------------------------------
@dataclass
class SelectionProblem:
    """A kink selection that is structurally fine but not a valid witness (outside its Clarke set)."""

    list: str    # "witnesses.kink_selections" or "embedding.wide_kink_selections"
    index: int
    field: str
    message: str

    def error(self) -> CertificateError:
        return CertificateError(self.field, self.message)


def read_selections(lst: Any, net: Net, n: int, rows: list[tuple[int, int]], where: str
                    ) -> tuple[list[SelEntry], list[SelectionProblem]]:
    """Parse kink selections; malformed entries raise, entries outside their Clarke set are returned as problems."""
    out: list[SelEntry] = []
    problems: list[SelectionProblem] = []
    if lst is None:
        return out, problems
    if not isinstance(lst, list):
        raise CertificateError(where, "must be a list of {node, sample, unit, s} objects")
    seen: set[tuple[str, int, int | None, tuple[int, ...]]] = set()
    for k, e in enumerate(lst):
        w = f"{where}[{k}]"
        e = obj(e, w)
        unknown = sorted(set(e) - {"node", "sample", "row", "unit", "s", "weights"})
        if unknown:
            raise CertificateError(w, f"unknown field(s) {[str(u)[:30] for u in unknown[:5]]}; valid: node, sample, "
                                      "row, unit, s, weights")
        node = get(e, "node", w)
        if not isinstance(node, str) or node not in net.nodes:
            raise CertificateError(f"{w}.node", f"{str(node)[:40]!r} is not a node of the network")
        nd = net.nodes[node]
        rule = RULES[nd.op]
        i = check_int(get(e, "sample", w), f"{w}.sample", lo=0)
        if i >= n:
            raise CertificateError(f"{w}.sample", f"{i} is out of range (n = {n})")
        row = e.get("row")
        if row is not None:
            row = check_int(row, f"{w}.row", lo=0)
            if row >= len(rows) or rows[row][0] != i:
                raise CertificateError(f"{w}.row", f"{row} is not a constraint row of sample {i}")
        unit = get(e, "unit", w)
        if isinstance(unit, int) and not isinstance(unit, bool):
            unit = [unit]
        shape = net.shapes[node]
        if (not isinstance(unit, list) or len(unit) != len(shape)
                or not all(isinstance(u, int) and not isinstance(u, bool) and 0 <= u < s for u, s in zip(unit, shape))):
            raise CertificateError(f"{w}.unit", f"{str(unit)[:40]} is not a unit of node {node!r} (shape {list(shape)})")
        key = (node, i, row, tuple(unit))
        if key in seen:
            raise CertificateError(w, f"duplicate selection for node {node!r} sample {i} unit {unit}")
        seen.add(key)
        if rule.selection == "weights":
            kk = nd.a["k"][0] * nd.a["k"][1]
            ws = get(e, "weights", w)
            if not isinstance(ws, list) or len(ws) != kk:
                raise CertificateError(f"{w}.weights", f"must list {kk} rationals, one per window entry")
            fr = [parse_rational(x, f"{w}.weights[{t}]") for t, x in enumerate(ws)]
            if any(f < 0 for f in fr) or sum(fr) != 1:
                problems.append(SelectionProblem(where, k, f"{w}.weights",
                                                 "must be non-negative and sum to 1 (a convex combination)"))
                continue
            out.append(SelEntry(k, node, i, row, tuple(unit), weights=fr))
            continue
        if rule.selection != "s" or not rule.kinked(nd.a):
            raise CertificateError(f"{w}.node", f"node {node!r} ({nd.op}) has no kinks to select at")
        s = parse_rational(get(e, "s", w), f"{w}.s")
        lo, hi = rule.clarke(nd.a)
        if not lo <= s <= hi:
            problems.append(SelectionProblem(where, k, f"{w}.s", f"{_show(s)} is outside the Clarke interval "
                                                                 f"[{_show(lo)}, {_show(hi)}] of {nd.op} at 0"))
            continue
        out.append(SelEntry(k, node, i, row, tuple(unit), s=s))
    Lm.common_denominator([e.s for e in out if e.s is not None] + [f for e in out for f in (e.weights or [])], where)
    return out, problems


def window_problems(ev, sel: list[SelEntry], where: str) -> list[SelectionProblem]:
    """Max-pool selections that put weight on a window entry that is not a maximum (at an exact tie)."""
    from .rules import _windows

    out: list[SelectionProblem] = []
    for e in sel:
        if e.weights is None:
            continue
        nd = ev.net.nodes[e.node]
        win = _windows(ev.vals[nd.inputs[0]].num[e.sample:e.sample + 1], nd.a["k"], nd.a["s"])
        cell = list(win[(0, *e.unit)])
        top = max(cell)
        if sum(1 for c in cell if c == top) > 1 and any(e.weights[t] != 0 and cell[t] != top for t in range(len(cell))):
            out.append(SelectionProblem(where, e.index, f"{where}[{e.index}].weights",
                                        "puts weight on a window entry that is not a maximum"))
    return out


# ---------------------------------------------------------------------------
# embeddings
# ---------------------------------------------------------------------------
def read_map(block: Mapping[str, Any], P_wide: int, P: int) -> tuple[np.ndarray, np.ndarray, list[Fraction]]:
    w = "embedding.map"
    mp = obj(get(block, "map", "embedding"), w)
    shape = get(mp, "shape", w)
    if shape != [P_wide, P]:
        raise CertificateError(f"{w}.shape", f"{str(shape)[:40]}, expected [P~, P] = [{P_wide}, {P}]")
    rows, cols, vals = (get(mp, k, w) for k in ("rows", "cols", "values"))
    for k, v in (("rows", rows), ("cols", cols), ("values", vals)):
        if not isinstance(v, list):
            raise CertificateError(f"{w}.{k}", "must be a list")
    if not (len(rows) == len(cols) == len(vals)):
        raise CertificateError(w, f"rows, cols and values have lengths {len(rows)}, {len(cols)}, {len(vals)}")
    if len(vals) > Lm.current().max_entries:
        raise Lm.too_big(w, "a map of", f"{len(vals):,} entries", "max_entries")
    check_hash(sha256_json({"cols": cols, "rows": rows, "shape": list(shape), "values": vals}),
               sha(get(mp, "sha256", w), f"{w}.sha256"), f"{w}.sha256")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in rows + cols):
        raise CertificateError(f"{w}.rows", "rows and cols must be integers")
    r = np.array([min(max(v, -1), P_wide) for v in rows], dtype=np.int64)
    c = np.array([min(max(v, -1), P) for v in cols], dtype=np.int64)
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
    Lm.common_denominator(fr, f"{w}.values")
    if len(set(zip(r.tolist(), c.tolist()))) != len(rows):
        raise CertificateError(w, "an entry (row, col) appears twice")
    return r, c, fr


def isometry(r: np.ndarray, c: np.ndarray, vals: list[Fraction], P: int) -> tuple[bool, str]:
    """``T^T T = I`` exactly."""
    diag = [Fraction(0)] * P
    by_row: dict[int, list[int]] = {}
    for t in range(len(vals)):
        diag[int(c[t])] += vals[t] * vals[t]
        by_row.setdefault(int(r[t]), []).append(t)
    for j, v in enumerate(diag):
        if v != 1:
            return False, f"(T^T T)[{j},{j}] = {_show(v)}, not 1"
    off: dict[tuple[int, int], Fraction] = {}
    for ts in by_row.values():
        if len(ts) > 1:
            for a in range(len(ts)):
                for b in range(a + 1, len(ts)):
                    i, j = sorted((int(c[ts[a]]), int(c[ts[b]])))
                    off[(i, j)] = off.get((i, j), Fraction(0)) + vals[ts[a]] * vals[ts[b]]
    for (i, j), v in off.items():
        if v != 0:
            return False, f"(T^T T)[{i},{j}] = {_show(v)}, not 0"
    return True, "T^T T = I"


def apply_map(r: np.ndarray, c: np.ndarray, vals: list[Fraction], vec: dict[str, Q], src: Net, dst: Net) -> dict[str, Q]:
    """``T u`` exactly, tensor by tensor of the destination network."""
    nums, D = E.align(*(vec[p] for p in src.pnames))
    flat = np.concatenate([n.ravel() for n in nums]).astype(object) if nums else E.zeros((0,))
    Dt = E.lcm(*(f.denominator for f in vals)) if vals else 1
    tv = np.array([f.numerator * (Dt // f.denominator) for f in vals] or [0], dtype=object)[:len(vals)]
    out = E.zeros((dst.num_params,))
    if len(vals):
        np.add.at(out, r, flat[c] * tv)
    res: dict[str, Q] = {}
    start = 0
    for p in dst.pnames:
        size = Lm.entries(dst.pshapes[p])
        res[p] = Q(out[start:start + size].reshape(dst.pshapes[p]), D * Dt)
        start += size
    return res


def _equal_q(a: Q, b: Q) -> np.ndarray:
    return (a.num * b.den == b.num * a.den).astype(bool)


# ---------------------------------------------------------------------------
# evaluate and check
# ---------------------------------------------------------------------------
def _kinks_public(kinks) -> list[dict[str, Any]]:
    return [{"node": k[0], "sample": k[1], "unit": list(k[2])} for k in kinks]


def evaluate(d: Mapping[str, Any], *, base_dir: str | Path = ".", selection_problems: list | None = None
             ) -> dict[str, Any]:
    """Parse and verify the stored content, then compute every figure exactly (no claims compared).

    Returns a dict with ``kind``, ``claim_values`` (name -> exact actual value), ``public`` (figures
    for reports: Fractions and lists), ``details``, ``notes``, ``lambda`` and ``used_selections``.
    With ``selection_problems`` (a list), kink selections outside their Clarke sets are appended to it
    and left out instead of raising.
    """
    base = Path(base_dir)
    kind = read_meta(d)
    net = Net(get(d, "network", ""), "network")
    params = read_params(d, net, base)
    X, y, _ = read_data(d, net, base)
    n = X.shape[0]
    C = net.shapes[net.output][0]
    m = n if C == 1 else n * (C - 1)
    notes: list[str] = []
    wit = obj(d.get("witnesses", {}), "witnesses")
    hashes = obj(wit.get("sha256", {}), "witnesses.sha256")
    lam_raw = hashed_list(wit, "multipliers", "witnesses", hashes)
    lam = read_multipliers(lam_raw, m, "witnesses.multipliers") if lam_raw is not None else None
    rows = rows_of(C, y)

    def selections(lst, nt, where):
        sel, probs = read_selections(lst, nt, n, rows, where)
        return sel, probs

    sel, probs = selections(hashed_list(wit, "kink_selections", "witnesses", hashes), net, "witnesses.kink_selections")
    L, why = net.degree()
    emb = wide = None
    wsel: list[SelEntry] = []
    if kind == "embedding":  # read the whole file before the expensive evaluation
        emb = obj(get(d, "embedding", ""), "embedding")
        wide = Net(get(emb, "wide_network", "embedding"), "embedding.wide_network")
        if wide.shapes[wide.input] != net.shapes[net.input] or wide.shapes[wide.output] != net.shapes[net.output]:
            raise CertificateError("embedding.wide_network", "input or output shape differs from the network's")
        ehashes = obj(emb.get("sha256", {}), "embedding.sha256")
        wsel, wprobs = selections(hashed_list(emb, "wide_kink_selections", "embedding", ehashes), wide,
                                  "embedding.wide_kink_selections")
        probs += wprobs
        tmap = read_map(emb, wide.num_params, net.num_params)
    ev = Evaluator(net, params, X)
    probs += window_problems(ev, sel, "witnesses.kink_selections")
    _problems(probs, selection_problems)
    bad = {(p.list, p.index) for p in probs}
    sel = [e for e in sel if ("witnesses.kink_selections", e.index) not in bad]
    fig = evaluate_point(net, params, X, y, lam, sel, ev=ev)
    unused = [e for e in sel if e.index not in ev.used]
    if unused and lam is not None:
        e = unused[0]
        notes.append(f"{len(unused)} kink selection(s) not used: the pre-activation is not exactly 0 there or the row "
                     f"has multiplier 0 (e.g. witnesses.kink_selections[{e.index}]: node {e.node!r} sample {e.sample} "
                     f"unit {list(e.unit)})")
    relax, relax_detail = relaxation_needed(net, ev.kinks, fig.get("support_samples"))
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
        "kinks": _kinks_public(ev.kinks),
    }
    used = {"witnesses.kink_selections": sorted(ev.used)}
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
        assert wide is not None and emb is not None
        r, c, tv = tmap
        iso, iso_detail = isometry(r, c, tv, net.num_params)
        wparams = apply_map(r, c, tv, params, net, wide)
        wev = Evaluator(wide, wparams, X)
        wprobs = window_problems(wev, wsel, "embedding.wide_kink_selections")
        _problems(wprobs, selection_problems)
        wbad = {p.index for p in wprobs}
        wsel = [e for e in wsel if e.index not in wbad and ("embedding.wide_kink_selections", e.index) not in bad]
        wfig = evaluate_point(wide, wparams, X, y, lam, wsel, ev=wev)
        used["embedding.wide_kink_selections"] = sorted(wfig["evaluator"].used)
        same = _equal_q(wfig["evaluator"].vals[wide.output], ev.vals[net.output])
        if same.all():
            out_detail = f"Phi~(T theta; x_i) = Phi(theta; x_i) for all {n} samples"
        else:
            i, j = (int(v) for v in np.argwhere(~same)[0])
            dv = wfig["evaluator"].vals[wide.output].fraction((i, j)) - ev.vals[net.output].fraction((i, j))
            out_detail = f"sample {i} output {j}: Phi~(T theta) - Phi(theta) = {_show(dv)}"
        values.update({"isometry": iso, "output_preserved": bool(same.all()), "wide_min_margin": wfig["min_margin"]})
        details.update({"isometry_detail": iso_detail, "output_preserved_detail": out_detail})
        public.update({"isometry": iso, "output_preserved": bool(same.all()), "wide_num_params": wide.num_params,
                       "wide_min_margin": wfig["min_margin"], "wide_kinks": _kinks_public(wfig["kinks"])})
        if lam is not None:
            Tv = apply_map(r, c, tv, fig["v"], net, wide)
            badp = [p for p in wide.pnames if not _equal_q(Tv[p], wfig["v"][p]).all()]
            values.update({"gradient_commutes": not badp, "wide_eps2": wfig["eps2"], "wide_delta": wfig["delta"],
                           "wide_delta_max": wfig["delta_max"]})
            details["gradient_commutes_detail"] = ("sum lambda h~(T theta) = T sum lambda h(theta)" if not badp else
                                                   f"differs on wide tensor {badp[0]!r}")
            public.update({"gradient_commutes": not badp, "wide_eps2": wfig["eps2"], "wide_delta": wfig["delta"],
                           "wide_delta_max": wfig["delta_max"]})
        wL, _ = wide.degree()
        public["wide_degree"] = wL
    return {"kind": kind, "claim_values": values, "public": public, "details": details, "notes": notes,
            "lambda": lam, "used_selections": used}


def _problems(probs: list[SelectionProblem], sink: list | None) -> None:
    if not probs:
        return
    if sink is None:
        raise probs[0].error()
    sink.extend(probs)


def selection_problems(cert: Mapping[str, Any], *, base_dir: str | Path = ".",
                       limits: Limits | None = None) -> list[SelectionProblem]:
    """Kink selections of ``cert`` that are not valid witnesses in exact arithmetic (outside the Clarke
    interval, not a convex combination, weight on a max-pool entry that is not a maximum).

    The producer drops these (its float selections can be off by rounding) before writing claims.
    """
    out: list[SelectionProblem] = []
    with Lm.using(limits):
        evaluate(cert, base_dir=base_dir, selection_problems=out)
    return out


def check_certificate(cert: Any, *, base_dir: str | Path | None = None, limits: Limits | None = None,
                      tol: float | None = None) -> CheckResult:
    """Check every claim of a certificate exactly.

    ``cert`` is a path, or the certificate as a dict (then relative paths are resolved, and
    confined, against ``base_dir``, default the current folder).  Raises :class:`CertificateError`
    (field named) when the file is unreadable, malformed, beyond a :class:`Limits` bound, or lacks a
    claim its kind requires; returns a :class:`CheckResult` otherwise.  ``tol`` is the tolerance the
    reader wants on ``eps_rel`` and ``delta_rel`` (reported by :meth:`CheckResult.headline`, never
    part of ``ok``).
    """
    t0 = time.perf_counter()
    with Lm.using(limits):
        d, folder = load(cert)
        if base_dir is not None:
            folder = Path(base_dir)
        kind = read_meta(d)
        claims_block = obj(get(d, "claims", ""), "claims")
        for name in claims_block:
            if name not in CLAIMS:
                raise CertificateError(f"claims.{str(name)[:40]}", f"unknown claim; valid: {sorted(CLAIMS)}")
            if CLAIMS[name].embedding_only and kind != "embedding":
                raise CertificateError(f"claims.{name}", "is an embedding claim, but meta.kind is 'kkt'")
        missing = [c for c in REQUIRED[kind] if c not in claims_block]
        if missing:
            raise CertificateError(f"claims.{missing[0]}", f"missing: a {kind} certificate must claim "
                                                           f"{', '.join(REQUIRED[kind])} (missing: {', '.join(missing)})")
        figs = evaluate(d, base_dir=folder)
        results: list[ClaimResult] = []
        for name, entry in claims_block.items():
            spec = CLAIMS[name]
            w = f"claims.{name}"
            entry = obj(entry, w)
            rel = get(entry, "relation", w)
            if rel != spec.relation:
                raise CertificateError(f"{w}.relation", f"{str(rel)[:10]!r}; the claim {name} is stated with "
                                                        f"{spec.relation!r}")
            raw = get(entry, spec.written, w)
            if spec.needs_multipliers and figs.get("lambda") is None:
                raise CertificateError(w, "needs witnesses.multipliers, which the certificate does not give")
            results.append(compare(name, raw, figs["claim_values"][name], f"{w}.{spec.written}",
                                   figs["details"].get(f"{name}_detail", ""), normalized_margin_at_least))
        meta = d["meta"]
        unchecked = (["meta.statement"] if meta.get("statement") else []) + (["measured"] if d.get("measured") else [])
        return CheckResult(all(c.holds for c in results), kind, results, figs["public"], figs["notes"],
                           time.perf_counter() - t0, meta.get("statement") or None, unchecked, tol)


def exact_min_margin(network: Mapping[str, Any], params: Mapping[str, np.ndarray], X: np.ndarray,
                     y: Any) -> Fraction:
    """Exact ``min_r q_r`` of float64 ``params`` on float64 data (used by producers to normalise a point)."""
    net = Net(network, "network")
    P = {p: E.from_float64(np.asarray(params[p], dtype=np.float64)) for p in net.pnames}
    Xq = E.from_float64(np.asarray(X, dtype=np.float64))
    ys = read_labels(np.asarray(y), net.shapes[net.output][0], "y")
    return evaluate_point(net, P, Xq, ys, None, [], gradient=False)["min_margin"]
