"""The embedding principle (Zhang, Zhang & Luo 2025), reproduced on a 2-D separable data set.

A narrow two-layer ReLU network is trained with gradient descent on the exponential loss;
neuron 0 is split into two copies with ratios (3/5, 4/5), an exact isometry T with
Phi~(T theta) = Phi(theta).  Started at T theta_0, the wide network's GD iterates stay at
T theta_k (to rounding), margins and directions coincide, and the KKT reports of the two
networks agree with the same multipliers.  The same run with sign descent does not commute
with T and the trajectories separate.

    python examples/embedding_paper.py --out embedding_out

writes ``trajectories.png``, ``deviation.png``, ``margins.png`` and the two check reports
(``report_gd.json``, ``report_sign.json``) into ``--out``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import verifier  # noqa: E402
from verifier.datasets import linearly_separable  # noqa: E402
from verifier.dynamics import iterates  # noqa: E402
from verifier.embed import check_embedding, neuron_split  # noqa: E402


def normalized_margins(net, thetas, X, y):
    L = float(verifier.degree(net))
    out = []
    for th in thetas:
        q = verifier.margins(net, th, X, y)
        out.append(q.min() / np.linalg.norm(th) ** L)
    return np.array(out)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default="embedding_out", help="folder for the PNG plots and JSON reports")
    ap.add_argument("--n", type=int, default=40, help="number of samples")
    ap.add_argument("--width", type=int, default=4, help="hidden width of the narrow network")
    ap.add_argument("--steps", type=int, default=1500, help="training steps")
    ap.add_argument("--lr", type=float, default=0.05, help="fixed step size (GD and sign descent)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    X, y = linearly_separable(args.n, seed=args.seed)
    net = verifier.mlp([2, args.width, 1], activation="relu")
    p0 = net.init_params(args.seed)
    emb = neuron_split(net, p0, layer=1, neuron=0, ratios=["3/5", "4/5"])
    print(emb.description)
    theta0 = net.flatten(p0)
    copies = emb.info["copies"]
    alphas = [float(a) for a in emb.info["in_ratios"]]

    runs = {}
    for method, lr in (("gd", args.lr), ("sign", args.lr / 50)):
        narrow = iterates(net, theta0, X, y, steps=args.steps, lr=lr, method=method)
        wide = iterates(emb.wide_net, emb.apply(theta0), X, y, steps=args.steps, lr=lr, method=method)
        dev = np.linalg.norm(wide - emb.apply(narrow), axis=1)
        runs[method] = (narrow, wide, dev, lr)
        print(f"{method:>4}: max_k ||theta~_k - T theta_k|| = {dev.max():.3g} over {args.steps} steps (lr {lr:g})")

    # 1. the split neuron's incoming weights: narrow w_0(k) against wide copies w~_c(k) / alpha_c
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    for ax, method in zip(axes, ("gd", "sign")):
        narrow, wide, _dev, lr = runs[method]
        Wn = np.array([net.unflatten(t)["W1"][0] for t in narrow])
        ax.plot(Wn[:, 0], Wn[:, 1], "k-", lw=3, alpha=0.35, label="narrow neuron 0")
        for c, a, col in zip(copies, alphas, ("tab:blue", "tab:orange")):
            Ww = np.array([emb.wide_net.unflatten(t)["W1"][c] / a for t in wide])
            ax.plot(Ww[:, 0], Ww[:, 1], "--", color=col, lw=1.5, label=f"wide copy {c} / alpha={a:g}")
        ax.plot(*Wn[0], "ko")
        ax.set_title(f"{'gradient descent' if method == 'gd' else 'sign descent'}: incoming weights")
        ax.set_xlabel("w[0]")
        ax.set_ylabel("w[1]")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "trajectories.png", dpi=120)
    plt.close(fig)

    # 2. deviation ||theta~_k - T theta_k||
    fig, ax = plt.subplots(figsize=(6, 4))
    for method, style in (("gd", "tab:green"), ("sign", "tab:red")):
        dev = runs[method][2]
        ax.semilogy(np.arange(dev.size), np.maximum(dev, 1e-18), color=style,
                    label=f"{'GD' if method == 'gd' else 'sign descent'}")
    ax.set_xlabel("step k")
    ax.set_ylabel("||theta~_k - T theta_k||")
    ax.set_title("wide iterates against the embedded narrow ones")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "deviation.png", dpi=120)
    plt.close(fig)

    # 3. normalized margins of narrow and wide networks along GD and sign descent
    fig, ax = plt.subplots(figsize=(6, 4))
    idx = np.unique(np.linspace(0, args.steps, 60).astype(int))
    for method, col in (("gd", "tab:green"), ("sign", "tab:red")):
        narrow, wide, _dev, _lr = runs[method]
        ax.plot(idx, normalized_margins(net, narrow[idx], X, y), "-", color=col, lw=3, alpha=0.35,
                label=f"narrow, {method}")
        ax.plot(idx, normalized_margins(emb.wide_net, wide[idx], X, y), "--", color=col, label=f"wide, {method}")
    ax.set_xlabel("step k")
    ax.set_ylabel("normalized margin min q / ||theta||^2")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "margins.png", dpi=120)
    plt.close(fig)

    # the checker at the trained GD point, and the sign-descent variant
    p_trained = net.unflatten(runs["gd"][0][-1])
    emb_t = neuron_split(net, p_trained, layer=1, neuron=0, ratios=["3/5", "4/5"])
    for method in ("gd", "sign"):
        rep = check_embedding(emb_t, p_trained, X, y, method=method, gd_steps=100, lr=args.lr if method == "gd"
                              else args.lr / 50, flow_time=1.0, n_eval=10)
        print(f"\n--- check_embedding(method={method!r}) ---")
        print(rep.summary())
        rep.to_json(out / f"report_{method}.json")
    print(f"\nwrote {', '.join(str(out / f) for f in ('trajectories.png', 'deviation.png', 'margins.png'))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
