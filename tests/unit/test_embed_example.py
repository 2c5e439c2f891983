"""The paper's experiment (examples/embedding_paper.py) runs, writes its plots and shows both behaviours."""

import importlib.util
import json
from pathlib import Path


EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "embedding_paper.py"


def test_embedding_paper_example(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("embedding_paper", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--out", str(tmp_path), "--steps", "60", "--n", "16"]) == 0
    text = capsys.readouterr().out
    for f in ("trajectories.png", "deviation.png", "margins.png"):
        data = (tmp_path / f).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    gd = json.loads((tmp_path / "report_gd.json").read_text())
    sign = json.loads((tmp_path / "report_sign.json").read_text())
    assert gd["passed"] is True
    assert "gd_trajectory" in sign["failed"] and sign["checks"]["isometry"]["passed"]
    gd_line = next(l for l in text.splitlines() if l.strip().startswith("gd:"))
    sign_line = next(l for l in text.splitlines() if l.strip().startswith("sign:"))
    assert float(gd_line.split("=")[1].split()[0]) < 1e-12
    assert float(sign_line.split("=")[1].split()[0]) > 1e-4
