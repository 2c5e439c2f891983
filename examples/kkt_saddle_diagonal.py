"""A KKT point that is not a local minimum: diagonal linear network, second-order check.

``Phi(x) = <u * v, x>`` with one sample ``x = (1, 2)``: the point ``u = v = (1, 0)``
has margin 1 and ``theta = grad q`` (KKT with lambda = 1), but moving weight to the
second coordinate lowers the norm; the second-order check finds that direction.
Run:  python examples/kkt_saddle_diagonal.py
"""

import numpy as np

import verifier

net = verifier.diagonal_linear(2)
X, y = np.array([[1.0, 2.0]]), np.array([1.0])
report = verifier.check_kkt(net, np.array([1.0, 0.0, 1.0, 0.0]), X, y, second_order=True)
print(report)
so = report.second_order
print("escape direction (u1, u2, v1, v2):", np.round(so["direction"], 6).tolist())
t = 0.3
th = np.array([1.0, 0.0, 1.0, 0.0]) + t * so["direction"]
q = verifier.margins(net, th, X, y).min()
print(f"after a step t={t} and renormalisation: ||theta_hat|| = {np.linalg.norm(th) / np.sqrt(q):.6f} "
      f"< {report.theta_norm:.6f}")
best = verifier.check_kkt(net, np.array([0.0, 1.0, 0.0, 1.0]), X, y, second_order=True)
print("global minimum u = v = (0, 1/sqrt 2):", best.summary(), "| second order holds:", best.second_order["holds"])
