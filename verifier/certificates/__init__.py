"""Certificates: proof-supporting JSON files, their producers and an independent exact checker.

A certificate says "these parameters are an (eps, delta)-KKT point of this
network on this data, witnessed by these multipliers" (``kind = "kkt"``), or
additionally "this map T embeds them into that wider network" (``kind =
"embedding"``).  Anyone can re-check it with :func:`check_certificate` (or
``verifier check-cert FILE``), which recomputes every figure in exact
rational arithmetic without using the code that produced it (docs/math.md
section 8).  The format is described in :mod:`verifier.certificates.format`
and ``schema.json``.

>>> import verifier
>>> from verifier.certificates import certify_kkt, check_certificate
>>> net = verifier.mlp([2, 1], activation="identity")
>>> cert = certify_kkt(net, {"W1": [[0.5, 0.0]]}, [[2.0, 0.0], [-2.0, 0.0]], [1, -1])
>>> check_certificate(cert).ok
True
"""

from __future__ import annotations

from pathlib import Path

from .check import CertificateError, CheckResult, ClaimResult, check_certificate
from .format import FORMAT_NAME, FORMAT_VERSION
from .produce import CertifyError, certify_embedding, certify_kkt, make_split, parse_split, round_decimal

SCHEMA_PATH = Path(__file__).with_name("schema.json")

__all__ = ["CertificateError", "CertifyError", "CheckResult", "ClaimResult", "FORMAT_NAME", "FORMAT_VERSION",
           "SCHEMA_PATH", "certify_embedding", "certify_kkt", "check_certificate", "make_split", "parse_split",
           "round_decimal"]
