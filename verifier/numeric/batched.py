"""The margins of a data set at scale: every pass in chunks of samples, nothing of size ``m x m`` or ``m x P``.

:class:`Batched` holds a validated ``(net, params, X, y)`` and answers what the
working-set dual (:mod:`verifier.kkt.working_set`) asks, each in memory
``O(chunk)`` beyond its result:

* ``margins()``: ``q`` for all ``m`` constraints (one chunked forward pass);
* ``jvp_margins(dtheta)``: ``J dtheta`` for all constraints (forward mode: about one forward pass; the
  ``C - 1`` constraints of a multiclass sample share its output tangent);
* ``weighted_gradient(rows, w)``: ``sum_r w_r grad q_r`` over a set of rows (a forward and backward
  pass over their samples only);
* ``gram_block(rows)``: ``G[rows][:, rows]``; ``gram_columns(cols)``: ``G[:, cols]`` for all rows,
  ``O(m |cols|)`` memory;
* ``kinks(tol)``: pre-activations near a kink, over all samples.

``G lambda`` for a multiplier vector supported on ``S`` is
``jvp_margins(weighted_gradient(S, lambda_S))``: one weighted gradient and
one forward-mode product, never the columns ``G[:, S]``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

import numpy as np

from .data import Constraints, check_inputs, check_labels, constraints
from .engine import (ForwardPass, Kink, forward_unchecked, gram_cross_from, gram_factors, gram_from, jvp_from,
                     kinks_from, weighted_gradient_from)

#: Default number of floats the saved forward state of one chunk may take (~400 MB).
CHUNK_FLOATS = 50_000_000


def floats_per_sample(net) -> int:
    """Floats of forward state (values and saved contexts, about three copies of every node) per sample."""
    return 3 * int(sum(int(np.prod(net.shapes[n])) for n in net.order)) + 1


class Batched:
    """A validated problem ``(net, params, X, y)`` evaluated in chunks of samples (see the module docstring)."""

    def __init__(self, net, params: Mapping[str, Any] | np.ndarray, X: Any, y: Any, *,
                 chunk_floats: int = CHUNK_FLOATS, ps: dict[str, np.ndarray] | None = None,
                 Xa: np.ndarray | None = None, ya: np.ndarray | None = None):
        self.net = net
        self.ps = ps if ps is not None else net.check_params(params)
        self.X = Xa if Xa is not None else check_inputs(net, X)
        self.y = ya if ya is not None else check_labels(net, y, self.X.shape[0])
        self.cons = constraints(net, self.y)
        self.n = int(self.X.shape[0])
        self.m = self.cons.m
        self.chunk = max(1, int(chunk_floats) // floats_per_sample(net))
        # rows of each sample are contiguous (sample-major order)
        self._row_start = np.searchsorted(self.cons.sample, np.arange(self.n + 1))

    def with_params(self, ps: dict[str, np.ndarray]) -> "Batched":
        """The same data at other (validated) parameters."""
        out = Batched.__new__(Batched)
        out.__dict__.update(self.__dict__)
        out.ps = ps
        return out

    def with_data(self, Xa: np.ndarray) -> "Batched":
        """The same labels at other (validated, same-shape) inputs."""
        out = Batched.__new__(Batched)
        out.__dict__.update(self.__dict__)
        out.X = Xa
        return out

    # -- chunks ---------------------------------------------------------------------------------
    def sample_chunks(self):
        for a in range(0, self.n, self.chunk):
            yield a, min(self.n, a + self.chunk)

    def _chunk_cons(self, a: int, b: int) -> tuple[slice, Constraints]:
        ra, rb = int(self._row_start[a]), int(self._row_start[b])
        c = self.cons
        return slice(ra, rb), Constraints(c.sample[ra:rb] - a, c.coef[ra:rb], c.other[ra:rb], b - a)

    def forward_chunk(self, a: int, b: int) -> ForwardPass:
        return forward_unchecked(self.net, self.ps, self.X[a:b])

    # -- whole-data passes ------------------------------------------------------------------------
    def outputs(self) -> np.ndarray:
        out = np.empty((self.n, self.net.num_outputs))
        for a, b in self.sample_chunks():
            out[a:b] = self.forward_chunk(a, b).output
        return out

    def margins_of(self, outputs: np.ndarray) -> np.ndarray:
        c = self.cons
        return np.einsum("rc,rc->r", c.coef, outputs[c.sample])

    def margins(self) -> np.ndarray:
        return self.margins_of(self.outputs())

    def jvp_margins(self, dtheta: np.ndarray) -> np.ndarray:
        """``J dtheta`` for every constraint (forward mode, chunked)."""
        dps = self.net.unflatten(dtheta)
        tan = np.empty((self.n, self.net.num_outputs))
        for a, b in self.sample_chunks():
            tan[a:b] = jvp_from(self.forward_chunk(a, b), dps)
        return self.margins_of(tan)

    def kinks(self, tol: float) -> list[Kink]:
        out: list[Kink] = []
        for a, b in self.sample_chunks():
            for k in kinks_from(self.forward_chunk(a, b), tol):
                out.append(replace(k, sample=k.sample + a))
        return out

    # -- row subsets ------------------------------------------------------------------------------
    def subset(self, rows: np.ndarray) -> tuple[ForwardPass, Constraints, np.ndarray]:
        """A forward pass over the samples of ``rows`` only, the rows as constraints on it, and the samples."""
        rows = np.asarray(rows, dtype=np.int64)
        samples, local = np.unique(self.cons.sample[rows], return_inverse=True)
        fp = forward_unchecked(self.net, self.ps, self.X[samples])
        c = self.cons
        return fp, Constraints(local.astype(np.int64), c.coef[rows], c.other[rows], int(samples.shape[0])), samples

    def _row_chunks(self, rows: np.ndarray):
        """Split ``rows`` into pieces whose samples fit one chunk."""
        rows = np.asarray(rows, dtype=np.int64)
        if rows.size == 0:
            return
        samp = self.cons.sample[rows]
        order = np.argsort(samp, kind="stable")
        uniq_count = 0
        start = 0
        last = -1
        for pos, i in enumerate(order):
            s = int(samp[i])
            if s != last:
                uniq_count += 1
                last = s
                if uniq_count > self.chunk:
                    yield rows[order[start:pos]], order[start:pos]
                    start, uniq_count = pos, 1
        yield rows[order[start:]], order[start:]

    def weighted_gradient(self, rows: np.ndarray, w: np.ndarray) -> np.ndarray:
        """``sum_r w_r grad_theta q_r`` over ``rows`` (default derivative convention)."""
        w = np.asarray(w, dtype=np.float64)
        out = np.zeros(self.net.num_params)
        for part, pos in self._row_chunks(rows):
            fp, cons, _ = self.subset(part)
            out += weighted_gradient_from(fp, cons, w[pos])
        return out

    def gram_block(self, rows: np.ndarray) -> np.ndarray:
        """``G[rows][:, rows]`` (``len(rows)`` squared memory)."""
        rows = np.asarray(rows, dtype=np.int64)
        k = rows.shape[0]
        if k == 0:
            return np.zeros((0, 0))
        parts = list(self._row_chunks(rows))
        if len(parts) == 1:
            fp, cons, _ = self.subset(rows)
            return gram_from(fp, cons)
        return self._cross(rows, parts)

    def gram_columns(self, cols: np.ndarray) -> np.ndarray:
        """``G[:, cols]`` for all ``m`` rows, computed chunk by chunk (memory ``O(m |cols|)``)."""
        cols = np.asarray(cols, dtype=np.int64)
        out = np.zeros((self.m, cols.shape[0]))
        if cols.shape[0] == 0:
            return out
        col_parts = [(self._factors(part), pos) for part, pos in self._row_chunks(cols)]
        for a, b in self.sample_chunks():
            rs, cons = self._chunk_cons(a, b)
            if cons.m == 0:
                continue
            fp = self.forward_chunk(a, b)
            for fac, pos in col_parts:
                out[rs, pos] = gram_cross_from(fp, cons, fac)
        return out

    def _factors(self, rows: np.ndarray) -> dict[str, Any]:
        fp, cons, _ = self.subset(rows)
        return gram_factors(fp, cons)

    def _cross(self, rows: np.ndarray, parts) -> np.ndarray:
        k = rows.shape[0]
        G = np.zeros((k, k))
        facs = [(self._factors(part), pos) for part, pos in parts]
        for part, pos_a in parts:
            fp, cons, _ = self.subset(part)
            for fac, pos_b in facs:
                G[np.ix_(pos_a, pos_b)] = gram_cross_from(fp, cons, fac)
        return 0.5 * (G + G.T)
