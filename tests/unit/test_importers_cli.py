"""CLI: ``verifier import model.onnx`` and ``verifier export --torch`` (round trip through files)."""

from __future__ import annotations

import verifier
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the import/export commands need the [torch] extra")
pytest.importorskip("onnx", reason="`verifier import` needs the [onnx] extra")
nn = torch.nn

from verifier.cli import main  # noqa: E402
from verifier.importers import from_torch  # noqa: E402
from verifier.io import load_network, load_params, save_data, save_params  # noqa: E402


def make_model(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1, bias=False), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(2 * 2 * 2, 1, bias=False))


def out64(model, X):
    import copy

    with torch.no_grad():
        return copy.deepcopy(model).double()(torch.tensor(X)).numpy()


def test_import_onnx_then_kkt(tmp_path, capsys):
    model = make_model().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 1, 4, 4),), str(tmp_path / "m.onnx"), dynamo=False,
                          input_names=["x"], dynamic_axes={"x": {0: "n"}})
    rc = main(["import", str(tmp_path / "m.onnx"), "--out", str(tmp_path / "net.json"), "--params", str(tmp_path / "p.npz")])
    out = capsys.readouterr().out
    assert rc == 0 and "positively homogeneous of degree 2" in out
    net = load_network(tmp_path / "net.json")
    params = load_params(tmp_path / "p.npz", net)
    X = np.random.default_rng(0).normal(size=(6, 1, 4, 4))
    assert np.max(np.abs(verifier.forward(net, params, X) - out64(model, X))) < 1e-12
    # the pipeline: import, then kkt on the files
    y = np.where(out64(model, X)[:, 0] >= 0, 1.0, -1.0)
    save_data(tmp_path / "d.npz", X, y)
    rc = main(["kkt", "--net", str(tmp_path / "net.json"), "--params", str(tmp_path / "p.npz"), "--data", str(tmp_path / "d.npz")])
    assert rc in (0, 1)  # a verdict either way; 2 would be an input error
    assert "eps" in capsys.readouterr().out


def test_import_rejects_non_onnx_and_torch_files(tmp_path, capsys):
    (tmp_path / "x.onnx").write_text("hello, not protobuf\n")
    args = ["--out", str(tmp_path / "n.json"), "--params", str(tmp_path / "p.npz")]
    assert main(["import", str(tmp_path / "x.onnx"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert "not an ONNX model" in err and len(err.splitlines()) == 1
    torch.save(make_model().state_dict(), tmp_path / "m.pt")
    assert main(["import", str(tmp_path / "m.pt"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert "PyTorch file" in err and "verifier.from_torch" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "n.json").exists()


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_export_torch_round_trip(tmp_path, capsys, dtype):
    model = make_model(1)
    net, params = from_torch(model, torch.zeros(1, 1, 4, 4))
    rng = np.random.default_rng(3)
    new = {k: v + 0.1 * rng.normal(size=v.shape) for k, v in params.items()}
    net.to_json(tmp_path / "net.json")
    save_params(tmp_path / "p.npz", new)
    rc = main(["export", "--torch", "--net", str(tmp_path / "net.json"), "--params", str(tmp_path / "p.npz"),
               "--out", str(tmp_path / "state.pt"), "--dtype", dtype])
    assert rc == 0 and "0.weight" in capsys.readouterr().out
    sd = torch.load(tmp_path / "state.pt")
    assert list(sd) == net.param_names
    assert all(t.dtype == getattr(torch, dtype) for t in sd.values())
    fresh = make_model(2).double()  # different init, then load the exported tensors
    fresh.load_state_dict(sd, strict=True)
    X = rng.normal(size=(5, 1, 4, 4))
    with torch.no_grad():
        ref = fresh(torch.tensor(X)).numpy()
    if dtype == "float64":
        assert np.max(np.abs(verifier.forward(net, new, X) - ref)) < 1e-12
    else:  # the exported float32 values, exactly
        assert all(np.array_equal(sd[k].numpy(), new[k].astype(np.float32)) for k in new)


def test_export_bad_input(tmp_path, capsys):
    net, params = from_torch(make_model(), torch.zeros(1, 1, 4, 4))
    net.to_json(tmp_path / "net.json")
    save_params(tmp_path / "p.npz", {"0.weight": params["0.weight"]})  # one tensor missing
    base = ["--net", str(tmp_path / "net.json"), "--params", str(tmp_path / "p.npz"), "--out", str(tmp_path / "s.pt")]
    assert main(["export", "--torch", *base]) == 2
    assert "missing ['4.weight']" in capsys.readouterr().err
    assert main(["export", *base]) == 2
    assert "--torch" in capsys.readouterr().err
