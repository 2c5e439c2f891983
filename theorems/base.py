"""Theorem objects: a claim stated once, checked on one instance, searched over many.

A :class:`Theorem` has a slug ``name``, a plain-text ``statement`` and its
``latex``, a tuple of :class:`Assumption` (named, checkable predicates on an
instance), a checker that turns an :class:`Instance` into named sub-checks
(:class:`Check`: passed flag, figure, tolerance, one-sentence detail), and a
hypothesis strategy of instances that satisfy the assumptions.

* ``THEOREM.check(instance) -> Evidence`` (verdict ``holds`` / ``fails`` /
  ``not-applicable`` when an assumption does not hold: the theorem then
  makes no claim);
* ``THEOREM.instances()`` -- the strategy;
* ``THEOREM.negated("assumption")`` -- the same claim with one assumption
  dropped, and instances that *violate* it: a counterexample search;
* ``THEOREM.search(examples=300, seed=0) -> SearchResult`` -- hypothesis runs
  the checker on generated instances; the first failure is shrunk to a
  minimal :class:`Counterexample` (printable, saved as JSON, replayable);
  otherwise the result is evidence: the count of instances and the worst
  figure seen per sub-check.

>>> from theorems import euler
>>> res = euler.THEOREM.search(examples=5, seed=0)
>>> res.holds, res.checked, sorted(res.worst)
(True, 5, ['euler', 'scaling'])
"""

from __future__ import annotations

import verifier
import json
import math
import random
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from verifier._json import jsonable
from hypothesis import HealthCheck, Phase, Verbosity, settings
from hypothesis import strategies as st
from hypothesis.errors import NoSuchExample

from verifier._json import header
from verifier.results import Check
from verifier.errors import FormatError, TheoremError, VerifierError
from verifier.graph import Network

#: counterexample file format; changes:
#:   1 -- first version: meta, theorem (name, statement, dropped), instance, checks, failed.
FORMAT_NAME = "kkt-verifier/counterexample"
FORMAT_VERSION = 1
#: evidence (passing search) file format; changes:
#:   1 -- first version.
EVIDENCE_FORMAT = "kkt-verifier/theorem-evidence"
EVIDENCE_VERSION = 1




class NotApplicable(Exception):
    """Raised by a checker when an instance turns out to be outside the theorem's scope.

    Used for conditions only the computation itself reveals (e.g. the gradient flow slides
    along a kink, where no ODE solver applies): the evidence records the failed condition
    ``name`` as an assumption that does not hold, and the verdict is ``not-applicable``.
    """

    def __init__(self, name: str, detail: str):
        super().__init__(f"{name}: {detail}")
        self.name = name
        self.detail = detail


# -- numbers ---------------------------------------------------------------------------------------------

def num(v: Any) -> str:
    """Shortest exact text of a float (``0.75``, ``-2``, ``1e-12``); Fractions as ``3/5``.

    >>> num(0.75), num(2.0), num(Fraction(3, 5)), num(float("inf"))
    ('0.75', '2', '3/5', 'inf')
    """
    if isinstance(v, Fraction):
        return str(v)
    f = float(v)
    if not math.isfinite(f):
        return str(f)
    if f == int(f) and abs(f) < 1e15:
        return str(int(f))
    return repr(f)


def _arr(a: Any) -> str:
    a = np.asarray(a, dtype=float)
    if a.ndim == 0:
        return num(a)
    return "[" + ", ".join(_arr(v) for v in a) + "]"


# -- instances -------------------------------------------------------------------------------------------

@dataclass
class Instance:
    """One instance of a theorem: a network, parameters, data, and JSON-native ``options``.

    ``options`` holds what the theorem needs beyond the point (a split site
    and ratios as strings such as ``"3/5"``, an optimiser, step counts, a
    norm, known multipliers, ...).  Instances round-trip through
    :meth:`to_dict` / :meth:`from_dict` exactly (floats are written with
    ``repr``).

    >>> import verifier
    >>> inst = Instance(verifier.mlp([1, 1, 1]), {"W1": [[1.0]], "W2": [[0.5]]}, [[2.0]], [1.0], {"note": "x"})
    >>> Instance.from_dict(inst.to_dict()).options, float(inst.theta @ inst.theta)
    ({'note': 'x'}, 1.25)
    """

    net: Network
    params: Mapping[str, Any] | None = None
    X: Any = None
    y: Any = None
    options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.params is not None:
            self.params = self.net.check_params(self.params)
        if self.X is not None:
            self.X = np.asarray(self.X, dtype=np.float64)
        if self.y is not None:
            self.y = np.asarray(self.y, dtype=np.float64).reshape(-1)

    @property
    def theta(self) -> np.ndarray:
        if self.params is None:
            raise TheoremError("this instance has no parameters")
        return self.net.flatten(self.params)

    def to_dict(self) -> dict[str, Any]:
        return {
            "network": self.net.to_dict(),
            "params": None if self.params is None else {k: np.asarray(v).tolist() for k, v in self.params.items()},
            "X": None if self.X is None else self.X.tolist(),
            "y": None if self.y is None else self.y.tolist(),
            "options": _jsonable(self.options),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], *, source: str = "instance") -> "Instance":
        if not isinstance(d, Mapping) or "network" not in d:
            raise FormatError(f"{source}: expected an object with fields 'network', 'params', 'X', 'y', 'options'")
        net = Network.from_dict(d["network"], source=f"{source}.network")
        try:
            params = d.get("params")
            X = d.get("X")
            y = d.get("y")
            inst = cls(net, None if params is None else {k: np.asarray(v, dtype=np.float64) for k, v in params.items()},
                       None if X is None else np.asarray(X, dtype=np.float64),
                       None if y is None else np.asarray(y, dtype=np.float64), dict(d.get("options") or {}))
        except (TypeError, ValueError, AttributeError) as e:
            raise FormatError(f"{source}: fields 'params', 'X', 'y' must be (nested) lists of numbers ({e})") from None
        return inst

    def key(self) -> str:
        """A canonical text of the instance (used to cache checker results during a search)."""
        return json.dumps(self.to_dict(), sort_keys=True)

    def describe(self) -> str:
        """A small readable rendering: architecture, parameters, data, options."""
        net = self.net
        chain = []
        for n in net.order:
            node = net.nodes[n]
            if node.op in ("input", "output"):
                continue
            attrs = ",".join(f"{v}" for k, v in node.attrs.items() if k in ("slope", "k"))
            chain.append(f"{node.op}{'(' + attrs + ')' if attrs else ''}" + (
                f"->{list(net.shapes[n])}" if node.params else ""))
        lines = [f"network: input {list(net.input_shape)} -> " + " -> ".join(chain)]
        try:
            lines[0] += f"  (degree {verifier.degree(net)})"
        except VerifierError:
            lines[0] += "  (not homogeneous)"
        if self.params is not None:
            for p in net.param_names:
                lines.append(f"  {p} = {_arr(self.params[p])}")
        if self.X is not None:
            n = self.X.shape[0]
            lines.append(f"data: {n} sample{'s' if n != 1 else ''}")
            for i in range(n):
                lab = "" if self.y is None else f"  y = {num(self.y[i]):>2}"
                lines.append(f"  x_{i} = {_arr(self.X[i])}{lab}")
        for k, v in self.options.items():
            lines.append(f"{k}: {_show(v)}")
        return "\n".join(lines)


def _show(v: Any) -> str:
    if isinstance(v, Mapping):
        return ", ".join(f"{k}={_show(x)}" for k, x in v.items())
    if isinstance(v, (list, tuple)):
        return "(" + ", ".join(_show(x) for x in v) + ")"
    if isinstance(v, float):
        return num(v)
    return str(v)


def _jsonable(x: Any) -> Any:
    return jsonable(x, nonfinite="str")


# -- checks and evidence ---------------------------------------------------------------------------------

def sub_check(name: str, passed: bool, figure: float, tol: float | None = None, detail: str = "",
              status: str = "") -> Check:
    """One sub-check of a theorem (a :class:`verifier.results.Check` stored under ``name``).

    ``passed``, its ``figure`` (an error: smaller is better), ``tol`` and a ``detail``; ``status`` is
    ``"pass"``, ``"fail"`` or ``"error"`` (could not be evaluated; counts as failed).
    """
    return Check(passed, figure, detail, tol, status, name=name)


def within(name: str, figure: float, tol: float, detail: str) -> Check:
    """A check that passes when ``figure <= tol`` (NaN fails)."""
    f = float(figure)
    return sub_check(name, bool(f <= tol), f, tol, detail)


@dataclass(frozen=True)
class AssumptionResult:
    name: str
    holds: bool
    detail: str = ""


@dataclass
class Evidence:
    """The result of ``Theorem.check(instance)``: assumption results and named sub-checks."""

    theorem: str
    assumptions: dict[str, AssumptionResult]
    checks: dict[str, Check]
    seconds: float = 0.0
    #: the sub-checks that decide the verdict (``None``: all); the others are reported as diagnostics
    decisive: tuple[str, ...] | None = None

    @property
    def applicable(self) -> bool:
        return all(a.holds for a in self.assumptions.values())

    @property
    def verdict(self) -> str:
        if not self.applicable:
            return "not-applicable"
        deciding = [c for n, c in self.checks.items()
                    if self.decisive is None or n in self.decisive or c.status == "error"]
        return "holds" if all(c.passed for c in deciding) else "fails"

    @property
    def passed(self) -> bool:
        return self.verdict == "holds"

    @property
    def failed(self) -> list[str]:
        """Names of the sub-checks that failed (empty when the claim holds or does not apply)."""
        return [n for n, c in self.checks.items() if not c.passed]

    def __str__(self) -> str:
        lines = [f"{self.theorem}: {self.verdict}"]
        for a in self.assumptions.values():
            if not a.holds:
                lines.append(f"  assumption {a.name!r} does not hold: {a.detail}")
        for c in self.checks.values():
            lines.append("  " + c.line())
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"theorem": self.theorem, "verdict": self.verdict, "failed": self.failed, "decisive": self.decisive,
                "assumptions": {k: {"holds": a.holds, "detail": a.detail} for k, a in self.assumptions.items()},
                "checks": {k: c.to_dict(nonfinite="str") for k, c in self.checks.items()}, "seconds": self.seconds}


@dataclass(frozen=True)
class Assumption:
    """A named hypothesis of a theorem with a checkable predicate.

    ``predicate(instance)`` returns ``True``/``False`` or ``(bool, detail)``.
    """

    name: str
    text: str
    latex: str
    predicate: Callable[[Instance], Any]

    def __call__(self, instance: Instance) -> AssumptionResult:
        try:
            out = self.predicate(instance)
        except VerifierError as e:
            return AssumptionResult(self.name, False, f"could not be evaluated: {e}")
        if isinstance(out, tuple):
            return AssumptionResult(self.name, bool(out[0]), str(out[1]))
        return AssumptionResult(self.name, bool(out), "" if out else self.text)


CheckFn = Callable[[Instance, Mapping[str, float]], Iterable[Check]]
StrategyFn = Callable[..., st.SearchStrategy[Instance]]


class Theorem:
    """An executable statement.  See the module docstring.

    ``check_fn(instance, tol)`` returns the sub-checks; ``strategy(drop, **variant)``
    returns instances satisfying every assumption (``drop=None``) or
    violating assumption ``drop`` while keeping the others (only for names
    in ``negatable``); ``variant`` selects among several ways to violate it.  ``tolerances`` are the documented defaults, overridable
    per call: ``check(instance, kkt=1e-5)``.  ``expected`` is ``True`` for a
    theorem, ``False`` for a known-false claim (``None``: unknown).
    """

    def __init__(self, name: str, *, title: str, statement: str, latex: str,
                 assumptions: Sequence[Assumption], check_fn: CheckFn, strategy: StrategyFn,
                 tolerances: Mapping[str, float] | None = None, negatable: Mapping[str, str] | None = None,
                 expected: bool | None = True, default_examples: int = 100, references: Sequence[str] = (),
                 dropped: Sequence[str] = (), parent: "Theorem | None" = None, expected_failures: Sequence[str] = (),
                 variant: Mapping[str, Any] | None = None, decisive: Sequence[str] | None = None):
        self.name = name
        self.title = title
        self.statement = statement
        self.latex = latex
        self.assumptions = tuple(assumptions)
        self._check_fn = check_fn
        self._strategy = strategy
        self.tolerances = dict(tolerances or {})
        #: assumption name -> how negated instances violate it
        self.negatable = dict(negatable or {})
        self.expected = expected
        self.default_examples = int(default_examples)
        self.references = tuple(references)
        self.dropped = tuple(dropped)
        self.parent = parent
        #: for a known-false claim: the sub-checks a counterexample is expected to fail
        self.expected_failures = tuple(expected_failures)
        #: keyword arguments for the instance strategy (e.g. ``{"method": "sign"}`` for a negated variant)
        self.variant = dict(variant or {})
        #: the sub-checks that state the claim's conclusion (``None``: every sub-check); the others are
        #: diagnostics, reported but not deciding (e.g. ``isometry`` for "output-preserving splits keep KKT")
        self.decisive = None if decisive is None else tuple(decisive)

    def __repr__(self) -> str:
        return f"Theorem({self.name!r})"

    # -- checking -----------------------------------------------------------------------------------------
    def check_assumptions(self, instance: Instance) -> dict[str, AssumptionResult]:
        return {a.name: a(instance) for a in self.assumptions}

    def check(self, instance: Instance, **tolerances: float) -> Evidence:
        """Evaluate the assumptions, then (when they hold) every sub-check on ``instance``."""
        if not isinstance(instance, Instance):
            raise TheoremError(f"{self.name}: check() needs an Instance, got {type(instance).__name__}")
        unknown = [k for k in tolerances if k not in self.tolerances]
        if unknown:
            raise TheoremError(f"{self.name}: unknown tolerance(s) {unknown}; this theorem's tolerances are "
                               f"{sorted(self.tolerances) or 'none'}")
        tol = {**self.tolerances, **tolerances}
        t0 = time.perf_counter()
        assumptions = self.check_assumptions(instance)
        checks: dict[str, Check] = {}
        if all(a.holds for a in assumptions.values()):
            try:
                for c in self._check_fn(instance, tol):
                    checks[c.name] = c
            except NotApplicable as e:
                assumptions[e.name] = AssumptionResult(e.name, False, e.detail)
                checks = {}
            except VerifierError as e:
                checks["evaluation"] = sub_check("evaluation", False, float("nan"), None,
                                                 f"the checker rejected the instance: {e}", "error")
            except Exception as e:  # a solver or numerical failure: reported as an error check, replayable
                checks["evaluation"] = sub_check("evaluation", False, float("nan"), None,
                                                 f"the checker raised {type(e).__name__}: {e}", "error")
        return Evidence(self.name, assumptions, checks, time.perf_counter() - t0, self.decisive)

    def instances(self) -> st.SearchStrategy[Instance]:
        """A hypothesis strategy of instances that satisfy the assumptions (or violate the dropped one)."""
        return self._strategy(self.dropped[0] if self.dropped else None, **self.variant)

    # -- variants -----------------------------------------------------------------------------------------
    def negated(self, assumption: str, *, name: str | None = None, title: str | None = None,
                statement: str | None = None, latex: str | None = None, expected: bool | None = None,
                default_examples: int | None = None, expected_failures: Sequence[str] = (),
                variant: Mapping[str, Any] | None = None, decisive: Sequence[str] | None = None) -> "Theorem":
        """The same claim without ``assumption``, checked on instances that violate it.

        >>> from theorems import neuron_splitting
        >>> neg = neuron_splitting.THEOREM.negated("isometric-ratios")
        >>> neg.name, [a.name for a in neg.assumptions][:2]
        ('kkt-embedding-neuron-split/without-isometric-ratios', ['one-homogeneous', 'l2-margin'])
        """
        if self.parent is not None:
            raise TheoremError(f"{self.name} is already a negated variant; negate {self.parent.name} instead")
        names = [a.name for a in self.assumptions]
        if assumption not in names:
            raise TheoremError(f"{self.name} has no assumption {assumption!r}; its assumptions are {names}")
        if assumption not in self.negatable:
            raise TheoremError(f"{self.name}: no instance generator violates {assumption!r}; "
                               f"negatable assumptions: {sorted(self.negatable) or 'none'}")
        kept = [a for a in self.assumptions if a.name != assumption]
        dropped = next(a for a in self.assumptions if a.name == assumption)
        return Theorem(
            name or f"{self.name}/without-{assumption}",
            title=title or f"{self.title}, without '{assumption}'",
            statement=statement or (f"{self.statement}\n[Assumption dropped: {dropped.text} Instances violate it: "
                                    f"{self.negatable[assumption]}.]"),
            latex=latex or self.latex,
            assumptions=kept, check_fn=self._check_fn, strategy=self._strategy, tolerances=self.tolerances,
            negatable={}, expected=expected, default_examples=default_examples or self.default_examples,
            references=self.references, dropped=(assumption,), parent=self, expected_failures=expected_failures,
            variant=variant, decisive=decisive,
        )

    # -- search -------------------------------------------------------------------------------------------
    def search(self, *, examples: int | None = None, seed: int = 0, shrink_budget: int = 200,
               progress: Callable[[int, Evidence], None] | None = None, keep: int = 0,
               **tolerances: float) -> "SearchResult":
        """Check generated instances; shrink the first failure to a minimal counterexample.

        ``examples`` (default ``default_examples``) instances are generated
        from ``seed`` (same seed, same instances); at most ``shrink_budget``
        further checker calls are spent shrinking a failure (a count, never a clock: the same seed and
        budget give the same counterexample on a loaded machine as on an idle one).  Evidence for a
        passing claim: the count and the worst figure per sub-check; the first
        ``keep`` passing instances are kept in ``result.sample`` (e.g. to certify them).
        """
        n = self.default_examples if examples is None else examples
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise TheoremError(f"examples={examples!r} must be an integer >= 1")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise TheoremError(f"seed={seed!r} must be an integer >= 0")
        if not isinstance(shrink_budget, int) or shrink_budget < 0:
            raise TheoremError(f"shrink_budget={shrink_budget!r} must be an integer >= 0")
        self.check_tolerances(tolerances)
        res = SearchResult(self, n, seed)
        cache: dict[str, bool] = {}
        state: dict[str, Any] = {"failed": False, "shrink_calls": 0, "first": None, "first_instance": None}
        t_start = time.perf_counter()

        def fails(inst: Instance) -> bool:
            k = inst.key()
            if k in cache:
                return cache[k]
            if state["failed"]:
                if state["shrink_calls"] >= shrink_budget:
                    return False  # budget spent: keep the smallest failure found so far
                state["shrink_calls"] += 1
            ev = self.check(inst, **tolerances)
            bad = ev.verdict == "fails"
            if not state["failed"]:
                res._record(ev)
                if ev.verdict == "holds" and len(res.sample) < keep:
                    res.sample.append(inst)
                if progress is not None:
                    progress(res.checked + res.not_applicable, ev)
                if bad:
                    state["failed"] = True
                    state["first"] = ev
                    state["first_instance"] = inst
                    res.time_to_failure = time.perf_counter() - t_start
            cache[k] = bad
            return bad

        cfg = settings(max_examples=n, database=None, deadline=None, verbosity=Verbosity.quiet,
                       phases=(Phase.generate, Phase.shrink), suppress_health_check=list(HealthCheck))
        try:
            found = _find(self.instances(), fails, cfg, random.Random(seed))
        except NoSuchExample:
            found = None
        res.seconds = time.perf_counter() - t_start
        if found is not None:
            ev = self.check(found, **tolerances)
            res.counterexample = Counterexample(self, found, ev, found_after=res.checked + res.not_applicable,
                                                shrink_calls=state["shrink_calls"], first=state["first"], seed=seed,
                                                first_instance=state["first_instance"])
        return res

    def check_tolerances(self, tolerances: Mapping[str, float]) -> None:
        unknown = [k for k in tolerances if k not in self.tolerances]
        if unknown:
            raise TheoremError(f"{self.name}: unknown tolerance(s) {unknown}; this theorem's tolerances are "
                               f"{sorted(self.tolerances) or 'none'}")

    # -- text ---------------------------------------------------------------------------------------------
    def describe(self) -> str:
        status = {True: "theorem (expected to hold)", False: "known-false claim (expected counterexample)",
                  None: "claim (status unknown)"}[self.expected]
        lines = [f"{self.name}: {self.title}", f"status: {status}", "", "Statement:", _indent(self.statement), "",
                 "LaTeX:", _indent(self.latex), "", "Assumptions:"]
        for a in self.assumptions:
            neg = "  [negatable]" if a.name in self.negatable else ""
            lines.append(f"  - {a.name}: {a.text}{neg}")
            lines.append(f"      LaTeX: {a.latex}")
        if self.dropped:
            lines.append(f"  (dropped: {', '.join(self.dropped)} -- instances violate it)")
        if self.decisive is not None:
            lines.append(f"\nDecided by the sub-check(s): {', '.join(self.decisive)} (the others are diagnostics)")
        if self.expected_failures:
            lines.append(f"\nA counterexample is expected to fail: {', '.join(self.expected_failures)}")
        if self.tolerances:
            lines.append("\nTolerances (defaults): " + ", ".join(f"{k}={v:g}" for k, v in self.tolerances.items()))
        if self.references:
            lines.append("\nReferences: " + "; ".join(self.references))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, "statement": self.statement, "latex": self.latex,
                "assumptions": [{"name": a.name, "text": a.text, "latex": a.latex} for a in self.assumptions],
                "dropped": list(self.dropped), "expected": self.expected, "tolerances": self.tolerances,
                "expected_failures": list(self.expected_failures),
                "decisive": None if self.decisive is None else list(self.decisive)}


def _indent(text: str, pad: str = "  ") -> str:
    return "\n".join(pad + line for line in text.splitlines())


def _find(strategy: st.SearchStrategy[Instance], condition: Callable[[Instance], bool], cfg: settings,
          rnd: random.Random) -> Instance:
    from hypothesis import find

    return find(strategy, condition, settings=cfg, random=rnd)


# -- search results --------------------------------------------------------------------------------------

@dataclass
class Worst:
    """The worst figure seen for one sub-check over a search."""

    figure: float
    instance: int
    passed: bool
    count: int = 0
    failures: int = 0
    tol: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"worst_figure": _jsonable(self.figure), "tol": self.tol, "at_instance": self.instance,
                "count": self.count, "failures": self.failures}


@dataclass
class SearchResult:
    """What :meth:`Theorem.search` found: a counterexample, or evidence (count, worst figure per sub-check)."""

    theorem: Theorem
    examples: int
    seed: int
    checked: int = 0
    not_applicable: int = 0
    worst: dict[str, Worst] = field(default_factory=dict)
    counterexample: "Counterexample | None" = None
    seconds: float = 0.0
    check_seconds: float = 0.0
    slowest: float = 0.0
    time_to_failure: float | None = None
    tolerances: dict[str, float] = field(default_factory=dict)
    #: the first ``keep`` passing instances (see :meth:`Theorem.search`)
    sample: list[Instance] = field(default_factory=list)
    #: certificate checks of sample instances, filled by the CLI's ``--certify``
    certificates: list[dict[str, Any]] = field(default_factory=list)

    @property
    def holds(self) -> bool:
        return self.counterexample is None

    def _record(self, ev: Evidence) -> None:
        if not ev.applicable:
            self.not_applicable += 1
            return
        self.checked += 1
        self.check_seconds += ev.seconds
        self.slowest = max(self.slowest, ev.seconds)
        for name, c in ev.checks.items():
            f = float(c.figure)
            w = self.worst.get(name)
            if w is None:
                w = self.worst[name] = Worst(f, self.checked, c.passed, tol=c.tol)
            elif (math.isnan(f) and not math.isnan(w.figure)) or f > w.figure or (not c.passed and w.passed):
                w.figure, w.instance, w.passed = f, self.checked, c.passed
            w.count += 1
            w.failures += 0 if c.passed else 1

    def summary(self, *, profile: bool = False) -> str:
        th = self.theorem
        lines = []
        if self.holds:
            lines.append(f"{th.name}: no counterexample in {self.checked} distinct instances (seed {self.seed})"
                         + (f"; {self.not_applicable} generated instances did not satisfy the assumptions"
                            if self.not_applicable else ""))
            if th.expected is False:
                lines.append("  note: this claim is known to be false; more examples may be needed to refute it")
        else:
            ce = self.counterexample
            assert ce is not None
            lines.append(f"{th.name}: COUNTEREXAMPLE after {ce.found_after} instance(s) (seed {self.seed}); "
                         f"shrunk with {ce.shrink_calls} further checks")
        lines.append("  worst figure per sub-check over the instances checked:")
        for name, w in self.worst.items():
            tol = w.tol
            lines.append(f"    {name:<18} {w.figure:.3g}" + (f" (tol {tol:g})" if tol is not None else "")
                         + f"   at instance {w.instance}" + (f", {w.failures} failure(s)" if w.failures else ""))
        if profile:
            n = max(self.checked, 1)
            lines.append(f"  profile: {self.seconds:.2f} s total; checking {self.check_seconds:.2f} s "
                         f"({self.check_seconds / n * 1e3:.1f} ms per instance, slowest {self.slowest * 1e3:.1f} ms); "
                         f"generation and shrinking {max(self.seconds - self.check_seconds, 0):.2f} s"
                         + (f"; first failure after {self.time_to_failure:.2f} s" if self.time_to_failure else ""))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {**header(EVIDENCE_FORMAT, EVIDENCE_VERSION),
                "theorem": self.theorem.to_dict(), "examples": self.examples, "seed": self.seed,
                "checked": self.checked, "not_applicable": self.not_applicable, "holds": self.holds,
                "worst": {k: w.to_dict() for k, w in self.worst.items()}, "seconds": self.seconds,
                "certificates": self.certificates,
                "counterexample": None if self.counterexample is None else self.counterexample.to_dict()}


@dataclass
class Counterexample:
    """A (shrunk) instance on which a claim fails, with the evidence."""

    theorem: Theorem
    instance: Instance
    evidence: Evidence
    found_after: int = 0
    shrink_calls: int = 0
    first: Evidence | None = None
    seed: int | None = None
    #: the first failing instance found, before shrinking
    first_instance: Instance | None = None

    @property
    def failed(self) -> list[str]:
        return self.evidence.failed

    def describe(self) -> str:
        lines = [f"counterexample to {self.theorem.name}: {self.theorem.title}"]
        lines.append("failed: " + ", ".join(f"{n} (figure {self.evidence.checks[n].figure:.3g}"
                                              + (f" > tol {self.evidence.checks[n].tol:g})" if self.evidence.checks[n].tol is not None else ")")
                                              for n in self.failed))
        lines.append("")
        lines.append(self.instance.describe())
        lines.append("")
        lines.append("checks:")
        for c in self.evidence.checks.values():
            lines.append("  " + c.line())
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {**header(FORMAT_NAME, FORMAT_VERSION, seed=self.seed, found_after=self.found_after,
                         shrink_calls=self.shrink_calls),
                "theorem": {"name": self.theorem.name, "statement": self.theorem.statement,
                            "dropped": list(self.theorem.dropped)},
                "failed": self.failed, "checks": {k: c.to_dict(nonfinite="str") for k, c in self.evidence.checks.items()},
                "instance": self.instance.to_dict()}

    def save(self, path: str | Path) -> Path:
        from verifier.io import atomic_write_text

        return atomic_write_text(path, json.dumps(self.to_dict(), indent=1) + "\n")


def load_counterexample(path: str | Path) -> tuple[str, Instance, dict[str, Any]]:
    """Read a counterexample file: ``(theorem name, instance, the whole document)``."""
    from verifier._json import check_header, read_json

    p = Path(path)
    d = read_json(p, "counterexample")
    check_header(d, FORMAT_NAME, (FORMAT_VERSION,), where=str(p))
    th = d.get("theorem")
    if not isinstance(th, dict) or not isinstance(th.get("name"), str):
        raise FormatError(f"{p}: field 'theorem' must be an object with a 'name'")
    if "instance" not in d:
        raise FormatError(f"{p}: field 'instance' is missing")
    return th["name"], Instance.from_dict(d["instance"], source=f"{p}: instance"), d
