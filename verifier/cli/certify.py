"""Certificate commands: ``certify kkt|embed``, ``check-cert`` and ``report``.

Exit status of ``check-cert``: 0 when every claim holds exactly, 1 when a
claim is false (the line names it and says by how much), 2 when the file is
unreadable, malformed or beyond a resource bound (unknown format version,
missing field or required claim, hash mismatch, non-rational string, wrong
shape, a path outside the certificate's folder, a size above a limit: the line
names the field and, for bounds, the flag that raises it).
"""

from __future__ import annotations

import argparse
import json

from ._options import int_range


def _load_inputs(args: argparse.Namespace):
    from ..certificates.checker.limits import read_npz_file
    from ..errors import FormatError
    from ..io import load_network

    net = load_network(args.net)
    # the checker's guards on the inputs too: sizes bounded, headers read first, exact dtypes only
    params = net.check_params(read_npz_file(args.params, "--params"), where=str(args.params))
    d = read_npz_file(args.data, "--data")
    missing = [k for k in ("X", "y") if k not in d]
    if missing:
        raise FormatError(f"--data: {str(args.data)!r} lacks array(s) {missing}; it must hold arrays 'X' and 'y'")
    return net, params, d["X"], d["y"]


def _limits(args: argparse.Namespace):
    from ..certificates.checker import Limits

    kw = {}
    for name, value in (("max_file_bytes", None if args.max_file_mb is None else int(args.max_file_mb * 1024 ** 2)),
                        ("max_digits", args.max_digits), ("max_entries", args.max_entries),
                        ("max_power", args.max_power), ("max_depth", args.max_depth)):
        if value is not None:
            if value < 1:
                from ..errors import FormatError

                raise FormatError(f"--{name.replace('_', '-').replace('bytes', 'mb')}={value} must be positive")
            kw[name] = value
    return Limits(**kw)


def _guarded(fn):
    """Resource exhaustion that slipped past the bounds is still one line and exit 2, never a traceback."""
    from ..errors import FormatError

    try:
        return fn()
    except MemoryError:
        raise FormatError("out of memory while checking: lower the sizes or raise the machine's memory "
                          "(the bounds are --max-entries, --max-file-mb)") from None
    except RecursionError:
        raise FormatError("input nested too deeply (see --max-depth)") from None


def _kkt_options(args: argparse.Namespace) -> dict:
    opts = {}
    if args.kink_tol is not None:
        opts["kink_tol"] = args.kink_tol
    if args.solver is not None:
        opts["solver"] = args.solver
    return opts


def _certify(args: argparse.Namespace) -> int:
    from ..certificates import certify_embedding, certify_kkt
    from ..io import check_output_path

    # refused before the work: a missing folder, a folder as --out, an output that is one of the inputs
    check_output_path(args.out, option="--out", inputs=[args.net, args.params, args.data])
    net, params, X, y = _load_inputs(args)
    common = dict(normalize=not args.no_normalize, kkt_options=_kkt_options(args), out=args.out,
                  inline=not args.external, encoding=args.encoding, claim_digits=args.digits)
    if args.what == "kkt":
        cert = certify_kkt(net, params, X, y, **common)
    else:
        cert = certify_embedding(net, params, X, y, split=args.split, **common)
    claims = cert["claims"]
    print(f"wrote {args.out} ({cert['meta']['kind']} certificate, format version {cert['meta']['format_version']})")
    for name, c in claims.items():
        print(f"  {name:<18} {c['relation']:>2} {c.get('bound', c.get('value'))}")
    print(f"check it with: verifier check-cert {args.out}")
    return 0


def _check(args: argparse.Namespace) -> int:
    from ..certificates import check_certificate

    res = _guarded(lambda: check_certificate(args.file, limits=_limits(args), tol=args.tol))
    if args.json:
        print(json.dumps(res.to_dict(), indent=1))
    elif args.quiet:
        for c in res.failed:
            print(c.describe())
    else:
        print(res.summary())
    return 0 if res.ok else 1


def _report(args: argparse.Namespace) -> int:
    from ..report import write_report

    paths = _guarded(lambda: write_report(args.cert, args.out, history=args.history,
                                          embedding_history=args.embedding_history, title=args.title,
                                          limits=_limits(args), tol=args.tol))
    print(f"report written: {paths['markdown']} and {paths['html']}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("certify", help="write a certificate (KKT point, or embedding) that check-cert verifies exactly")
    what = p.add_subparsers(dest="what", metavar="KIND")
    what.required = True
    for name, help_ in (("kkt", "certify that params are an (eps, delta)-KKT point"),
                        ("embed", "certify a neuron/channel split of the KKT point into a wider network")):
        q = what.add_parser(name, help=help_)
        q.add_argument("--net", required=True, help="network JSON file")
        q.add_argument("--params", required=True, help="parameter .npz keyed by tensor name")
        q.add_argument("--data", required=True, help="data .npz with arrays X and y")
        q.add_argument("--out", required=True, help="certificate file to write (JSON)")
        if name == "embed":
            q.add_argument("--split", required=True,
                           help="the split, e.g. 'layer=1,neuron=3,ratios=3/5,4/5' (or channel=C; or zero=COUNT)")
        q.add_argument("--external", action="store_true",
                       help="store params and data as .npz files next to the certificate (with SHA-256) instead of inline")
        q.add_argument("--encoding", default="auto", choices=["auto", "f64-hex", "f64-base64"],
                       help="inline float encoding (default: hex up to 20,000 entries, else base64)")
        q.add_argument("--digits", type=int_range(1, 50, "significant digits"), default=6,
                       help="significant digits of the claimed bounds, 1..50 (default 6)")
        q.add_argument("--no-normalize", action="store_true",
                       help="certify the parameters as given instead of theta_hat = theta / scale")
        q.add_argument("--kink-tol", type=float, default=None, help="kink tolerance passed to check_kkt")
        q.add_argument("--solver", default=None, help="solver passed to check_kkt (auto, nnls, clarabel, osqp)")
        q.set_defaults(handler=_certify)
    p = sub.add_parser("check-cert", help="check a certificate exactly (exit 0 valid, 1 false claim, 2 malformed)")
    p.add_argument("file", help="certificate JSON file")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--quiet", action="store_true", help="print only failing claims")
    _checker_flags(p)
    p.set_defaults(handler=_check)
    p = sub.add_parser("report", help="Markdown + HTML report (with plots) of a certificate")
    p.add_argument("cert", help="certificate JSON file")
    p.add_argument("--out", required=True, help="folder for report.md, report.html")
    p.add_argument("--history", default=None, help="training history JSON (TrainResult.to_dict() or a list of dicts)")
    p.add_argument("--embedding-history", default=None,
                   help="embedding deviation series JSON ({'step': [...], 'deviation': [...]})")
    p.add_argument("--title", default=None, help="report title")
    _checker_flags(p)
    p.set_defaults(handler=_report)


def _checker_flags(p: argparse.ArgumentParser) -> None:
    from ..certificates.checker import DEFAULT_LIMITS as D

    p.add_argument("--tol", type=float, default=1e-6,
                   help="tolerance on eps_rel and delta_rel the headline compares the proved bounds with (default 1e-6, "
                        "as verifier kkt)")
    g = p.add_argument_group("resource bounds (a file beyond one is refused with exit 2, naming the field)")
    g.add_argument("--max-file-mb", type=float, default=None,
                   help=f"size of the certificate and each referenced file (default {D.max_file_bytes // 1024 ** 2})")
    g.add_argument("--max-digits", type=int, default=None,
                   help=f"digits of one integer / rational / decimal exponent (default {D.max_digits})")
    g.add_argument("--max-entries", type=int, default=None,
                   help=f"entries of one tensor, node value over all samples, or the map (default {D.max_entries:,})")
    g.add_argument("--max-power", type=int, default=None,
                   help=f"exponent k of power / relu_power and the degree L (default {D.max_power})")
    g.add_argument("--max-depth", type=int, default=None, help=f"JSON nesting depth (default {D.max_depth})")
