"""pytest: the importers' doctests need the optional extras; skip them (with the reason) where absent."""

import pytest


@pytest.fixture(autouse=True)
def _optional_extras(request: pytest.FixtureRequest) -> None:
    path = str(getattr(request.node, "path", ""))
    if path.endswith("onnx_import.py"):
        pytest.importorskip("onnx", reason="the ONNX importer's examples need the [onnx] extra")
    elif path.endswith("torch_import.py"):
        pytest.importorskip("torch", reason="the PyTorch importer's examples need the [torch] extra")
