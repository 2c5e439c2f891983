"""KKT verification for the max-margin problem of homogeneous networks (docs/math.md sections 2-9).

>>> import numpy as np, verifier
>>> net = verifier.mlp([2, 1], activation="identity")
>>> X = np.array([[2.0, 0.0], [-2.0, 0.0]]); y = np.array([1.0, -1.0])
>>> report = verifier.check_kkt(net, {"W1": np.array([[0.5, 0.0]])}, X, y)
>>> report.verdict, round(report.sum_multipliers, 12), round(report.sum_multipliers_expected, 12)
('kkt', 0.25, 0.25)

Modules: :mod:`~verifier.kkt.check` (``check_kkt``), :mod:`~verifier.kkt.dual`
(NNLS fast path and cvxpy), :mod:`~verifier.kkt.kinks` (Clarke / chain-rule
subgradients), :mod:`~verifier.kkt.norms` (l1 / l_inf flavours),
:mod:`~verifier.kkt.second_order`, :mod:`~verifier.kkt.report`.
"""

from .check import check_kkt
from .errors import KKTError
from .report import KKTReport

__all__ = ["KKTError", "KKTReport", "check_kkt"]
