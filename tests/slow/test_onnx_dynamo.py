"""torch's default ONNX exporter (``dynamo=True``, needs onnxscript from the [onnx] extra) into ``from_onnx``.

Slow (the exporter takes 10-50 s): ``make test-slow``.  Oracle: torch's own forward.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the exporter is torch's (the [torch] extra)")

import verifier  # noqa: E402
from tests.unit.test_importers_torch_robust import Nested  # noqa: E402  (the nested-Sequential model)

pytestmark = pytest.mark.slow


def test_onnx_dynamo_exporter_round_trip(tmp_path):
    """torch's default exporter (``dynamo=True``) needs onnxscript, which the [onnx] extra installs."""
    pytest.importorskip("onnx", reason="the ONNX importer needs the [onnx] extra")
    pytest.importorskip("onnxscript", reason="torch.onnx.export(dynamo=True) needs onnxscript (the [onnx] extra)")
    model = Nested().double().eval()
    path = tmp_path / "nested.onnx"
    torch.onnx.export(model, (torch.zeros(2, 1, 6, 6, dtype=torch.float64),), str(path), dynamo=True,
                      dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
    net, params = verifier.from_onnx(path)
    assert set(net.param_names) == {"features.0.0.weight", "head.0.weight", "head.2.0.weight"}
    x = torch.randn(5, 1, 6, 6, dtype=torch.float64)
    with torch.no_grad():
        ref = model(x).numpy()
    np.testing.assert_allclose(verifier.forward(net, params, x.numpy()), ref, rtol=0, atol=1e-12)
