"""``verifier.torch.KKTMonitor`` against independent computations on the same weights.

Oracles: :func:`verifier.check_kkt` on the weights imported afresh with
:func:`verifier.from_torch` (the KKT figures and multipliers), and torch itself
for everything else: margins from the model's forward, norms from
``torch.linalg.norm``, the loss gradient (for ``beta``) from autograd, the
smoothed margin from ``torch.logsumexp``.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="verifier.torch needs the [torch] extra")

import verifier  # noqa: E402
from verifier.datasets import linearly_separable  # noqa: E402
from verifier.importers import MissingDependencyError  # noqa: E402
from verifier.report.series import load_history  # noqa: E402
from verifier.torch import KKTMonitor  # noqa: E402
from verifier.torch.monitor import MonitorError  # noqa: E402


def _binary_model(dtype=torch.float64):
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(2, 6, bias=False), torch.nn.ReLU(),
                               torch.nn.Linear(6, 1, bias=False)).to(dtype)


def _train(model, X, y, steps, mon=None, lr=0.2):
    dt = next(model.parameters()).dtype
    Xt, yt = torch.tensor(X, dtype=dt), torch.tensor(y, dtype=dt)
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    for k in range(steps + 1):
        if mon is not None:
            mon.step(k)
        opt.zero_grad()
        torch.exp(-yt * model(Xt)[:, 0]).mean().backward()
        opt.step()


@pytest.fixture(scope="module")
def data():
    return linearly_separable(24, 2, margin=0.2, seed=1)


def test_monitor_matches_check_kkt_and_torch_on_the_same_weights(data, tmp_path):
    X, y = data
    model = _binary_model()
    mon = KKTMonitor(model, X, y, every=40, log=tmp_path / "h.json", verbose=False)
    _train(model, X, y, 120, mon)
    assert [e["step"] for e in mon.history] == [0, 40, 80, 120]
    e = mon.history[-1]  # recorded before the update of step 120, i.e. after 120 updates
    assert e["verdict"] == "not_kkt"  # separated: every KKT figure is defined
    ref = _binary_model()  # the same weights, replayed without the monitor
    _train(ref, X, y, 119)
    # KKT oracle: import afresh, check with the public API
    net, params = verifier.from_torch(ref, torch.zeros(1, 2))
    rep = verifier.check_kkt(net, params, X, y)
    assert rep.verdict == e["verdict"]
    for f in ("eps", "eps_rel", "delta", "delta_rel", "delta_max"):
        assert e[f] == pytest.approx(getattr(rep, f), rel=1e-9, abs=1e-15), f
    assert e["support"] == [int(r) for r in rep.support]
    np.testing.assert_allclose(e["multipliers"], rep.multipliers[rep.support], rtol=1e-9)
    assert e["support_size"] == len(rep.support)
    # torch oracles
    Xt, yt = torch.tensor(X), torch.tensor(y)
    theta = torch.nn.utils.parameters_to_vector(ref.parameters()).detach().requires_grad_(True)
    W1, W2 = theta[:12].view(6, 2), theta[12:].view(1, 6)
    q = yt * (torch.relu(Xt @ W1.T) @ W2.T)[:, 0]
    nrm = float(theta.detach().norm())
    assert e["min_margin"] == pytest.approx(float(q.min()), rel=1e-12)
    assert e["normalized_margin"] == pytest.approx(float(q.min()) / nrm ** 2, rel=1e-12)
    assert e["smoothed_margin"] == pytest.approx(-float(torch.logsumexp(-q, 0)) / nrm ** 2, rel=1e-10)
    assert e["n_near_min"] == int((q <= q.min() + 0.01 * abs(q.min())).sum())
    n1, n2 = float(W1.norm()), float(W2.norm())
    assert e["layer_norms"] == pytest.approx({"0.weight": n1, "2.weight": n2}, rel=1e-12)
    assert e["balancedness"]["0.weight - 2.weight"] == pytest.approx(n1 ** 2 - n2 ** 2, rel=1e-9, abs=1e-12)
    assert e["margin_over_prod_norms"] == pytest.approx(float(q.min()) / (n1 * n2), rel=1e-12)
    (g,) = torch.autograd.grad(torch.exp(-q).sum(), theta)
    beta = float(-(theta @ g) / (theta.norm() * g.norm()))
    assert e["beta"] == pytest.approx(beta, rel=1e-10)
    assert e["source_dtype"] == "float64" and e["seconds"] > 0
    # the log file: the training-history format, rewritten at every record
    doc = json.loads((tmp_path / "h.json").read_text())
    assert doc["format"] == "kkt-verifier/train-history" and doc["version"] == 2
    assert [h["step"] for h in load_history(tmp_path / "h.json")] == [0, 40, 80, 120]


def test_monitor_multiclass_logistic_beta_and_sample_multipliers():
    rng = np.random.default_rng(0)
    centers = np.array([[2.0, 0.0], [-1.0, 1.7], [-1.0, -1.7]])
    y = np.arange(18) % 3
    X = centers[y] + 0.2 * rng.normal(size=(18, 2))
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(2, 8, bias=False), torch.nn.ReLU(),
                                torch.nn.Linear(8, 3, bias=False)).double()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    Xt, yt = torch.tensor(X), torch.tensor(y)
    for _ in range(200):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(Xt), yt).backward()
        opt.step()
    mon = KKTMonitor(model, X, y, loss="logistic", verbose=False)
    e = mon.step(0)
    params = [p.detach().clone().requires_grad_(True) for p in model.parameters()]
    out = torch.relu(Xt @ params[0].T) @ params[1].T
    loss = torch.nn.functional.cross_entropy(out, yt, reduction="sum")
    grads = torch.autograd.grad(loss, params)
    th = torch.cat([p.reshape(-1) for p in params])
    g = torch.cat([gg.reshape(-1) for gg in grads])
    assert e["beta"] == pytest.approx(float(-(th @ g) / (th.norm() * g.norm())), rel=1e-9)
    # smoothed margin for logistic: log(1/(exp(ell) - 1)) / ||theta||^L
    assert e["smoothed_margin"] == pytest.approx(-math.log(math.expm1(float(loss))) / float(th.norm()) ** 2, rel=1e-9)
    rep = mon.last_report
    sums: dict[str, float] = {}
    for r in rep.support:  # rows of sample i are the (i, wrong class) pairs
        key = str(int(r) // 2)
        sums[key] = sums.get(key, 0.0) + float(rep.multipliers[r])
    assert e["sample_multipliers"] == pytest.approx(sums)
    assert e["support_samples"] == sorted(int(k) for k in sums)


def test_float32_model_is_checked_in_float64_with_a_warning(data):
    X, y = data
    model = _binary_model(torch.float32)
    _train(model, X, y, 60)
    mon = KKTMonitor(model, X, y, verbose=False)
    e = mon.step(0)
    assert e["source_dtype"] == "float32"
    rep = mon.last_report
    assert rep.source_dtype == "float32" and any("float32" in w and "float64" in w for w in rep.warnings)
    assert "warning: the weights came from a float32 model" in str(rep)
    assert rep.to_dict()["source_dtype"] == "float32"
    # the figures are those of the exact float32 values, checked in float64
    net, params = verifier.from_torch(model, torch.zeros(1, 2))
    for p in params.values():
        np.testing.assert_array_equal(p, p.astype(np.float32).astype(np.float64))
    assert e["eps"] == pytest.approx(verifier.check_kkt(net, params, X, y).eps, rel=1e-9)


def test_every_and_force(data):
    X, y = data
    mon = KKTMonitor(_binary_model(), X, y, every=3, kkt=False, verbose=False)
    recorded = [k for k in range(10) if mon.step(k) is not None]
    assert recorded == [0, 3, 6, 9]
    assert mon.step(10, force=True)["step"] == 10
    assert "eps" not in mon.history[0]


def test_tensorboard_writer_gets_the_entries(data):
    X, y = data

    class Writer:
        def __init__(self):
            self.rows = []

        def add_scalar(self, tag, value, step):
            self.rows.append((tag, value, step))

    w = Writer()
    mon = KKTMonitor(_binary_model(), X, y, every=1, tensorboard=w, verbose=False)
    e = mon.step(0)
    got = {t: v for t, v, s in w.rows if s == 0}
    assert got["kkt/normalized_margin"] == e["normalized_margin"]
    assert got["kkt/layer_norm/0.weight"] == e["layer_norms"]["0.weight"]
    assert got["kkt/seconds"] == e["seconds"]
    assert "kkt/eps_rel" not in got  # infeasible at the start: eps undefined, not logged
    assert e["verdict"] == "infeasible"


def test_tensorboard_directory_needs_the_package(data, tmp_path):
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        with pytest.raises(MissingDependencyError, match="tensorboard"):
            KKTMonitor(_binary_model(), *data, tensorboard=tmp_path, verbose=False)
    else:  # pragma: no cover - when tensorboard is installed the writer is created
        mon = KKTMonitor(_binary_model(), *data, tensorboard=tmp_path, verbose=False)
        assert hasattr(mon.writer, "add_scalar")


def test_verbose_line_reports_the_cost(data):
    import io

    buf = io.StringIO()
    mon = KKTMonitor(_binary_model(), *data, every=5, stream=buf)
    mon.step(0)
    line = buf.getvalue()
    assert line.startswith("[kkt] step 0:") and line.rstrip().endswith(" s]")


def test_bad_arguments_are_named(data):
    X, y = data
    with pytest.raises(MonitorError, match="every=0 must be an integer >= 1"):
        KKTMonitor(_binary_model(), X, y, every=0)
    with pytest.raises(MonitorError, match="model must be a torch.nn.Module"):
        KKTMonitor("net", X, y)
    with pytest.raises(verifier.DataError):
        KKTMonitor(_binary_model(), X, y[:-1])
    deep_bias = torch.nn.Sequential(torch.nn.Linear(2, 4, bias=False), torch.nn.ReLU(), torch.nn.Linear(4, 1))
    with pytest.raises(verifier.NotHomogeneousError, match="2.bias"):
        KKTMonitor(deep_bias, X, y)
    mon = KKTMonitor(_binary_model(), X, y, verbose=False)
    with pytest.raises(MonitorError, match="step=-1"):
        mon.step(-1)


def test_lightning_callback_records_global_steps(data):
    L = pytest.importorskip("lightning", reason="the Lightning callback needs the [lightning] extra")
    from verifier.torch import KKTCallback

    X, y = data

    class Lit(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = _binary_model(torch.float32)

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, i):
            x, t = batch
            return torch.exp(-t * self(x)[:, 0]).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    ds = torch.utils.data.TensorDataset(torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.float32))
    cb = KKTCallback(X, y, every=2, verbose=False)
    lit = Lit()
    trainer = L.Trainer(max_steps=4, callbacks=[cb], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(lit, torch.utils.data.DataLoader(ds, batch_size=12))
    assert [e["step"] for e in cb.monitor.history] == [0, 2, 4]
    net, params = verifier.from_torch(lit.net, torch.zeros(1, 2))
    q = verifier.margins(net, params, X, y)
    assert cb.monitor.history[-1]["min_margin"] == pytest.approx(float(q.min()), rel=1e-12)
