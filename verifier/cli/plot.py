"""``verifier plot HISTORY.json --out fig.png [--data data.npz]``: figures of a training history.

Four panels against the step on log axes (``eps_rel`` and ``delta_rel`` with a
``1/log t`` reference curve, the normalised margin, the support size, the log
loss), from a history written by ``verifier.torch.KKTMonitor`` or
``verifier train --history``.  With ``--data`` (the samples the history was
recorded on) and image inputs, also ``fig-support.png``: the support samples of
the last checked step.
"""

from __future__ import annotations

import argparse

from ..errors import FormatError


def _plot(args: argparse.Namespace) -> int:
    from ..report.history_plot import plot_history

    X = y = None
    if args.data:
        from ..io import load_data

        X, y = load_data(args.data)
    shape = None
    if args.image_shape:
        try:
            shape = [int(v) for v in args.image_shape.split(",")]
        except ValueError:
            raise FormatError(f"--image-shape {args.image_shape!r} must be comma-separated integers, e.g. 8,8") from None
    for p in plot_history(args.history, args.out, X=X, y=y, image_shape_=shape):
        print(f"wrote {p}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="plot a training history: eps_rel, delta_rel, margin, support size vs step",
                       description="PNG figures of a training history (format kkt-verifier/train-history): "
                                   "(eps, delta) with a 1/log t reference, normalised margin, support size.")
    p.add_argument("history", help="history JSON (KKTMonitor log or verifier train --history)")
    p.add_argument("--out", required=True, help="PNG file to write")
    p.add_argument("--data", default=None, help="data .npz the history was recorded on: draw its support samples "
                   "as images (written next to --out as NAME-support.png)")
    p.add_argument("--image-shape", default=None, help="H,W (or C,H,W) of one sample when the features are a "
                   "flattened image that is not square")
    p.set_defaults(handler=_plot)
