"""Symbolic layer (sympy): network expressions, homogeneity proofs, KKT systems, exact KKT points.

* :func:`network_expr` -- ``Phi(theta; x)`` with the parameters as symbols,
  written with a ReLU that pulls positive factors out (:class:`relu`), so
  homogeneity identities simplify to 0;
* :func:`prove_homogeneity` -- ``Phi(c theta) - c^L Phi(theta) = 0`` and Euler's
  identity, cross-checked against the graph calculus and sympy's
  ``homogeneous_order`` (quasi-homogeneous networks: the weighted versions);
* :func:`kkt_system` -- Lagrangian, stationarity, feasibility, slackness as
  sympy objects and LaTeX, and the polynomial system of each activation region;
* :func:`solve_kkt` -- every exact KKT point of a small instance, by region;
* :func:`prove_split_identity` -- the neuron-splitting identities of docs/math.md
  section 7 for symbolic ratios with ``sum alpha_k^2 = 1``.

>>> import verifier
>>> verifier.symbolic.prove_homogeneity(verifier.mlp([1, 2, 1])).proved
True
"""

from ._common import SymbolicLimitError, TimeBudgetError, UndecidedError
from .expressions import HomogeneityProof, input_symbols, network_expr, prove_homogeneity, theta_symbols
from .functions import HomogeneousFns, clarke_interval, euler_rewrite, maxind, pmax, relu, step
from .kkt import KKTFamily, KKTPoint, KKTSolution, KKTSystem, RegionSystem, kkt_system, solve_kkt
from .split import SplitIdentity, prove_split_identity

__all__ = [
    "HomogeneityProof", "HomogeneousFns", "KKTFamily", "KKTPoint", "KKTSolution", "KKTSystem", "RegionSystem", "SplitIdentity",
    "SymbolicLimitError", "TimeBudgetError", "UndecidedError", "clarke_interval", "euler_rewrite", "input_symbols",
    "kkt_system", "maxind", "network_expr", "pmax", "prove_homogeneity", "prove_split_identity", "relu", "solve_kkt",
    "step", "theta_symbols",
]
