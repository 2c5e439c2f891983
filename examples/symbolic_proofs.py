"""Exact statements with sympy: the degree proved, the KKT system written out, the splitting identity.

Run: ``python examples/symbolic_proofs.py`` (a few seconds).
"""

from __future__ import annotations

import numpy as np

import verifier
from verifier.symbolic import kkt_system, network_expr, prove_homogeneity, prove_split_identity


def main() -> None:
    net = verifier.mlp([2, 2, 1])
    print("Phi(theta; x) =", network_expr(net))
    print()
    # 1. homogeneity: Phi(c theta) - c^2 Phi(theta) = 0 and Euler's identity, with cross-checks
    print(prove_homogeneity(net))
    print()
    # a network with biases in every layer is only quasi-homogeneous: the weighted identity
    print(prove_homogeneity(verifier.mlp([2, 2, 1], bias="all")))
    print()
    # 2. the KKT system of a tiny instance, as text and LaTeX
    X = np.array([[1.0, 0.0], [0.0, 1.0]])
    y = np.array([1, -1])
    system = kkt_system(net, X, y)
    print(system)
    print()
    print(system.latex())
    print()
    # 3. splitting a ReLU neuron with symbolic ratios (sum alpha^2 = 1) is an embedding ...
    print(prove_split_identity(net, neuron=1, m=3))
    print()
    # ... and it is not for z^2 activations: the copies add up to sum alpha^3 != 1
    print(prove_split_identity(verifier.mlp([2, 2, 1], activation="power:2")))


if __name__ == "__main__":
    main()
