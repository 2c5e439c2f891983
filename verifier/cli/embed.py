"""``verifier embed``: split a neuron or channel (or add zero units), write the wide network and check the embedding.

::

    verifier embed --net net.json --params params.npz --data data.npz \\
                   --split "layer=1,neuron=3,ratios=3/5,4/5" --out wide/
    verifier embed --net cnn.json --params p.npz --channel "layer=1,channel=0,ratios=1/3,2/3,2/3" --out wide/
    verifier embed ... --split "layer=1,neuron=0,in_ratios=1/2,1/2,out_ratios=1,1"   # non-isometric rescale

Several ``--split`` / ``--channel`` / ``--add-zero`` options are applied in the order given
(unit indices refer to the network produced by the previous step) and their maps composed.
Written to ``--out``: ``net.json`` and ``params.npz`` (the wide network and ``T theta``),
``T.npz`` (``scipy.sparse.save_npz``), ``T_exact.json`` (exact entries as strings) and
``report.json``.  Exit status 0 when every check passed, 1 when one did not, 2 on bad input.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from ..errors import OutputPathError, SpecError
from ..io import atomic_write, atomic_write_text, check_output_path, load_data, load_network, load_params, save_params
from ._options import float_range, int_range, seed

_OPTION = {"split": "--split", "channel": "--channel", "add_zero": "--add-zero"}


def parse_spec(text: str, kind: str = "split") -> dict[str, Any]:
    """The ``--split`` / ``--channel`` / ``--add-zero`` grammar: :func:`verifier.embed.parse_split`.

    >>> parse_spec("layer=2,neuron=0,in_ratios=1/2,1/2,out_ratios=1,1")
    {'layer': 2, 'neuron': 0, 'in_ratios': ['1/2', '1/2'], 'out_ratios': ['1', '1']}
    >>> parse_spec("layer=1,channel=0,ratios=1/sqrt(2),1/sqrt(2)", "channel")["ratios"]
    ['1/sqrt(2)', '1/sqrt(2)']
    """
    from ..embed.spec import parse_split

    return parse_split(text, kind, option=_OPTION[kind])


class _Ordered(argparse.Action):
    """Collect --split/--channel/--add-zero in command-line order."""

    def __call__(self, parser, namespace, values, option_string=None):
        ops = list(getattr(namespace, "ops", None) or [])
        ops.append((self.const, values))
        namespace.ops = ops


def _build(net: Any, params: Any, ops: list[tuple[str, str]], strict: bool):
    from ..embed import compose
    from ..embed.spec import make_embedding

    embs = []
    cur_net, cur_params = net, params
    for kind, text in ops:
        e = make_embedding(cur_net, cur_params, parse_spec(text, kind), strict=strict)
        embs.append(e)
        cur_net, cur_params = e.wide_net, e.wide_params
    return embs[0] if len(embs) == 1 else compose(*embs)


def _embed(args: argparse.Namespace) -> int:
    import scipy.sparse as sps

    from ..embed import check_embedding
    from ..embed.checks import ALL_CHECKS

    ops = getattr(args, "ops", None) or []
    if not ops:
        raise SpecError("give at least one of --split, --channel, --add-zero (e.g. --split 'layer=1,neuron=3,ratios=3/5,4/5')")
    out = check_output_path(args.out, option="--out", folder=True)
    names = ("net.json", "params.npz", "T.npz", "T_exact.json", "report.json")
    for name in names if out.exists() else ():
        check_output_path(out / name, option="--out", inputs=[args.net, args.params, args.data])
    for kind, text in ops:  # the grammar is checked before any file is read
        parse_spec(text, kind)
    net = load_network(args.net)
    params = load_params(args.params, net)
    X = y = None
    if args.data:
        X, y = load_data(args.data)
    emb = _build(net, params, ops, strict=not args.no_strict)
    if args.checks:
        checks = [c.strip() for c in args.checks.split(",") if c.strip()]
    else:
        checks = list(ALL_CHECKS) if args.data else ["isometry", "function", "gradient"]
    rep = None
    if not args.no_check:
        rep = check_embedding(emb, params, X, y, checks=checks, gd_steps=args.gd_steps, lr=args.lr,
                              flow_time=args.flow_time, method=args.method, probes=args.probes, seed=args.seed,
                              tol=args.tol)
    try:
        out.mkdir(parents=False, exist_ok=True)
    except OSError as e:
        raise OutputPathError(f"--out {str(out)!r}: cannot create the folder ({e.strerror})") from None
    atomic_write_text(out / "net.json", emb.wide_net.to_json() + "\n")
    save_params(out / "params.npz", emb.wide_params)
    T = emb.T.tocsr()
    atomic_write(out / "T.npz", lambda f: sps.save_npz(f, T))
    atomic_write_text(out / "T_exact.json", json.dumps({
        "shape": list(emb.shape), "rational": emb.is_rational,
        "narrow_params": emb.net.param_names, "wide_params": emb.wide_net.param_names,
        "entries": [[r, c, str(v)] for r, c, v in emb.entries()]}) + "\n")
    if rep is not None:
        atomic_write_text(out / "report.json", rep.to_json() + "\n")
    if args.json and rep is not None:
        print(rep.to_json())
    else:
        print(rep.summary() if rep is not None else f"embedding: {emb.description}")
        if not args.data and rep is not None and not args.checks:
            print("(no --data: the KKT, trajectory and direction checks need labelled data and were not run)")
        print(f"wrote {out / 'net.json'}, {out / 'params.npz'}, {out / 'T.npz'}, {out / 'T_exact.json'}"
              + (f", {out / 'report.json'}" if rep is not None else ""))
    return 0 if rep is None or rep.passed else 1


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed", help="split a neuron/channel into a wider network and check the embedding",
                       description=__doc__.split("::")[0].strip(), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--net", required=True, help="narrow network JSON")
    p.add_argument("--params", required=True, help="narrow parameters .npz (keyed by tensor name)")
    p.add_argument("--data", help="data .npz with X and y (needed for the KKT and trajectory checks)")
    p.add_argument("--split", action=_Ordered, const="split", metavar="SPEC",
                   help="neuron split 'layer=L,neuron=J,ratios=r1,r2,...' (or in_ratios=...,out_ratios=...); repeatable")
    p.add_argument("--channel", action=_Ordered, const="channel", metavar="SPEC",
                   help="channel split of a convolution 'layer=L,channel=C,ratios=r1,r2,...'; repeatable")
    p.add_argument("--add-zero", action=_Ordered, const="add_zero", metavar="SPEC",
                   help="trivial embedding 'layer=L,count=K' (zero in- and out-weights); repeatable")
    p.add_argument("--out", required=True, help="output folder for net.json, params.npz, T.npz, T_exact.json, report.json")
    p.add_argument("--checks", help="comma-separated subset of isometry,function,gradient,kkt,gd_trajectory,"
                                    "flow_trajectory,direction (default: all with --data, else the first three)")
    p.add_argument("--no-check", action="store_true", help="only build and write the wide network and T")
    p.add_argument("--no-strict", action="store_true",
                   help="build splits whose ratios break sum alpha^2 = 1 (or sum b a = 1) anyway, to see the checks fail")
    p.add_argument("--gd-steps", type=int_range(0, None), default=200, help="fixed steps for the trajectory check (default 200)")
    p.add_argument("--lr", type=float_range(0.0, None, lo_open=True), default=0.05, help="step size of the trajectory check (default 0.05)")
    p.add_argument("--flow-time", type=float_range(0.0, None, lo_open=True), default=5.0, help="gradient-flow horizon (default 5)")
    p.add_argument("--method", default="gd", choices=["gd", "sign", "coordinate", "adam"],
                   help="optimizer of the step trajectory check (default gd)")
    p.add_argument("--probes", type=int_range(1, 100_000), default=32, help="random inputs for the function/gradient checks (default 32)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the random probes (default 0)")
    p.add_argument("--tol", type=float_range(0.0, None), default=1e-9, help="relative tolerance of the function/gradient checks")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(handler=_embed, ops=[])
