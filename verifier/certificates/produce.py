"""Producers: write KKT and embedding certificates whose claims hold by construction.

Floats propose, exact arithmetic decides: the float pipeline
(:func:`verifier.check_kkt`, the numeric engine, the embedding builders)
proposes the point ``theta_hat``, the multipliers and the kink selections;
the producer then

1. stores ``theta_hat`` rounded to float64 (exact dyadic rationals) and, with
   ``normalize=True``, nudges it outward until its smallest margin is
   *exactly* ``>= 1`` (feasible for the max-margin problem, not just nearly);
2. rounds the multipliers to dyadic rationals ``p / 2^k`` with one common
   denominator (``~50`` significant bits; tiny ones become exactly 0) and the
   kink selections to rationals in their Clarke intervals;
3. computes every claimed figure *exactly* from these stored values with the
   independent checker's engine (:func:`verifier.certificates.check.evaluate`)
   and writes the bound rounded outward to ``claim_digits`` significant
   decimal digits (``eps2 <= 1.23457e-9``; ``min_margin >= 1``), so the claims
   are true for the stored point by construction;
4. records the float figures the pipeline measured under ``measured`` and, with
   ``self_check=True``, cross-checks the exact figures against the float engine
   (``verifier.numeric``: margins, and ``eps^2`` when no kink carries weight), a
   different implementation from the checker that computed the claims.

>>> import verifier
>>> net = verifier.mlp([2, 1], activation="identity")
>>> cert = certify_kkt(net, {"W1": [[1.0, 0.5]]}, [[2.0, 0.0], [0.0, 4.0]], [1, 1])
>>> cert["params"]["tensors"]["W1"]["values"]          # theta_hat = theta / 2: smallest margin exactly 1
['0x1.0000000000000p-1', '0x1.0000000000000p-2']
>>> cert["witnesses"]["multipliers"], cert["claims"]["eps2"], cert["claims"]["min_margin"]
(['1/4', '1/16'], {'relation': '<=', 'bound': '0'}, {'relation': '>=', 'bound': '1'})
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import time
from fractions import Fraction
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from .._json import jsonable
from ..analysis.homogeneity import degree

from ..errors import VerifierError
from . import checker as C
from .format import (FORMAT_NAME, FORMAT_VERSION, encode_labels, encode_rational, encode_tensor, sha256_file,
                     sha256_json)


class CertifyError(VerifierError):
    """A certificate cannot be produced (data not separated, irrational map, ...)."""


# ---------------------------------------------------------------------------
# exact rounding helpers
# ---------------------------------------------------------------------------
def round_decimal(x: Fraction, digits: int = 6, *, up: bool) -> str:
    """``x`` rounded to ``digits`` significant decimals, upward (``up``) or downward, as an exact decimal string.

    >>> round_decimal(Fraction(1, 3), 3, up=True), round_decimal(Fraction(1, 3), 3, up=False)
    ('0.334', '0.333')
    >>> round_decimal(Fraction(-2, 3), 2, up=True), round_decimal(Fraction(5), 4, up=False)
    ('-0.66', '5')
    """
    if x == 0:
        return "0"
    a = abs(x)
    e = len(str(a.numerator)) - len(str(a.denominator))
    if Fraction(10) ** e > a:
        e -= 1
    if Fraction(10) ** (e + 1) <= a:
        e += 1
    shift = digits - 1 - e  # a * 10^shift has `digits` digits before the point
    scaled = x * Fraction(10) ** shift
    k = math.ceil(scaled) if up else math.floor(scaled)
    val = Fraction(k) / Fraction(10) ** shift
    if val.denominator == 1:
        return str(val.numerator)
    # a plain decimal when short, otherwise scientific notation
    neg = k < 0
    ds = str(abs(k)).rstrip("0")
    exp10 = len(str(abs(k))) - 1 - shift  # value = d.ddd * 10^exp10
    mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
    if -5 <= exp10 < 0:
        text = "0." + "0" * (-exp10 - 1) + ds
    elif exp10 >= 0 and len(ds) <= exp10 + 1:
        text = ds + "0" * (exp10 + 1 - len(ds))
    elif 0 <= exp10 < 15:
        text = ds[:exp10 + 1] + "." + ds[exp10 + 1:]
    else:
        text = f"{mant}e{exp10}"
    text = ("-" if neg else "") + text
    assert Fraction(text) == val, (text, val)
    return text


def round_multipliers(lam: Any, bits: int = 50) -> list[Fraction]:
    """Non-negative dyadic rationals ``p / 2^k`` with one denominator, ``~bits`` significant bits for the largest.

    >>> round_multipliers([0.5, 1e-30, 0.25 + 2**-60])
    [Fraction(1, 2), Fraction(0, 1), Fraction(1, 4)]
    """
    out: list[Fraction] = []
    a = np.asarray(lam, dtype=object).reshape(-1)
    vals = [v if isinstance(v, Fraction) else None for v in a]
    floats = [float(v) for v, f in zip(a, vals) if f is None]
    if any(not math.isfinite(v) for v in floats):
        raise CertifyError("multipliers must be finite")
    big = max([abs(v) for v in floats] + [0.0])
    k = bits - (math.frexp(big)[1] if big > 0 else 0)
    for v, f in zip(a, vals):
        if f is not None:
            out.append(max(f, Fraction(0)))
            continue
        x = max(float(v), 0.0)
        out.append(Fraction(round(Fraction(x) * 2 ** k), 2 ** k) if k >= 0 else Fraction(round(Fraction(x) / 2 ** -k) * 2 ** -k))
    return out


def _rational(v: Any, where: str) -> Fraction:
    if isinstance(v, Fraction):
        return v
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return Fraction(int(v))
    if isinstance(v, (float, np.floating)):
        if not math.isfinite(float(v)):
            raise CertifyError(f"{where}={v!r} is not finite")
        return Fraction(float(v))
    if isinstance(v, str):
        try:
            return C.parse_rational(v, where)
        except C.CertificateError as e:
            raise CertifyError(str(e)) from None
    try:  # sympy Rational and friends
        import sympy as sp

        r = sp.nsimplify(v) if not isinstance(v, sp.Basic) else v
        if r.is_Rational:
            return Fraction(int(r.p), int(r.q))
    except Exception:  # pragma: no cover - fall through to the error
        pass
    raise CertifyError(f"{where}={v!r} is not an exact rational")


def _selection_entry(sel: Mapping[str, Any], net, where: str, cnet: Any = None) -> dict[str, Any] | None:
    """A float kink selection -> a certificate entry with a rational ``s`` clipped to its Clarke interval.

    What a node's kink is (a derivative interval, or a convex combination over a pooling window)
    is asked of the checker's rule table, the same facts the checker will verify.
    """
    node = sel.get("node")
    if node not in net.nodes:
        raise CertifyError(f"{where}: node {node!r} is not a node of the network")
    cnet = cnet if cnet is not None else C.Net(net.to_dict(), "network")
    nd = cnet.nodes[node]
    rule = C.RULES[nd.op]
    entry: dict[str, Any] = {"node": node, "sample": int(sel["sample"]),
                             "unit": [int(u) for u in np.atleast_1d(sel["unit"])]}
    if sel.get("row") is not None:
        entry["row"] = int(sel["row"])
    if rule.selection == "weights":
        raw = sel.get("weights")
        if raw is None and isinstance(sel.get("s"), Mapping):  # check_kkt: {flat index in the window: weight}
            kh, kw = nd.a["k"]
            raw = [0.0] * (kh * kw)
            for t, w in sel["s"].items():
                raw[int(t)] = max(float(w), 0.0)
        if raw is None:
            return None
        ws = [w if isinstance(w, Fraction) else Fraction(round(Fraction(float(w)) * 2 ** 30), 2 ** 30) for w in raw]
        tot = sum(ws)
        if tot <= 0:
            return None
        entry["weights"] = [encode_rational(w / tot) for w in ws]
        return entry
    s = sel.get("s")
    if s is None or rule.selection != "s" or not rule.kinked(nd.a):
        return None
    lo, hi = rule.clarke(nd.a)
    f = s if isinstance(s, Fraction) else Fraction(round(Fraction(float(s)) * 2 ** 30), 2 ** 30)
    entry["s"] = encode_rational(min(max(f, lo), hi))
    return entry


# ---------------------------------------------------------------------------
# building blocks of the file
# ---------------------------------------------------------------------------
def _meta(kind: str, statement: str) -> dict[str, Any]:
    from .. import __version__

    return {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, "kind": kind,
            "created": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "tool": f"kkt-verifier {__version__}", "statement": statement}


def _encoding(size: int, encoding: str) -> str:
    if encoding == "auto":
        return "f64-hex" if size <= 20000 else "f64-base64"
    if encoding not in ("f64-hex", "f64-base64"):
        raise CertifyError(f"encoding={encoding!r} must be 'auto', 'f64-hex' or 'f64-base64'")
    return encoding


def _store(net, params: dict[str, np.ndarray], X: np.ndarray, y: np.ndarray, *, inline: bool, encoding: str,
           out: Path | None) -> tuple[dict[str, Any], dict[str, Any]]:
    if inline:
        pb = {"tensors": {p: encode_tensor(params[p], _encoding(params[p].size, encoding)) for p in net.param_names}}
        db = {"X": encode_tensor(X, _encoding(X.size, encoding)), "y": encode_labels(y)}
        return pb, db
    if out is None:
        raise CertifyError("inline=False stores parameters and data next to the certificate: give out=PATH")
    stem = out.name[:-5] if out.name.endswith(".json") else out.name
    out.parent.mkdir(parents=True, exist_ok=True)
    ppath = out.parent / f"{stem}.params.npz"
    dpath = out.parent / f"{stem}.data.npz"
    from ..io import atomic_write, write_npz

    atomic_write(ppath, lambda f: write_npz(f, {p: np.asarray(params[p], dtype=np.float64) for p in net.param_names}))
    atomic_write(dpath, lambda f: write_npz(f, {"X": np.asarray(X, dtype=np.float64), "y": np.asarray(y).astype(np.int64)}))
    return ({"path": ppath.name, "sha256": sha256_file(ppath)}, {"path": dpath.name, "sha256": sha256_file(dpath)})


def _witnesses(lam: list[Fraction] | None, sels: list[dict[str, Any]]) -> dict[str, Any]:
    w: dict[str, Any] = {"sha256": {}}
    if lam is not None:
        w["multipliers"] = [encode_rational(v) for v in lam]
        w["sha256"]["multipliers"] = sha256_json(w["multipliers"])
    if sels:
        w["kink_selections"] = sels
        w["sha256"]["kink_selections"] = sha256_json(sels)
    return w


def _claims(values: Mapping[str, Any], details: Mapping[str, Any], digits: int, prefix: str = "") -> dict[str, Any]:
    """Claims from exact actual values, rounded outward."""
    out: dict[str, Any] = {}
    for name in ("min_margin", "eps2", "delta", "delta_max"):
        v = values.get(prefix + name)
        if v is None:
            continue
        up = name != "min_margin"
        out[prefix + name] = {"relation": "<=" if up else ">=", "bound": round_decimal(v, digits, up=up)}
    return out


def _normalized_margin_claim(nm: Any, digits: int) -> dict[str, Any] | None:
    if nm is None:
        return None
    qmin, n2, L = nm
    if qmin is None or n2 == 0:
        return None
    approx = Fraction(float(qmin) / float(n2) ** (float(L) / 2))
    g = Fraction(round_decimal(approx * (1 - Fraction(1, 10 ** (digits + 2))) if approx > 0 else approx * (1 + Fraction(1, 10 ** (digits + 2))), digits, up=False))
    for _ in range(60):
        if C.normalized_margin_at_least(qmin, n2, L, g):
            return {"relation": ">=", "bound": str(g) if g.denominator == 1 else round_decimal(g, digits + 2, up=False)}
        g = g - abs(g) / 1000 - Fraction(1, 10 ** 12)
    return None  # pragma: no cover


def _normalize(net, theta: np.ndarray, X: np.ndarray, y: np.ndarray, L: Any) -> tuple[np.ndarray, Fraction, int]:
    """float64 ``theta_hat`` with exact smallest margin ``>= 1`` (nudged outward if rounding left it below).

    Only the samples whose float margin is within ``1e-8`` (relative) of the smallest are evaluated
    exactly here; the final certificate evaluates every sample exactly anyway, so a wrong guess
    could only make the claimed smallest margin slightly below 1, never a false claim.
    """
    from ..numeric import margins
    from ..numeric.data import constraints

    nd = net.to_dict()
    Lf = float(L)
    point = theta.copy()
    cons = constraints(net, y)
    for attempt in range(12):
        q = margins(net, point, X, y)
        if q.min() <= 0:
            raise CertifyError("the data are not separated by these parameters (smallest margin "
                               f"{float(q.min()):.6g} <= 0): there is no KKT statement to certify")
        cand = np.unique(cons.sample[q <= q.min() * (1 + 1e-8) + 1e-300])
        qmin = C.exact_min_margin(nd, net.unflatten(point), X[cand], y[cand])
        if qmin <= 0:
            raise CertifyError("the data are not separated by these parameters (exact smallest margin "
                               f"{float(qmin):.6g} <= 0): there is no KKT statement to certify")
        if qmin >= 1:
            return point, qmin, attempt
        factor = (1.0 / float(qmin)) ** (1.0 / Lf) * (1.0 + 2.0 ** -48 * 4 ** attempt)
        point = point * factor
    raise CertifyError("could not normalise the point to an exact smallest margin >= 1")  # pragma: no cover


def _write(cert: dict[str, Any], out: Path | None) -> None:
    if out is not None:
        from ..io import atomic_write_text

        out.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out, json.dumps(cert, indent=1) + "\n")


def _as_network(net: Any):
    from ..graph import Network

    if isinstance(net, Network):
        return net
    if isinstance(net, Mapping):
        return Network.from_dict(net)
    raise CertifyError(f"net must be a verifier.Network or its dict, got {type(net).__name__}")


def _jsonable(v: Any) -> Any:
    return jsonable(v, nonfinite="str", max_array=10000)


def _statement(kind: str, claims: Mapping[str, Any]) -> str:
    def b(name: str) -> str:
        return claims[name]["bound"] if name in claims else "?"

    relax = claims.get("relaxation", {}).get("value")
    hs = {"none": "the gradients h_r = grad q_r(theta) (no kink at a sample with lambda_r > 0)",
          "exact": "Clarke subgradients h_r (kink selections in the one hidden layer)",
          "chain-rule": "chain-rule subgradients h_r (kink selections beyond one hidden layer: a relaxation of the "
                        "Clarke subdifferential)"}.get(relax, "subgradients h_r")
    s = (f"The stored parameters theta have smallest margin min_r q_r(theta) >= {b('min_margin')} and, with the "
         f"stored multipliers lambda_r >= 0 and {hs}, satisfy ||theta - sum_r lambda_r h_r||^2 <= {b('eps2')} and "
         f"sum_r lambda_r (q_r - 1) <= {b('delta')}: an approximate KKT point of min 1/2 ||theta||^2 s.t. "
         f"q_r(theta) >= 1")
    if kind == "embedding":
        held = [t for name, t in (("isometry", "an isometry (T^T T = I)"),
                                  ("output_preserved", "output-preserving (Phi~(T theta; x_i) = Phi(theta; x_i) on every "
                                                       "sample)"),
                                  ("gradient_commutes", "intertwines the weighted gradients")) if name in claims]
        s += (f". The map T (embedding.map) is {', '.join(held) if held else 'claimed to satisfy none of the embedding conditions'}"
              f"; in the wide network T theta has smallest margin >= {b('wide_min_margin')}, eps^2 <= {b('wide_eps2')}, "
              f"delta <= {b('wide_delta')} with the same multipliers")
    return s


# ---------------------------------------------------------------------------
# public producers
# ---------------------------------------------------------------------------
def certify_kkt(net: Any, params: Any, X: Any, y: Any, *, multipliers: Sequence[Any] | None = None,
                kink_selections: Sequence[Mapping[str, Any]] | None = None, normalize: bool = True,
                report: Any = None, kkt_options: Mapping[str, Any] | None = None, out: str | Path | None = None,
                inline: bool = True, encoding: str = "auto", claim_digits: int = 6, multiplier_bits: int = 50,
                self_check: bool = True, measured: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A KKT certificate for ``(net, params)`` on ``(X, y)`` (see the module docstring).

    Parameters
    ----------
    multipliers, kink_selections:
        Give your own witnesses (exact rationals as strings ``"p/q"``, Fractions, or floats, taken
        exactly); by default they come from :func:`verifier.check_kkt` (``kkt_options``, or a
        ``report`` you already computed at the same parameters).
    normalize:
        Certify at ``theta_hat = theta / scale`` (smallest margin exactly ``>= 1``, nudged outward
        after rounding; default) or at ``params`` as given.
    out, inline, encoding:
        Write the JSON to ``out``; ``inline=False`` stores parameters and data as ``.npz`` files next
        to it, referenced by SHA-256; encoding of inline tensors: ``"f64-hex"`` (readable),
        ``"f64-base64"`` (compact) or ``"auto"`` (hex up to 20,000 entries).
    claim_digits:
        Significant decimal digits of the claimed bounds (rounded outward from the exact values).
    self_check:
        Cross-check the exact figures against the float engine (raises if they disagree beyond
        rounding, which would be a bug in one of them).

    Returns the certificate as a dict (also written to ``out`` when given).
    """
    net = _as_network(net)
    prop = _propose(net, params, X, y, multipliers=multipliers, kink_selections=kink_selections, normalize=normalize,
                    report=report, kkt_options=kkt_options, multiplier_bits=multiplier_bits, measured=measured)
    cert = _assemble("kkt", net, prop["params"], prop["X"], prop["y"], prop["lam"], prop["sels"], None,
                     inline=inline, encoding=encoding, out=Path(out) if out is not None else None)
    return _finish(cert, out, claim_digits, prop["measured"], prop["seconds"], self_check, net, prop["params"],
                   prop["X"], prop["y"])


def _propose(net, params: Any, X: Any, y: Any, *, multipliers, kink_selections, normalize, report, kkt_options,
             multiplier_bits, measured) -> dict[str, Any]:
    """The float proposal: the point (normalised exactly), rounded multipliers and selections."""
    from ..numeric import check_inputs, check_labels, margins

    t0 = time.perf_counter()
    ps = net.check_params(params)
    Xa = check_inputs(net, X)
    ya = check_labels(net, y, Xa.shape[0])
    L = degree(net)
    theta = net.flatten(ps)
    measured_d: dict[str, Any] = dict(measured or {})
    sels_in: list[Mapping[str, Any]] = list(kink_selections or [])
    if multipliers is None:
        if report is None:
            from ..kkt import check_kkt

            report = check_kkt(net, ps, Xa, ya, **dict(kkt_options or {}))
        if report.verdict == "infeasible":
            raise CertifyError(f"cannot certify: the data are not separated (smallest margin {report.min_margin:.6g} "
                               f"<= 0 at samples {list(report.infeasible_samples)[:5]}); there is no KKT statement")
        lam_f = np.asarray(report.multipliers, dtype=np.float64)
        if normalize:
            point = np.asarray(report.theta_hat, dtype=np.float64)
        else:  # lambda scales as s^(2 - L) when theta = s theta_hat
            point = theta
            lam_f = lam_f * float(report.scale) ** (2 - float(L))
        if kink_selections is None:
            sels_in = list(report.kink_selections or [])
        measured_d.setdefault("float", {k: _jsonable(getattr(report, k, None)) for k in (
            "verdict", "eps", "eps_rel", "delta", "delta_rel", "delta_max", "gap", "min_margin", "normalized_margin",
            "scale", "sum_multipliers", "relaxation", "solver", "kinks_found", "tol", "kink_tol")})
        lam = round_multipliers(lam_f, multiplier_bits)
    else:
        q = margins(net, ps, Xa, ya)
        if normalize:
            if q.min() <= 0:
                raise CertifyError(f"cannot normalise: smallest margin {q.min():.6g} <= 0 (data not separated)")
            point = theta / float(q.min()) ** (1.0 / float(L))
        else:
            point = theta
        lam = [_rational(v, f"multipliers[{i}]") for i, v in enumerate(np.asarray(multipliers, dtype=object).reshape(-1))]
        if any(v < 0 for v in lam):
            raise CertifyError("multipliers must be >= 0")
    if normalize:
        point, _, nudges = _normalize(net, point, Xa, ya, L)
        measured_d["normalization_nudges"] = nudges
    cnet = C.Net(net.to_dict(), "network") if sels_in else None
    sels = [e for e in (_selection_entry(s, net, f"kink_selections[{i}]", cnet) for i, s in enumerate(sels_in)) if e]
    return {"params": net.unflatten(point), "X": Xa, "y": ya, "lam": lam, "sels": sels, "measured": measured_d,
            "seconds": time.perf_counter() - t0}


def _assemble(kind: str, net, params: dict[str, np.ndarray], X: np.ndarray, y: np.ndarray, lam: list[Fraction] | None,
              sels: list[dict[str, Any]], embedding: dict[str, Any] | None, *, inline: bool, encoding: str,
              out: Path | None) -> dict[str, Any]:
    pb, db = _store(net, params, X, y, inline=inline, encoding=encoding, out=out)
    cert: dict[str, Any] = {"meta": _meta(kind, ""), "network": net.to_dict(), "params": pb, "data": db,
                            "witnesses": _witnesses(lam, sels)}
    if embedding is not None:
        cert["embedding"] = embedding
    return cert


def _finish(cert: dict[str, Any], out: str | Path | None, digits: int, measured: dict[str, Any], t_float: float,
            self_check: bool, net=None, params: Mapping[str, np.ndarray] | None = None, X: np.ndarray | None = None,
            y: np.ndarray | None = None, refutation: bool = False) -> dict[str, Any]:
    base = Path(out).resolve().parent if out is not None else Path.cwd()
    t1 = time.perf_counter()
    # one exact evaluation; float selections that are not valid witnesses in exact arithmetic (e.g. a max-pool
    # weight on an entry that ties only up to rounding) are reported by the checker and left out (the exact
    # default derivative is used instead), then dropped from the file with the others the exact pass does not use
    problems: list = []
    figs = C.evaluate(cert, base_dir=base, selection_problems=problems)
    if problems:
        measured["selections_invalid"] = len(problems)
    for lst, used in figs["used_selections"].items():
        old = _selection_list(cert, lst)
        if len(used) != len(old):
            measured["selections_dropped"] = measured.get("selections_dropped", 0) + len(old) - len(used)
            _replace_selections(cert, lst, [old[k] for k in used])
    values = figs["claim_values"]
    claims: dict[str, Any] = {"degree": {"relation": "=", "value": str(values["degree"])},
                              "relaxation": {"relation": "<=", "value": values["relaxation"]}}
    claims.update(_claims(values, figs["details"], digits))
    nm = _normalized_margin_claim(values.get("normalized_margin"), digits)
    if nm is not None:
        claims["normalized_margin"] = nm
    if cert["meta"]["kind"] == "embedding":
        failed = [f"{name}: {figs['details'].get(name + '_detail', '')}"
                  for name in ("isometry", "output_preserved", "gradient_commutes") if not values.get(name)]
        if failed and not refutation:
            raise CertifyError("the map is not a certifiable embedding: " + "; ".join(failed) + " (an embedding "
                               "certificate must claim isometry, output_preserved and gradient_commutes)")
        for name in ("isometry", "output_preserved", "gradient_commutes"):
            claims[name] = {"relation": "=", "value": True}
        if failed:
            measured["conditions_failing_exactly"] = failed
        claims.update(_claims(values, figs["details"], digits, prefix="wide_"))
    t_exact = time.perf_counter() - t1
    pub = figs["public"]
    exact = {k: float(pub[k]) for k in ("eps2", "delta", "delta_max", "min_margin", "theta_norm2", "sum_multipliers")
             if pub.get(k) is not None}
    measured.update({"exact": exact, "exact_kinks": len(pub["kinks"]), "seconds_float": round(t_float, 4),
                     "seconds_exact": round(t_exact, 4)})
    if self_check and net is not None:
        measured["self_check"] = _cross_check(net, params, X, y, figs)
    cert["claims"] = claims
    cert["measured"] = _jsonable(measured)
    cert["meta"]["statement"] = _statement(cert["meta"]["kind"], claims)
    _write(cert, Path(out) if out is not None else None)
    return cert


def _selection_list(cert: dict[str, Any], lst: str) -> list[dict[str, Any]]:
    block = cert["witnesses"] if lst == "witnesses.kink_selections" else cert["embedding"]
    return list(block.get("kink_selections" if lst == "witnesses.kink_selections" else "wide_kink_selections") or [])


def _replace_selections(cert: dict[str, Any], lst: str, entries: list[dict[str, Any]]) -> None:
    block = cert["witnesses"] if lst == "witnesses.kink_selections" else cert["embedding"]
    key = "kink_selections" if lst == "witnesses.kink_selections" else "wide_kink_selections"
    hashes = block.setdefault("sha256", {})
    if entries:
        block[key] = entries
        hashes[key] = sha256_json(entries)
    else:
        block.pop(key, None)
        hashes.pop(key, None)


def _cross_check(net, params: Mapping[str, np.ndarray] | None, X: np.ndarray | None, y: np.ndarray | None,
                 figs: Mapping[str, Any]) -> dict[str, Any]:
    """The exact figures against the float engine (a different implementation, not a re-run of the checker).

    Margins always; ``eps^2`` when no kink carries weight (then the float gradients are the h_r).
    Disagreement beyond rounding (relative 1e-8 of the scale) is an internal error.
    """
    from ..numeric import margins_from, prepare, weighted_gradient_from

    pub = figs["public"]
    fp, cons = prepare(net, params, X, y)
    qf = margins_from(fp, cons)
    qe = np.array([float(v) for v in pub["margins"]])
    scale = 1.0 + float(np.max(np.abs(qf))) if qf.size else 1.0
    dq = float(np.max(np.abs(qf - qe))) / scale if qf.size else 0.0
    out: dict[str, Any] = {"against": "verifier.numeric (float64)", "margins_rel_diff": dq}
    if dq > 1e-8:
        raise CertifyError(f"internal error: exact and float margins differ by {dq:.3g} (relative); the certificate "
                           "was not written")
    if figs["lambda"] is not None and pub["relaxation"] == "none":
        lam = np.array([float(v) for v in figs["lambda"]])
        theta = net.flatten(params)
        v = weighted_gradient_from(fp, cons, lam)
        e2 = float(np.sum((theta - v) ** 2))
        sc = float(np.sum(theta ** 2) + np.sum(v ** 2)) + 1e-300
        de = abs(e2 - float(pub["eps2"])) / sc
        out["eps2_rel_diff"] = de
        if de > 1e-8:
            raise CertifyError(f"internal error: exact and float eps^2 differ by {de:.3g} (relative); the certificate "
                               "was not written")
    return out


def certify_embedding(net: Any, params: Any, X: Any, y: Any, *, split: Any = None, embedding: Any = None,
                      multipliers: Sequence[Any] | None = None, kink_selections: Sequence[Mapping[str, Any]] | None = None,
                      normalize: bool = True, report: Any = None, kkt_options: Mapping[str, Any] | None = None,
                      out: str | Path | None = None, inline: bool = True, encoding: str = "auto",
                      claim_digits: int = 6, multiplier_bits: int = 50, self_check: bool = True,
                      measured: Mapping[str, Any] | None = None, refutation: bool = False) -> dict[str, Any]:
    """An embedding certificate: ``T`` is an isometry, ``Phi~(T theta) = Phi(theta)`` on the data, and
    ``T theta`` is an ``(eps, delta)``-KKT point of the wide network with the same multipliers.

    ``embedding`` is a :class:`verifier.embed.Embedding` of ``net``; or ``split`` describes one:
    ``"layer=1,neuron=3,ratios=3/5,4/5"`` (dense), ``"layer=1,channel=0,ratios=..."`` (conv),
    ``"layer=1,zero=2"`` (:func:`add_zero_neuron`), or a dict with the same keys.  The map must
    have rational entries.  Multipliers and kink selections are found and rounded as in
    :func:`certify_kkt`; the wide network's selections are their images under the unit map.

    A map for which a condition fails exactly (e.g. ratios with ``sum alpha^2 != 1``) is refused with
    :class:`CertifyError` naming it: an embedding certificate must claim all three conditions.  With
    ``refutation=True`` the certificate is written anyway, claiming the conditions, so that
    ``check-cert`` documents exactly which one fails (exit status 1; used for counterexamples).
    """
    net = _as_network(net)
    if embedding is None:
        if split is None:
            raise CertifyError("give split='layer=1,neuron=0,ratios=3/5,4/5' or embedding=verifier.neuron_split(...)")
        embedding = make_split(net, split)
    if embedding.net.to_dict() != net.to_dict():
        raise CertifyError("embedding.net is not the network being certified")
    rows, cols, vals = [], [], []
    for r, c, v in embedding.entries():
        fv = _exact_entry(v, r, c)
        if fv != 0:
            rows.append(int(r))
            cols.append(int(c))
            vals.append(encode_rational(fv))
    P, Pw = net.num_params, embedding.wide_net.num_params
    mp: dict[str, Any] = {"shape": [Pw, P], "rows": rows, "cols": cols, "values": vals}
    mp["sha256"] = sha256_json({"cols": cols, "rows": rows, "shape": [Pw, P], "values": vals})
    prop = _propose(net, params, X, y, multipliers=multipliers, kink_selections=kink_selections, normalize=normalize,
                    report=report, kkt_options=kkt_options, multiplier_bits=multiplier_bits, measured=measured)
    sels = prop["sels"]
    wide_sels = _map_selections(sels, embedding, rows, cols)
    emb_block: dict[str, Any] = {
        "wide_network": embedding.wide_net.to_dict(), "map": mp,
        "split": _jsonable({k: v for k, v in (embedding.info or {}).items()}),
        "description": str(embedding.description), "sha256": {}}
    if wide_sels:
        emb_block["wide_kink_selections"] = wide_sels
        emb_block["sha256"]["wide_kink_selections"] = sha256_json(wide_sels)
    cert = _assemble("embedding", net, prop["params"], prop["X"], prop["y"], prop["lam"], sels, emb_block,
                     inline=inline, encoding=encoding, out=Path(out) if out is not None else None)
    meas = prop["measured"]
    if embedding.warnings:
        meas["embedding_warnings"] = list(embedding.warnings)
    return _finish(cert, out, claim_digits, meas, prop["seconds"], self_check, net, prop["params"], prop["X"],
                   prop["y"], refutation=refutation)


def _exact_entry(v: Any, r: int, c: int) -> Fraction:
    try:
        return _rational(v, f"T[{r}, {c}]")
    except CertifyError:
        raise CertifyError(f"the embedding map has the irrational entry T[{r}, {c}] = {v}; certificates need exact "
                           "rational maps (ratios such as 3/5, 4/5 or 1/3, 2/3, 2/3, not 1/sqrt(2))") from None


def _map_selections(sels: list[dict[str, Any]], emb: Any, rows: list[int], cols: list[int]) -> list[dict[str, Any]]:
    """Images of the narrow kink selections: a wide unit inherits the selection of the narrow unit it copies.

    The unit correspondence is read off ``T``: the wide weight row ``W~[u, :]`` (or filter ``u``) of the
    layer feeding an activation copies entries of the narrow row ``W[j, :]``.
    """
    if not sels:
        return []
    net, wide = emb.net, emb.wide_net
    out: list[dict[str, Any]] = []
    unit_maps: dict[str, dict[int, list[int]]] = {}

    def unit_map(act: str) -> dict[int, list[int]]:
        if act in unit_maps:
            return unit_maps[act]
        m: dict[int, list[int]] = {}
        src = net.nodes[act].inputs[0]
        while net.nodes[src].op in ("bias",):
            src = net.nodes[src].inputs[0]
        nd = net.nodes[src]
        if nd.op in ("dense", "conv2d") and src in wide.nodes:
            pn = nd.params["weight"]
            a, b = net.offsets[pn]
            wa, wb = wide.offsets[pn]
            per = int(np.prod(net.param_shapes[pn][1:]))
            wper = int(np.prod(wide.param_shapes[pn][1:]))
            for r, c in zip(rows, cols):
                if a <= c < b and wa <= r < wb:
                    j, u = (c - a) // per, (r - wa) // wper
                    m.setdefault(j, [])
                    if u not in m[j]:
                        m[j].append(u)
        unit_maps[act] = m
        return m

    for e in sels:
        node = e["node"]
        if node not in wide.nodes or "s" not in e:
            continue
        for u in unit_map(node).get(e["unit"][0], []):
            w = dict(e)
            w["unit"] = [u] + list(e["unit"][1:])
            out.append(w)
    return out


def parse_split(text: str) -> dict[str, Any]:
    """The split grammar of ``verifier embed --split`` (one grammar: :func:`verifier.embed.spec.parse_split`).

    >>> parse_split("layer=1,neuron=3,ratios=3/5,4/5")
    {'layer': 1, 'neuron': 3, 'ratios': ['3/5', '4/5']}
    """
    from ..embed.spec import parse_split as _parse

    return _parse(text, option="split")


def make_split(net, split: Any):
    """An :class:`~verifier.embed.Embedding` of ``net`` from a split string or dict (see :func:`parse_split`)."""
    from ..embed.spec import make_embedding

    return make_embedding(net, None, split, option="split")
