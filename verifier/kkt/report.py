"""The :class:`KKTReport`: every number of a KKT check, with the evidence.

Field names are the public interface (``verifier kkt --json`` prints
:meth:`KKTReport.to_dict`, same names).  Undefined numbers (everything after
the margins when the verdict is ``"infeasible"``) are ``None``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from .._json import header, jsonable

#: Version of the ``to_dict`` layout; bump on incompatible changes.
#: 1: first version (issue 3), format name "verifier-kkt-report" inside a ``meta`` block;
#: 2: the common header of the verifier's files (``format``, ``version``, ``meta`` at the top).
FORMAT_NAME = "kkt-verifier/kkt-report"
FORMAT_VERSION = 2


def _json_safe(value: Any) -> Any:
    """numpy arrays / scalars -> lists / Python numbers; non-finite floats -> ``None``."""
    return jsonable(value)


@dataclass
class KKTReport:
    """Result of :func:`verifier.kkt.check_kkt` (docs/math.md sections 2-9).

    Attributes (all at the normalised point ``theta_hat = theta / scale``
    whose smallest margin is 1; for an ``"infeasible"`` verdict only
    ``min_margin``, ``margins`` -- then at the *given* point -- and the
    ``infeasible_*`` fields are set):

    verdict
        ``"kkt"`` when ``eps_rel <= tol`` and ``delta_rel <= tol``;
        ``"not_kkt"`` otherwise; ``"infeasible"`` when some margin is ``<= 0``
        (see ``infeasible_samples``).  With ``relaxation == "chain-rule"``
        a ``"kkt"`` verdict means *KKT under the chain-rule relaxation*.
    eps, eps_rel
        Stationarity residual of the multipliers: for ``norm="l2"``
        ``||theta_hat - sum_i lambda_i h_i||_2`` (computed from the vector
        ``sum_i lambda_i h_i``, one backward pass); for ``l1`` / ``linf`` the
        dual-norm distance from ``sum_i lambda_i h_i`` to the subdifferential
        of ``1/2 ||.||^2`` at ``theta_hat``.  ``eps_rel = eps / ||theta_hat||``.
    delta, delta_rel, delta_max
        ``sum_i lambda_i (q_i - 1)``, ``delta * L / ||theta_hat||^2`` and
        ``max_i lambda_i (q_i - 1)``.
    gap
        Duality gap ``1/2 ||theta_hat||^2 - D(lambda)`` of the tangent dual.
        ``identity_residual = gap - (fenchel_young + delta)``, where
        ``fenchel_young = 1/2 eps^2`` for l2; ``identity_ok`` is False (and a
        warning is added) when it exceeds ``1e-8 * ||theta_hat||^2``.
    min_margin, normalized_margin, scale, degree
        ``min_i q_i(theta)`` at the *given* point, ``min q / ||theta||^L``
        (in the chosen norm), ``(min q)^(1/L)``, and ``L``.
    multipliers, support, sum_multipliers
        ``lambda`` (one per constraint row), indices with ``lambda > 0`` and
        ``sum lambda`` (``= ||theta_hat||^2 / L`` at an exact KKT point;
        ``sum_multipliers_expected`` holds that value, ``euler_residual`` the
        relative difference).
    kink_selections, relaxation, kinks_found
        Subgradient selections ``{"node", "sample", "row", "unit", "s"}`` used
        at kinks (``s = t / lambda``), and ``"none"`` (no kink used),
        ``"exact"`` (every used kink of a sample in the first hidden layer of a
        dense net, any depth after it: the Clarke subdifferential,
        docs/math.md section 7) or ``"chain-rule"``.  ``kinks_found`` counts
        the kinks whose selection can change a gradient (after pruning).
    working_set
        ``None`` for the small-problem route; for the working-set route
        (:mod:`verifier.kkt.working_set`) the rounds, the working-set size of
        each round, the rows added and the largest dual violation left
        outside the working set (``<= price_tol``).
    source_dtype, warnings
        The dtype of the model the weights were read from (``None``: given as
        float64 arrays); see :meth:`note_source_dtype`.  ``warnings``: one
        line each (identity residual, float32 source, ...).
    solver, infeasible_samples
        Which solver produced ``lambda`` (``"nnls"``, ``"clarabel"``,
        ``"osqp"``; at kinks ``"clarabel+polish"`` / ``"osqp+polish"`` when
        the polish step -- selections fixed and snapped to the interval
        ends, the plain dual re-solved by NNLS -- gave a gap that is not
        larger, see :func:`verifier.kkt.check._polish`); samples (and ``infeasible_constraints``: constraint
        labels) whose margin is ``<= 0``.
    """

    verdict: str
    norm: str
    tol: float
    kink_tol: float | None
    degree: int | float
    n_samples: int
    n_constraints: int
    num_params: int
    min_margin: float
    scale: float | None = None
    normalized_margin: float | None = None
    theta_norm: float | None = None
    theta_hat: np.ndarray | None = None
    margins: np.ndarray | None = None
    multipliers: np.ndarray | None = None
    support: np.ndarray | None = None
    sum_multipliers: float | None = None
    sum_multipliers_expected: float | None = None
    euler_residual: float | None = None
    eps: float | None = None
    eps_rel: float | None = None
    delta: float | None = None
    delta_rel: float | None = None
    delta_max: float | None = None
    gap: float | None = None
    dual_objective: float | None = None
    fenchel_young: float | None = None
    identity_residual: float | None = None
    identity_ok: bool | None = None
    eps_gram: float | None = None
    eps_gram_clipped: bool | None = None
    kink_selections: list[dict[str, Any]] = field(default_factory=list)
    kinks_found: int = 0
    relaxation: str = "none"
    solver: str | None = None
    infeasible_samples: list[int] = field(default_factory=list)
    infeasible_constraints: list[str] = field(default_factory=list)
    second_order: dict[str, Any] | None = None
    working_set: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    source_dtype: str | None = None

    def note_source_dtype(self, dtype: str) -> None:
        """Record the dtype the checked weights came from; below float64, add the float32 warning."""
        self.source_dtype = str(dtype).replace("torch.", "")
        if self.source_dtype not in ("float64", "double") and not any("float64" in w for w in self.warnings):
            self.warnings.append(
                f"the weights came from a {self.source_dtype} model; the check ran in float64 on exactly those "
                f"values (each is exactly representable), but the model itself computes in {self.source_dtype} "
                "(relative rounding ~1e-7 for float32): margins, eps_rel and delta_rel below about 1e-6 are beyond "
                f"what {self.source_dtype} training resolves"
            )

    # ------------------------------------------------------------------
    @property
    def is_kkt(self) -> bool:
        return self.verdict == "kkt"

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe dict: the common header (``format``, ``version``, ``meta``), then the attribute names as keys."""
        out: dict[str, Any] = header(FORMAT_NAME, FORMAT_VERSION)
        for f in fields(self):
            out[f.name] = _json_safe(getattr(self, f.name))
        return out

    def summary(self) -> str:
        """One line: verdict and the headline numbers."""
        if self.verdict == "infeasible":
            return f"infeasible: min margin {self.min_margin:.6g} <= 0 at samples {self.infeasible_samples[:10]}"
        label = self.verdict
        if self.verdict == "kkt" and self.relaxation == "chain-rule":
            label = "kkt (under the chain-rule relaxation)"
        return f"{label}: eps_rel {self.eps_rel:.3e}, delta_rel {self.delta_rel:.3e} (tol {self.tol:g})"

    def __str__(self) -> str:
        def fmt(v: Any) -> str:
            if v is None:
                return "-"
            if isinstance(v, (bool, np.bool_)):
                return "yes" if v else "no"
            if isinstance(v, (float, np.floating)):
                return f"{float(v):.6g}"
            return str(v)

        verdict = self.verdict
        if verdict == "kkt" and self.relaxation == "chain-rule":
            verdict = "kkt under the chain-rule relaxation"
        rows: list[tuple[str, Any]] = [
            ("verdict", verdict),
            ("norm", self.norm),
            ("degree L", self.degree),
            ("samples / constraints / params", f"{self.n_samples} / {self.n_constraints} / {self.num_params}"),
            ("min margin (given point)", self.min_margin),
        ]
        if self.verdict == "infeasible":
            rows.append(("infeasible samples", ", ".join(map(str, self.infeasible_samples[:20]))
                         + (" ..." if len(self.infeasible_samples) > 20 else "")))
        else:
            rows += [
                ("scale (theta_hat = theta/scale)", self.scale),
                ("normalized margin", self.normalized_margin),
                ("||theta_hat||", self.theta_norm),
                ("eps  /  eps_rel", f"{fmt(self.eps)}  /  {fmt(self.eps_rel)}"),
                ("delta  /  delta_rel", f"{fmt(self.delta)}  /  {fmt(self.delta_rel)}"),
                ("delta_max", self.delta_max),
                ("duality gap", self.gap),
                ("gap identity residual", f"{fmt(self.identity_residual)} ({'ok' if self.identity_ok else 'FAILED'})"),
                ("sum lambda  (expected ||theta||^2/L)",
                 f"{fmt(self.sum_multipliers)}  ({fmt(self.sum_multipliers_expected)})"),
                ("support size", len(self.support) if self.support is not None else None),
                ("kinks found / selections used", f"{self.kinks_found} / {len(self.kink_selections)}"),
                ("relaxation", self.relaxation),
                ("solver", self.solver),
            ]
            if self.working_set is not None:
                ws = self.working_set
                rows.append(("working set: rounds / final size", f"{ws['rounds']} / {ws['final_working_set']} "
                             f"(sizes {ws['working_set_sizes']})"))
            rows.append(("tol", self.tol))
        if self.second_order is not None:
            so = self.second_order
            if so.get("checked"):
                rows.append(("2nd order: min eigenvalue", so.get("min_eigenvalue")))
                rows.append(("2nd order necessary conditions", "hold" if so.get("holds") else "FAIL"))
            else:
                rows.append(("2nd order", f"not checked: {so.get('reason')}"))
        width = max(len(k) for k, _ in rows)
        lines = [f"{k:<{width}}  {fmt(v)}" for k, v in rows]
        if self.kink_selections:
            lines.append("kink selections (node, sample, unit, s):")
            for sel in self.kink_selections[:10]:
                lines.append(f"  {sel['node']:<10} sample {sel['sample']:<5} unit {tuple(sel['unit'])}  s = {fmt(sel['s'])}")
            if len(self.kink_selections) > 10:
                lines.append(f"  ... {len(self.kink_selections) - 10} more")
        for w in self.warnings:
            lines.append(f"warning: {w}")
        return "\n".join(lines)
