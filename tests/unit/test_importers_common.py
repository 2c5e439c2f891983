"""Importer plumbing that needs neither torch nor onnx: missing extras, the output comparison."""

from __future__ import annotations

import numpy as np
import pytest

from verifier.errors import VerifierError
from verifier.importers import ImportCheckError, MissingDependencyError
from verifier.importers._common import Builder, compare_outputs, require


def test_missing_extra_is_one_clear_line():
    with pytest.raises(MissingDependencyError, match=r"'no_such_module_xyz'.*pip install 'kkt-verifier\[torch\]'"):
        require("no_such_module_xyz", "torch")
    assert issubclass(MissingDependencyError, VerifierError) and issubclass(MissingDependencyError, ImportError)


def test_compare_outputs_scales_by_output_size():
    ref = np.array([[1000.0], [-2.0]])
    assert compare_outputs(ref + 1e-10, ref, 1e-12, "m") == pytest.approx(1e-13)
    with pytest.raises(ImportCheckError, match=r"m: the imported network disagrees.*1e-06"):
        compare_outputs(ref + np.array([[0.0], [0.01]]), ref, 1e-6, "m")
    with pytest.raises(ImportCheckError, match=r"shape \(2,\)"):
        compare_outputs(ref[:, 0], ref, 1e-6, "m")


def test_builder_unique_names_and_shapes():
    b = Builder()
    x = b.add("x", "input", shape=(3,))
    d = b.add("fc", "dense", [x], params={"weight": ("fc.weight", np.ones((2, 3)))}, out_features=2)
    d2 = b.add("fc", "relu", [d])
    assert (x, d, d2) == ("x", "fc", "fc_1") and b.shapes[d2] == (2,)
    with pytest.raises(VerifierError, match="weight sharing"):
        b.add("g", "dense", [d2], params={"weight": ("fc.weight", np.ones((2, 2)))}, out_features=2)
