"""A researcher's day on scikit-learn's digits: train in torch, monitor KKT, check checkpoints, plot.

Needs the optional extras torch, scikit-learn and matplotlib (nothing is
downloaded: the 8x8 digits ship with scikit-learn):

    pip install 'kkt-verifier[torch,examples]'      # or: pip install torch scikit-learn matplotlib
    python examples/torch_digits_monitor.py --out digits-output          # about 20 s on a laptop CPU

What it does:

1. loads two digit classes (default 3 vs 8, labels +-1), pixels scaled to [0, 1];
2. trains the bias-free ReLU net :class:`Net` (64 -> 32 -> 1, positively
   homogeneous of degree 2) in float32 with minibatch SGD on the logistic loss,
   the way one trains in torch;
3. runs ``verifier.torch.KKTMonitor`` inside the loop (``mon.step(step)``):
   normalised margin, ``(eps, delta)`` with multipliers, support size, layer
   norms, Lyu & Li's ``beta``, written to ``history.json``; one line per record
   with its cost;
4. saves a checkpoint every ``--ckpt-every`` steps (``torch.save(model.state_dict())``)
   and checks the folder from the command line, as one would afterwards:

       verifier kkt --torch examples/torch_digits_monitor.py:Net --checkpoint digits-output/ckpts \\
                    --data digits-output/digits.npz --csv

5. writes the plot: ``verifier plot digits-output/history.json --out digits-output/history.png
   --data digits-output/digits.npz`` (and ``history-support.png``, the support digits).

The margin grows and ``(eps, delta)`` fall slowly (Lyu & Li: like ``1/log t``);
with a fixed learning rate and float32 weights the verdict stays ``not_kkt``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F


class Net(torch.nn.Module):
    """64 -> hidden -> 1, ReLU, no biases (positively homogeneous of degree 2)."""

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.fc1 = torch.nn.Linear(64, hidden, bias=False)
        self.fc2 = torch.nn.Linear(hidden, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.relu(self.fc1(torch.flatten(x, 1))))


def load_digits_pair(a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """The digits ``a`` (label +1) and ``b`` (label -1), pixels in [0, 1]."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit("this example needs scikit-learn: pip install scikit-learn  (or pip install 'kkt-verifier[examples]')")
    d = load_digits()
    keep = np.isin(d.target, (a, b))
    return d.data[keep] / 16.0, np.where(d.target[keep] == a, 1.0, -1.0)


def main(argv: list[str] | None = None) -> int:
    import verifier
    from verifier.cli import main as cli
    from verifier.io import save_data
    from verifier.torch import KKTMonitor

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="digits-output", help="output folder (default digits-output)")
    ap.add_argument("--classes", default="3,8", help="two digit classes, labelled +1 and -1 (default 3,8)")
    ap.add_argument("--steps", type=int, default=3000, help="SGD steps (default 3000)")
    ap.add_argument("--batch-size", type=int, default=32, help="minibatch size (default 32)")
    ap.add_argument("--lr", type=float, default=0.5, help="learning rate (default 0.5)")
    ap.add_argument("--every", type=int, default=250, help="monitor every N steps (default 250)")
    ap.add_argument("--ckpt-every", type=int, default=750, help="checkpoint every N steps (default 750)")
    args = ap.parse_args(argv)
    t_start = time.perf_counter()
    out = Path(args.out)
    (out / "ckpts").mkdir(parents=True, exist_ok=True)
    for old in (out / "ckpts").glob("ckpt_*.pt"):
        old.unlink()
    torch.manual_seed(0)
    torch.set_num_threads(1)

    classes = [int(c) for c in args.classes.split(",")]
    if len(classes) != 2:
        ap.error(f"--classes {args.classes!r} must be two digits, e.g. 3,8")
    X, y = load_digits_pair(*classes)
    save_data(out / "digits.npz", X, y)  # the data file the CLI reads (arrays X and y)
    print(f"digits {classes[0]} (+1) vs {classes[1]} (-1): {len(X)} samples of 8x8 pixels; "
          "net 64-32-1 (ReLU, no biases), float32")

    model = Net()
    mon = KKTMonitor(model, X, y, every=args.every, log=out / "history.json",
                     loss="logistic", stream=sys.stdout)
    print(f"imported once in {mon.import_seconds:.2f} s: {mon.net.param_names}, degree {mon.degree}")
    opt = torch.optim.SGD(model.parameters(), lr=args.lr)
    Xt = torch.tensor(X, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.float32)
    gen = torch.Generator().manual_seed(0)
    perm, pos = torch.randperm(len(X), generator=gen), 0
    for step in range(args.steps + 1):
        mon.step(step)
        if step % args.ckpt_every == 0 and step > 0:
            torch.save(model.state_dict(), out / "ckpts" / f"ckpt_{step:06d}.pt")
        if step == args.steps:
            break
        if pos >= len(X):
            perm, pos = torch.randperm(len(X), generator=gen), 0
        idx = perm[pos:pos + args.batch_size]
        pos += args.batch_size
        opt.zero_grad()
        scores = model(Xt[idx])
        loss = F.softplus(-yt[idx] * scores[:, 0]).mean()  # the logistic loss
        loss.backward()
        opt.step()
    mon_seconds = sum(e["seconds"] for e in mon.history)
    print(f"trained {args.steps} steps; the monitor took {mon_seconds:.2f} s over {len(mon.history)} records")

    print(f"\n$ verifier kkt --torch examples/torch_digits_monitor.py:Net --checkpoint {out / 'ckpts'} "
          f"--data {out / 'digits.npz'}")
    cli(["kkt", "--torch", f"{Path(__file__).resolve()}:Net", "--checkpoint", str(out / "ckpts"),
         "--data", str(out / "digits.npz")])
    print(f"\n$ verifier plot {out / 'history.json'} --out {out / 'history.png'} --data {out / 'digits.npz'}")
    cli(["plot", str(out / "history.json"), "--out", str(out / "history.png"), "--data", str(out / "digits.npz")])
    checked = [e for e in mon.history if e.get("eps_rel") is not None]
    if len(checked) < 2:
        print("\nthe data were not separated at two records (verdict infeasible): lower --lr or train longer")
        return 1
    first, last = checked[0], checked[-1]
    print(f"\ntrend: normalised margin {first['normalized_margin']:.4g} -> {last['normalized_margin']:.4g}, "
          f"eps_rel {first['eps_rel']:.3g} -> {last['eps_rel']:.3g}, delta_rel {first['delta_rel']:.3g} -> "
          f"{last['delta_rel']:.3g}, beta {first['beta']:.4f} -> {last['beta']:.4f}")
    print(f"done in {time.perf_counter() - t_start:.1f} s")
    _ = verifier  # the package is used through the monitor and the CLI
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
