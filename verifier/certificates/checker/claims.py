"""Claims as data: what each claim states, which kinds require it, and the statement built from verified claims.

A certificate's reader is shown only what the checker verified: the headline
and the statement are generated here from the claims that hold, never read from
the file (``meta.statement`` is kept as an unverified note).

>>> CLAIMS["eps2"].relation, CLAIMS["eps2"].needs_multipliers, "eps2" in REQUIRED["kkt"]
('<=', True, True)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from .evaluate import RELAXATIONS
from .limits import CertificateError, parse_rational


@dataclass(frozen=True)
class ClaimSpec:
    """One claim of the format: its relation, how it is written, and what it means."""

    name: str
    relation: str           # "=", "<=", ">="
    written: str            # "value" or "bound"
    type: str               # "rational", "relaxation", "true"
    meaning: str
    needs_multipliers: bool = False
    embedding_only: bool = False


_SPECS = [
    ClaimSpec("degree", "=", "value", "rational", "degree L of positive homogeneity: Phi(c theta) = c^L Phi(theta)"),
    ClaimSpec("relaxation", "<=", "value", "relaxation",
              "subgradients needed: none (gradients) < exact (Clarke) < chain-rule"),
    ClaimSpec("min_margin", ">=", "bound", "rational", "min_r q_r(theta)"),
    ClaimSpec("normalized_margin", ">=", "bound", "rational", "min_r q_r / ||theta||^L"),
    ClaimSpec("eps2", "<=", "bound", "rational", "||theta - sum_r lambda_r h_r||^2 (stationarity)", True),
    ClaimSpec("delta", "<=", "bound", "rational", "sum_r lambda_r (q_r - 1) (complementary slackness)", True),
    ClaimSpec("delta_max", "<=", "bound", "rational", "max_r lambda_r (q_r - 1)", True),
    ClaimSpec("isometry", "=", "value", "true", "T^T T = I", False, True),
    ClaimSpec("output_preserved", "=", "value", "true", "Phi~(T theta; x_i) = Phi(theta; x_i), every sample", False,
              True),
    ClaimSpec("gradient_commutes", "=", "value", "true", "sum lambda h~(T theta) = T sum lambda h(theta)", True, True),
    ClaimSpec("wide_min_margin", ">=", "bound", "rational", "min_r q~_r(T theta)", False, True),
    ClaimSpec("wide_eps2", "<=", "bound", "rational", "eps^2 of T theta in the wide network", True, True),
    ClaimSpec("wide_delta", "<=", "bound", "rational", "delta of T theta in the wide network", True, True),
    ClaimSpec("wide_delta_max", "<=", "bound", "rational", "delta_max of T theta in the wide network", True, True),
]
CLAIMS: dict[str, ClaimSpec] = {s.name: s for s in _SPECS}

#: claims every certificate of a kind must make (a missing one is an error naming it)
REQUIRED: dict[str, tuple[str, ...]] = {
    "kkt": ("degree", "relaxation", "min_margin", "eps2", "delta"),
    "embedding": ("degree", "relaxation", "min_margin", "eps2", "delta", "isometry", "output_preserved",
                  "gradient_commutes", "wide_min_margin", "wide_eps2", "wide_delta"),
}


def _float(v: Any) -> float:
    """``float(v)`` that saturates to +-inf instead of raising (bounds may be astronomically large)."""
    try:
        return float(v)
    except OverflowError:
        return float("inf") if v > 0 else float("-inf")


def _show(v: Any) -> str:
    """Human form of an exact value: the fraction when short, else the nearest float (shortest repr)."""
    if isinstance(v, Fraction):
        if v.denominator == 1 and len(str(v.numerator)) <= 24:
            return str(v.numerator)
        text = str(v) if v.numerator.bit_length() + v.denominator.bit_length() < 160 else ""
        if text and len(text) <= 24:
            return text
        f = _float(v)
        if f in (float("inf"), float("-inf")):
            return f"{'-' if f < 0 else ''}(a number of {len(str(abs(v.numerator) // v.denominator))} digits)"
        return repr(f) if Fraction(f) == v else "~" + repr(f)
    if isinstance(v, float):
        return repr(v)
    return str(v)


@dataclass
class ClaimResult:
    """One claim: ``name``, ``relation``, ``claimed`` and ``actual`` values and whether it ``holds`` exactly."""

    name: str
    relation: str
    claimed: Any
    actual: Any
    holds: bool
    detail: str = ""
    claimed_text: str | None = None

    @property
    def excess(self) -> Fraction | None:
        """By how much the claim fails (``> 0``) or holds (``<= 0``), for numeric bounds."""
        if not isinstance(self.claimed, Fraction) or not isinstance(self.actual, Fraction):
            return None
        if self.relation == "<=":
            return self.actual - self.claimed
        if self.relation == ">=":
            return self.claimed - self.actual
        return abs(self.actual - self.claimed)

    @property
    def shown(self) -> str:
        return self.claimed_text if self.claimed_text is not None else _show(self.claimed)

    def describe(self) -> str:
        status = "holds" if self.holds else "FAILS"
        text = f"claims.{self.name}: {status}: claimed {self.name} {self.relation} {self.shown}, actual {_show(self.actual)}"
        ex = self.excess
        if ex is not None and not self.holds:
            text += f" (off by {_show(ex)})"
        if self.detail:
            text += f"; {self.detail}"
        return text

    def __repr__(self) -> str:
        return f"ClaimResult({self.name} {self.relation} {self.shown[:30]}: {'holds' if self.holds else 'FAILS'})"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "relation": self.relation, "claimed": self.shown, "actual": str(self.actual),
                "actual_shown": _show(self.actual), "holds": self.holds, "detail": self.detail}


def compare(name: str, raw: Any, actual: Any, where: str, detail: str,
            at_least: Any = None) -> ClaimResult:
    """Compare one claimed value with the checker's exact ``actual`` value."""
    spec = CLAIMS[name]
    if spec.type == "relaxation":
        if raw not in RELAXATIONS:
            raise CertificateError(where, f"{str(raw)[:30]!r} must be one of {list(RELAXATIONS)}")
        return ClaimResult(name, spec.relation, raw, actual, RELAXATIONS.index(actual) <= RELAXATIONS.index(raw), detail)
    if spec.type == "true":
        if raw is not True:
            raise CertificateError(where, f"{str(raw)[:30]!r}: this claim can only state true")
        return ClaimResult(name, spec.relation, True, bool(actual), bool(actual), detail)
    claimed = parse_rational(raw, where)
    text = str(raw) if isinstance(raw, (str, int)) and not isinstance(raw, bool) else None
    if actual is None:
        return ClaimResult(name, spec.relation, claimed, "undefined", False, detail, text)
    if name == "normalized_margin":
        qmin, n2, L = actual
        holds = at_least(qmin, n2, L, claimed)
        try:
            approx: Any = Fraction(_float(qmin) / _float(n2) ** (float(L) / 2)) if n2 else "undefined"
        except (OverflowError, ValueError, ZeroDivisionError):
            approx = "undefined"
        return ClaimResult(name, spec.relation, claimed, approx, holds,
                           "compared exactly: min q vs bound * ||theta||^L via powers", text)
    holds = {"<=": actual <= claimed, ">=": actual >= claimed, "=": actual == claimed}[spec.relation]
    return ClaimResult(name, spec.relation, claimed, actual, holds, detail, text)


def normalized_margin_at_least(qmin: Fraction, n2: Fraction, L: Fraction, g: Fraction) -> bool:
    """``qmin / n2^(L/2) >= g`` exactly (``n2 = ||theta||^2 > 0``, ``L`` a positive rational)."""
    if n2 == 0:
        return False
    t = 2 * L.denominator  # raise both sides to the power 2 den(L) to clear the root
    rhs_pow = n2 ** (L.numerator)
    if g <= 0 and qmin >= 0:
        return True
    if g > 0 and qmin <= 0:
        return False
    if g > 0:
        return qmin ** t >= g ** t * rhs_pow
    return (-qmin) ** t <= (-g) ** t * rhs_pow


@dataclass
class CheckResult:
    """Outcome of :func:`check_certificate`: ``ok`` iff every claim holds exactly.

    ``statement`` is generated from the verified claims; ``file_statement`` is the file's own text
    (unverified).  ``unchecked`` lists the fields the checker did not verify (``measured``, ``meta.statement``).
    """

    ok: bool
    kind: str
    claims: list[ClaimResult]
    figures: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    file_statement: str | None = None
    unchecked: list[str] = field(default_factory=list)
    tol: float | None = None

    def claim(self, name: str) -> ClaimResult:
        for c in self.claims:
            if c.name == name:
                return c
        raise KeyError(name)

    def has(self, name: str) -> bool:
        return any(c.name == name and c.holds for c in self.claims)

    @property
    def failed(self) -> list[ClaimResult]:
        return [c for c in self.claims if not c.holds]

    # -- what was proved ----------------------------------------------------------
    def relative(self) -> dict[str, float]:
        """Scale-free forms of the *claimed* bounds: ``eps_rel = eps / ||theta||``, ``delta_rel = delta L / ||theta||^2``."""
        f = self.figures
        n2, L = f.get("theta_norm2"), f.get("degree")
        out: dict[str, float] = {}
        if not n2 or not self.ok:
            return out
        if self.has("eps2"):
            e2 = self.claim("eps2").claimed
            out["eps_rel"] = _float(e2 / n2) ** 0.5 if e2 > 0 else 0.0
        if self.has("delta") and L:
            out["delta_rel"] = max(_float(self.claim("delta").claimed * L / n2), 0.0)
        return out

    def within_tolerance(self) -> bool | None:
        """Whether the proved ``eps_rel`` and ``delta_rel`` are both ``<= tol`` (None without a tolerance)."""
        rel = self.relative()
        if self.tol is None or not rel:
            return None
        return all(v <= self.tol for v in rel.values())

    def headline(self) -> str:
        """One line: what was proved (from the verified claims only), or that the certificate is invalid."""
        if not self.ok:
            return f"INVALID: {len(self.failed)} of {len(self.claims)} claim(s) FAIL ({', '.join(c.name for c in self.failed)})"
        c = {x.name: x for x in self.claims}
        feasible = c["min_margin"].claimed >= 1
        core = (f"an (eps, delta)-KKT point with eps^2 <= {c['eps2'].shown}, delta <= {c['delta'].shown}"
                if feasible else
                f"NOT shown feasible (smallest margin >= {c['min_margin'].shown} < 1); eps^2 <= {c['eps2'].shown}, "
                f"delta <= {c['delta'].shown}")
        rel = self.relative()
        extra = ""
        if rel:
            extra = " (" + ", ".join(f"{k} = {v:.3g}" for k, v in rel.items())
            wt = self.within_tolerance()
            if wt is not None:
                extra += f"; {'within' if wt else 'NOT within'} the tolerance {self.tol:g}"
            extra += ")"
        head = "VALID: " + core + extra
        if self.kind == "embedding":
            head += "; T is an output-preserving isometry and T theta is the same for the wide network"
        return head

    def statement(self) -> str:
        """The full statement, generated from the claims the checker verified."""
        if not self.ok:
            return ("No statement: the certificate is invalid (" + "; ".join(c.describe() for c in self.failed) + ").")
        c = {x.name: x for x in self.claims}
        relax = c["relaxation"].claimed
        hs = {"none": "the gradients h_r = grad q_r(theta) (no kink at a sample with lambda_r > 0)",
              "exact": "Clarke subgradients h_r (the kink selections lie in the first hidden layer)",
              "chain-rule": "chain-rule subgradients h_r (a relaxation: a superset of the Clarke subdifferential)"}[relax]
        feas = c["min_margin"].claimed >= 1
        s = (f"The stored parameters theta of this degree-{c['degree'].shown} homogeneous network have smallest margin "
             f"min_r q_r(theta) >= {c['min_margin'].shown}")
        if "normalized_margin" in c:
            s += f" (normalized margin >= {c['normalized_margin'].shown})"
        s += (f" and, with the stored multipliers lambda_r >= 0 and {hs}, satisfy ||theta - sum_r lambda_r h_r||^2 <= "
              f"{c['eps2'].shown} and sum_r lambda_r (q_r - 1) <= {c['delta'].shown}")
        if "delta_max" in c:
            s += f", max_r lambda_r (q_r - 1) <= {c['delta_max'].shown}"
        s += (": an approximate KKT point of min 1/2 ||theta||^2 s.t. q_r(theta) >= 1" if feas else
              ": theta is NOT shown feasible (smallest margin below 1), so this is not a KKT statement for "
              "the constraints q_r >= 1")
        if relax == "chain-rule":
            s += ", under the chain-rule relaxation"
        if self.kind == "embedding":
            s += (f". The map T (embedding.map) is an isometry (T^T T = I), preserves the output on every sample and "
                  f"intertwines the weighted gradients; in the wide network T theta has smallest margin >= "
                  f"{c['wide_min_margin'].shown}, eps^2 <= {c['wide_eps2'].shown}, delta <= {c['wide_delta'].shown} "
                  f"with the same multipliers")
        return s + "."

    def summary(self) -> str:
        lines = [self.headline(),
                 f"  certificate ({self.kind}): " + (f"all {len(self.claims)} claims hold exactly" if self.ok else
                                                     f"{len(self.failed)} claim(s) FAIL")]
        if self.ok:
            lines.append("  statement (generated by the checker from the verified claims): " + self.statement())
        lines += ["  " + c.describe() for c in self.claims]
        lines += [f"  note: {n}" for n in self.notes]
        if self.file_statement:
            lines.append(f"  meta.statement (the file's own text, NOT checked): {self.file_statement[:300]}")
        for u in self.unchecked:
            if u != "meta.statement":
                lines.append(f"  {u}: not checked (the producer's float figures, not part of the proof)")
        took = f"{self.seconds * 1000:.0f} ms" if self.seconds < 1 else f"{self.seconds:.2f} s"
        lines.append(f"  checked exactly in {took}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return (f"CheckResult(ok={self.ok}, kind={self.kind!r}, claims={len(self.claims)}, "
                f"failed={[c.name for c in self.failed]}, seconds={self.seconds:.3g})")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (exact values as strings)."""
        return {"ok": self.ok, "kind": self.kind, "headline": self.headline(),
                "statement": self.statement() if self.ok else None, "within_tolerance": self.within_tolerance(),
                "relative": self.relative(), "tol": self.tol, "seconds": self.seconds, "notes": list(self.notes),
                "claims": [c.to_dict() for c in self.claims], "file_statement_unverified": self.file_statement,
                "not_checked": list(self.unchecked)}
