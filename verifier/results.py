"""One result type for every named check of the verifier: :class:`Check`.

Used by :func:`verifier.check_embedding` (``report.checks[name]``) and by the theorems' checkers
(``Evidence.checks[name]``): a check ``passed`` or not, its ``figure`` (an error measure: smaller is
better) against a tolerance ``tol``, a ``detail`` sentence, a ``status`` (``"pass"``, ``"fail"`` or
``"error"``: could not be evaluated, counts as failed) and optional ``data``.

>>> c = Check(passed=True, figure=1.5e-12, detail="max |f - g|", tol=1e-9, name="function")
>>> c.status, c.line()
('pass', 'PASS  function           1.5e-12 (tol 1e-09)  max |f - g|')
>>> c.passed = False
Traceback (most recent call last):
...
dataclasses.FrozenInstanceError: cannot assign to field 'passed'
>>> d = Check(False, float("nan"), "raised", status="error").to_dict()
>>> d["figure"] is None, d["status"]
(True, 'error')
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._display import fmt_number
from ._json import jsonable


@dataclass(frozen=True)
class Check:
    """One condition (see the module docstring).  Positional order: ``passed, figure, detail, tol, status,
    data``; ``name`` is keyword-only in practice (the key it is stored under)."""

    passed: bool
    figure: float
    detail: str = ""
    tol: float | None = None
    status: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    name: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "passed", bool(self.passed))
        if not self.status:
            object.__setattr__(self, "status", "pass" if self.passed else "fail")
        if self.status not in ("pass", "fail", "error"):
            raise ValueError(f"status={self.status!r} must be 'pass', 'fail' or 'error'")

    def to_dict(self, nonfinite: str = "null") -> dict[str, Any]:
        """JSON-safe fields; a non-finite figure as ``None`` (``nonfinite="null"``) or ``"nan"``/``"inf"``
        (``"str"``)."""
        d: dict[str, Any] = {"name": self.name} if self.name else {}
        d.update({"passed": self.passed, "status": self.status,
                  "figure": jsonable(_float(self.figure), nonfinite=nonfinite),
                  "tol": self.tol, "detail": self.detail, "data": jsonable(self.data)})
        return d

    def line(self) -> str:
        """``STATUS name figure (tol t)  detail`` on one line."""
        tol = "" if self.tol is None else f" (tol {fmt_number(self.tol, 'g')})"
        return f"{self.status.upper():5} {self.name:<18} {fmt_number(_float(self.figure), '.3g')}{tol}  {self.detail}"


def _float(x: Any) -> float | None:
    try:
        return float(x)
    except (TypeError, ValueError):
        return None
