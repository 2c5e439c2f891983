"""``verifier plot`` and :mod:`verifier.report.history_plot`.

Oracles: the plotted line data read back from the matplotlib figure equal the
history's numbers; the ``1/log t`` reference curve equals ``v0 log(t0) / log t``
computed here; the PNG files decode (matplotlib's own reader) to the expected
size; image shapes of known data sets (8x8 digits, 28x28, (1, H, W)).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="plots need the [report] extra")

from verifier.cli import main  # noqa: E402
from verifier.io import save_data  # noqa: E402
from verifier.report.history_plot import history_figure, image_shape, plot_history, support_png  # noqa: E402

HIST = [{"step": s, "eps_rel": 0.3 / math.log(s + 2), "delta_rel": 0.1 / (s + 1), "normalized_margin": 0.1 - 1 / (s + 10),
         "smoothed_margin": 0.09 - 1 / (s + 10), "support_size": 3 + (s > 50), "log_loss": -s / 10.0,
         "support_samples": [1, 5, 7], "sample_multipliers": {"1": 0.5, "5": 2.0, "7": 1.0}}
        for s in (0, 1, 10, 100, 1000)]


def _lines(ax):
    return {ln.get_label(): (np.asarray(ln.get_xdata(), float), np.asarray(ln.get_ydata(), float)) for ln in ax.lines}


def test_history_figure_plots_the_numbers_on_log_axes():
    fig = history_figure(HIST)
    kkt, margin, support, loss = fig.axes
    assert kkt.get_xscale() == "log" and kkt.get_yscale() == "log"
    lines = _lines(kkt)
    steps = np.array([1, 10, 100, 1000], float)  # step 0 cannot sit on a log axis
    np.testing.assert_array_equal(lines["eps_rel"][0], steps)
    np.testing.assert_allclose(lines["eps_rel"][1], [0.3 / math.log(s + 2) for s in steps])
    np.testing.assert_allclose(lines["delta_rel"][1], [0.1 / (s + 1) for s in steps])
    t, ref = lines["~ 1/log t (Lyu & Li rate)"]
    t0, v0 = 10.0, 0.3 / math.log(12)  # anchored at the first step >= 2
    np.testing.assert_allclose(ref, v0 * math.log(t0) / np.log(t))
    assert t[0] == t0 and t[-1] == pytest.approx(1000)
    np.testing.assert_allclose(_lines(margin)["normalised margin min q/||theta||^L"][1], [0.1 - 1 / (s + 10) for s in steps])
    np.testing.assert_array_equal(support.lines[0].get_ydata(), [3, 3, 4, 4])
    assert margin.get_xscale() == "log" and support.get_xscale() == "log" and loss.get_xscale() == "log"


def test_image_shapes():
    assert image_shape(np.zeros((3, 64))) == (8, 8)
    assert image_shape(np.zeros((3, 784))) == (28, 28)
    assert image_shape(np.zeros((3, 1, 6, 6))) == (6, 6)
    assert image_shape(np.zeros((3, 2))) is None
    assert image_shape(np.zeros((3, 12)), (3, 4)) == (3, 4)
    with pytest.raises(Exception, match=r"image shape \[5, 5\] does not fit samples of shape \[12\]"):
        image_shape(np.zeros((3, 12)), (5, 5))


def test_cli_writes_history_and_support_pictures(tmp_path, capsys):
    import matplotlib.image as mpimg

    (tmp_path / "h.json").write_text(json.dumps({"meta": {"format": "kkt-verifier/train-history", "version": 1},
                                                 "history": HIST}))
    rng = np.random.default_rng(0)
    save_data(tmp_path / "digits.npz", rng.uniform(0, 16, size=(10, 64)), np.arange(10) % 2 * 2 - 1)
    code = main(["plot", str(tmp_path / "h.json"), "--out", str(tmp_path / "fig.png"), "--data",
                 str(tmp_path / "digits.npz")])
    out = capsys.readouterr().out
    assert code == 0
    assert out.splitlines() == [f"wrote {tmp_path / 'fig.png'}", f"wrote {tmp_path / 'fig-support.png'}"]
    img = mpimg.imread(tmp_path / "fig.png")
    assert img.shape[0] == pytest.approx(2 * 3.0 * 110, abs=2) and img.shape[1] == pytest.approx(2 * 4.2 * 110, abs=2)
    sup = mpimg.imread(tmp_path / "fig-support.png")
    assert sup.shape[1] == pytest.approx(3 * 1.25 * 110, abs=2)  # three support samples, one row


def test_support_picture_draws_images_and_checks_indices():
    X = np.zeros((10, 1, 4, 4))
    fig_png = support_png(HIST, X, None)
    assert fig_png is not None and fig_png[:4] == b"\x89PNG"
    assert support_png(HIST, np.zeros((10, 2))) is None  # not images
    with pytest.raises(Exception, match="support sample 7 is outside the data"):
        support_png(HIST, np.zeros((6, 64)))


def test_nothing_to_plot_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "h.json").write_text(json.dumps([{"step": 0, "norm": 1.0}]))
    assert main(["plot", str(tmp_path / "h.json"), "--out", str(tmp_path / "f.png")]) == 2
    err = capsys.readouterr().err
    assert "none of eps_rel, delta_rel" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(Exception, match="does not exist"):
        plot_history(HIST, tmp_path / "no" / "f.png")


def test_monitor_history_plots_end_to_end(tmp_path):
    torch = pytest.importorskip("torch", reason="the monitor needs the [torch] extra")
    from verifier.datasets import linearly_separable
    from verifier.torch import KKTMonitor

    X, y = linearly_separable(16, 2, margin=0.2, seed=0)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(2, 6, bias=False), torch.nn.ReLU(), torch.nn.Linear(6, 1, bias=False))
    mon = KKTMonitor(model, X, y, every=25, log=tmp_path / "h.json", verbose=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    Xt, yt = torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    for k in range(101):
        mon.step(k)
        opt.zero_grad()
        torch.exp(-yt * model(Xt)[:, 0]).mean().backward()
        opt.step()
    fig = history_figure(tmp_path / "h.json")
    got = _lines(fig.axes[0])["eps_rel"]
    want = [(e["step"], e["eps_rel"]) for e in mon.history if e["step"] > 0 and e.get("eps_rel")]
    np.testing.assert_allclose(got[0], [s for s, _ in want])
    np.testing.assert_allclose(got[1], [v for _, v in want])
    assert plot_history(tmp_path / "h.json", tmp_path / "f.png") == [tmp_path / "f.png"]


def test_digits_example_end_to_end(tmp_path, capsys):
    """The example: torch training on digits, monitor, checkpoint CLI, plots (short run)."""
    pytest.importorskip("torch", reason="the example trains in torch")
    pytest.importorskip("sklearn", reason="the example needs scikit-learn's digits")
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[2] / "examples" / "torch_digits_monitor.py"
    spec = importlib.util.spec_from_file_location("torch_digits_monitor", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.main(["--out", str(tmp_path), "--steps", "600", "--every", "300", "--ckpt-every", "300"]) == 0
    out = capsys.readouterr().out
    hist = json.loads((tmp_path / "history.json").read_text())["history"]
    assert [e["step"] for e in hist] == [0, 300, 600]
    assert sorted(p.name for p in (tmp_path / "ckpts").iterdir()) == ["ckpt_000300.pt", "ckpt_000600.pt"]
    # the CLI rows agree with the monitor's records of the same steps
    rows = [ln.split() for ln in out.splitlines() if ln.strip().startswith(("300 ", "600 "))]
    assert [r[0] for r in rows] == ["300", "600"]
    for r, e in zip(rows, hist[1:]):
        assert r[2] == e["verdict"]
        assert float(r[4]) == pytest.approx(e["eps_rel"], rel=1e-2)  # printed with 3 digits
    assert (tmp_path / "history.png").stat().st_size > 0 and (tmp_path / "history-support.png").stat().st_size > 0


def test_history_header_versions(tmp_path):
    """Both history layouts read (version 2: the common header; version 1: format/version inside meta);
    a wrong format or version is one FormatError naming the file and the field."""
    from verifier._json import header
    from verifier.errors import FormatError
    from verifier.report import load_history

    v2 = {**header("kkt-verifier/train-history", 2, steps=3), "history": HIST}
    v1 = {"meta": {"format": "kkt-verifier/train-history", "version": 1}, "history": HIST}
    for i, doc in enumerate([v2, v1, {"history": HIST}]):
        (tmp_path / f"h{i}.json").write_text(json.dumps(doc))
        assert load_history(tmp_path / f"h{i}.json") == HIST
    bad = [({**v2, "version": 3}, r"h\.json'?: field 'version' is 3; this verifier reads version\(s\) 2"),
           ({**v2, "format": "kkt-verifier/network"}, r"field 'format' is 'kkt-verifier/network'; expected 'kkt-verifier/train-history'"),
           ({"meta": {"format": "kkt-verifier/train-history", "version": 2}, "history": HIST}, r"meta: field 'version' is 2")]
    for doc, msg in bad:
        (tmp_path / "h.json").write_text(json.dumps(doc))
        with pytest.raises(FormatError, match=msg):
            load_history(tmp_path / "h.json")
