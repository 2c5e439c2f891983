"""Adversarial fuzzing of the certificate checker (fast profile; ``tests/slow/test_cert_fuzz_slow.py`` runs longer).

Hypothesis mutates real certificates (kkt inline, kkt with external ``.npz``
files, embedding), their network dictionaries and their ``.npz`` files, then
*reseals* them (every SHA-256 recomputed, so hash checks do not hide the
mutation).  Properties:

* never a traceback: the checker returns or raises :class:`CertificateError`, nothing else;
* never "valid" for a false statement: when the checker accepts, an independent
  oracle (the float engine ``verifier.numeric`` on the mutated content, plus
  numpy for the map) confirms the claimed bounds up to rounding;
* never a read outside the certificate's folder: every ``open`` during a check is
  recorded and must resolve inside it;
* bounded resources: a sample of mutated files goes through the real CLI in a
  subprocess under ``resource`` limits (address space and CPU seconds, i.e.
  counted, not wall-clock); it must exit 0, 1 or 2 with no traceback and not be
  killed by a limit.
"""

from __future__ import annotations

import base64
import builtins
import copy
import io
import json
import os
import resource
import subprocess
import sys
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import verifier
from verifier.certificates import certify_embedding, certify_kkt
from verifier.certificates.checker import CertificateError, check_certificate
from verifier.certificates.format import sha256_f64, sha256_file, sha256_i64, sha256_json

#: example counts of the fast profile (the slow profile multiplies them)
FAST = {"json": 40, "npz": 15, "subprocess": 4}
SUBPROCESS_LIMITS = {"address_space_bytes": 3 * 1024 ** 3, "cpu_seconds": 120}


# ---------------------------------------------------------------------------
# base certificates
# ---------------------------------------------------------------------------
def make_bases(folder: Path) -> dict[str, Path]:
    """Three real certificates written into ``folder`` (kkt inline, kkt external, embedding)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(12, 2))
    net = verifier.mlp([2, 4, 1])
    params = net.init_params(seed=2)
    y = np.sign(verifier.forward(net, params, X)[:, 0])
    out = {}
    out["kkt"] = folder / "kkt.json"
    certify_kkt(net, params, X, y, out=out["kkt"])
    out["ext"] = folder / "ext.json"
    certify_kkt(net, params, X, y, out=out["ext"], inline=False)
    out["emb"] = folder / "emb.json"
    certify_embedding(net, params, X, y, split="layer=1,neuron=0,ratios=3/5,4/5", out=out["emb"])
    return out


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    return make_bases(tmp_path_factory.mktemp("fuzz"))


# ---------------------------------------------------------------------------
# mutations
# ---------------------------------------------------------------------------
NASTY = ["1/0", "-1", "0", "1e999999999", "9" * 5000, "0x1.00000000000001p+0", "0x1p-1", "nan", "inf", "1/3",
         "-0", "../secret.npz", "/etc/passwd", "~/x", "", "a" * 300, "\x00", "1e-400", "3/5", "-1/7", "chain-rule",
         "exact", "none", "kkt", "embedding", "relu", "power", "maxpool2d", "two_slope", "dense"]
leaf = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.integers(-(2 ** 70), 2 ** 70),
                 st.sampled_from([2 ** 31, 2 ** 32, 2 ** 63, 10 ** 12, 10 ** 7, 65, -1]),
                 st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=12), st.sampled_from(NASTY))
json_values = st.recursive(leaf, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                           max_leaves=8)


def _children(v: Any) -> list:
    if isinstance(v, dict):
        return list(v.keys())
    if isinstance(v, list):
        return list(range(len(v)))
    return []


def mutate(data, d: dict) -> str:
    """Apply one random mutation in place; returns a description (for failure messages)."""
    path: list = []
    cur: Any = d
    while True:
        keys = _children(cur)
        if not keys or (path and data.draw(st.integers(0, 3)) == 0):
            break
        k = data.draw(st.sampled_from(keys[:50] if len(keys) > 50 else keys))
        path.append(k)
        parent, cur = cur, cur[k]
    if not path:
        return "none"
    parent = d
    for k in path[:-1]:
        parent = parent[k]
    k = path[-1]
    op = data.draw(st.sampled_from(["replace", "delete", "tweak", "duplicate", "insert"]))
    if op == "replace":
        parent[k] = data.draw(json_values)
    elif op == "delete":
        del parent[k]
    elif op == "tweak":
        v = parent[k]
        if isinstance(v, bool):
            parent[k] = not v
        elif isinstance(v, int):
            parent[k] = v + data.draw(st.sampled_from([-1, 1, 2 ** 40, -(2 ** 40), v]))
        elif isinstance(v, str) and any(c.isdigit() for c in v):
            i = max(i for i, c in enumerate(v) if c.isdigit())
            parent[k] = v[:i] + str((int(v[i]) + data.draw(st.integers(1, 9))) % 10) + v[i + 1:]
        elif isinstance(v, list) and v:
            parent[k] = v[:-1]
        else:
            parent[k] = data.draw(json_values)
    elif op == "duplicate":
        v = parent[k]
        if isinstance(v, list) and v:
            v.append(copy.deepcopy(v[data.draw(st.integers(0, len(v) - 1))]))
        elif isinstance(v, dict) and v:
            kk = data.draw(st.sampled_from(list(v)))
            v[kk + "_"] = copy.deepcopy(v[kk])
    else:
        v = parent[k]
        if isinstance(v, dict):
            v[data.draw(st.sampled_from(["path", "sha256", "s", "weights", "row", "stride", "k", "slope", "a", "b",
                                         "extra", "values"]))] = data.draw(json_values)
        elif isinstance(v, list):
            v.insert(0, data.draw(json_values))
    return f"{op} at {'.'.join(map(str, path))}"


def _tensor_hash(t: Any) -> None:
    if not isinstance(t, dict):
        return
    enc, vals = t.get("encoding"), t.get("values")
    try:
        if enc == "f64-hex":
            t["sha256"] = sha256_f64(np.array([float.fromhex(v) for v in vals], dtype=np.float64))
        elif enc == "f64-base64":
            t["sha256"] = sha256_f64(np.frombuffer(base64.b64decode(vals), dtype="<f8"))
        elif enc == "rational":
            t["sha256"] = sha256_json(vals)
        elif enc is None and isinstance(vals, list):  # labels
            t["sha256"] = sha256_i64(np.array(vals, dtype=np.int64))
    except Exception:  # noqa: BLE001 - an undecodable mutation keeps its old hash
        pass


def reseal(d: Any, folder: Path) -> None:
    """Recompute every hash so a mutation is judged by the mathematics, not by a hash mismatch."""
    if not isinstance(d, dict):
        return
    for block in ("params", "data"):
        b = d.get(block)
        if not isinstance(b, dict):
            continue
        if isinstance(b.get("path"), str):
            p = (folder / b["path"])
            try:
                if p.resolve().parent == folder.resolve() and p.is_file():
                    b["sha256"] = sha256_file(p)
            except (OSError, ValueError):
                pass
        for t in (b.get("tensors") or {}).values() if isinstance(b.get("tensors"), dict) else []:
            _tensor_hash(t)
        if block == "data":
            _tensor_hash(b.get("X"))
            _tensor_hash(b.get("y"))
    w = d.get("witnesses")
    if isinstance(w, dict) and isinstance(w.get("sha256"), dict):
        for key in ("multipliers", "kink_selections"):
            if key in w:
                w["sha256"][key] = sha256_json(w[key])
    e = d.get("embedding")
    if isinstance(e, dict):
        mp = e.get("map")
        if isinstance(mp, dict):
            try:
                mp["sha256"] = sha256_json({k: mp.get(k) for k in ("cols", "rows", "shape", "values")})
            except (TypeError, ValueError):
                pass
        if isinstance(e.get("sha256"), dict) and "wide_kink_selections" in e:
            e["sha256"]["wide_kink_selections"] = sha256_json(e["wide_kink_selections"])


def mutate_npz(data, path: Path) -> str:
    """Rewrite one array of an ``.npz`` with a mutated dtype, shape or values."""
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    k = data.draw(st.sampled_from(sorted(arrays)))
    a = arrays[k]
    op = data.draw(st.sampled_from(["dtype", "shape", "value", "drop", "extra", "truncate"]))
    if op == "dtype":
        dt = data.draw(st.sampled_from([np.float32, np.float16, np.longdouble, np.complex128, np.int64, np.uint64,
                                        np.int8, np.bool_, "U3"]))
        arrays[k] = a.astype(dt)
    elif op == "shape":
        arrays[k] = a.reshape(-1) if a.ndim > 1 else a[: max(len(a) - 1, 0)]
    elif op == "value":
        b = a.astype(np.float64).copy()
        b.flat[data.draw(st.integers(0, b.size - 1))] = data.draw(st.sampled_from([np.nan, np.inf, -1.0, 2.0 ** 80,
                                                                                    0.0, 1e-300]))
        arrays[k] = b
    elif op == "drop":
        del arrays[k]
    elif op == "extra":
        arrays["extra"] = np.zeros(3)
    if op == "truncate":
        raw = path.read_bytes()
        path.write_bytes(raw[: data.draw(st.integers(0, len(raw) - 1))])
    else:
        np.savez(path, **arrays)
    return f"npz {op} {k}"


# ---------------------------------------------------------------------------
# oracles
# ---------------------------------------------------------------------------
def _floats(t: dict) -> np.ndarray:
    enc, vals = t["encoding"], t["values"]
    if enc == "f64-hex":
        a = np.array([float.fromhex(v) for v in vals])
    elif enc == "f64-base64":
        a = np.frombuffer(base64.b64decode(vals), dtype="<f8").astype(float)
    else:
        a = np.array([float(Fraction(v)) for v in vals])
    return a.reshape(t["shape"])


def float_oracle(d: dict, folder: Path, res) -> None:
    """An accepted certificate's claims, re-derived in float64 by the float engine (independent code)."""
    from verifier.numeric import margins_from, prepare, weighted_gradient_from

    net = verifier.Network.from_dict(d["network"])
    if "path" in d["params"]:
        with np.load(folder / d["params"]["path"]) as z:
            params = {k: z[k].astype(float) for k in z.files}
    else:
        params = {k: _floats(t) for k, t in d["params"]["tensors"].items()}
    if "path" in d["data"]:
        with np.load(folder / d["data"]["path"]) as z:
            X, y = z["X"].astype(float), z["y"].astype(float)
    else:
        X, y = _floats(d["data"]["X"]), np.array(d["data"]["y"]["values"], dtype=float)
    fp, cons = prepare(net, params, X, y)
    q = margins_from(fp, cons)
    c = d["claims"]
    scale = 1e-9 * (1.0 + float(np.max(np.abs(q))))
    assert float(q.min()) >= float(Fraction(c["min_margin"]["bound"])) - scale, "min_margin accepted but false"
    assert Fraction(str(verifier.degree(net))) == Fraction(c["degree"]["value"]), "degree accepted but false"
    lam = np.array([float(Fraction(v)) for v in d["witnesses"]["multipliers"]])
    slack = float(np.sum(lam * (q - 1)))
    assert slack <= float(Fraction(c["delta"]["bound"])) + 1e-9 * (1 + float(np.sum(lam * np.abs(q)))), \
        "delta accepted but false"
    if not res.figures["kinks"]:
        theta = net.flatten(params)
        v = weighted_gradient_from(fp, cons, lam)
        e2 = float(np.sum((theta - v) ** 2))
        assert e2 <= float(Fraction(c["eps2"]["bound"])) + 1e-9 * (1 + float(np.sum(theta ** 2) + np.sum(v ** 2))), \
            "eps2 accepted but false"
    if d["meta"]["kind"] == "embedding":
        mp = d["embedding"]["map"]
        T = np.zeros(mp["shape"])
        for r, col, val in zip(mp["rows"], mp["cols"], mp["values"]):
            T[r, col] = float(Fraction(val))
        assert np.allclose(T.T @ T, np.eye(T.shape[1]), atol=1e-12), "isometry accepted but false"


class OpenRecorder:
    """Records every file opened (by ``open`` / ``io.open``) while active."""

    def __init__(self) -> None:
        self.paths: list[str] = []
        self._orig = builtins.open

    def __enter__(self):
        orig = self._orig

        def rec(file, *a, **k):
            if isinstance(file, (str, bytes, os.PathLike)):
                self.paths.append(os.path.realpath(os.fsdecode(file)))
            return orig(file, *a, **k)

        builtins.open = rec
        io.open = rec
        return self

    def __exit__(self, *exc):
        builtins.open = self._orig
        io.open = self._orig


def check_once(d: Any, folder: Path, what: str) -> str:
    """The in-process properties for one mutated certificate; returns the outcome."""
    path = folder / "mutant.json"
    path.write_text(json.dumps(d))
    root = os.path.realpath(folder)
    with OpenRecorder() as rec:
        try:
            res = check_certificate(path)
        except CertificateError as e:
            assert "\n" not in str(e), (what, str(e))
            outcome = "error"
        else:
            outcome = "valid" if res.ok else "false"
    for p in rec.paths:
        assert p == root or p.startswith(root + os.sep), f"{what}: read {p} outside the folder"
    if outcome == "valid":
        try:
            float_oracle(d, folder, res)
        except (verifier.errors.VerifierError, KeyError, TypeError, ValueError) as e:
            # the float engine cannot read what the checker accepted: only benign fields may differ
            raise AssertionError(f"{what}: accepted, but the float engine cannot read it: {e}") from None
    return outcome


def fresh(bases: dict[str, Path], which: str, tmp: Path) -> tuple[dict, Path]:
    """A copy of a base certificate (and its npz files) in a new folder."""
    src = bases[which].parent
    tmp.mkdir(parents=True, exist_ok=True)
    for f in src.iterdir():
        if f.is_file():
            (tmp / f.name).write_bytes(f.read_bytes())
    return json.loads((tmp / bases[which].name).read_text()), tmp


# ---------------------------------------------------------------------------
# subprocess under resource limits
# ---------------------------------------------------------------------------
def _limit() -> None:  # pragma: no cover - runs in the child
    resource.setrlimit(resource.RLIMIT_AS, (SUBPROCESS_LIMITS["address_space_bytes"],) * 2)
    cpu = SUBPROCESS_LIMITS["cpu_seconds"]
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))


def run_cli(path: Path, *flags: str) -> tuple[int, str]:
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))
    p = subprocess.run([sys.executable, "-m", "verifier", "check-cert", str(path), *flags], capture_output=True,
                       text=True, preexec_fn=_limit, env=env)
    return p.returncode, p.stdout + p.stderr


def assert_cli_ok(path: Path, what: str) -> int:
    code, text = run_cli(path)
    assert code in (0, 1, 2), f"{what}: exit {code} (killed by a resource limit?)\n{text[-2000:]}"
    assert "Traceback" not in text, f"{what}: traceback\n{text[-2000:]}"
    return code


# ---------------------------------------------------------------------------
# the fast profile
# ---------------------------------------------------------------------------
def test_bases_are_valid(bases):
    for which, path in bases.items():
        assert check_certificate(path).ok, which


@pytest.mark.parametrize("which", ["kkt", "ext", "emb"])
@settings(max_examples=FAST["json"], deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(data=st.data())
def test_json_mutations(bases, tmp_path_factory, which, data):
    d, folder = fresh(bases, which, tmp_path_factory.mktemp("m"))
    what = mutate(data, d)
    if data.draw(st.booleans()):
        what += "; " + mutate(data, d)
    reseal(d, folder)
    check_once(d, folder, what)


@settings(max_examples=FAST["npz"], deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(data=st.data())
def test_npz_mutations(bases, tmp_path_factory, data):
    d, folder = fresh(bases, "ext", tmp_path_factory.mktemp("n"))
    f = folder / data.draw(st.sampled_from([d["params"]["path"], d["data"]["path"]]))
    what = mutate_npz(data, f)
    reseal(d, folder)
    outcome = check_once(d, folder, what)
    if "dtype" in what and any(t in what for t in ("longdouble", "complex")):
        assert outcome == "error", what


def test_path_fields_never_leave_the_folder(bases, tmp_path):
    outside = tmp_path / "outside.npz"
    d0, folder = fresh(bases, "ext", tmp_path / "inside")
    outside.write_bytes((folder / d0["params"]["path"]).read_bytes())
    os.symlink(outside, folder / "link.npz")
    os.symlink(tmp_path, folder / "up")
    for p in (str(outside), "../outside.npz", "link.npz", "up/outside.npz", "./../inside/../outside.npz",
              "/proc/self/environ", "//etc/passwd", "up/inside/../outside.npz"):
        d = copy.deepcopy(d0)
        d["params"]["path"] = p
        d["params"]["sha256"] = sha256_file(outside)
        assert check_once(d, folder, f"params.path={p}") == "error"
    d = copy.deepcopy(d0)  # a symbolic link that loops back into the folder is inside it
    d["params"]["path"] = "up/inside/" + d0["params"]["path"]
    assert check_once(d, folder, "loop back") == "valid"


@settings(max_examples=FAST["subprocess"], deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(data=st.data())
def test_cli_under_resource_limits(bases, tmp_path_factory, data):
    d, folder = fresh(bases, data.draw(st.sampled_from(["kkt", "ext"])), tmp_path_factory.mktemp("s"))
    what = mutate(data, d)
    reseal(d, folder)
    path = folder / "mutant.json"
    path.write_text(json.dumps(d))
    assert_cli_ok(path, what)


def test_issue_cases_under_resource_limits(bases, tmp_path):
    """The resource attacks of issue 14 item 3 through the real CLI: refused (exit 2), never killed."""
    d0, folder = fresh(bases, "kkt", tmp_path / "c")
    cases = {}
    d = copy.deepcopy(d0)
    d["network"]["nodes"][1]["attrs"]["out_features"] = 10 ** 12
    cases["width"] = d
    d = copy.deepcopy(d0)
    d["network"]["nodes"][2] = {"name": "act1", "op": "power", "inputs": ["fc1"], "attrs": {"k": 10 ** 7}}
    cases["power"] = d
    d = copy.deepcopy(d0)
    d["data"]["X"]["shape"] = [2 ** 32, 2 ** 32]
    cases["shape"] = d
    for name, d in cases.items():
        path = folder / f"{name}.json"
        path.write_text(json.dumps(d))
        assert assert_cli_ok(path, name) == 2, name
    path = folder / "deep.json"
    path.write_text(json.dumps(d0)[:-1] + ', "measured": ' + "[" * 200_000 + "]" * 200_000 + "}")
    assert assert_cli_ok(path, "deep") == 2
