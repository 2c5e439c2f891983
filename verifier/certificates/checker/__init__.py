"""The independent exact checker of certificates (docs/math.md section 11), as a small package.

``check_certificate(path_or_dict)`` re-derives every claimed figure of a
certificate in exact rational arithmetic and accepts only if every claimed
relation holds exactly.  It shares no numeric code with the producer: it never
imports ``verifier.numeric``, ``verifier.ops``, ``verifier.graph`` or
``verifier.kkt`` (a test keeps this fence).  Layers:

* :mod:`.limits` -- reading untrusted input: resource bounds (:class:`Limits`),
  exact scalars, paths confined to the certificate's folder, npz headers read
  before the data;
* :mod:`.ir` -- its own reading of the network (graph walk, shapes, degree);
* :mod:`.rules` -- the rule table, one exact rule per op (value, vector-Jacobian
  product, kink and Clarke interval);
* :mod:`.evaluate` -- one op-agnostic evaluation loop (forward with the exact
  activation pattern, weighted backward), the figures of one point, and the
  relaxation level (docs/math.md section 7, per sample);
* :mod:`.claims` -- claims as data (relation, required per kind), results, and
  the statement generated from the verified claims;
* :mod:`.certificate` -- the file's sections and :func:`check_certificate`.

What it recomputes at the stored point ``theta``: the margins ``q_r`` and
``min_margin``, ``normalized_margin = min q / ||theta||^L`` (exactly, via
powers), the activation pattern (an exactly-zero pre-activation takes the
certificate's kink selection, else the default derivative), ``v = sum_r
lambda_r h_r``, ``eps2 = ||theta - v||^2``, ``delta``, ``delta_max``, Euler's
identity as an internal consistency check, the degree ``L``, and for
embeddings ``T^T T = I``, output preservation, ``v~ = T v`` and the wide
network's figures.

A malformed, unreadable, oversized or incomplete file raises
:class:`CertificateError` naming the field (the CLI exits 2); a false claim is
not an error: ``ok`` is False and the claim says by how much.

>>> import verifier
>>> from verifier.certificates import certify_kkt
>>> net = verifier.mlp([2, 2, 1], activation="relu")
>>> params = {"W1": [[1.0, 0.0], [0.0, 1.0]], "W2": [[1.0, 1.0]]}
>>> cert = certify_kkt(net, params, [[1.0, 0.0]], [1], multipliers=["1/2"], normalize=False)
>>> res = check_certificate(cert)
>>> res.ok, [c.name for c in res.failed], len(repr(res)) < 200
(True, [], True)
>>> res.figures["eps2"], res.figures["min_margin"], res.figures["relaxation"]
(Fraction(5, 2), Fraction(1, 1), 'exact')
>>> res.figures["kinks"]      # W1[1] . x = 0 exactly: relu'(0) = 0 unless a selection says otherwise
[{'node': 'act1', 'sample': 0, 'unit': [1]}]
"""

from __future__ import annotations

from .certificate import (SelectionProblem, check_certificate, decode_tensor, evaluate, exact_min_margin, load,
                          read_data, read_labels, read_meta, read_params, read_selections, selection_problems,
                          window_problems)
from .claims import CLAIMS, REQUIRED, CheckResult, ClaimResult, ClaimSpec, normalized_margin_at_least
from .evaluate import RELAXATIONS, Evaluator, SelEntry, evaluate_point, relaxation_needed, rows_of
from .ir import NETWORK_FORMAT, Net
from .limits import DEFAULT_LIMITS, CertificateError, Limits, parse_rational
from .rules import OPS, RULES, Rule

__all__ = ["CLAIMS", "DEFAULT_LIMITS", "NETWORK_FORMAT", "OPS", "RELAXATIONS", "REQUIRED", "RULES", "CertificateError",
           "CheckResult", "ClaimResult", "ClaimSpec", "Evaluator", "Limits", "Net", "Rule", "SelEntry",
           "SelectionProblem", "check_certificate", "decode_tensor", "evaluate", "evaluate_point", "exact_min_margin",
           "load", "normalized_margin_at_least", "parse_rational", "read_data", "read_labels", "read_meta",
           "read_params", "read_selections", "relaxation_needed", "rows_of", "selection_problems",
           "window_problems"]
