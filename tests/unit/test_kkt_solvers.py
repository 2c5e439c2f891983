"""The NNLS fast path against cvxpy, and every report against recomputation with torch.

Oracles: the cvxpy solvers (CLARABEL, OSQP) on the same dual from a
different formulation; a direct projected-gradient-free check of dual
optimality from the torch per-sample Jacobian (``torch.func.vmap(jacrev)``):
``eps = ||theta_hat - J^T lambda||``, ``G = J J^T`` and the KKT conditions of
the dual (``c - G lambda <= 0`` off the support, ``= 0`` on it).
"""

from __future__ import annotations

import numpy as np
import pytest
torch = pytest.importorskip("torch", reason="the oracle is the torch per-sample Jacobian (the [torch] extra)")
from torch.func import functional_call, jacrev, vmap  # noqa: E402 (after the importorskip)

import verifier
from verifier.kkt import check_kkt


def instance(widths, seed, n=14, multiclass=False):
    rng = np.random.default_rng(seed)
    net = verifier.mlp(widths)
    p = net.init_params(seed)
    X = rng.normal(size=(n, widths[0]))
    out = verifier.forward(net, p, X)
    y = out.argmax(1) if multiclass else np.sign(out[:, 0])
    keep = verifier.margins(net, p, X, y).reshape(n, -1).min(1) > 1e-3  # drop samples on the decision boundary
    return net, p, X[keep], y[keep]


def torch_jacobian(widths, theta, X, y, multiclass=False):
    """Per-constraint margin gradients from torch (independent of the engine)."""
    layers = []
    for i in range(len(widths) - 1):
        layers.append(torch.nn.Linear(widths[i], widths[i + 1], bias=False).double())
        if i < len(widths) - 2:
            layers.append(torch.nn.ReLU())
    model = torch.nn.Sequential(*layers)
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    th = torch.tensor(theta)
    params, k = {}, 0
    for name, s in zip(names, shapes):
        size = int(np.prod(s))
        params[name] = th[k:k + size].reshape(s)
        k += size

    def out(ps, x):
        return functional_call(model, ps, (x[None],))[0]

    Jd = vmap(jacrev(out), in_dims=(None, 0))(params, torch.tensor(X))
    J = torch.cat([Jd[n].reshape(X.shape[0], widths[-1], -1) for n in names], dim=2).numpy()
    if not multiclass:
        return y[:, None] * J[:, 0, :]
    rows = []
    for i in range(X.shape[0]):
        for j in range(widths[-1]):
            if j != y[i]:
                rows.append(J[i, y[i]] - J[i, j])
    return np.array(rows)


@pytest.mark.parametrize("widths,seed,mc", [([3, 6, 1], 0, False), ([3, 6, 1], 1, False), ([4, 5, 4, 1], 2, False),
                                             ([3, 5, 3], 3, True)])
def test_fast_path_agrees_with_cvxpy_and_torch(widths, seed, mc):
    net, p, X, y = instance(widths, seed, multiclass=mc)
    reps = {s: check_kkt(net, p, X, y, solver=s) for s in ("nnls", "clarabel", "osqp")}
    base = reps["nnls"]
    assert base.solver == "nnls" and reps["clarabel"].solver == "clarabel" and reps["osqp"].solver == "osqp"
    for s, r in reps.items():
        assert r.identity_ok, s
        assert np.allclose(r.multipliers, base.multipliers, rtol=1e-6, atol=1e-6 * base.multipliers.max()), s
        assert np.isclose(r.eps, base.eps, rtol=1e-6), s
        assert np.isclose(r.delta, base.delta, rtol=1e-6, atol=1e-9), s
        assert np.isclose(r.gap, base.gap, rtol=1e-9), s
    # independent recomputation from the torch Jacobian at theta_hat
    J = torch_jacobian(widths, base.theta_hat, X, y, mc)
    lam = base.multipliers
    assert np.isclose(base.eps, np.linalg.norm(base.theta_hat - J.T @ lam), rtol=1e-9)
    q = base.margins
    assert np.isclose(min(q), 1.0, rtol=1e-12)
    assert np.isclose(base.delta, lam @ (q - 1), rtol=1e-9, atol=1e-12)
    G = J @ J.T
    L = len(widths) - 1
    c = 1 + (L - 1) * q
    grad = c - G @ lam  # dual optimality: <= 0 everywhere, = 0 on the support
    scale = np.abs(c).max()
    assert grad.max() <= 1e-7 * scale
    assert np.all(np.abs(grad[lam > 1e-9 * lam.max()]) <= 1e-7 * scale)
    assert np.isclose(base.gap, 0.5 * base.theta_hat @ base.theta_hat - c @ lam + 0.5 * lam @ G @ lam, rtol=1e-9)


def test_gram_eps_agrees_with_direct_eps_away_from_kkt():
    net, p, X, y = instance([3, 6, 1], 4)
    r = check_kkt(net, p, X, y)
    assert r.verdict == "not_kkt"
    assert np.isclose(r.eps_gram, r.eps, rtol=1e-8)
    assert r.eps_gram_clipped is False


def test_report_dict_is_json_and_matches_attributes():
    import json

    net, p, X, y = instance([3, 4, 1], 5)
    r = check_kkt(net, p, X, y)
    d = json.loads(json.dumps(r.to_dict()))
    for key in ("verdict", "eps", "eps_rel", "delta", "delta_rel", "delta_max", "gap", "min_margin",
                "normalized_margin", "scale", "degree", "sum_multipliers", "relaxation", "solver"):
        assert d[key] == (getattr(r, key) if not isinstance(getattr(r, key), np.floating) else float(getattr(r, key)))
    assert d["multipliers"] == r.multipliers.tolist()
    assert d["support"] == r.support.tolist()
    assert d["format"] == "kkt-verifier/kkt-report" and d["version"] == 2 and d["meta"]["tool"].startswith("verifier ")
    text = str(r)
    assert "verdict" in text and "eps_rel" in text


def test_scaled_point_gives_the_same_report():
    net, p, X, y = instance([3, 6, 1], 6)
    r1 = check_kkt(net, p, X, y)
    r2 = check_kkt(net, {k: 7.0 * v for k, v in p.items()}, X, y)
    assert np.isclose(r2.scale, 7.0 * r1.scale, rtol=1e-12)
    assert np.allclose(r1.theta_hat, r2.theta_hat, rtol=1e-12)
    assert np.isclose(r1.eps, r2.eps, rtol=1e-9) and np.isclose(r1.delta, r2.delta, rtol=1e-9, atol=1e-14)
    assert np.isclose(r2.min_margin, 49.0 * r1.min_margin, rtol=1e-12)  # degree 2
