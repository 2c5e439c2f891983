"""Lyu & Li in practice: train a ReLU network with gradient descent, watch (eps, delta) -> 0.

Run:  python examples/kkt_training_trend.py
"""

import verifier
from verifier.datasets import two_clusters_xor

X, y = two_clusters_xor(16, seed=0)
net = verifier.mlp([2, 6, 1])
steps = [100, 300, 1000, 3000, 10000]
res = verifier.train(net, net.init_params(seed=0), X, y, steps=steps[-1], lr=1.0, progress=False, checkpoint_every=steps)
print(f"{'step':>6} {'normalized margin':>18} {'eps_rel':>10} {'delta_rel':>10}  verdict")
for k in steps:
    r = verifier.check_kkt(net, res.checkpoints[k], X, y)
    print(f"{k:>6} {r.normalized_margin:>18.6f} {r.eps_rel:>10.3e} {r.delta_rel:>10.3e}  {r.verdict}")
