"""Is a linear classifier the hard-margin SVM?  The KKT check answers with multipliers.

For ``Phi(x) = <w, x>`` (``mlp([d, 1], activation="identity")``) the KKT points of
``min 1/2||w||^2 s.t. y_i <w, x_i> >= 1`` are exactly the SVM without intercept.
We solve that SVM independently (cvxpy primal QP), check it, then check a
perturbed point.  Run:  python examples/kkt_linear_svm.py
"""

import cvxpy as cp
import numpy as np

import verifier
from verifier.datasets import linearly_separable

X, y = linearly_separable(30, 2, margin=0.2, seed=1)
w = cp.Variable(2)
cp.Problem(cp.Minimize(0.5 * cp.sum_squares(w)), [cp.multiply(y, X @ w) >= 1]).solve(solver=cp.CLARABEL)
net = verifier.mlp([2, 1], activation="identity")

report = verifier.check_kkt(net, {"W1": 5.0 * w.value[None]}, X, y)  # any positive multiple: normalised first
print("== the SVM direction (scaled by 5) ==")
print(report)
print("support vectors:", report.support.tolist(), " multipliers:", np.round(report.multipliers[report.support], 6).tolist())

rng = np.random.default_rng(0)
report = verifier.check_kkt(net, {"W1": (w.value + 0.1 * rng.normal(size=2))[None]}, X, y)
print("\n== a perturbed direction ==")
print(report.summary())
