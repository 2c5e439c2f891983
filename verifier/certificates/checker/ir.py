"""The checker's own reading of a network dictionary: a small IR (nodes in topological order, shapes, degree).

Everything op-specific is asked of the rule table (:mod:`.rules`); this module
only walks the graph.

>>> net = Net({"version": 1, "nodes": [{"name": "x", "op": "input", "attrs": {"shape": [2]}},
...                      {"name": "fc", "op": "dense", "inputs": ["x"], "params": {"weight": "W"},
...                       "attrs": {"out_features": 1}},
...                      {"name": "out", "op": "output", "inputs": ["fc"]}]}, "network")
>>> net.order, net.pshapes, net.degree()
(['x', 'fc', 'out'], {'W': (1, 2)}, (Fraction(1, 1), ''))
"""

from __future__ import annotations

from collections import deque
from fractions import Fraction
from typing import Any, Mapping

from .limits import CertificateError, current, entries, get, obj, too_big
from .rules import OPS, RULES, Node, NotHomogeneous, PiecewiseLinear, ReLUPower

NETWORK_FORMAT = "kkt-verifier/network"


class Net:
    """Nodes (``nodes``: name -> :class:`~.rules.Node`), topological ``order``, ``shapes``, parameter
    names ``pnames`` (in order of first use) and shapes ``pshapes``, ``param_dep`` (nodes whose value
    depends on a parameter) and ``num_params``."""

    def __init__(self, d: Any, where: str):
        self.where = where
        d = obj(d, where)
        if d.get("format", NETWORK_FORMAT) != NETWORK_FORMAT:
            raise CertificateError(f"{where}.format", f"{str(d.get('format'))[:40]!r}, expected {NETWORK_FORMAT!r}")
        version = d.get("version")
        if version != 1 or isinstance(version, bool):
            raise CertificateError(f"{where}.version", f"{str(version)[:20]!r}; this checker reads network version 1")
        unknown = sorted(str(k)[:30] for k in set(d) - {"format", "version", "nodes", "parameters"})
        if unknown:
            raise CertificateError(where, f"unknown field(s) {unknown[:5]}; valid: format, version, nodes, parameters")
        nodes = get(d, "nodes", where)
        if not isinstance(nodes, list) or not nodes:
            raise CertificateError(f"{where}.nodes", "must be a non-empty list of nodes")
        if len(nodes) > 100_000:
            raise CertificateError(f"{where}.nodes", f"{len(nodes):,} nodes; at most 100,000 are accepted")
        self.nodes: dict[str, Node] = {}
        self.pnames: list[str] = []
        self.pnode: dict[str, tuple[str, str]] = {}
        for i, nd in enumerate(nodes):
            w = f"{where}.nodes[{i}]"
            nd = obj(nd, w)
            extra = sorted(str(k)[:30] for k in set(nd) - {"name", "op", "inputs", "params", "attrs"})
            if extra:
                raise CertificateError(w, f"unknown field(s) {extra[:5]}; valid: name, op, inputs, params, attrs")
            name = get(nd, "name", w)
            op = get(nd, "op", w)
            if not isinstance(name, str) or not name or len(name) > 200:
                raise CertificateError(f"{w}.name", f"{str(name)[:40]!r} must be a non-empty string (at most 200 "
                                                    "characters)")
            if name in self.nodes:
                raise CertificateError(f"{w}.name", f"duplicate node name {name!r}")
            if not isinstance(op, str) or op not in RULES:
                raise CertificateError(f"{w}.op", f"op {str(op)[:40]!r} of node {name!r} cannot be checked exactly; "
                                                  f"supported: {', '.join(OPS)}")
            inputs = nd.get("inputs", [])
            if not isinstance(inputs, list) or not all(isinstance(s, str) for s in inputs):
                raise CertificateError(f"{w}.inputs", f"{str(inputs)[:60]} must be a list of node names")
            params = nd.get("params", {}) or {}
            if not isinstance(params, Mapping) or not all(isinstance(v, str) and v for v in params.values()):
                raise CertificateError(f"{w}.params", f"{str(params)[:60]} must map roles to tensor names")
            attrs = nd.get("attrs", {}) or {}
            if not isinstance(attrs, Mapping):
                raise CertificateError(f"{w}.attrs", f"{str(attrs)[:60]} must be an object")
            bad = sorted(str(k)[:30] for k in set(attrs) - RULES[op].attrs)
            if bad:
                raise CertificateError(f"{w}.attrs", f"node {name!r} ({op}): unknown attribute(s) {bad[:5]}; valid: "
                                                     f"{sorted(RULES[op].attrs) or 'none'}")
            want = RULES[op].roles
            if set(params) != set(want):
                raise CertificateError(f"{w}.params", f"node {name!r} ({op}) needs roles {sorted(want) or 'none'}, "
                                                      f"got {sorted(params)}")
            for role, p in params.items():
                if p in self.pnode:
                    raise CertificateError(f"{w}.params", f"tensor {p!r} is used twice (by {self.pnode[p][0]!r} and "
                                                          f"{name!r})")
                self.pnode[p] = (name, role)
                self.pnames.append(p)
            self.nodes[name] = Node(i, name, op, list(inputs), dict(params), dict(attrs))
        ins = [n for n, v in self.nodes.items() if v.op == "input"]
        outs = [n for n, v in self.nodes.items() if v.op == "output"]
        if len(ins) != 1 or len(outs) != 1:
            raise CertificateError(f"{where}.nodes", f"needs exactly one input and one output node, found {ins[:3]} "
                                                     f"and {outs[:3]}")
        self.input, self.output = ins[0], outs[0]
        self._order()
        self._shapes()
        self._declared(d.get("parameters"))
        self.param_dep: set[str] = set()
        for n in self.order:
            nd = self.nodes[n]
            if nd.params or any(s in self.param_dep for s in nd.inputs):
                self.param_dep.add(n)

    # -- structure ------------------------------------------------------------
    def err(self, node: str, msg: str) -> CertificateError:
        nd = self.nodes[node]
        return CertificateError(f"{self.where}.{nd.where}", f"node {node!r} ({nd.op}): {msg}")

    def _order(self) -> None:
        indeg = {n: 0 for n in self.nodes}
        users: dict[str, list[str]] = {n: [] for n in self.nodes}
        for n, nd in self.nodes.items():
            lo, hi = RULES[nd.op].arity
            k = len(nd.inputs)
            if k < lo or (hi is not None and k > hi):
                raise self.err(n, f"takes {lo}{'+' if hi is None else ''} input(s), got {k}")
            for s in nd.inputs:
                if s not in self.nodes:
                    raise self.err(n, f"input {s[:40]!r} is not a node")
                indeg[n] += 1
                users[s].append(n)
        ready = deque(n for n in self.nodes if indeg[n] == 0)
        order: list[str] = []
        while ready:
            n = ready.popleft()
            order.append(n)
            for u in users[n]:
                indeg[u] -= 1
                if indeg[u] == 0:
                    ready.append(u)
        if len(order) != len(self.nodes):
            raise CertificateError(f"{self.where}.nodes", "the graph has a cycle")
        self.order = order
        self.consumers = users
        if users[self.output]:
            raise self.err(self.output, "the output node must not feed other nodes")

    def _shapes(self) -> None:
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.pshapes: dict[str, tuple[int, ...]] = {}
        total = 0
        for n in self.order:
            nd = self.nodes[n]
            out, ps = RULES[nd.op].shape(nd, [self.shapes[s] for s in nd.inputs],
                                         lambda msg, n=n: self.err(n, msg))
            self.shapes[n] = tuple(out)
            for role, s in ps.items():
                self.pshapes[nd.params[role]] = tuple(s)
                total += entries(s)
        if total > current().max_entries:
            raise too_big(f"{self.where}.nodes", "the network's", f"{total:,} parameters", "max_entries")
        self.num_params = total
        # how many times numbers are multiplied along the deepest path (the degree, ignoring homogeneity):
        # bounds the size of every exact value, homogeneous network or not
        growth: dict[str, Fraction] = {}
        for n in self.order:
            nd = self.nodes[n]
            m = max((growth[s] for s in nd.inputs), default=Fraction(0))
            try:
                g = RULES[nd.op].degree(nd, [m] * len(nd.inputs))
            except NotHomogeneous:
                g = m
            growth[n] = g
            if g > current().max_power:
                raise too_big(f"{self.where}.{nd.where}", f"node {n!r}: the degree (number of multiplications "
                                                          "along the deepest path)", g, "max_power")

    def _declared(self, declared: Any) -> None:
        """The optional ``parameters`` list must agree with the graph (names and shapes)."""
        if declared is None:
            return
        w = f"{self.where}.parameters"
        if not isinstance(declared, list):
            raise CertificateError(w, "must be a list of {name, shape} objects")
        names = []
        for i, e in enumerate(declared):
            if not isinstance(e, Mapping) or set(e) != {"name", "shape"}:
                raise CertificateError(f"{w}[{i}]", "must be an object with exactly 'name' and 'shape'")
            if not isinstance(e["name"], str) or e["name"] not in self.pshapes:
                raise CertificateError(f"{w}[{i}].name", f"{str(e['name'])[:40]!r} is not a tensor of the graph; used: "
                                                         f"{self.pnames[:10]}")
            if e["shape"] != list(self.pshapes[e["name"]]):
                raise CertificateError(f"{w}[{i}].shape", f"{str(e['shape'])[:40]}, the graph implies "
                                                          f"{list(self.pshapes[e['name']])}")
            names.append(e["name"])
        if sorted(names) != sorted(self.pnames):
            raise CertificateError(w, f"lists {names[:10]}, the graph uses {self.pnames[:10]}")

    def degree(self) -> tuple[Fraction | None, str]:
        """Own degree calculus: (L, "") or (None, reason)."""
        deg: dict[str, Fraction] = {}
        try:
            for n in self.order:
                nd = self.nodes[n]
                deg[n] = RULES[nd.op].degree(nd, [deg[s] for s in nd.inputs])
                if abs(deg[n]) > current().max_power:
                    raise too_big(f"{self.where}.{nd.where}", f"node {n!r}: degree", deg[n], "max_power")
        except NotHomogeneous as e:
            return None, str(e)
        return deg[self.output], ""

    def kinked(self, node: str) -> bool:
        nd = self.nodes[node]
        return RULES[nd.op].kinked(nd.a)

    def first_layer(self, node: str) -> bool:
        """True when ``node`` is a kinked elementwise activation fed by ``input -> dense [-> bias]``.

        Its pre-activation ``z_j = <w_j, x> (+ b_j)`` depends on its own parameter row only, so the sign
        patterns of its kinked units are independent and the chain-rule selections are exactly the
        Clarke subdifferential (docs/math.md section 7), provided no deeper unit of that sample is at a kink.
        """
        nd = self.nodes[node]
        if not isinstance(RULES[nd.op], (PiecewiseLinear, ReLUPower)) or not self.kinked(node):
            return False
        cur = self.nodes[nd.inputs[0]]
        if cur.op == "bias":
            cur = self.nodes[cur.inputs[0]]
        return cur.op == "dense" and self.nodes[cur.inputs[0]].op == "input"

    def activation_entries(self, n: int) -> int:
        """Entries of the largest node value over ``n`` samples (bounded before evaluating)."""
        return max(n * entries(s) for s in self.shapes.values())
