"""The benchmarks' torch baseline: a verifier network's forward pass written in plain torch, node by node.

Shared by ``bench_gram.py``, ``bench_train.py`` and ``bench_scale.py`` (dense, conv2d, relu, maxpool2d,
flatten; anything else is refused).
"""

from __future__ import annotations

from typing import Any


def torch_forward(net: Any, ps: dict[str, Any], h: Any) -> Any:
    """``Phi(theta; h)`` in torch: ``ps`` maps the network's tensor names to torch tensors."""
    import torch

    for name in net.order:
        node = net.nodes[name]
        if node.op == "dense":
            h = h @ ps[node.params["weight"]].T
        elif node.op == "conv2d":
            a = node.attrs
            h = torch.nn.functional.conv2d(h, ps[node.params["weight"]], stride=a["stride"], padding=a["padding"])
        elif node.op == "relu":
            h = torch.relu(h)
        elif node.op == "maxpool2d":
            h = torch.nn.functional.max_pool2d(h, node.attrs["kernel_size"], node.attrs["stride"])
        elif node.op == "flatten":
            h = h.flatten(1)
        elif node.op not in ("input", "output"):
            raise SystemExit(f"benchmarks: no torch form for op {node.op!r} (node {name!r})")
    return h
