"""Issue 13, item 6: saddles at kinks are not reported as plain KKT points with nothing more to say.

Oracles: the closed form of the issue (ReLU 2-2-1 on e1, e2, W1 = [[1, t], [t, 1]],
W2 = (1, 1): ``||theta_hat||^2 = (4 + 2 t^2) / (1 + t) < 4``), an independent numpy
forward pass along the reported direction, and the dead-unit global minimum
(``||theta||^2 = 2 sqrt 2``, found exactly by the symbolic layer and by brute force in
``test_soundness_symbolic.py``), where no descent direction may be reported.
"""

from __future__ import annotations

import numpy as np

import verifier
from verifier.kkt import check_kkt

X = np.eye(2)
Y = np.array([1.0, 1.0])


def relu_net_norm_sq_hat(W1, W2):
    """||theta_hat||^2 for the 2-2-1 ReLU net (numpy only; degree 2)."""
    out = (np.maximum(X @ W1.T, 0.0) @ W2.T).ravel() * Y
    return (np.sum(W1**2) + np.sum(W2**2)) / out.min()


def test_closed_form_of_the_issue():
    for t in (0.5, 0.1, 1e-3):
        W1 = np.array([[1.0, t], [t, 1.0]])
        assert np.isclose(relu_net_norm_sq_hat(W1, np.array([[1.0, 1.0]])), (4 + 2 * t * t) / (1 + t))
        assert (4 + 2 * t * t) / (1 + t) < 4


def test_saddle_at_kinks_gets_a_verified_descent_direction():
    net = verifier.mlp([2, 2, 1])
    rep = check_kkt(net, {"W1": np.eye(2), "W2": np.array([[1.0, 1.0]])}, X, Y, second_order=True)
    assert rep.verdict == "kkt" and rep.relaxation == "exact"
    so = rep.second_order
    assert so["checked"] and so["holds"] is False and so["kind"] == "first-order"
    d = so["direction"]
    # independent evaluation: the normalised norm drops along d at every tested step
    (a0, a1), (b0, b1) = net.offsets["W1"], net.offsets["W2"]
    W1d, W2d = d[a0:a1].reshape(2, 2), d[b0:b1].reshape(1, 2)
    for t in (0.2, 0.02, 0.002):
        assert relu_net_norm_sq_hat(np.eye(2) + t * W1d, np.array([[1.0, 1.0]]) + t * W2d) < 4 - 0.1 * t
    # the direction enters the stated piece: the kinked pre-activations (W1[1,0] on e1, W1[0,1] on e2) move
    # to the side the report names
    signs = {(k["sample"], k["unit"][0]): s for k, s in zip(so["kinks"], so["piece"])}
    assert np.sign(W1d[1, 0]) in (0.0, signs[(0, 1)]) and np.sign(W1d[0, 1]) in (0.0, signs[(1, 0)])
    assert so["along_direction"][-1]["norm_sq_hat"] < so["norm_sq_hat_at_point"]


def test_dead_unit_global_minimum_has_no_descent_direction():
    net = verifier.mlp([2, 2, 1])
    a = 2.0 ** -0.25
    rep = check_kkt(net, {"W1": np.array([[a, a], [0.0, 0.0]]), "W2": np.array([[2.0**0.25, 0.0]])}, X, Y,
                    second_order=True)
    assert rep.verdict == "kkt"
    assert np.isclose(rep.theta_norm**2, 2 * np.sqrt(2))
    so = rep.second_order
    assert so["checked"] and so["holds"] is True
    # closed form on the 2-dim critical subspace: the Lagrangian Hessian there has eigenvalues 1 and 2
    assert np.allclose(so["eigenvalues_smallest"], [1.0, 2.0], atol=1e-7)


def test_smooth_points_unchanged():
    """A smooth KKT point still goes through the smooth check (diagonal saddle of test_kkt_second_order)."""
    net = verifier.diagonal_linear(2)
    rep = check_kkt(net, np.array([1.0, 0.0, 1.0, 0.0]), np.array([[1.0, 2.0]]), np.array([1.0]), second_order=True)
    assert rep.second_order["checked"] and rep.second_order["holds"] is False
    assert "kind" not in rep.second_order


def test_too_many_pieces_is_reported_not_guessed(monkeypatch):
    import verifier.kkt.second_order as so

    monkeypatch.setattr(so, "MAX_PIECES", 2)  # the saddle has 2 kinked units: 4 pieces
    net = verifier.mlp([2, 2, 1])
    rep = check_kkt(net, {"W1": np.eye(2), "W2": np.array([[1.0, 1.0]])}, X, Y, second_order=True)
    assert rep.second_order["checked"] is False and "4 pieces" in rep.second_order["reason"]
