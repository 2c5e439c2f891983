"""The certificate file format: name, version (with its change log) and encoders.

A certificate is one JSON object (documented field by field in the README and
in ``verifier/certificates/schema.json``)::

    {
      "meta":      {"format": "kkt-verifier/certificate", "format_version": 1, "kind": "kkt" | "embedding",
                    "created": "2025-01-01T00:00:00Z", "tool": "kkt-verifier 0.1.0", "statement": "..."},
      "network":   <Network.to_dict()>,
      "params":    {"tensors": {"W1": <tensor>, ...}}             or {"path": "params.npz", "sha256": "..."},
      "data":      {"X": <tensor>, "y": <labels>}                 or {"path": "data.npz",   "sha256": "..."},
      "witnesses": {"multipliers": ["p/q", ...], "kink_selections": [...], "sha256": {...}},
      "embedding": {...}                                           (kind "embedding" only),
      "claims":    {"eps2": {"relation": "<=", "bound": "1.5e-9"}, ...},
      "measured":  {...}                                           (the producer's float figures; not checked)
    }

A ``<tensor>`` is ``{"shape": [...], "encoding": ..., "values": ..., "sha256": ...}``
with encoding ``"f64-hex"`` (a flat row-major list of ``float.hex`` strings),
``"f64-base64"`` (base64 of the little-endian float64 bytes) or ``"rational"``
(a flat list of ``"p/q"`` strings).  Every float64 is an exact dyadic rational,
so both float encodings are lossless.  Hashes (SHA-256, lowercase hex):

* float tensors: of the little-endian float64 bytes, row-major
  (``hashlib.sha256(X.astype("<f8").tobytes())``), whatever the encoding;
* labels: of the little-endian int64 bytes;
* rational tensors, multipliers, kink selections, the embedding map: of the
  canonical JSON text of the stored value
  (``json.dumps(v, sort_keys=True, separators=(",", ":"))``);
* a ``{"path", "sha256"}`` reference: of the file's bytes (``sha256sum FILE``);
  a relative path is relative to the certificate's folder.

>>> FORMAT_NAME, FORMAT_VERSION
('kkt-verifier/certificate', 1)
>>> encode_rational(Fraction(3, 5)), encode_rational(Fraction(4)), encode_rational(0.375)
('3/5', '4', '3/8')
"""

from __future__ import annotations

import base64
import hashlib
import json
from fractions import Fraction
from typing import Any

import numpy as np

#: Name written to ``meta.format``.
FORMAT_NAME = "kkt-verifier/certificate"
#: Version written to ``meta.format_version``.  Changes:
#:   1 -- first version: meta, network, params, data (inline or by path + SHA-256),
#:        witnesses (multipliers, kink selections), embedding (wide network, map T,
#:        wide kink selections), claims, measured.
FORMAT_VERSION = 1
#: Versions the checker reads.
SUPPORTED_VERSIONS = (1,)

#: Claim name -> relation.  Numeric bounds are exact rationals written as strings
#: (``"p/q"``, an integer, or a decimal such as ``"1.5e-9"``, all read exactly).
CLAIMS: dict[str, str] = {
    "degree": "=",              # degree of homogeneity L of the network (exact)
    "relaxation": "<=",         # "none" <= "exact" <= "chain-rule": the subgradient notion needed
    "min_margin": ">=",         # min_r q_r(theta) at the stored point
    "normalized_margin": ">=",  # min_r q_r / ||theta||_2^L
    "eps2": "<=",               # ||theta - sum_r lambda_r h_r||_2^2
    "delta": "<=",              # sum_r lambda_r (q_r - 1)
    "delta_max": "<=",          # max_r lambda_r (q_r - 1)
    # embedding certificates only
    "isometry": "=",            # T^T T = I   (value true)
    "output_preserved": "=",    # Phi~(T theta; x_i) = Phi(theta; x_i) for every sample (value true)
    "gradient_commutes": "=",   # sum_r lambda_r h~_r(T theta) = T sum_r lambda_r h_r(theta) (value true)
    "wide_min_margin": ">=",
    "wide_eps2": "<=",
    "wide_delta": "<=",
    "wide_delta_max": "<=",
}
EMBEDDING_CLAIMS = ("isometry", "output_preserved", "gradient_commutes", "wide_min_margin", "wide_eps2",
                    "wide_delta", "wide_delta_max")
RELAXATIONS = ("none", "exact", "chain-rule")
ENCODINGS = ("f64-hex", "f64-base64", "rational")


def canonical_json(value: Any) -> str:
    """The text hashed for structured fields: sorted keys, no whitespace, ASCII."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_json(value: Any) -> str:
    return sha256_text(canonical_json(value))


def sha256_f64(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype="<f8").tobytes()).hexdigest()


def sha256_i64(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a, dtype="<i8").tobytes()).hexdigest()


def sha256_file(path: Any) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def encode_rational(x: Any) -> str:
    """An exact rational as ``"p/q"`` in lowest terms (``"p"`` when ``q = 1``); floats are taken exactly."""
    f = x if isinstance(x, Fraction) else Fraction(x)
    return str(f)


def encode_tensor(a: Any, encoding: str = "f64-hex") -> dict[str, Any]:
    """A float64 array as a certificate tensor (lossless), with its SHA-256."""
    arr = np.ascontiguousarray(np.asarray(a, dtype=np.float64))
    if encoding == "f64-hex":
        values: Any = [float(v).hex() for v in arr.ravel()]
    elif encoding == "f64-base64":
        values = base64.b64encode(arr.astype("<f8").tobytes()).decode("ascii")
    else:
        raise ValueError(f"encoding={encoding!r} must be 'f64-hex' or 'f64-base64' for a float64 array")
    return {"shape": list(arr.shape), "encoding": encoding, "values": values, "sha256": sha256_f64(arr)}


def encode_labels(y: Any) -> dict[str, Any]:
    ya = np.asarray(y).reshape(-1)
    if ya.size and not np.all(ya == np.round(ya)):
        raise ValueError("labels must be integers")
    yi = ya.astype(np.int64)
    return {"shape": [int(yi.shape[0])], "values": [int(v) for v in yi], "sha256": sha256_i64(yi)}
