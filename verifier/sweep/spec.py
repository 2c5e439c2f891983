"""The sweep specification: reading, validating, and expanding it into cells.

A spec is a TOML file (or the same structure as a dict).  Sections:

``[sweep]``   ``name``, ``out`` (output folder, relative to the spec file), ``table``
              (``"auto"`` | ``"csv"`` | ``"parquet"``), ``plots`` (true, false, or a list of
              ``eps_rel``, ``delta_rel``, ``normalized_margin``), ``plot_axes`` (default: all axes).
``[grid]``    one axis per key: a non-empty list of values, ``{glob = "ckpt/*.npz"}`` (sorted
              matching files) or ``{range = [start, stop, step]}``.  Every axis must be used:
              a field written ``"{axis}"`` takes the axis value (its type kept), a longer string
              ``"runs/s{seed}.json"`` has it substituted as text.
``[data]``    ``generator`` (a function of :mod:`verifier.datasets`, with its keyword arguments)
              or ``file`` (``.npz`` with ``X``, ``y``).
``[network]`` ``builder`` (``mlp`` | ``cnn`` | ``diagonal_linear``, with its keyword arguments)
              or ``file`` (network JSON).
``[params]``  ``file``: parameters ``.npz`` (e.g. ``"{checkpoint}"`` over a glob axis);
``[train]``   or training from ``net.init_params(seed)`` with :func:`verifier.train`'s options;
              ``steps`` is the checkpoint: cells that differ only in ``steps`` share one run.
``[[check]]`` one table per check, ``kind`` one of ``kkt`` (options of
              :func:`verifier.check_kkt`), ``embedding`` (``split`` and options of
              :func:`verifier.check_embedding`), ``certify`` (a KKT certificate, re-checked
              exactly), ``theorem`` (``name``, ``examples``, ``seed``, ``shrink_budget``, ``tol``)
              or ``function`` (``function = "module:attr"``, called as
              ``f(net, params, X, y, **options) -> dict``); optional ``label``.

A cell is one grid point and one check; its key is the SHA-256 of its resolved inputs (file
contents included), so a re-run skips cells already computed and recomputes a cell whose
inputs changed.

>>> spec = parse_spec({"grid": {"width": [2, 4]}, "data": {"generator": "two_clusters_xor", "n": 8},
...                    "network": {"builder": "mlp", "widths": [2, "{width}", 1]},
...                    "train": {"steps": 10, "lr": 0.5}, "check": [{"kind": "kkt"}]})
>>> [c.axes for c in spec.cells()]
[{'width': 2}, {'width': 4}]
>>> parse_spec({"grid": {"width": 4}})
Traceback (most recent call last):
...
verifier.sweep.spec.SweepError: spec: field 'grid.width' must be a non-empty list of values, {glob = "PATTERN"} or {range = [start, stop, step]}, got 4
"""

from __future__ import annotations

import copy
import glob as _glob
import hashlib
import inspect
import itertools
import json
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, TypeGuard

from ..errors import VerifierError

#: cell key version: bump when the meaning of a cell's inputs changes (old results are then recomputed)
CELL_VERSION = 1
#: largest number of cells a spec may expand to (a typo such as range = [0, 1e9] must not allocate)
MAX_CELLS = 1_000_000

SECTIONS = ("sweep", "grid", "data", "network", "params", "train", "check")
SWEEP_KEYS = ("name", "out", "table", "plots", "plot_axes")
TRAIN_KEYS = ("steps", "lr", "loss", "method", "schedule", "seed")
KKT_KEYS = ("norm", "tol", "kink_tol", "solver", "second_order")
EMBED_KEYS = ("split", "checks", "gd_steps", "lr", "flow_time", "method", "loss", "probes", "seed", "exact", "tol",
              "iso_tol", "kkt_tol", "traj_tol", "flow_tol", "direction_tol", "n_eval", "flow_max_evals")
THEOREM_KEYS = ("name", "examples", "seed", "shrink_budget", "tol")
CERTIFY_KEYS = ("claim_digits", "multiplier_bits") + tuple(f"kkt_{k}" for k in ("tol", "kink_tol", "solver"))
CHECK_KINDS = {"kkt": KKT_KEYS, "embedding": EMBED_KEYS, "certify": CERTIFY_KEYS, "theorem": THEOREM_KEYS,
               "function": None}
#: check kinds that need a network with parameters and data
NEEDS_POINT = ("kkt", "embedding", "certify", "function")
#: figures that can be plotted against the grid axes
PLOTTABLE = ("eps_rel", "delta_rel", "normalized_margin")
GENERATORS = ("linearly_separable", "two_clusters_xor", "images")
BUILDERS = ("mlp", "cnn", "diagonal_linear")

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class SweepError(VerifierError):
    """A malformed sweep spec (the message names the field) or a sweep that cannot run."""


def _err(source: str, fld: str, msg: str) -> SweepError:
    return SweepError(f"{source}: field {fld!r} {msg}")


# -- reading ----------------------------------------------------------------------------------------------

def load_spec(path: str | Path) -> "Spec":
    """Read and validate a TOML spec; relative paths in it are relative to its folder."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise SweepError(f"cannot read sweep spec {str(p)!r}: {e.strerror}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SweepError(f"{p}: not valid TOML ({e})") from None
    return parse_spec(raw, source=str(p), base=p.resolve().parent)


@dataclass
class Cell:
    """One unit of work: a grid point (``axes``) and one check, with every input resolved."""

    key: str
    axes: dict[str, Any]
    check_index: int
    label: str
    kind: str
    network: dict[str, Any] | None
    data: dict[str, Any] | None
    train: dict[str, Any] | None
    params: dict[str, Any] | None
    check: dict[str, Any]

    @property
    def id(self) -> str:
        return self.key[:16]

    @property
    def train_key(self) -> str | None:
        """Cells with the same ``train_key`` share one training run (they differ only in ``steps``)."""
        if self.train is None:
            return None
        t = {k: v for k, v in self.train.items() if k != "steps"}
        return _hash({"network": self.network, "data": self.data, "train": t})

    @property
    def data_key(self) -> str | None:
        return None if self.data is None else _hash(self.data)

    def inputs(self) -> dict[str, Any]:
        return {"version": CELL_VERSION, "network": self.network, "data": self.data, "train": self.train,
                "params": self.params, "kind": self.kind, "check": self.check}


@dataclass
class Spec:
    """A validated sweep spec (see the module docstring)."""

    raw: dict[str, Any]
    source: str = "spec"
    base: Path = field(default_factory=Path.cwd)
    axes: dict[str, list[Any]] = field(default_factory=dict)
    _cells: list[Cell] | None = field(default=None, repr=False, compare=False)

    @property
    def name(self) -> str:
        return str(self.raw.get("sweep", {}).get("name") or Path(self.source).stem or "sweep")

    @property
    def out(self) -> Path:
        o = self.raw.get("sweep", {}).get("out")
        return Path(os.path.normpath(self.base / (o if o else f"sweep-{self.name}")))

    @property
    def table_format(self) -> str:
        return str(self.raw.get("sweep", {}).get("table", "auto"))

    @property
    def plots(self) -> list[str]:
        """The figures to plot against the grid axes (``plots = true``: all of them)."""
        p = self.raw.get("sweep", {}).get("plots", True)
        return list(PLOTTABLE) if p is True else list(p or [])

    @property
    def plot_axes(self) -> list[str]:
        """The axes the figures are plotted against (default: every axis; those with numeric values are used)."""
        return list(self.raw.get("sweep", {}).get("plot_axes") or self.axes)

    @property
    def checks(self) -> list[dict[str, Any]]:
        return list(self.raw.get("check", []))

    def points(self) -> list[dict[str, Any]]:
        names = list(self.axes)
        return [dict(zip(names, combo)) for combo in itertools.product(*(self.axes[n] for n in names))]

    def cells(self) -> list[Cell]:
        """Every cell, in grid order (first axis slowest), checks innermost (computed once)."""
        if self._cells is not None:
            return list(self._cells)
        out: list[Cell] = []
        file_hashes: dict[str, str] = {}
        for point in self.points():
            for i, chk in enumerate(self.checks):
                out.append(self._cell(point, i, chk, file_hashes))
        self._cells = out
        return list(out)

    def _cell(self, point: dict[str, Any], i: int, chk: Mapping[str, Any], fh: dict[str, str]) -> Cell:
        r = self.raw
        kind = chk["kind"]
        needs = kind in NEEDS_POINT
        net = _resolve(r.get("network"), point) if needs else None
        data = _resolve(r.get("data"), point) if needs else None
        train = _resolve(r.get("train"), point) if needs and "train" in r else None
        params = _resolve(r.get("params"), point) if needs and "params" in r else None
        check = _resolve({k: v for k, v in chk.items() if k not in ("kind", "label")}, point)
        for sec, d in (("network", net), ("data", data), ("params", params)):
            if d is not None and "file" in d:
                d["file"] = str(self._path(d["file"], f"{sec}.file"))
                d["sha256"] = fh.setdefault(d["file"], _file_sha(d["file"], f"{self.source}: field '{sec}.file'"))
        if kind == "function" and callable(check.get("function")):
            f = check["function"]
            check["function"] = f"{f.__module__}:{f.__qualname__}"
        if train is not None:
            _check_train_values(train, self.source)
        label = str(_resolve(chk.get("label"), point) or kind + (f":{check['name']}" if kind == "theorem" else ""))
        cell = Cell("", dict(point), i, label, kind, net, data, train, params, check)
        cell.key = _hash(cell.inputs())
        return cell

    def _path(self, value: Any, fld: str) -> Path:
        p = Path(str(value))
        p = p if p.is_absolute() else self.base / p
        if not p.is_file():
            raise _err(self.source, fld, f"names file {str(p)!r}, which does not exist")
        return p


def _hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def _file_sha(path: str, where: str) -> str:
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as e:
        raise SweepError(f"{where}: cannot read {path!r}: {e.strerror}") from None
    return h.hexdigest()


def _resolve(section: Any, point: Mapping[str, Any]) -> Any:
    """A deep copy of ``section`` with ``"{axis}"`` placeholders replaced by the point's values."""
    if isinstance(section, str):
        m = _PLACEHOLDER.fullmatch(section)
        if m:
            return copy.deepcopy(point[m.group(1)])
        return _PLACEHOLDER.sub(lambda mm: str(point[mm.group(1)]), section)
    if isinstance(section, Mapping):
        return {k: _resolve(v, point) for k, v in section.items()}
    if isinstance(section, list):
        return [_resolve(v, point) for v in section]
    return copy.deepcopy(section)


def _placeholders(section: Any) -> set[str]:
    if isinstance(section, str):
        return set(_PLACEHOLDER.findall(section))
    if isinstance(section, Mapping):
        return set().union(*(_placeholders(v) for v in section.values())) if section else set()
    if isinstance(section, list):
        return set().union(*(_placeholders(v) for v in section)) if section else set()
    return set()


def _int(v: Any) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def _number(v: Any) -> TypeGuard[float]:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _check_train_values(train: Mapping[str, Any], source: str) -> None:
    steps = train.get("steps")
    if not _int(steps) or steps < 0:
        raise _err(source, "train.steps", f"must be an integer >= 0 (a checkpoint step), got {steps!r}")
    if "seed" in train and (not _int(train["seed"]) or train["seed"] < 0):
        raise _err(source, "train.seed", f"must be an integer >= 0, got {train['seed']!r}")
    if "lr" in train and (not _number(train["lr"]) or not train["lr"] > 0):
        raise _err(source, "train.lr", f"must be a number > 0, got {train['lr']!r}")


# -- validation -------------------------------------------------------------------------------------------

def parse_spec(raw: Mapping[str, Any], *, source: str = "spec", base: str | Path | None = None) -> Spec:
    """Validate ``raw`` (the TOML structure) and return a :class:`Spec`; errors name the field."""
    if not isinstance(raw, Mapping):
        raise SweepError(f"{source}: a sweep spec is a table of sections {list(SECTIONS)}, got {type(raw).__name__}")
    raw = dict(raw)
    unknown = [k for k in raw if k not in SECTIONS]
    if unknown:
        raise SweepError(f"{source}: unknown section {unknown[0]!r}; valid sections: {', '.join(SECTIONS)}")
    for sec in SECTIONS:
        if sec in raw and sec != "check" and not isinstance(raw[sec], Mapping):
            raise _err(source, sec, f"must be a table ([{sec}]), got {type(raw[sec]).__name__}")
    base_p = Path(base) if base is not None else Path.cwd()
    sw = raw.get("sweep", {})
    for k in sw:
        if k not in SWEEP_KEYS:
            raise _err(source, f"sweep.{k}", f"is not a sweep option; valid: {', '.join(SWEEP_KEYS)}")
    if sw.get("table", "auto") not in ("auto", "csv", "parquet"):
        raise _err(source, "sweep.table", f"must be 'auto', 'csv' or 'parquet', got {sw.get('table')!r}")
    if "plots" in sw and not isinstance(sw["plots"], bool) and not (
            isinstance(sw["plots"], list) and all(v in PLOTTABLE for v in sw["plots"])):
        raise _err(source, "sweep.plots", f"must be true, false or a list of figures from {', '.join(PLOTTABLE)}, "
                   f"got {sw['plots']!r}")
    for k in ("name", "out"):
        if k in sw and not (isinstance(sw[k], str) and sw[k].strip()):
            raise _err(source, f"sweep.{k}", f"must be a non-empty string, got {sw[k]!r}")

    axes = _axes(raw.get("grid", {}), source, base_p)
    pa = sw.get("plot_axes")
    if pa is not None and not (isinstance(pa, list) and all(isinstance(a, str) and a in axes for a in pa)):
        raise _err(source, "sweep.plot_axes", f"must be a list of grid axes (of {', '.join(axes) or 'none'}), "
                   f"got {pa!r}")
    checks = _checks(raw.get("check"), source)
    raw["check"] = checks
    needs_point = any(c["kind"] in NEEDS_POINT for c in checks)
    if needs_point:
        _section_choice(raw, "network", "builder", BUILDERS, source)
        _section_choice(raw, "data", "generator", GENERATORS, source)
        if ("train" in raw) == ("params" in raw):
            kinds = sorted({c["kind"] for c in checks if c["kind"] in NEEDS_POINT})
            raise SweepError(f"{source}: checks {kinds} need parameters: give exactly one of [train] (train from "
                             f"init_params(seed) to 'steps') or [params] (file = \"...npz\")"
                             + (" (both are given)" if "train" in raw else ""))
        if "train" in raw:
            tr = raw["train"]
            for k in tr:
                if k not in TRAIN_KEYS:
                    raise _err(source, f"train.{k}", f"is not a training option; valid: {', '.join(TRAIN_KEYS)}")
            if "steps" not in tr:
                raise _err(source, "train.steps", "is missing: the step count (checkpoint) of each cell")
            for k, ok, want in (("loss", ("exp", "logistic"), "'exp' or 'logistic'"),
                                ("method", ("gd", "sign", "coordinate", "adam"), "'gd', 'sign', 'coordinate' or 'adam'"),
                                ("schedule", ("adaptive", "constant"), "'adaptive' or 'constant'")):
                if k in tr and not _placeholders(tr[k]) and tr[k] not in ok:
                    raise _err(source, f"train.{k}", f"must be {want}, got {tr[k]!r}")
        if "params" in raw:
            for k in raw["params"]:
                if k != "file":
                    raise _err(source, f"params.{k}", "is not a params option; valid: file")
            if "file" not in raw["params"]:
                raise _err(source, "params.file", "is missing: a parameter .npz file (or \"{axis}\" over a glob axis)")
    else:
        for sec in ("network", "data", "train", "params"):
            if sec in raw:
                raise SweepError(f"{source}: section [{sec}] is given but no check uses a network "
                                 f"(checks of kind {', '.join(NEEDS_POINT)} do)")

    used: set[str] = set()
    for sec in ("network", "data", "train", "params"):
        used |= _placeholders(raw.get(sec, {}))
    for c in checks:
        used |= _placeholders(c)
    for name in sorted(used):
        if name not in axes:
            raise SweepError(f"{source}: placeholder '{{{name}}}' names no grid axis; axes: "
                             f"{', '.join(axes) or 'none (add a [grid] table)'}")
    for name in axes:
        if name not in used:
            raise _err(source, f"grid.{name}", f"is used by no field: write \"{{{name}}}\" in [network], [data], "
                       "[train], [params] or a [[check]] (an unused axis would repeat identical cells)")
    total = len(checks)
    for vals in axes.values():
        total *= len(vals)
        if total > MAX_CELLS:
            raise _err(source, "grid", f"expands to more than {MAX_CELLS} cells; split the sweep")
    spec = Spec(raw, source, base_p, axes)
    spec.cells()  # resolves every cell: placeholder types, files, training steps
    return spec


def _axes(grid: Mapping[str, Any], source: str, base: Path) -> dict[str, list[Any]]:
    axes: dict[str, list[Any]] = {}
    for name, vals in grid.items():
        fld = f"grid.{name}"
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise _err(source, fld, "must be a name of letters, digits and underscores")
        if isinstance(vals, Mapping):
            if set(vals) == {"glob"} and isinstance(vals["glob"], str):
                pat = vals["glob"]
                files = sorted(_glob.glob(pat if Path(pat).is_absolute() else str(base / pat)))
                if not files:
                    raise _err(source, fld, f"glob {pat!r} matches no file (relative to {str(base)!r})")
                vals = files
            elif set(vals) == {"range"} and isinstance(vals["range"], list) and len(vals["range"]) in (2, 3) \
                    and all(_int(v) for v in vals["range"]):
                r = vals["range"]
                if len(r) == 3 and r[2] == 0:
                    raise _err(source, fld, "range step must not be 0")
                n = len(range(*r))
                if n > MAX_CELLS:
                    raise _err(source, fld, f"range {r} has {n} values, more than {MAX_CELLS}")
                vals = list(range(*r))
            else:
                raise _err(source, fld, "must be {glob = \"PATTERN\"} or {range = [start, stop, step]} (integers), "
                           f"got {vals!r}")
        if not isinstance(vals, list) or not vals:
            raise _err(source, fld, "must be a non-empty list of values, {glob = \"PATTERN\"} or "
                       f"{{range = [start, stop, step]}}, got {vals!r}")
        for v in vals:
            if not isinstance(v, (int, float, str, bool)):
                raise _err(source, fld, f"values must be numbers, strings or booleans, got {v!r}")
        if len(set(map(repr, vals))) != len(vals):
            raise _err(source, fld, f"has repeated values {vals}")
        axes[name] = list(vals)
    return axes


def _checks(checks: Any, source: str) -> list[dict[str, Any]]:
    if checks is None:
        raise SweepError(f"{source}: no [[check]] table; add at least one, e.g. [[check]] kind = \"kkt\"")
    if isinstance(checks, Mapping):
        checks = [checks]
    if not isinstance(checks, list) or not checks:
        raise _err(source, "check", "must be one or more [[check]] tables")
    out = []
    labels: set[str] = set()
    for i, c in enumerate(checks):
        where = f"check[{i}]"
        if not isinstance(c, Mapping):
            raise _err(source, where, f"must be a table, got {type(c).__name__}")
        kind = c.get("kind")
        if kind not in CHECK_KINDS:
            raise _err(source, f"{where}.kind", f"must be one of {', '.join(CHECK_KINDS)}, got {kind!r}")
        allowed = CHECK_KINDS[kind]
        for k in c:
            if k in ("kind", "label"):
                continue
            if allowed is not None and k not in allowed:
                raise _err(source, f"{where}.{k}", f"is not an option of a {kind!r} check; valid: {', '.join(allowed)}")
        if kind == "theorem":
            if not isinstance(c.get("name"), str):
                raise _err(source, f"{where}.name", "must name a theorem (see `verifier theorems list`)")
            claim = None
            if not _placeholders(c["name"]):
                import theorems

                try:
                    claim = theorems.get(c["name"])
                except VerifierError as e:
                    raise _err(source, f"{where}.name", f"is not a claim: {e}") from None
            for k in ("examples", "seed", "shrink_budget"):
                if k in c and not _placeholders(c[k]) and (not _int(c[k]) or c[k] < (1 if k == "examples" else 0)):
                    raise _err(source, f"{where}.{k}", f"must be an integer >= {1 if k == 'examples' else 0}, "
                               f"got {c[k]!r}")
            if "tol" in c and not isinstance(c["tol"], Mapping):
                raise _err(source, f"{where}.tol", f"must be a table NAME = VALUE, got {c['tol']!r}")
            if "tol" in c and claim is not None:
                try:
                    claim.check_tolerances(c["tol"])
                except VerifierError as e:
                    raise _err(source, f"{where}.tol", f"is not valid: {e}") from None
        if kind == "embedding" and not isinstance(c.get("split"), str):
            raise _err(source, f"{where}.split", "must be a split such as \"layer=1,neuron=0,ratios=3/5,4/5\"")
        if kind == "function":
            f = c.get("function")
            if not (callable(f) or (isinstance(f, str) and re.fullmatch(r"[\w.]+:[\w.]+", f))):
                raise _err(source, f"{where}.function", f"must be \"module:function\", got {f!r}")
        if kind == "kkt":
            for k in ("tol", "kink_tol"):
                if k in c and not _placeholders(c[k]) and not (_number(c[k]) and c[k] >= 0):
                    raise _err(source, f"{where}.{k}", f"must be a number >= 0, got {c[k]!r}")
            if "norm" in c and not _placeholders(c["norm"]) and c["norm"] not in ("l1", "l2", "linf"):
                raise _err(source, f"{where}.norm", f"must be 'l1', 'l2' or 'linf', got {c['norm']!r}")
        label = str(c.get("label") or kind)
        if kind == "theorem" or "label" in c:
            label = str(c.get("label") or f"theorem:{c['name']}")
        if label in labels and kind != "theorem":
            raise _err(source, f"{where}.label", f"repeats label {label!r}; give each check of the same kind a "
                       "distinct label")
        labels.add(label)
        out.append(dict(c))
    return out


def _section_choice(raw: Mapping[str, Any], sec: str, key: str, choices: tuple[str, ...], source: str) -> None:
    d = raw.get(sec)
    if d is None:
        raise SweepError(f"{source}: section [{sec}] is missing; give {key} = one of {', '.join(choices)}, "
                         "or file = \"PATH\"")
    if (key in d) == ("file" in d):
        raise SweepError(f"{source}: section [{sec}] needs exactly one of '{key}' or 'file'")
    if key in d:
        if d[key] not in choices:
            raise _err(source, f"{sec}.{key}", f"must be one of {', '.join(choices)}, got {d[key]!r}")
        import verifier.datasets as ds
        import verifier.graph as gr

        fn = getattr(ds if sec == "data" else gr, d[key])
        params = inspect.signature(fn).parameters
        for k in d:
            if k != key and k not in params:
                raise _err(source, f"{sec}.{k}", f"is not an argument of {d[key]}(); valid: "
                           f"{', '.join(p for p in params)}")
    elif len(d) > 1:
        extra = [k for k in d if k != "file"]
        raise _err(source, f"{sec}.{extra[0]}", f"is not allowed beside '{sec}.file'")
