"""Every exact KKT point of small max-margin problems, cross-checked numerically.

* a diagonal linear network: two of its four KKT points are not global minima;
* two ReLU neurons on two points: the KKT points sit on ReLU kinks (Clarke selections);
* a linear model: the exact KKT point is the hard-margin SVM.

Run: ``python examples/symbolic_exact_kkt.py`` (about 10 s).
"""

from __future__ import annotations

import numpy as np

import verifier
from verifier.symbolic import solve_kkt


def show(title: str, net, X: np.ndarray, y: np.ndarray) -> None:
    print(f"== {title}")
    sol = solve_kkt(net, X, y)
    print(sol)
    for p in sol.points:
        r = verifier.check_kkt(net, p.theta_float(), X, y, tol=1e-9, solver="osqp" if p.kinks else "auto")
        print(f"  numeric check_kkt of theta = {np.round(p.theta_float(), 6).tolist()}: {r.verdict} "
              f"(eps_rel {r.eps_rel:.1e}, delta_rel {r.delta_rel:.1e})")
    print()


def main() -> None:
    show("diagonal network, x = (1, 2), y = +1", verifier.diagonal_linear(2), np.array([[1.0, 2.0]]), np.array([1]))
    show("two ReLU neurons, x1 = e1 (+1), x2 = e2 (-1)", verifier.mlp([2, 2, 1]), np.eye(2), np.array([1, -1]))
    show("linear model on three points", verifier.mlp([2, 1]),
         np.array([[2.0, 1.0], [1.0, 3.0], [-1.0, -0.5]]), np.array([1, 1, -1]))


if __name__ == "__main__":
    main()
