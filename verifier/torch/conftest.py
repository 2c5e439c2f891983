"""pytest: the examples of verifier.torch need the [torch] extra (and lightning for its module); skip where absent."""

import pytest


@pytest.fixture(autouse=True)
def _optional_extras(request: pytest.FixtureRequest) -> None:
    pytest.importorskip("torch", reason="verifier.torch needs the [torch] extra")
    if str(getattr(request.node, "path", "")).endswith("lightning.py"):
        pytest.importorskip("lightning", reason="the Lightning callback needs the [lightning] extra")
