"""Embedding maps ``T: R^P -> R^P~`` of a network into a wider one (docs/math.md section 10).

Neuron splitting (dense layers) and channel splitting (convolutions) are
built by *network surgery*: the wide network is the narrow one's node list
with one more output unit (or several) at the split node, and ``T`` is
assembled tensor by tensor in the flat parameter order (:attr:`Network.offsets`),
so every row of ``T`` copies one narrow parameter times an exact coefficient
(or is zero for :func:`add_zero_neuron`).

Placement: copy 1 of the split unit ``j`` keeps index ``j``; copies 2..m are
appended after the existing units (indices ``n, n+1, ...``), so every other
unit keeps its index and splits compose predictably.

>>> import verifier, numpy as np
>>> net = verifier.mlp([2, 3, 1])
>>> emb = verifier.neuron_split(net, net.init_params(0), layer=1, neuron=1, ratios=["3/5", "4/5"])
>>> emb.wide_net.param_shapes["W1"], emb.T.shape
((4, 2), (12, 9))
>>> emb.T_exact[emb.net.offsets["W1"][0] + 2, 2]     # W1[1, 0] -> its copy 1 (row 1)
3/5
>>> X = np.random.default_rng(0).normal(size=(5, 2))
>>> bool(np.allclose(verifier.forward(emb.wide_net, emb.wide_params, X), verifier.forward(net, emb.params, X)))
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, Mapping, Sequence

import numpy as np
import scipy.sparse as sps
import sympy as sp

from ..graph import Network
from .ratios import EmbeddingError, fmt, fmt_tuple, is_zero, parse_ratio, parse_ratios



def _role(net: Network, name: str) -> str | None:
    """How a split unit passes through node ``name`` (the op's fact, :meth:`verifier.ops.Op.split_role`)."""
    nd = net.nodes[name]
    return nd.impl.split_role(nd.attrs)


def power_explanation(k: Any) -> str:
    """Why a power activation ``z^k`` (``k >= 2``) admits no isometric split."""
    return (f"no non-trivial isometric output-preserving split exists for z^k, k >= 2 (here k = {k}: "
            f"sum b_k a_k^{k} = 1 with sum a_k^2 = sum b_k^2 = 1 forces one copy to take everything); "
            "use add_zero_neuron")


# ---------------------------------------------------------------------------
# the Embedding object
# ---------------------------------------------------------------------------
class Embedding:
    """A linear map ``T`` (``P~ x P``) from ``net``'s parameters to ``wide_net``'s.

    Build one with :func:`neuron_split`, :func:`channel_split`,
    :func:`add_zero_neuron`, or directly from a user-supplied map:
    ``Embedding(net, wide_net, T)`` where ``T`` is a scipy sparse matrix, a
    numpy array, a sympy matrix or nested lists (strings like ``"3/5"``
    allowed) of shape ``(wide_net.num_params, net.num_params)``.  Float
    entries are taken as the exact dyadic rationals they are.

    Attributes: ``net``, ``wide_net``, ``T`` (``scipy.sparse.csr_matrix``),
    ``T_exact`` (``sympy.SparseMatrix``), ``params`` / ``wide_params`` (when
    narrow parameters were given), ``description``, ``kind``, ``info`` (split
    node, unit, copies, ratios) and ``warnings`` (why the map is expected to
    break a condition; empty for a sound embedding).

    >>> import verifier
    >>> net = verifier.mlp([1, 1, 1], activation="identity")
    >>> wide = verifier.mlp([1, 2, 1], activation="identity")
    >>> emb = Embedding(net, wide, [["3/5", 0], ["4/5", 0], [0, "3/5"], [0, "4/5"]])
    >>> emb.apply({"W1": [[1.0]], "W2": [[2.0]]})["W2"].tolist()
    [[1.2, 1.6]]
    >>> Embedding(net, wide, [[1, 0]])
    Traceback (most recent call last):
    ...
    verifier.errors.EmbeddingError: map T has shape (1, 2), expected (P~, P) = (4, 2): one row per parameter of the wide network, one column per parameter of the narrow network
    """

    def __init__(self, net: Network, wide_net: Network, T: Any, *, params: Any = None,
                 description: str | None = None):
        _check_network(net, "net")
        _check_network(wide_net, "wide_net")
        rows, cols, vals = _entries_from_user_map(T, (wide_net.num_params, net.num_params))
        self._setup(net, wide_net, rows, cols, vals, params=params, kind="user",
                    description=description or f"user-supplied map ({wide_net.num_params} x {net.num_params})",
                    info={}, warnings=[])

    # -- construction helpers -------------------------------------------------
    @classmethod
    def _make(cls, net, wide_net, rows, cols, vals, *, params, kind, description, info, warnings) -> "Embedding":
        self = cls.__new__(cls)
        self._setup(net, wide_net, rows, cols, vals, params=params, kind=kind, description=description,
                    info=info, warnings=warnings)
        return self

    def _setup(self, net, wide_net, rows, cols, vals, *, params, kind, description, info, warnings) -> None:
        self.net = net
        self.wide_net = wide_net
        self.kind = kind
        self.description = description
        self.info: dict[str, Any] = info
        self.warnings: list[str] = list(warnings)
        self._rows = np.asarray(rows, dtype=np.int64)
        self._cols = np.asarray(cols, dtype=np.int64)
        self._vals: list[sp.Expr] = list(vals)
        data = np.array([float(v) for v in self._vals], dtype=np.float64)
        self.T = sps.csr_matrix((data, (self._rows, self._cols)), shape=(wide_net.num_params, net.num_params))
        self._T_exact: sp.SparseMatrix | None = None
        self.params = None if params is None else net.check_params(params)
        self.wide_params = None if self.params is None else self.apply(self.params)

    # -- facts ------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return (self.wide_net.num_params, self.net.num_params)

    @property
    def T_exact(self) -> sp.SparseMatrix:
        """``T`` with exact sympy entries (Rationals, or radicals such as ``sqrt(2)/2``)."""
        if self._T_exact is None:
            self._T_exact = sp.SparseMatrix(*self.shape, {(int(r), int(c)): v for r, c, v in self.entries()})
        return self._T_exact

    def entries(self) -> list[tuple[int, int, sp.Expr]]:
        """The nonzero entries ``(row, col, exact value)``."""
        return list(zip(self._rows.tolist(), self._cols.tolist(), self._vals))

    @property
    def is_rational(self) -> bool:
        """True when every entry of ``T`` is a rational number (exact checks use Fractions)."""
        return all(v.is_Rational for v in self._vals)

    @property
    def flagged(self) -> bool:
        """True when the map is known to break a condition (see :attr:`warnings`)."""
        return bool(self.warnings)

    def wide_name(self, row: int) -> str:
        """``"W1[3, 0]"``: the wide parameter entry of flat index ``row``."""
        return _entry_name(self.wide_net, row)

    def narrow_name(self, col: int) -> str:
        return _entry_name(self.net, col)

    # -- the map ------------------------------------------------------------------
    def apply(self, theta: Any) -> Any:
        """``T theta``: a dict of narrow tensors gives a dict of wide tensors; a flat ``(P,)``
        vector gives ``(P~,)``; a stack ``(k, P)`` of points gives ``(k, P~)``."""
        if isinstance(theta, Mapping):
            flat = self.net.flatten(self.net.check_params(theta))
            return self.wide_net.unflatten(self.T @ flat)
        try:
            a = np.asarray(theta, dtype=np.float64)
        except (TypeError, ValueError):
            raise EmbeddingError("apply: theta is not numeric; give a dict of tensors or a flat vector") from None
        P = self.net.num_params
        if a.ndim == 1 and a.shape[0] == P:
            return self.T @ a
        if a.ndim == 2 and a.shape[1] == P:
            return np.asarray((self.T @ a.T).T)
        raise EmbeddingError(
            f"apply: theta has shape {a.shape}, expected ({P},) or (k, {P}) for the narrow parameters "
            f"{self.net.param_names}"
        )

    def then(self, other: "Embedding") -> "Embedding":
        """The composition ``other.T @ self.T`` (first ``self``, then ``other``), exact."""
        return compose(self, other)

    def __matmul__(self, other: "Embedding") -> "Embedding":
        """``b @ a`` is ``a`` followed by ``b`` (the matrix product ``T_b T_a``)."""
        if not isinstance(other, Embedding):
            return NotImplemented
        return compose(other, self)

    def __repr__(self) -> str:
        flag = f", {len(self.warnings)} warning(s)" if self.warnings else ""
        return f"Embedding({self.description}; T {self.shape[0]}x{self.shape[1]}, nnz={self.T.nnz}{flag})"


def _check_network(net: Any, what: str) -> None:
    if not isinstance(net, Network):
        raise EmbeddingError(f"{what} must be a verifier.Network, got {type(net).__name__}")


def _entry_name(net: Network, i: int) -> str:
    for p, (a, b) in net.offsets.items():
        if a <= i < b:
            idx = np.unravel_index(i - a, net.param_shapes[p])
            return f"{p}[{', '.join(str(int(v)) for v in idx)}]"
    raise IndexError(i)  # pragma: no cover


def _exact_number(v: Any, where: str) -> sp.Expr:
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if not np.isfinite(f):
            raise EmbeddingError(f"map T: entry {where} is {f}; entries must be finite")
        return sp.Rational(Fraction(f).numerator, Fraction(f).denominator)
    if isinstance(v, (np.integer,)):
        return sp.Integer(int(v))
    try:
        return parse_ratio(v, where=f"map T entry {where}")
    except EmbeddingError:
        raise EmbeddingError(f"map T: entry {where} = {v!r} is not a finite real number") from None


def _entries_from_user_map(T: Any, shape: tuple[int, int]) -> tuple[list[int], list[int], list[sp.Expr]]:
    rows: list[int] = []
    cols: list[int] = []
    vals: list[sp.Expr] = []
    if sps.issparse(T):
        got = T.shape
        if got != shape:
            raise _shape_error(got, shape)
        coo = sps.coo_matrix(T)
        for r, c, v in zip(coo.row.tolist(), coo.col.tolist(), coo.data.tolist()):
            e = _exact_number(v, f"({r}, {c})")
            if e != 0:
                rows.append(r)
                cols.append(c)
                vals.append(e)
        return rows, cols, vals
    if isinstance(T, sp.MatrixBase):
        if T.shape != shape:
            raise _shape_error(T.shape, shape)
        items = T.todok().items() if hasattr(T, "todok") else ((k, T[k]) for k in np.ndindex(T.shape))
        for (r, c), v in sorted(items):
            e = _exact_number(v, f"({r}, {c})")
            if e != 0:
                rows.append(int(r))
                cols.append(int(c))
                vals.append(e)
        return rows, cols, vals
    try:
        arr = np.array(T, dtype=object)
    except (TypeError, ValueError):
        raise EmbeddingError("map T must be a matrix (scipy sparse, numpy array, sympy Matrix or nested lists)") from None
    if arr.ndim != 2:
        raise EmbeddingError(f"map T must be 2-dimensional, got an array of shape {arr.shape}; "
                             f"expected (P~, P) = {shape}")
    if arr.shape != shape:
        raise _shape_error(arr.shape, shape)
    for (r, c), v in np.ndenumerate(arr):
        e = _exact_number(v, f"({r}, {c})")
        if e != 0:
            rows.append(r)
            cols.append(c)
            vals.append(e)
    return rows, cols, vals


def _shape_error(got: tuple[int, ...], want: tuple[int, int]) -> EmbeddingError:
    return EmbeddingError(
        f"map T has shape {tuple(got)}, expected (P~, P) = {want}: one row per parameter of the wide network, "
        "one column per parameter of the narrow network"
    )


# ---------------------------------------------------------------------------
# composition
# ---------------------------------------------------------------------------
def compose(*embeddings: Embedding) -> Embedding:
    """``T_k ... T_2 T_1`` for embeddings applied in the given order (exact arithmetic).

    Each embedding's ``net`` must be the previous one's ``wide_net`` (same nodes).
    """
    if not embeddings:
        raise EmbeddingError("compose: give at least one embedding")
    for i, e in enumerate(embeddings):
        if not isinstance(e, Embedding):
            raise EmbeddingError(f"compose: argument {i} is a {type(e).__name__}, not an Embedding")
    out = embeddings[0]
    for i, nxt in enumerate(embeddings[1:], 1):
        if nxt.net.to_dict()["nodes"] != out.wide_net.to_dict()["nodes"]:
            raise EmbeddingError(
                f"compose: embedding {i} starts from a network that is not the wide network of embedding {i - 1} "
                f"(parameters {nxt.net.param_shapes} vs {out.wide_net.param_shapes})"
            )
        by_row: dict[int, list[tuple[int, sp.Expr]]] = {}
        for r, c, v in out.entries():
            by_row.setdefault(r, []).append((c, v))
        acc: dict[tuple[int, int], sp.Expr] = {}
        for r, k, w in nxt.entries():
            for c, v in by_row.get(k, ()):
                acc[(r, c)] = acc.get((r, c), sp.Integer(0)) + w * v
        acc = {rc: sp.nsimplify(v) if v.has(sp.Float) else v for rc, v in acc.items()}
        keys = sorted(k for k, v in acc.items() if v != 0)
        info = {"steps": [*out.info.get("steps", [out.info]), *nxt.info.get("steps", [nxt.info])]}
        out = Embedding._make(
            out.net, nxt.wide_net, [k[0] for k in keys], [k[1] for k in keys], [acc[k] for k in keys],
            params=out.params, kind="composed", description=f"{out.description}; then {nxt.description}",
            info=info, warnings=[*out.warnings, *nxt.warnings],
        )
    return out


# ---------------------------------------------------------------------------
# network surgery
# ---------------------------------------------------------------------------
@dataclass
class _Tensor:
    """A wide tensor under construction: narrow flat index (-1: zero) and coefficient id per entry."""

    idx: np.ndarray
    cid: np.ndarray


@dataclass
class _Path:
    """What reads a split unit: tensors to grow along an axis, with a block size."""

    producer: str
    kind: str  # "dense" | "conv2d"
    units: int
    biases: list[tuple[str, str, int, Any]] = field(default_factory=list)  # (node, tensor, block, exponent so far)
    consumers: list[tuple[str, str, int, Any]] = field(default_factory=list)  # (node, tensor, block, exponent)
    activations: list[tuple[str, str, Any]] = field(default_factory=list)  # (node, op spec, exponent)


def _weight_layers(net: Network) -> list[str]:
    return [n for n in net.order if _role(net, n) == "reader"]


def _locate(net: Network, layer: Any, want: str, fn: str) -> str:
    layers = _weight_layers(net)
    if not layers:
        raise EmbeddingError(f"{fn}: the network has no dense or conv2d layer to split")
    hidden = [n for n in layers if not _feeds_output_directly(net, n)]
    listing = ", ".join(f"{i} ({n!r}, {net.nodes[n].op})" for i, n in enumerate(layers, 1))
    if isinstance(layer, str):
        if layer not in layers:
            raise EmbeddingError(f"{fn}: layer={layer!r} is not a dense/conv2d node; layers are {listing}")
        name = layer
        num = layers.index(layer) + 1
    else:
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
            raise EmbeddingError(f"{fn}: layer={layer!r} must be an integer (hidden layers count from 1) or a node name")
        num = int(layer)
        if not 1 <= num <= len(layers):
            raise EmbeddingError(
                f"{fn}: layer={num} is out of range; hidden layers are 1..{len(hidden)} (weight layers: {listing})"
            )
        name = layers[num - 1]
    if name not in hidden:
        raise EmbeddingError(
            f"{fn}: layer {num} ({name!r}) is the output layer, its units are the network outputs; "
            f"split a hidden layer 1..{len(hidden)} instead"
        )
    op = net.nodes[name].op
    if op != want:
        other = "channel_split" if op == "conv2d" else "neuron_split"
        what = "a convolution" if op == "conv2d" else "a dense layer"
        raise EmbeddingError(f"{fn}: layer {num} ({name!r}) is {what}; use {other} for it")
    return name


def _feeds_output_directly(net: Network, node: str) -> bool:
    """True when no dense/conv2d layer lies between ``node`` and the output."""
    stack = list(net.graph.successors(node))
    seen = set()
    while stack:
        s = stack.pop()
        if s in seen:
            continue
        seen.add(s)
        if _role(net, s) == "reader":
            continue
        if net.nodes[s].op == "output":
            return True
        stack.extend(net.graph.successors(s))
    return False


def _trace(net: Network, producer: str, fn: str) -> _Path:
    """Follow the units of ``producer`` to the layers that read them, asking each op how a unit passes."""
    node = net.nodes[producer]
    units = node.impl.split_units(node.attrs)
    path = _Path(producer, node.op, units)
    block0 = 1 if len(net.shapes[producer]) == 1 else None  # a flat unit is one feature; else a channel
    stack: list[tuple[str, int | None, Any]] = [(producer, block0, sp.Integer(1))]
    while stack:
        cur, block, p = stack.pop()
        for s in sorted(net.graph.successors(cur)):
            sn = net.nodes[s]
            role = sn.impl.split_role(sn.attrs)
            if role == "reader":
                path.consumers.append((s, sn.params["weight"], sn.impl.split_reader_block(block), p))
            elif role == "grow":
                path.biases.append((s, sn.params["bias"], 1 if block is None else block, p))
                stack.append((s, block, p))
            elif role == "elementwise":
                e = sn.impl.scaling_exponent(sn.attrs)
                spec = sn.op + (f":{sn.attrs['k']}" if "k" in sn.attrs else "")
                path.activations.append((s, spec, e))
                stack.append((s, block, None if (e is None or p is None) else p * e))
            elif role in ("pool", "reshape"):
                stack.append((s, sn.impl.split_block(net.shapes[cur], block), p))
            else:
                raise EmbeddingError(
                    f"{fn}: cannot split a unit of {producer!r} through node {s!r} ({sn.op}); between a split unit "
                    f"and the next layer only bias, elementwise activations, pooling and flatten are supported"
                    + (" (an add node would need the other summand split too)" if sn.op == "add" else "")
                )
    if not path.consumers:  # pragma: no cover - excluded by _locate
        raise EmbeddingError(f"{fn}: no layer reads the units of {producer!r}")
    return path


def _grow(t: _Tensor, axis: int, block: int, unit: int, new_cids: Sequence[int] | None, zeros: int = 0) -> _Tensor:
    """Scale unit ``unit``'s slice by ``new_cids[0]`` and append copies (or ``zeros`` zero slices)."""
    sl: list[Any] = [slice(None)] * t.idx.ndim
    sl[axis] = slice(unit * block, (unit + 1) * block)
    key = tuple(sl)
    idx_parts, cid_parts = [t.idx], [t.cid.copy()]
    blk = t.idx[key]
    if new_cids is not None:
        cid_parts[0][key] = new_cids[0]
        for c in new_cids[1:]:
            idx_parts.append(blk.copy())
            cid_parts.append(np.full(blk.shape, c, dtype=np.int64))
    for _ in range(zeros):
        idx_parts.append(np.full(blk.shape, -1, dtype=np.int64))
        cid_parts.append(np.zeros(blk.shape, dtype=np.int64))
    return _Tensor(np.concatenate(idx_parts, axis=axis), np.concatenate(cid_parts, axis=axis))


def _surgery(net: Network, path: _Path, unit: int, in_cids: Sequence[int] | None, out_cids: Sequence[int] | None,
             bias_cids: Mapping[str, Sequence[int]] | None, zeros: int, table: list[sp.Expr], params: Any,
             *, kind: str, description: str, info: dict, warnings: list[str]) -> Embedding:
    added = zeros if in_cids is None else len(in_cids) - 1
    d = net.to_dict()
    d.pop("parameters", None)
    for nd in d["nodes"]:
        if nd["name"] == path.producer:
            nd["attrs"] = net.nodes[path.producer].impl.widen(dict(nd["attrs"]), path.units + added)
    wide = Network.from_dict(d, source="wide network")
    tensors: dict[str, _Tensor] = {}
    for p in net.param_names:
        a, b = net.offsets[p]
        tensors[p] = _Tensor(np.arange(a, b, dtype=np.int64).reshape(net.param_shapes[p]),
                             np.zeros(net.param_shapes[p], dtype=np.int64))
    w_in = net.nodes[path.producer].params["weight"]
    tensors[w_in] = _grow(tensors[w_in], 0, 1, unit, in_cids, zeros)
    for _node, tname, block, _p in path.biases:
        tensors[tname] = _grow(tensors[tname], 0, block, unit, None if bias_cids is None else bias_cids[tname], zeros)
    for _node, tname, block, _p in path.consumers:
        tensors[tname] = _grow(tensors[tname], 1, block, unit, out_cids, zeros)
    rows: list[int] = []
    cols: list[int] = []
    vals: list[sp.Expr] = []
    for p in wide.param_names:
        t = tensors[p]
        if t.idx.shape != wide.param_shapes[p]:  # pragma: no cover - internal consistency
            raise AssertionError(f"surgery produced {p} of shape {t.idx.shape}, wide net wants {wide.param_shapes[p]}")
        a, _ = wide.offsets[p]
        flat_idx, flat_cid = t.idx.ravel(), t.cid.ravel()
        keep = np.flatnonzero(flat_idx >= 0)
        rows.extend((a + keep).tolist())
        cols.extend(flat_idx[keep].tolist())
        vals.extend(table[c] for c in flat_cid[keep].tolist())
    return Embedding._make(net, wide, rows, cols, vals, params=params, kind=kind, description=description,
                           info=info, warnings=warnings)


# ---------------------------------------------------------------------------
# public constructors
# ---------------------------------------------------------------------------
def _check_unit(net: Network, path: _Path, unit: Any, what: str, fn: str) -> int:
    if isinstance(unit, bool) or not isinstance(unit, (int, np.integer)):
        raise EmbeddingError(f"{fn}: {what}={unit!r} must be an integer index 0..{path.units - 1}")
    u = int(unit)
    if not 0 <= u < path.units:
        raise EmbeddingError(
            f"{fn}: {what}={u} is out of range; layer {path.producer!r} has {path.units} "
            f"{what}s, valid indices 0..{path.units - 1}"
        )
    return u


def _split(net: Network, params: Any, layer: Any, unit: Any, ratios: Any, in_ratios: Any, out_ratios: Any,
           strict: bool, *, want: str, what: str, fn: str) -> Embedding:
    _check_network(net, "net")
    producer = _locate(net, layer, want, fn)
    path = _trace(net, producer, fn)
    u = _check_unit(net, path, unit, what, fn)
    layer_num = _weight_layers(net).index(producer) + 1
    if ratios is not None and (in_ratios is not None or out_ratios is not None):
        raise EmbeddingError(f"{fn}: give either ratios (isometric split) or in_ratios and out_ratios "
                             "(output-preserving rescale), not both")
    if ratios is None and (in_ratios is None or out_ratios is None):
        raise EmbeddingError(f"{fn}: give ratios=[...] (positive, sum of squares 1, e.g. ['3/5', '4/5']) "
                             "or both in_ratios and out_ratios")
    warnings: list[str] = []
    if ratios is not None:
        a = b = parse_ratios(ratios, where=f"{fn}: ratios")
        mode = "split"
    else:
        a = parse_ratios(in_ratios, where=f"{fn}: in_ratios")
        b = parse_ratios(out_ratios, where=f"{fn}: out_ratios")
        if len(a) != len(b):
            raise EmbeddingError(f"{fn}: in_ratios has {len(a)} entries and out_ratios {len(b)}; "
                                 "give one incoming and one outgoing ratio per copy")
        mode = "rescale"
    m = len(a)
    sum_a2 = sp.nsimplify(sum(x ** 2 for x in a)) if any(x.has(sp.Float) for x in a) else sp.expand(sum(x ** 2 for x in a))
    sum_b2 = sp.expand(sum(x ** 2 for x in b))
    iso_a, iso_b = is_zero(sum_a2 - 1), is_zero(sum_b2 - 1)
    # activations between the unit and each reader
    bad_acts = [(n, s, e) for n, s, e in path.activations if e != 1]
    exps = {c[3] for c in path.consumers}
    sums: list[tuple[Any, sp.Expr, bool]] = []
    for p in sorted(exps, key=lambda e: (e is None, e if e is not None else 0)):
        if p is None:
            sums.append((None, sp.nan, False))
            continue
        s = sp.expand(sum(bk * ak ** int(p) for ak, bk in zip(a, b)))
        sums.append((p, s, is_zero(s - 1)))
    if mode == "split":
        if not iso_a:
            msg = (f"ratios {fmt_tuple(a)}: sum alpha_k^2 = {fmt(sum_a2)} != 1, so T is not an isometry "
                   "(norms and KKT points are not preserved) and the copies add up to "
                   f"{fmt(sum_a2)} times the old unit")
            if strict:
                raise EmbeddingError(f"{fn}: {msg}; give ratios whose squares sum to 1 such as ('3/5', '4/5') or "
                                     "('1/3', '2/3', '2/3'), use in_ratios/out_ratios for an output-preserving "
                                     "rescale, or strict=False (CLI: --no-strict) to build it anyway")
            warnings.append(msg)
    else:
        for p, s, ok in sums:
            if p is not None and not ok:
                msg = (f"in_ratios {fmt_tuple(a)}, out_ratios {fmt_tuple(b)}: sum b_k a_k"
                       f"{'' if p == 1 else '^' + str(p)} = {fmt(s)} != 1, so the copies do not add up to the old "
                       "unit (function not preserved)")
                if strict:
                    raise EmbeddingError(f"{fn}: {msg}; choose ratios with sum b_k a_k{'' if p == 1 else '^' + str(p)}"
                                         " = 1, or strict=False (CLI: --no-strict) to build it anyway")
                warnings.append(msg)
        if not (iso_a and iso_b and all(x == y for x, y in zip(a, b))):
            note = (f"output-preserving rescale, not an isometry: sum a_k^2 = {fmt(sum_a2)}, sum b_k^2 = "
                    f"{fmt(sum_b2)}" + ("" if iso_a and iso_b else " (must both be 1)")
                    + ("" if all(x == y for x, y in zip(a, b)) else "; and a_k != b_k, so gradients are not intertwined")
                    + ": norms, KKT points and trajectories are not preserved in general")
            warnings.append(note)
    for n, s, e in bad_acts:
        if e is None:
            warnings.append(f"activation {n!r} ({s}) is not positively homogeneous: sigma(a z) != a sigma(z), so no "
                            "split preserves the function in general; use add_zero_neuron")
        elif mode == "split":
            k = int(e)
            val = sp.expand(sum(x ** (k + 1) for x in a))
            warnings.append(f"activation {n!r} ({s}) scales as z^{k}: the copies add up to sum alpha_k^{k + 1} = "
                            f"{fmt(val)} times the old unit; " + power_explanation(k))
    # coefficient table: 0 -> 1, then a_k, b_k, and the bias powers
    table: list[sp.Expr] = [sp.Integer(1)]

    def add(v: sp.Expr) -> int:
        table.append(v)
        return len(table) - 1

    in_cids = [add(x) for x in a]
    out_cids = [add(x) for x in b]
    bias_cids: dict[str, list[int]] = {}
    for _n, tname, _blk, p in path.biases:
        q = 1 if p is None else int(p)
        bias_cids[tname] = in_cids if q == 1 else [add(sp.expand(x ** q)) for x in a]
    node = net.nodes[producer]
    copies = [u] + list(range(path.units, path.units + m - 1))
    unit_word = "neuron" if want == "dense" else "channel"
    if mode == "split":
        desc = (f"{unit_word} {u} of layer {layer_num} ({producer!r}) split into {m} with ratios {fmt_tuple(a)}; "
                f"copies at {copies}")
    else:
        desc = (f"{unit_word} {u} of layer {layer_num} ({producer!r}) rescaled into {m} with in_ratios {fmt_tuple(a)}"
                f", out_ratios {fmt_tuple(b)}; copies at {copies}")
    info = {
        "kind": f"{unit_word}_{mode}", "layer": layer_num, "node": producer, "op": node.op, unit_word: u,
        "unit": u, "copies": copies, "in_ratios": a, "out_ratios": b, "sum_in_sq": sum_a2, "sum_out_sq": sum_b2,
        "exponents": [p for p, _s, _ok in sums], "output_sums": [s for _p, s, _ok in sums],
        "activations": [(n, s) for n, s, _e in path.activations],
        "readers": [c[0] for c in path.consumers],
    }
    return _surgery(net, path, u, in_cids, out_cids, bias_cids, 0, table, params,
                    kind=f"{unit_word}_{mode}", description=desc, info=info, warnings=warnings)


def neuron_split(net: Network, params: Any = None, layer: int | str = 1, neuron: int = 0, ratios: Any = None, *,
                 in_ratios: Any = None, out_ratios: Any = None, strict: bool = True) -> Embedding:
    """Split hidden neuron ``neuron`` (0-based) of dense layer ``layer`` (hidden layers count from 1).

    Copy ``k`` gets incoming row ``alpha_k W_l[j, :]`` (and bias ``alpha_k b_l[j]``) and outgoing column
    ``alpha_k W_{l+1}[:, j]``.  ``ratios`` must be positive with ``sum alpha_k^2 = 1`` exactly (strings
    like ``"3/5"`` or ``"1/sqrt(2)"`` are exact); otherwise an :class:`EmbeddingError` is raised unless
    ``strict=False``, which builds the map and lists the broken condition in ``emb.warnings``.

    ``in_ratios=a, out_ratios=b`` instead build the output-preserving rescale ``a_k W_l[j, :]`` /
    ``b_k W_{l+1}[:, j]`` (needs ``sum b_k a_k = 1``; ``sum b_k a_k^k = 1`` after ``z^k``): the function
    is kept, the isometry (hence KKT, trajectories) in general is not.

    After a power activation ``z^k`` (``k >= 2``) no isometric split preserves the function: the map is
    built (so :func:`check_embedding` can show the failure) and flagged in ``emb.warnings``.

    >>> import verifier
    >>> net = verifier.mlp([2, 4, 4, 1])
    >>> emb = neuron_split(net, net.init_params(1), layer=2, neuron=0, ratios=["1/3", "2/3", "2/3"])
    >>> emb.wide_net.param_shapes["W2"], emb.wide_net.param_shapes["W3"], emb.info["copies"]
    ((6, 4), (1, 6), [0, 4, 5])
    >>> neuron_split(net, None, layer=1, neuron=4, ratios=["3/5", "4/5"])
    Traceback (most recent call last):
    ...
    verifier.errors.EmbeddingError: neuron_split: neuron=4 is out of range; layer 'fc1' has 4 neurons, valid indices 0..3
    """
    return _split(net, params, layer, neuron, ratios, in_ratios, out_ratios, strict,
                  want="dense", what="neuron", fn="neuron_split")


def channel_split(net: Network, params: Any = None, layer: int | str = 1, channel: int = 0, ratios: Any = None, *,
                  in_ratios: Any = None, out_ratios: Any = None, strict: bool = True) -> Embedding:
    """Split output channel ``channel`` of convolution layer ``layer`` (see :func:`neuron_split`).

    Copy ``k`` gets the filter ``alpha_k W_l[c]`` and the next layer's input slice ``alpha_k W_{l+1}[:, c]``;
    when the next layer is dense after pooling and flatten, the slice is the block of flattened
    columns belonging to channel ``c``.

    >>> import verifier
    >>> net = verifier.cnn((1, 4, 4), channels=[2], pool="max")
    >>> emb = channel_split(net, None, layer=1, channel=1, ratios="3/5,4/5")
    >>> emb.wide_net.param_shapes["W1"], emb.wide_net.param_shapes["W2"]
    ((3, 1, 3, 3), (1, 12))
    """
    return _split(net, params, layer, channel, ratios, in_ratios, out_ratios, strict,
                  want="conv2d", what="channel", fn="channel_split")


def add_zero_neuron(net: Network, params: Any = None, layer: int | str = 1, count: int = 1) -> Embedding:
    """The trivial embedding: ``count`` new units in ``layer`` (dense or conv) with zero in- and out-weights.

    Works for every activation (also ``z^k``): the new units contribute ``0 * sigma(0) = 0``.

    >>> import verifier
    >>> net = verifier.mlp([2, 3, 1], activation="power:2")
    >>> emb = add_zero_neuron(net, net.init_params(0), layer=1, count=2)
    >>> emb.wide_net.param_shapes["W1"], emb.T.nnz == net.num_params
    ((5, 2), True)
    """
    fn = "add_zero_neuron"
    _check_network(net, "net")
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 1:
        raise EmbeddingError(f"{fn}: count={count!r} must be a positive integer")
    layers = _weight_layers(net)
    producer = _locate(net, layer, _op_of(net, layer), fn)
    path = _trace(net, producer, fn)
    layer_num = layers.index(producer) + 1
    word = "neuron" if path.kind == "dense" else "channel"
    new = list(range(path.units, path.units + int(count)))
    desc = f"{count} zero {word}(s) added to layer {layer_num} ({producer!r}) at {new}"
    info = {"kind": "zero", "layer": layer_num, "node": producer, "op": path.kind, "count": int(count), "new": new,
            "readers": [c[0] for c in path.consumers], "activations": [(n, s) for n, s, _e in path.activations]}
    return _surgery(net, path, 0, None, None, None, int(count), [sp.Integer(1)], params,
                    kind="zero", description=desc, info=info, warnings=[])


def _op_of(net: Network, layer: Any) -> str:
    layers = _weight_layers(net)
    if isinstance(layer, str) and layer in layers:
        return net.nodes[layer].op
    if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool) and 1 <= int(layer) <= len(layers):
        return net.nodes[layers[int(layer) - 1]].op
    return "dense"  # _locate produces the range error
