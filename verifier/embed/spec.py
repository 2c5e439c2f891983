"""The one grammar of a split specification, shared by ``verifier embed`` and ``verifier certify embed``.

A specification is comma-separated ``key=value`` items::

    layer=1,neuron=3,ratios=3/5,4/5                  split hidden neuron 3 of dense layer 1
    layer=fc1,neuron=0,in_ratios=1/2,1/2,out_ratios=1,1   an output-preserving rescale
    layer=1,channel=0,ratios=1/3,2/3,2/3             split output channel 0 of convolution layer 1
    layer=1,count=2                                  add 2 zero units to layer 1 (also ``zero=2``)

* ``layer`` is **required**: a hidden-layer number (from 1) or a node name;
* exactly one unit key: ``neuron=J`` / ``channel=C`` (0-based), or ``count=K`` (alias ``zero=K``,
  ``1 <= K <=`` :data:`MAX_ZERO_UNITS`); ``unit=`` stands for the unit key the caller's ``kind`` implies;
* ``ratios`` (or ``in_ratios`` and ``out_ratios``, aliases ``in`` / ``out``) take every following value
  up to the next ``key=``; each ratio is an exact number such as ``3/5`` or ``1/sqrt(2)``.

:func:`parse_split` reads a string into a dict; :func:`make_embedding` builds the
:class:`~verifier.embed.Embedding` it describes.
"""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import SpecError

#: most zero units one ``count=`` may add (a bound on the allocation the spec asks for)
MAX_ZERO_UNITS = 100_000

_LIST_KEYS = ("ratios", "in_ratios", "out_ratios")
_UNIT_KEYS = ("neuron", "channel", "count")
_ALIASES = {"in": "in_ratios", "out": "out_ratios", "zero": "count"}
#: caller kinds -> the unit key they allow (None: any one of them); the CLI's option names are accepted
_KIND_UNIT: dict[str | None, str | None] = {None: None, "neuron": "neuron", "split": "neuron", "channel": "channel",
                                            "zero": "count", "add_zero": "count"}
_EXAMPLE = {"neuron": "layer=1,neuron=3,ratios=3/5,4/5", "channel": "layer=1,channel=0,ratios=3/5,4/5",
            "count": "layer=1,count=2", None: "layer=1,neuron=3,ratios=3/5,4/5"}


def _int(where: str, key: str, v: str, lo: int, hi: int | None = None) -> int:
    s = v.strip()
    ok = s.lstrip("-").isdigit() and len(s) <= 12
    n = int(s) if ok else None
    if n is None or n < lo or (hi is not None and n > hi):
        rng = f"an integer >= {lo}" if hi is None else f"a positive integer <= {hi}" if lo == 1 else \
            f"an integer in [{lo}, {hi}]"
        raise SpecError(f"{where}: {key}={s if ok else repr(s)} must be {rng}")
    return n


def parse_split(text: str, kind: str | None = None, *, option: str = "split") -> dict[str, Any]:
    """Read a split specification (grammar in the module docstring) into a dict.

    ``kind``: ``"neuron"``, ``"channel"`` or ``"zero"`` (the CLI's ``"split"`` / ``"add_zero"`` too) restricts
    the unit key; ``None`` accepts any one.  ``option`` names the source in messages (``--split``,
    ``split``).  Every error is one :class:`~verifier.errors.SpecError` line naming the key and what is valid.

    >>> parse_split("layer=1,neuron=3,ratios=3/5,4/5")
    {'layer': 1, 'neuron': 3, 'ratios': ['3/5', '4/5']}
    >>> parse_split("layer=fc2,zero=2")
    {'layer': 'fc2', 'count': 2}
    >>> parse_split("layer=fc1,unit=2,in=1/2,1/2,out=1,1", "neuron")
    {'layer': 'fc1', 'neuron': 2, 'in_ratios': ['1/2', '1/2'], 'out_ratios': ['1', '1']}
    >>> parse_split("neuron=3,ratios=3/5,4/5")
    Traceback (most recent call last):
    ...
    verifier.errors.SpecError: split 'neuron=3,ratios=3/5,4/5' lacks layer (required); expected e.g. 'layer=1,neuron=3,ratios=3/5,4/5'
    """
    if kind not in _KIND_UNIT:
        raise ValueError(f"kind={kind!r} must be one of {sorted(k for k in _KIND_UNIT if k)} or None")
    unit = _KIND_UNIT[kind]
    example = _EXAMPLE[unit]
    where = f"{option} {text!r}"
    if not isinstance(text, str) or not text.strip():
        raise SpecError(f"{where} is empty; expected e.g. {example!r}")
    keys = ("layer",) + ((unit,) if unit else _UNIT_KEYS) + (_LIST_KEYS if unit != "count" else ())
    raw: dict[str, Any] = {}
    cur: str | None = None
    for tok in text.split(","):
        tok = tok.strip()
        if not tok:
            raise SpecError(f"{where} has an empty item (two commas in a row or a trailing comma); "
                            f"expected e.g. {example!r}")
        if "=" in tok:
            k, _, v = tok.partition("=")
            k, v = k.strip(), v.strip()
            k = _ALIASES.get(k, k)
            if k == "unit":
                if unit is None:
                    raise SpecError(f"{where}: 'unit=' needs a kind; write neuron=J, channel=C or count=K")
                k = unit
            if k not in keys:
                raise SpecError(f"{where}: unknown key {k!r}; valid keys are {', '.join(keys)} (e.g. {example!r})")
            if k in raw:
                raise SpecError(f"{where}: key {k!r} is given twice")
            if not v:
                raise SpecError(f"{where}: key {k!r} has no value")
            raw[k] = [v] if k in _LIST_KEYS else v
            cur = k
        elif cur in _LIST_KEYS:
            raw[cur].append(tok)
        else:
            follows = f"follows {cur!r}, which takes a single value" if cur else "has no key"
            raise SpecError(f"{where}: item {tok!r} {follows}; expected key=value items like {example!r}")
    if "layer" not in raw:
        raise SpecError(f"{where} lacks layer (required); expected e.g. {example!r}")
    units = [k for k in _UNIT_KEYS if k in raw]
    if not units:
        need = unit or "neuron=J, channel=C or count=K"
        raise SpecError(f"{where} lacks {need}; expected e.g. {example!r}")
    if len(units) > 1:
        raise SpecError(f"{where} names {' and '.join(units)}; give exactly one of neuron, channel, count")
    u = units[0]
    has_ratios = any(k in raw for k in _LIST_KEYS)
    if u == "count" and has_ratios:
        raise SpecError(f"{where}: count=K adds zero units and takes no ratios")
    if u != "count" and not has_ratios:
        raise SpecError(f"{where} lacks ratios (or in_ratios and out_ratios); expected e.g. {_EXAMPLE[u]!r}")
    lay = raw["layer"]
    out: dict[str, Any] = {"layer": _int(where, "layer", lay, 0) if lay.lstrip("-").isdigit() else lay}
    out[u] = _int(where, u, raw[u], 1, MAX_ZERO_UNITS) if u == "count" else _int(where, u, raw[u], 0)
    for k in _LIST_KEYS:
        if k in raw:
            out[k] = raw[k]
    return out


def make_embedding(net: Any, params: Any, spec: str | Mapping[str, Any], *, kind: str | None = None,
                   strict: bool = True, option: str = "split") -> Any:
    """The :class:`~verifier.embed.Embedding` a specification describes (a string for :func:`parse_split`,
    or its dict).

    >>> import verifier
    >>> make_embedding(verifier.mlp([2, 3, 1]), None, "layer=1,neuron=0,ratios=3/5,4/5").shape
    (12, 9)
    """
    from .maps import add_zero_neuron, channel_split, neuron_split

    d = parse_split(spec, kind, option=option) if isinstance(spec, str) else dict(spec)
    if "count" in d or "zero" in d:
        return add_zero_neuron(net, params, d["layer"], d.get("count", d.get("zero", 1)))
    kw = {k: d.get(k) for k in _LIST_KEYS}
    if "neuron" in d:
        return neuron_split(net, params, d["layer"], d["neuron"], kw["ratios"], in_ratios=kw["in_ratios"],
                            out_ratios=kw["out_ratios"], strict=strict)
    if "channel" in d:
        return channel_split(net, params, d["layer"], d["channel"], kw["ratios"], in_ratios=kw["in_ratios"],
                             out_ratios=kw["out_ratios"], strict=strict)
    raise SpecError(f"{option} {spec!r} names no unit: give neuron=J, channel=C or count=K")
