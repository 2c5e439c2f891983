"""Subgradients at kinks (docs/math.md section 7).

A pre-activation within ``kink_tol`` of 0 (or a max-pooling window whose two
largest entries are within ``kink_tol``) is treated as a kink.  For a margin
row ``r`` the set of chain-rule subgradients is described by *pieces*: the
row's default gradient ``h_r`` (the engine's convention) plus a combination
of piece vectors ``d_j`` with weights ``w_j`` that are linear in ``lambda_r``:

* one elementwise activation node kinked for this row (the common case, and
  the whole story for one hidden layer): ``h_r(s) = h_r + sum_k (s_k - s0_k) d_k``
  is affine in the per-unit derivatives ``s_k in [lo, hi]`` (ReLU ``[0, 1]``,
  leaky ReLU ``[a, 1]``, abs ``[-1, 1]``); with ``t_k = lambda_r (s_k - s0_k)``
  the constraint ``lambda_r lo' <= t_k <= lambda_r hi'`` is linear and the
  dual stays convex ("interval" slots);
* a max-pooling node: the subgradients are the convex hull of routing the
  gradient to each tied entry ("simplex" slot: ``w >= 0``, ``sum w <= lambda_r``);
* kinks of one row in two or more nodes: ``h_r(s)`` is multilinear in the
  selections; its convex hull is spanned by the vertex selections, which are
  enumerated ("simplex" slot over vertices, at most :data:`MAX_VERTICES`).

A piece is ``d = h_r(probe) - h_r`` where the probe changes one derivative by
``+1`` (exact because ``h_r`` is affine in it) or selects a vertex; probes
are computed by :func:`verifier.kkt._backprop.row_gradients` for the kinked
rows only.

When, for every sample carrying a positive multiplier, all kinks that matter
sit in elementwise activations fed by ``input -> dense [-> bias]`` (the first
hidden layer of a dense net, any depth after it; no deeper pre-activation of
the sample at a kink), the pieces describe the Clarke subdifferential exactly
(each unit's pre-activation depends on its own parameter row, so the sign
patterns are independent and the limiting gradients are the vertices of the
box): ``relaxation = "exact"``.  Otherwise the chain rule only gives a
superset: ``relaxation = "chain-rule"``.  The one definition is
:func:`exact_relaxation` (with :func:`exact_structure`); :func:`relaxation`
applies it to a dual solution.

Tolerances: kinks are found relative to each node's per-sample scale
(:func:`verifier.numeric.engine.kinks_from`); :func:`prune` and the piece
test are relative per parameter tensor (:data:`PIECE_RTOL`), so nothing here
changes when the data or a layer's parameters are rescaled.  Every op fact
(kink kind, Clarke interval, tie positions, unit structure) is asked of the op.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..numeric.data import Constraints
from ..numeric.engine import ForwardPass, Kink, backward
from ._backprop import row_gradients
from .errors import KKTError

#: Cap on the vertex selections enumerated for one row with kinks in several nodes.
MAX_VERTICES = 256
#: Cap on the number of floats of materialised piece vectors (pieces x P).
MAX_PIECE_FLOATS = 40_000_000
#: A piece ``h(probe) - h0`` is zero (the selection does not matter) when, in every parameter tensor, its
#: norm is at most this fraction of ``||h(probe)|| + ||h0||`` there (relative per tensor: rescaling the data
#: or any layer's parameters changes nothing).
PIECE_RTOL = 1e-13


@dataclass
class Slot:
    """Linear constraints tying piece weights ``w[cols]`` to ``lambda[row]``."""

    row: int
    kind: str  # "interval" | "simplex"
    cols: list[int]
    lo: float = 0.0  # interval: lo * lambda <= w <= hi * lambda
    hi: float = 0.0
    node: str = ""
    sample: int = 0
    unit: tuple[int, ...] = ()
    s0: float = 0.0  # interval: default derivative
    ends: tuple[float, float] = (0.0, 0.0)  # interval: the derivative interval [lo, hi] itself (absolute, exact)
    choices: list[Any] = field(default_factory=list)  # simplex: what each col selects
    units: list[tuple[str, tuple[int, ...], float]] = field(default_factory=list)  # vertex: (node, unit, s0)


@dataclass
class KinkPieces:
    slots: list[Slot]
    D: np.ndarray  # (K, P) piece vectors
    kinks: list[Kink]  # all kinks found
    piece_nodes: set[str]
    #: per sample, the nodes of its kinks that matter (a selection changes some row's gradient)
    kink_nodes_of_sample: dict[int, set[str]] = field(default_factory=dict)
    #: the kinks kept by :func:`prune` (those a report should count as "kinks that matter")
    relevant: list[Kink] = field(default_factory=list)

    @property
    def K(self) -> int:
        return int(self.D.shape[0])


def _interval(node) -> tuple[float, float]:
    """The Clarke derivative interval ``[lo, hi]`` of an elementwise kinked node (an op fact)."""
    iv = node.impl.clarke_interval(node.attrs)
    if iv is None:  # pragma: no cover - kink_kind "elementwise" implies an interval
        raise KKTError(f"node {node.name!r} ({node.op}): the op declares an elementwise kink but no Clarke interval")
    return float(iv[0]), float(iv[1])


def _ties(fp: ForwardPass, node: str, sample: int, unit: tuple[int, ...], tol: float) -> tuple[list[int], int]:
    nd = fp.net.nodes[node]
    return nd.impl.ties(fp.ctx[node], sample, unit, tol)


def _abs_tol(k: Kink, kink_tol: float) -> float:
    """The absolute tolerance a kink was found with (``kink_tol`` relative to the kink's scale)."""
    return kink_tol * k.scale


def kink_kind(net, node: str) -> str:
    """``"elementwise"`` or ``"maxpool"`` (the op's fact); an error for an op whose kinks are not supported."""
    nd = net.nodes[node]
    kind = nd.impl.kink_kind(nd.attrs)
    if kind in ("elementwise", "maxpool"):
        return kind
    raise KKTError(f"node {node!r} ({nd.op}): kinks of this op are not supported by the KKT check")


def _consumers(net, name: str) -> list[str]:
    return list(net.graph.successors(name))


def exact_structure(net, node: str) -> bool:
    """True when ``node`` is a kinked elementwise activation in the *first hidden layer of a dense net*.

    That is (docs/math.md section 7): ``input -> dense [-> bias] -> node``, where the
    dense op gives each unit its own weight row (``unit_params == "row"``), the
    optional bias its own entry (``"bias"``), and each of them feeds only the
    next node of this chain (so a pre-activation reaches no other kinked op).
    Every op fact is asked of the op; no op names.  Depth after ``node`` is
    unrestricted: see :func:`exact_relaxation` for the per-sample condition.
    """
    nd = net.nodes[node]
    if nd.impl.kink_kind(nd.attrs) != "elementwise" or len(nd.inputs) != 1:
        return False
    cur = net.nodes[nd.inputs[0]]
    nxt = node
    if cur.impl.unit_params(cur.attrs) == "bias":
        if len(cur.inputs) != 1 or _consumers(net, cur.name) != [nxt]:
            return False
        nxt, cur = cur.name, net.nodes[cur.inputs[0]]
    return (cur.impl.unit_params(cur.attrs) == "row" and len(cur.inputs) == 1
            and _consumers(net, cur.name) == [nxt] and cur.inputs[0] == net.input)


def exact_relaxation(net, kink_nodes_of_sample: dict[int, set[str]], samples: Any) -> bool:
    """The one definition of the "exact" relaxation level (docs/math.md section 7).

    The chain-rule subgradients of the margins of ``samples`` (those carrying a
    positive multiplier) are the Clarke subdifferential when, for each of these
    samples, every kink that matters sits in a node with :func:`exact_structure`
    (an elementwise activation fed by ``input -> dense [-> bias]``, any depth
    after it); then no deeper pre-activation of the sample is at a kink.
    ``kink_nodes_of_sample[i]`` lists the nodes of sample ``i``'s kinks that
    matter (after :func:`prune`; the float check, the symbolic layer and the
    certificates all pass the kinks whose selection can change a gradient).
    Samples with no kinks are smooth and do not affect the answer.

    >>> import verifier
    >>> net = verifier.mlp([2, 2, 2, 1])
    >>> exact_relaxation(net, {0: {"act1"}}, [0]), exact_relaxation(net, {0: {"act1", "act2"}}, [0])
    (True, False)
    """
    cache: dict[str, bool] = {}
    for i in samples:
        for node in kink_nodes_of_sample.get(int(i), ()):
            if node not in cache:
                cache[node] = exact_structure(net, node)
            if not cache[node]:
                return False
    return True


def relaxation(net, pieces: "KinkPieces | None", lam: np.ndarray, thr: float = 0.0) -> str:
    """``"none"`` (no kink selection used), ``"exact"`` or ``"chain-rule"`` for multipliers ``lam``.

    The slots with ``lam[row] > thr`` are the kinks that carry a multiplier;
    the verdict is :func:`exact_relaxation` over their samples.
    """
    if pieces is None:
        return "none"
    used = [s for s in pieces.slots if lam[s.row] > thr]
    if not used:
        return "none"
    return "exact" if exact_relaxation(net, pieces.kink_nodes_of_sample, {s.sample for s in used}) else "chain-rule"


def _seed_positions(fp: ForwardPass, ks: list[Kink], kink_tol: float) -> list[list[tuple[int, ...]]]:
    """For each kink (all of one node): positions in the node's input whose gradients decide whether it matters."""
    if not ks:
        return []
    net = fp.net
    node = ks[0].node
    if kink_kind(net, node) == "elementwise":
        return [[k.unit] for k in ks]
    nd = net.nodes[node]
    return nd.impl.tie_groups(fp.ctx[node], nd.attrs, [k.sample for k in ks], [k.unit for k in ks],
                              [_abs_tol(k, kink_tol) for k in ks])


def _ancestors(net) -> dict[str, set[str]]:
    anc: dict[str, set[str]] = {}
    for name in net.order:
        a: set[str] = set()
        for i in net.nodes[name].inputs:
            a |= anc[i] | {i}
        anc[name] = a
    return anc


#: Floats of seed / gradient arrays one batched prune pass may hold.
PRUNE_BATCH_FLOATS = 4_000_000


def _combined_rows(fp: ForwardPass, src: str, rows: list[tuple[int, dict[tuple[int, ...], float]]]) -> np.ndarray:
    """``||sum_p w_p grad_T v_p||`` for each row (a sample and weights ``w`` on positions ``p`` of node ``src``)
    and each parameter tensor ``T`` (columns in :attr:`Network.param_names` order).

    Batched backward passes from seeds at ``src`` (:data:`PRUNE_BATCH_FLOATS`
    floats each); no ``rows x P`` matrix is formed.
    """
    net = fp.net
    col = {p: i for i, p in enumerate(net.param_names)}
    out = np.zeros((len(rows), len(net.param_names)))
    shape = net.shapes[src]
    width = max([int(np.prod(net.shapes[n])) for n in net.order]
                + [int(np.prod(net.param_shapes[p])) for p in net.param_names])
    per_batch = max(1, PRUNE_BATCH_FLOATS // max(width, 1))
    for a in range(0, len(rows), per_batch):
        chunk = rows[a:a + per_batch]
        R = len(chunk)
        seed = np.zeros((R, *shape))
        for r, (_, w) in enumerate(chunk):
            for pos, v in w.items():
                seed[(r,) + tuple(pos)] += v
        cons = Constraints(np.array([s for s, _ in chunk], dtype=np.int64), np.zeros((R, net.num_outputs)),
                           -np.ones(R, dtype=np.int64), int(fp.X.shape[0]))
        sq = np.zeros((R, len(col)))

        def sink(name, node, ctx, g, nps, sq=sq):
            for role, arr in node.impl.param_grads(ctx, g, nps, node.attrs).items():
                a2 = arr.reshape(arr.shape[0], -1)
                sq[:, col[node.params[role]]] += np.einsum("ij,ij->i", a2, a2)

        backward(fp, cons, sink, seeds={src: seed})
        out[a:a + R] = np.sqrt(sq)
    return out


def _matters(fp: ForwardPass, src: str, groups: list[tuple[int, list[tuple[int, ...]]]]) -> np.ndarray:
    """For each group (a sample and positions in node ``src``): can the selection change a gradient?

    One position (an elementwise kink): its gradient in theta is not exactly 0.
    Several (the tied entries of a max-pooling window): their gradients
    ``g_t`` are not all equal.  Group testing, many kinks per backward row:
    the groups of one sample are tested together with random weights ``w``
    (zero-sum within a tie), ``||sum w_t g_t|| <= PIECE_RTOL ||sum |w_t| g_t||``
    for every parameter tensor holds when no group matters (then all are dropped; else the set is
    halved and retested).  A tie whose gradients are equal gives exactly
    ``sum w_t g = 0`` up to rounding, a single non-zero gradient never passes,
    and random weights make an accidental cancellation a null event (the
    generator is seeded: the answer is reproducible).
    """
    rng = np.random.default_rng(20240601)
    out = np.zeros(len(groups), dtype=bool)
    sizes = [len(p) for _, p in groups]
    allw = rng.uniform(0.5, 1.5, size=sum(sizes)) * rng.choice([-1.0, 1.0], size=sum(sizes))
    weights: list[list[float]] = []
    at = 0
    for m in sizes:
        w = allw[at:at + m]
        at += m
        weights.append((w - w.sum() / m if m > 1 else w).tolist())
    by_sample: dict[int, list[int]] = {}
    for gi, (sample, _) in enumerate(groups):
        by_sample.setdefault(sample, []).append(gi)
    pending = [(sample, gis) for sample, gis in by_sample.items()]
    while pending:
        rows: list[tuple[int, dict[tuple[int, ...], float]]] = []
        for sample, gis in pending:
            signed: dict[tuple[int, ...], float] = {}
            absw: dict[tuple[int, ...], float] = {}
            for gi in gis:
                for pos, w in zip(groups[gi][1], weights[gi]):
                    signed[tuple(pos)] = signed.get(tuple(pos), 0.0) + w
                    absw[tuple(pos)] = absw.get(tuple(pos), 0.0) + abs(w)
            rows += [(sample, signed), (sample, absw)]
        norms = _combined_rows(fp, src, rows)
        nxt = []
        for j, (sample, gis) in enumerate(pending):
            lhs, ref = norms[2 * j], norms[2 * j + 1]
            if np.all(lhs <= PIECE_RTOL * ref):  # per parameter tensor: layer rescaling changes nothing
                continue  # no group of this set can change a gradient
            if len(gis) == 1:
                out[gis[0]] = True
            else:
                h = len(gis) // 2
                nxt += [(sample, gis[:h]), (sample, gis[h:])]
        pending = nxt
    return out


def prune(fp: ForwardPass, kinks: list[Kink], kink_tol: float) -> list[Kink]:
    """Drop kinks that cannot matter for any selection (soundly).

    A kinked unit whose *input* does not depend on the parameters (e.g. a
    pre-activation ``W x`` on an all-zero patch: ``d z / d theta = 0``) gives
    the same subgradient for every selection.  The test is made only when no
    other relevant kink of the same sample lies upstream (then the upstream
    Jacobian does not depend on any selection and the default one decides);
    nodes are visited in topological order so pruned kinks do not count.

    The test is scale-free: an elementwise kink is dropped only when every
    component of its input's gradient is exactly 0 in floating point; a tie
    when the tied entries' gradients are equal up to :data:`PIECE_RTOL`
    relative to their norms (:func:`_matters`).  Nothing depends on the scale
    of the data or the parameters.  All kinks of one node are tested
    together, in batched backward passes (:data:`PRUNE_BATCH_FLOATS` floats
    each), not one pass per kink.  (Kinks whose input is constant are not
    even reported: :func:`verifier.numeric.engine.kinks_from`.)
    """
    net = fp.net
    anc = _ancestors(net)
    pos = {n: i for i, n in enumerate(net.order)}
    by_node: dict[str, list[Kink]] = {}
    for k in kinks:
        by_node.setdefault(k.node, []).append(k)
    kept: list[Kink] = []
    relevant_nodes: dict[int, set[str]] = {}
    for node in sorted(by_node, key=pos.__getitem__):
        ks = by_node[node]
        test = [k for k in ks if not (relevant_nodes.get(k.sample, set()) & anc[node])]
        src = net.nodes[node].inputs[0]
        matters = _matters(fp, src, list(zip([k.sample for k in test], _seed_positions(fp, test, kink_tol))))
        drop = {id(k) for k, m in zip(test, matters) if not m}
        for k in ks:
            if id(k) in drop:
                continue  # the unit's input is constant in theta: every selection gives the same gradient
            kept.append(k)
            relevant_nodes.setdefault(k.sample, set()).add(node)
    kept.sort(key=lambda k: (k.sample, pos[k.node]))
    return kept


def build_pieces(fp: ForwardPass, cons: Constraints, kinks: list[Kink], kink_tol: float) -> KinkPieces:
    """Slots and piece vectors for every constraint row whose sample has a (relevant) kink."""
    net = fp.net
    P = net.num_params
    all_kinks = kinks
    kinks = prune(fp, kinks, kink_tol)
    by_sample: dict[int, list[Kink]] = {}
    for k in kinks:
        by_sample.setdefault(k.sample, []).append(k)
    # Default derivative arrays / arg-max per kinked node, gathered per sample on demand.
    probes_sample: list[int] = []
    probes_coef: list[np.ndarray] = []
    # probe -> node -> overrides (kind, where, value): ("deriv", flat unit index, derivative) or
    # ("arg", unit, arg-max index)
    probes_ov: list[dict[str, list[tuple[str, Any, Any]]]] = []
    plan: list[tuple[Slot, list[int]]] = []  # slot and the probe indices of its cols
    base_rows: list[int] = []
    for r in range(cons.m):
        i = int(cons.sample[r])
        ks = by_sample.get(i)
        if not ks:
            continue
        base_rows.append(r)
        nodes = sorted({k.node for k in ks}, key=net.order.index)
        if len(nodes) == 1:
            node = nodes[0]
            kind = kink_kind(net, node)
            for k in ks:
                flat = int(np.ravel_multi_index(k.unit, net.shapes[node]))
                if kind == "elementwise":
                    z = fp.ctx[node]["z"][i].reshape(-1)[flat]
                    s0 = float(net.nodes[node].impl.df(np.array([z]), net.nodes[node].attrs)[0])
                    lo, hi = _interval(net.nodes[node])
                    probes_sample.append(i)
                    probes_coef.append(cons.coef[r])
                    probes_ov.append({node: [("deriv", flat, s0 + 1.0)]})
                    plan.append((Slot(r, "interval", [], lo - s0, hi - s0, node, i, k.unit, s0, (lo, hi)),
                                 [len(probes_ov) - 1]))
                else:
                    ties, arg = _ties(fp, node, i, k.unit, _abs_tol(k, kink_tol))
                    alts = [t for t in ties if t != arg]
                    idx = []
                    for t in alts:
                        probes_sample.append(i)
                        probes_coef.append(cons.coef[r])
                        probes_ov.append({node: [("arg", k.unit, t)]})
                        idx.append(len(probes_ov) - 1)
                    plan.append((Slot(r, "simplex", [], node=node, sample=i, unit=k.unit, choices=alts,
                                      units=[(node, k.unit, float(arg))]), idx))
            continue
        # kinks in several nodes: enumerate the vertex selections of the chain rule
        choice_lists: list[list[tuple[str, Any, Any]]] = []
        units = []
        for k in ks:
            kind = kink_kind(net, k.node)
            if kind == "elementwise":
                flat = int(np.ravel_multi_index(k.unit, net.shapes[k.node]))
                lo, hi = _interval(net.nodes[k.node])
                z = fp.ctx[k.node]["z"][i].reshape(-1)[flat]
                s0 = float(net.nodes[k.node].impl.df(np.array([z]), net.nodes[k.node].attrs)[0])
                choice_lists.append([(k.node, ("deriv", flat), v) for v in (lo, hi)])
                units.append((k.node, k.unit, s0))
            else:
                ties, arg = _ties(fp, k.node, i, k.unit, _abs_tol(k, kink_tol))
                choice_lists.append([(k.node, ("arg", k.unit), t) for t in ties])
                units.append((k.node, k.unit, float(arg)))
        nv = int(np.prod([len(c) for c in choice_lists]))
        if nv > MAX_VERTICES:
            raise KKTError(
                f"sample {i} ({cons.label(r)}) has {len(ks)} kinked units in {len(nodes)} layers "
                f"({', '.join(nodes)}); the chain-rule hull needs {nv} vertex gradients (limit {MAX_VERTICES}); "
                "use a smaller kink_tol, or kink_tol=None to use the default derivatives"
            )
        idx = []
        choices = []
        for combo in itertools.product(*choice_lists):
            ov: dict[str, list[tuple[str, Any, Any]]] = {}
            for node, (kind, where), val in combo:
                ov.setdefault(node, []).append((kind, where, val))
            probes_sample.append(i)
            probes_coef.append(cons.coef[r])
            probes_ov.append(ov)
            idx.append(len(probes_ov) - 1)
            choices.append([val for _, _, val in combo])
        plan.append((Slot(r, "simplex", [], node=",".join(nodes), sample=i, unit=(), choices=choices, units=units), idx))

    npr = len(probes_ov)
    if npr * P > MAX_PIECE_FLOATS:
        raise KKTError(
            f"{len(kinks)} kinks need {npr} subgradient pieces of {P} parameters each "
            f"(> {MAX_PIECE_FLOATS} floats); use a smaller kink_tol, or kink_tol=None"
        )
    base_rows_arr = np.array(base_rows, dtype=np.int64)
    H0 = row_gradients(fp, cons.sample[base_rows_arr], cons.coef[base_rows_arr]) if len(base_rows) else np.zeros((0, P))
    base_of = {r: j for j, r in enumerate(base_rows)}
    D = np.zeros((npr, P))
    for a in range(0, npr, 64):
        chunk = list(range(a, min(npr, a + 64)))
        samp = np.array([probes_sample[j] for j in chunk], dtype=np.int64)
        coef = np.array([probes_coef[j] for j in chunk])
        ov_arrays: dict[str, tuple[str, np.ndarray]] = {}
        nodes_here = sorted({n for j in chunk for n in probes_ov[j]})
        for node in nodes_here:
            nd = net.nodes[node]
            if kink_kind(net, node) == "elementwise":
                z = fp.ctx[node]["z"][samp]
                Dv = nd.impl.df(z, nd.attrs).reshape(len(chunk), -1).copy()
                for jj, j in enumerate(chunk):
                    for kind, flat, val in probes_ov[j].get(node, []):
                        Dv[jj, flat] = val
                ov_arrays[node] = ("deriv", Dv.reshape(z.shape))
            else:
                A = fp.ctx[node]["arg"][samp].copy()
                for jj, j in enumerate(chunk):
                    for kind, unit, val in probes_ov[j].get(node, []):
                        A[(jj,) + tuple(unit)] = val
                ov_arrays[node] = ("arg", A)
        Hp = row_gradients(fp, samp, coef, ov_arrays)
        # the row each probe belongs to
        D[chunk] = Hp
    # subtract the base gradient of each probe's row
    slots: list[Slot] = []
    keep_cols: list[int] = []
    blocks = [net.offsets[p] for p in net.param_names]
    for slot, idx in plan:
        h0 = H0[base_of[slot.row]]
        # per parameter tensor, relative to the gradients subtracted: the piece is zero when every block has
        # ||h(probe)_b - h0_b|| <= PIECE_RTOL (||h(probe)_b|| + ||h0_b||)  (rescaling a layer changes nothing)
        scales = [[np.linalg.norm(D[j, a:b]) + np.linalg.norm(h0[a:b]) for a, b in blocks] for j in idx]
        for j in idx:
            D[j] -= h0
        zero = [all(np.linalg.norm(D[j, a:b]) <= PIECE_RTOL * sc for (a, b), sc in zip(blocks, scs))
                for j, scs in zip(idx, scales)]
        if not idx or all(zero):
            continue  # the selection does not change this row's gradient: not a kink that matters
        slot.cols = list(range(len(keep_cols), len(keep_cols) + len(idx)))
        keep_cols.extend(idx)
        slots.append(slot)
    Dk = D[keep_cols] if keep_cols else np.zeros((0, P))
    nodes_of: dict[int, set[str]] = {}
    for sl in slots:
        nodes_of.setdefault(sl.sample, set()).update(_slot_nodes(sl))
    return KinkPieces(slots, Dk, all_kinks, {s.node for s in slots}, nodes_of, kinks)


def _slot_nodes(slot: Slot) -> set[str]:
    if slot.kind == "interval":
        return {slot.node}
    return {u[0] for u in slot.units}


def slot_constraints(slots: list[Slot], m: int, K: int):
    """Sparse matrix ``A`` with ``A @ [lambda; w] >= 0`` encoding every slot."""
    import scipy.sparse as sps

    rows, cols, vals = [], [], []
    r = 0

    def add(entries):
        nonlocal r
        for c, v in entries:
            rows.append(r)
            cols.append(c)
            vals.append(v)
        r += 1

    for s in slots:
        if s.kind == "interval":
            (c,) = s.cols
            add([(m + c, 1.0), (s.row, -s.lo)])  # w - lo*lambda >= 0
            add([(s.row, s.hi), (m + c, -1.0)])  # hi*lambda - w >= 0
        else:
            for c in s.cols:
                add([(m + c, 1.0)])
            add([(s.row, 1.0)] + [(m + c, -1.0) for c in s.cols])
    return sps.csr_matrix((vals, (rows, cols)), shape=(r, m + K))


def project(slots: list[Slot], lam: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Project solver output ``w`` onto the slot constraints for the (clipped) ``lam``."""
    w = w.copy()
    for s in slots:
        lr = lam[s.row]
        if s.kind == "interval":
            (c,) = s.cols
            w[c] = min(max(w[c], s.lo * lr), s.hi * lr)
        else:
            cs = s.cols
            w[cs] = np.maximum(w[cs], 0.0)
            tot = w[cs].sum()
            if tot > lr:
                w[cs] *= lr / tot if tot > 0 else 0.0
    return w


def selections(slots: list[Slot], lam: np.ndarray, w: np.ndarray, cons: Constraints, thr: float,
               fixed: np.ndarray | None = None) -> list[dict[str, Any]]:
    """Human-readable kink selections ``s = t / lambda`` for rows with ``lambda > thr``.

    With ``fixed`` (the per-column selections of :func:`fixed_selection`, as
    used by the polish step) the selections are read from it instead of
    ``w / lambda``, so that a selection snapped to an interval end is
    reported as exactly that end.
    """
    out: list[dict[str, Any]] = []
    for s in slots:
        lr = float(lam[s.row])
        if lr <= thr:
            continue
        base = {"row": s.row, "constraint": cons.label(s.row), "sample": s.sample}
        if s.kind == "interval":
            if fixed is not None:
                sv = _interval_value(s, float(fixed[s.cols[0]]))
            else:
                sv = _interval_value(s, float(w[s.cols[0]]) / lr)
            out.append({**base, "node": s.node, "unit": list(s.unit), "s": sv, "interval": list(s.ends)})
        elif s.units and len(s.units) == 1 and not isinstance(s.choices[0] if s.choices else None, list):
            # max-pooling window: weight of each tied entry (flat index within the window)
            node, unit, arg = s.units[0]
            frac = {int(c): (float(fixed[col]) if fixed is not None else float(w[col]) / lr)
                    for c, col in zip(s.choices, s.cols)}
            frac[int(arg)] = 1.0 - sum(frac.values())
            out.append({**base, "node": node, "unit": list(unit), "s": frac})
        else:
            # vertex hull over several nodes: report the average derivative per unit
            weights = np.array([float(fixed[c]) if fixed is not None else float(w[c]) / lr for c in s.cols])
            for u, (node, unit, s0) in enumerate(s.units):
                vals = np.array([ch[u] for ch in s.choices], dtype=float)
                out.append({**base, "node": node, "unit": list(unit),
                            "s": float((1.0 - weights.sum()) * s0 + weights @ vals), "hull": True})
    return out


def _interval_value(slot: Slot, f: float) -> float:
    """The absolute derivative ``s0 + f`` of an interval slot, exact at the interval ends."""
    if f == slot.lo:
        return float(slot.ends[0])
    if f == slot.hi:
        return float(slot.ends[1])
    return slot.s0 + f


def fixed_selection(slots: list[Slot], lam: np.ndarray, w: np.ndarray, K: int, *,
                    snap_tol: float = 0.0) -> tuple[np.ndarray, int]:
    """Per-column selections ``F`` read off a dual solution, optionally snapped to the ends.

    The convex dual works with ``t = lambda * selection``; once ``lambda`` is
    known the selections themselves are ``F = w / lambda``:

    * interval column: the offset ``s - s0`` in ``[lo, hi]`` (relative to the
      default derivative); within ``snap_tol * (hi - lo)`` of an end it is
      set to that end exactly;
    * simplex columns (max-pooling ties, vertex hull of several layers): the
      weight of each alternative (the default choice gets ``1 - sum``); the
      weights (default included) below ``snap_tol`` are set to 0 and the rest
      renormalised to sum 1.

    Rows with ``lambda = 0`` get the default selection (``F = 0``).  Every
    ``F`` returned is a valid selection, so ``h_r(F)`` is a subgradient of
    the row's margin (docs/math.md section 7) whatever ``snap_tol`` is.  Returns
    ``(F, number of values snapped)``.

    >>> sl = [Slot(0, "interval", [0], lo=0.0, hi=1.0, s0=0.0, ends=(0.0, 1.0))]
    >>> F, k = fixed_selection(sl, np.array([2.0]), np.array([5e-6]), 1, snap_tol=1e-4)
    >>> F.tolist(), k
    ([0.0], 1)
    >>> fixed_selection(sl, np.array([2.0]), np.array([1.2]), 1, snap_tol=1e-4)[0].tolist()
    [0.6]
    """
    F = np.zeros(K)
    snapped = 0
    for s in slots:
        lr = float(lam[s.row])
        if not lr > 0:
            continue  # default selection (F = 0 is in every slot)
        if s.kind == "interval":
            (c,) = s.cols
            f = min(max(float(w[c]) / lr, s.lo), s.hi)
            width = s.hi - s.lo
            if f != s.lo and f - s.lo <= snap_tol * width:
                f, snapped = s.lo, snapped + 1
            elif f != s.hi and s.hi - f <= snap_tol * width:
                f, snapped = s.hi, snapped + 1
            F[c] = f
        else:
            cs = s.cols
            fr = np.maximum(np.asarray(w[cs], dtype=np.float64) / lr, 0.0)
            tot = fr.sum()
            if tot > 1.0:
                fr = fr / tot
            full = np.concatenate([[max(1.0 - fr.sum(), 0.0)], fr])  # default choice first
            small = (full > 0) & (full < snap_tol)
            if np.any(small):
                snapped += int(small.sum())
                full[small] = 0.0
                full = full / full.sum()
            F[cs] = full[1:]
    return F, snapped


def selection_matrix(slots: list[Slot], F: np.ndarray, m: int, K: int):
    """Sparse ``S`` (m x K), ``S[row, col] = F[col]``: the fixed subgradients are ``[I, S] @ [J; D]``.

    With the selections fixed the piece weights are ``w = S^T lambda``.
    """
    import scipy.sparse as sps

    rows = [s.row for s in slots for _ in s.cols]
    cols = [c for s in slots for c in s.cols]
    return sps.csr_matrix((F[cols], (rows, cols)), shape=(m, K))
