"""Reports: Markdown + self-contained HTML with embedded PNG plots (no browser needed here;
``scripts/screenshot_report.sh`` renders the page in headless Chromium)."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import numpy as np
import pytest

import verifier
from verifier.certificates import certify_embedding, certify_kkt
from verifier.errors import FormatError
from verifier.report import load_embedding_history, load_history, trajectory_deviation, write_report
from verifier.datasets import linearly_separable

PNG = b"\x89PNG\r\n\x1a\n"


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.srcs, self.cells = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        a = dict(attrs)
        for k in ("src", "href"):
            if k in a:
                self.srcs.append(a[k])

    def handle_data(self, data):
        self.cells.append(data)


@pytest.fixture(scope="module")
def trained():
    X, y = linearly_separable(6, 2, margin=0.2, seed=1)
    net = verifier.mlp([2, 3, 1])
    res = verifier.train(net, net.init_params(seed=1), X, y, steps=200, lr=0.5, progress=False, kkt_every=50)
    return net, res, X, y


def test_kkt_report_is_self_contained(tmp_path, trained):
    net, res, X, y = trained
    cert = certify_kkt(net, res.params, X, y)
    paths = write_report(cert, tmp_path, history=res)
    html = paths["html"].read_text()
    p = _Collect()
    p.feed(html)
    assert "script" not in p.tags and "link" not in p.tags
    # every image is an embedded PNG, nothing is fetched from anywhere
    assert p.srcs and all(s.startswith("data:image/png;base64,") for s in p.srcs)
    for s in p.srcs:
        assert base64.b64decode(s.split(",", 1)[1])[:8] == PNG
    text = " ".join(p.cells)
    assert "All 7 claims hold exactly" in text and "eps2" in text and "min_margin" in text
    md = paths["markdown"].read_text()
    for name in re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md):
        assert (tmp_path / name).read_bytes()[:8] == PNG
    assert {f.name for f in paths["figures"]} == {"fig_margins.png", "fig_multipliers.png", "fig_training.png"}
    # the exact claims table in Markdown agrees with the certificate's bounds
    assert f"<= {cert['claims']['eps2']['bound']}" in md
    # small instance: the KKT system from verifier.symbolic, in LaTeX
    assert "\\begin{aligned}" in md and "stationarity" in md


def test_failing_certificate_is_reported_as_failing(tmp_path, trained):
    net, res, X, y = trained
    cert = certify_kkt(net, res.params, X, y)
    cert["claims"]["delta"]["bound"] = "0"
    paths = write_report(cert, tmp_path)
    html = paths["html"].read_text()
    assert "1 of 7 claims FAIL" in html and 'class="fail"' in html


def test_embedding_report_with_deviation_series(tmp_path, trained):
    net, res, X, y = trained
    cert = certify_embedding(net, res.params, X, y, split="layer=1,neuron=0,ratios=1/3,2/3,2/3")
    emb = verifier.neuron_split(net, None, layer=1, neuron=0, ratios=["1/3", "2/3", "2/3"])
    series = trajectory_deviation(emb, net.flatten(net.init_params(0)), X, y, steps=30, lr=0.1)
    # gradient descent commutes with the isometric embedding: deviations at rounding level
    assert max(series["relative"]) < 1e-13
    paths = write_report(cert, tmp_path, embedding_history=series)
    assert (tmp_path / "fig_embedding.png").read_bytes()[:8] == PNG
    assert "T^T T = I" in paths["markdown"].read_text()


def test_history_and_series_loaders_reject_bad_input(tmp_path):
    assert load_history({"history": [{"step": 0, "loss": 1.0}]})[0]["loss"] == 1.0
    with pytest.raises(FormatError, match="history"):
        load_history([1, 2, 3])
    (tmp_path / "h.json").write_text("{not json")
    with pytest.raises(FormatError, match="not valid JSON"):
        load_history(tmp_path / "h.json")
    s = load_embedding_history([{"step": 0, "deviation": 0.0}, {"step": 1, "deviation": 1e-16}])
    assert s["step"] == [0, 1]
    with pytest.raises(FormatError, match="deviations"):
        load_embedding_history({"step": [0, 1], "deviation": [0.0]})
    np.testing.assert_equal(s["deviation"], [0.0, 1e-16])
