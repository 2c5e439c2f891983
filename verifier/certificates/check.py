"""Compatibility module: the independent exact checker now lives in :mod:`verifier.certificates.checker`.

``from verifier.certificates.check import check_certificate`` keeps working;
new code imports from :mod:`verifier.certificates.checker`.
"""

from __future__ import annotations

from .checker import *  # noqa: F401,F403
from .checker import __all__  # noqa: F401
