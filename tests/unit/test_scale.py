"""The scale route: chunked evaluation, forward mode, tiled Gram, the NNLS kernel and the working-set dual.

Oracles: the explicit margin Jacobian ``J`` (``G = J J^T``, ``J d``, ``J^T w``), central finite
differences for the forward-mode product, :func:`scipy.optimize.nnls` for the NNLS kernel, and the
small-problem route (all constraints at once) for the working-set dual.
"""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from scipy.optimize import nnls

import verifier
from verifier.errors import ResourceError
from verifier.kkt import check as kcheck
from verifier.kkt.nnls import nnls_gram
from verifier.numeric import forward, gram, gram_from, margin_jacobian, margins, prepare
from verifier.numeric.batched import Batched

RNG = np.random.default_rng(7)


def _cases():
    yield "mlp-binary", verifier.mlp([5, 7, 6, 1]), RNG.standard_normal((23, 5)), RNG.choice([-1.0, 1.0], 23)
    yield "mlp-multiclass", verifier.mlp([5, 7, 4]), RNG.standard_normal((19, 5)), RNG.integers(0, 4, 19)
    yield ("cnn-maxpool", verifier.cnn((1, 6, 6), channels=[2], hidden=[3], outputs=3),
           RNG.standard_normal((11, 1, 6, 6)), RNG.integers(0, 3, 11))
    yield ("cnn-avgpool-stride", verifier.cnn((2, 9, 9), channels=[3], pool="avg", stride=2, padding=1),
           RNG.standard_normal((9, 2, 9, 9)), RNG.choice([-1.0, 1.0], 9))
    yield "bias-leaky", verifier.mlp([4, 6, 1], activation="leaky_relu", bias="first"), RNG.standard_normal((13, 4)), \
        RNG.choice([-1.0, 1.0], 13)
    yield "diagonal", verifier.diagonal_linear(5, depth=3), RNG.standard_normal((12, 5)), RNG.choice([-1.0, 1.0], 12)


CASES = list(_cases())


@pytest.mark.parametrize("name,net,X,y", CASES, ids=[c[0] for c in CASES])
def test_batched_passes_match_the_explicit_jacobian(name, net, X, y):
    p = net.init_params(seed=3)
    B = Batched(net, p, X, y, chunk_floats=1)  # one sample per chunk: every pass is stitched together
    assert B.chunk == 1
    J = margin_jacobian(net, p, X, y)
    G = J @ J.T
    assert np.allclose(B.margins(), margins(net, p, X, y), rtol=1e-12, atol=1e-12)
    d = RNG.standard_normal(net.num_params)
    assert np.allclose(B.jvp_margins(d), J @ d, rtol=1e-10, atol=1e-10)
    rows = RNG.choice(B.m, min(B.m, 7), replace=False)
    w = RNG.random(rows.shape[0])
    assert np.allclose(B.weighted_gradient(rows, w), J[rows].T @ w, rtol=1e-10, atol=1e-10)
    assert np.allclose(B.gram_block(rows), G[np.ix_(rows, rows)], rtol=1e-10, atol=1e-10)
    assert np.allclose(B.gram_columns(rows), G[:, rows], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("name,net,X,y", CASES, ids=[c[0] for c in CASES])
def test_forward_mode_matches_finite_differences(name, net, X, y):
    p = net.init_params(seed=4)
    theta = net.flatten(p)
    d = RNG.standard_normal(net.num_params)
    h = 1e-6
    fd = (forward(net, theta + h * d, X) - forward(net, theta - h * d, X)) / (2 * h)
    B = Batched(net, p, X, y)
    tan = B.margins_of(fd)
    assert np.allclose(B.jvp_margins(d), tan, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,net,X,y", CASES, ids=[c[0] for c in CASES])
def test_tiled_gram_equals_explicit_product(name, net, X, y):
    p = net.init_params(seed=5)
    fp, cons = prepare(net, p, X, y)
    J = margin_jacobian(net, p, X, y)
    for tile in (1, 7, 10**9):  # one-row tiles, ragged tiles, one tile
        assert np.allclose(gram_from(fp, cons, tile_entries=tile * cons.m), J @ J.T, rtol=1e-10, atol=1e-10)


def _nnls_problem(seed, k, r, dependent):
    rng = np.random.default_rng(seed)
    E = rng.standard_normal((r, k))
    if dependent and k > 2:
        E[:, 1] = 2.0 * E[:, 0]
        E[:, 2] = E[:, 0] - E[:, 1]
    f = rng.standard_normal(r)
    return E, f


@pytest.mark.parametrize("seed", range(12))
def test_nnls_gram_matches_scipy_nnls(seed):
    rng = np.random.default_rng(100 + seed)
    k = int(rng.integers(2, 80))
    r = int(rng.integers(1, k + 5))  # wide (rank-deficient) and tall problems
    E, f = _nnls_problem(seed, k, r, dependent=seed % 2 == 0)
    u_ref, res_ref = nnls(E, f, maxiter=100 * k)
    u, info = nnls_gram(E.T @ E, E.T @ f)
    assert u.min() >= 0
    assert np.linalg.norm(E @ u - f) <= res_ref + 1e-9 * (1 + res_ref)
    # optimality: w = E^T (f - E u) <= tol off the passive set and = 0 on it
    w = E.T @ (f - E @ u)
    assert w.max() <= 1e-8 * (1 + np.abs(E.T @ f).max())
    assert np.allclose(w[u > 0], 0.0, atol=1e-8 * (1 + np.abs(E.T @ f).max()))
    # a warm start from the optimal support, and from a wrong one, lands on the same residual
    for warm in (np.flatnonzero(u_ref > 0), np.arange(k)[::2]):
        u2, _ = nnls_gram(E.T @ E, E.T @ f, passive=warm)
        assert np.isclose(np.linalg.norm(E @ u2 - f), np.linalg.norm(E @ u - f), rtol=1e-8, atol=1e-10)


def _trained(net, X, y, steps, seed=0):
    return verifier.train(net, net.init_params(seed=seed), X, y, steps=steps, lr=0.5).params


def _teacher(net, n, seed):
    """Data labelled by the network itself at a random point (separable by construction), then that point
    trained further: a feasible point on its way to a KKT point."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, net.input_shape[0]))
    p0 = net.init_params(seed=seed)
    out = forward(net, p0, X)
    if net.num_outputs == 1:
        keep = np.abs(out[:, 0]) > 1e-2 * np.abs(out).max()  # no sample on the decision boundary
        X, y = X[keep], np.where(out[keep, 0] > 0, 1.0, -1.0)
    else:
        top2 = -np.sort(-out, axis=1)[:, :2]
        keep = top2[:, 0] - top2[:, 1] > 1e-2 * np.abs(out).max()
        X, y = X[keep], out[keep].argmax(axis=1)
    p = verifier.train(net, p0, X, y, steps=200, lr=0.5).params
    return X, y, (p if margins(net, p, X, y).min() > 0 else p0)


def _agree(a, b, *, rel=1e-6):
    for key in ("eps_rel", "delta_rel"):
        va, vb = getattr(a, key), getattr(b, key)
        assert abs(va - vb) <= rel * max(abs(vb), 1e-12) + 1e-12, (key, va, vb)
    assert a.verdict == b.verdict


@pytest.mark.parametrize("seed", range(3))
def test_working_set_equals_dense_route_binary_trained(seed):
    net = verifier.mlp([4, 12, 1])
    X, y, p = _teacher(net, 120, seed)
    dense = verifier.check_kkt(net, p, X, y, solver="nnls", kink_tol=None)
    ws = verifier.check_kkt(net, p, X, y, solver="working-set", working_set_size=3, kink_tol=None)
    _agree(ws, dense)
    assert set(ws.support.tolist()) == set(dense.support.tolist())
    assert ws.working_set["rounds"] >= 2  # three rows are never enough here: pricing had to add rows
    assert ws.working_set["max_violation_outside"] <= ws.working_set["price_tol"]
    assert dense.working_set is None


@pytest.mark.parametrize("seed", range(2))
def test_working_set_equals_dense_route_multiclass(seed):
    net = verifier.mlp([5, 10, 4])
    X, y, p = _teacher(net, 60, 10 + seed)
    dense = verifier.check_kkt(net, p, X, y, solver="nnls", kink_tol=None)
    ws = verifier.check_kkt(net, p, X, y, solver="working-set", working_set_size=5, kink_tol=None)
    _agree(ws, dense)
    assert set(ws.support.tolist()) == set(dense.support.tolist())
    assert np.allclose(ws.multipliers, dense.multipliers, rtol=1e-6, atol=1e-9 * dense.multipliers.max())


def test_working_set_rank_deficient_gram():
    # linear model, many more samples than dimensions, duplicated samples: G has rank 3
    rng = np.random.default_rng(3)
    w = np.array([1.0, -2.0, 0.5])
    X = rng.standard_normal((200, 3))
    X = X[np.abs(X @ w) > 0.3]
    X = np.vstack([X, X[:20]])
    y = np.sign(X @ w)
    net = verifier.mlp([3, 1], activation="identity")
    p = {"W1": (w + 0.05 * rng.standard_normal(3))[None]}
    dense = verifier.check_kkt(net, p, X, y, solver="nnls")
    ws = verifier.check_kkt(net, p, X, y, solver="working-set", working_set_size=4)
    _agree(ws, dense)


def test_working_set_with_kinks_equals_dense_route():
    # the kink point of the exact case (first hidden layer), padded with far-away samples
    net = verifier.mlp([2, 2, 1])
    p = {"W1": np.eye(2), "W2": np.array([[1.0, 1.0]])}
    X = np.vstack([[[1.0, -0.5], [0.0, 1.0]], 3.0 + np.abs(RNG.standard_normal((30, 2)))])
    y = np.ones(X.shape[0])
    dense = verifier.check_kkt(net, p, X, y, solver="clarabel")
    ws = verifier.check_kkt(net, p, X, y, solver="working-set", working_set_size=1)
    assert dense.verdict == "kkt" and dense.relaxation == "exact"
    _agree(ws, dense)
    assert ws.relaxation == dense.relaxation
    assert [s["sample"] for s in ws.kink_selections] == [s["sample"] for s in dense.kink_selections]


def test_no_m_by_m_array_above_the_dense_threshold():
    net = verifier.mlp([3, 4, 1])
    X, y, p = _teacher(net, kcheck.DENSE_MAX_ROWS + 2000, 5)
    m = X.shape[0]
    assert m > kcheck.DENSE_MAX_ROWS
    tracemalloc.start()
    try:
        rep = verifier.check_kkt(net, p, X, y, kink_tol=None, working_set_size=50)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert rep.working_set is not None  # solver="auto" chose the working-set route
    assert peak < 0.1 * 8 * m * m, peak  # an m x m float array alone would be 10x this


def test_memory_limit_is_a_clear_error():
    net = verifier.mlp([3, 4, 1])
    X, y, p = _teacher(net, 300, 1)
    with pytest.raises(ResourceError, match=rf"{X.shape[0]} constraints .* memory_limit"):
        verifier.check_kkt(net, p, X, y, solver="nnls", memory_limit=10_000)
    with pytest.raises(verifier.errors.VerifierError, match="memory_limit"):
        verifier.check_kkt(net, p, X, y, memory_limit=-1)


def test_progress_reports_each_round():
    net = verifier.mlp([3, 6, 1])
    X, y, p = _teacher(net, 80, 2)
    seen = []
    rep = verifier.check_kkt(net, p, X, y, solver="working-set", working_set_size=2, progress=seen.append)
    rounds = [s for s in seen if "round" in s]
    assert len(rounds) == rep.working_set["rounds"]
    assert [r["working_set"] for r in rounds] == rep.working_set["working_set_sizes"]
    assert rounds[-1]["violators"] == 0


def test_dense_gram_of_multiclass_expands_sample_products():
    # H H^T is formed per pair of samples and expanded to the constraint rows: compare with J J^T
    net = verifier.mlp([4, 5, 5, 6])
    X = RNG.standard_normal((9, 4))
    y = RNG.integers(0, 6, 9)
    p = net.init_params(seed=2)
    J = margin_jacobian(net, p, X, y)
    assert np.allclose(gram(net, p, X, y), J @ J.T, rtol=1e-12, atol=1e-12)
