"""Shared test configuration: hypothesis profiles.

``ci`` (default) keeps property tests inside the CI budget; ``thorough`` is
for ``HYPOTHESIS_PROFILE=thorough make test`` or ``make test-slow``.
"""

import os

from hypothesis import HealthCheck, settings

settings.register_profile("ci", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
