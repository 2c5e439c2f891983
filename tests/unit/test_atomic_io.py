"""Atomic, pre-checked writes (verifier.io.check_output_path / atomic_write) and Ctrl-C at known points.

Interrupts are delivered at points fixed by a count, not a clock: a test hook makes the CLI create a marker
file and wait for a signal (``VERIFIER_TEST_PAUSE_BEFORE_RENAME`` after the temporary file is complete,
``VERIFIER_TEST_PAUSE_AT_STARTUP`` while ``import verifier`` runs); the test sends SIGINT once the marker exists.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import zipfile
from pathlib import Path

import numpy as np
import pytest

import verifier
from tests.helpers import cli_command, cli_env, wait_for, write_files
from verifier.errors import OutputPathError
from verifier.graph.network import Network
from verifier.io import atomic_write, atomic_write_text, check_output_path, load_params, save_params, write_npz


def _listing(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


# -- atomic_write ----------------------------------------------------------------------------------------

def test_save_params_writes_exactly_the_path_given(tmp_path):
    """`--out x.bin` writes x.bin, not x.bin.npz (numpy appends .npz to a path, never to a file object)."""
    net = verifier.mlp([2, 3, 1])
    p = net.init_params(0)
    out = save_params(tmp_path / "x.bin", p)
    assert out == tmp_path / "x.bin" and _listing(tmp_path) == ["x.bin"]
    back = load_params(out, net)
    assert all(np.array_equal(back[k], p[k]) for k in p)


def _renamed(net: Network, names: dict[str, str]) -> Network:
    d = net.to_dict()
    for node in d["nodes"]:
        if "params" in node:
            node["params"] = {role: names.get(t, t) for role, t in node["params"].items()}
    d["parameters"] = [dict(q, name=names.get(q["name"], q["name"])) for q in d["parameters"]]
    return Network.from_dict(d)


def test_tensors_may_be_named_like_savez_keywords(tmp_path):
    """np.savez(f, **params) raised for a tensor called `file` and dropped one called `allow_pickle`."""
    net = _renamed(verifier.mlp([2, 3, 1]), {"W1": "file", "W2": "allow_pickle"})
    p = net.init_params(0)
    back = load_params(save_params(tmp_path / "p.npz", p), net)
    assert sorted(back) == ["allow_pickle", "file"] and all(np.array_equal(back[k], p[k]) for k in p)


def test_write_npz_writes_what_np_savez_writes(tmp_path):
    """Oracle: np.savez's bytes, for names it can take."""
    arrays = {"W1": np.arange(6.0).reshape(2, 3), "y": np.array([1, -1], dtype=np.int64)}
    np.savez(tmp_path / "a.npz", **arrays)
    write_npz(tmp_path / "b.npz", arrays)
    assert (tmp_path / "a.npz").read_bytes() == (tmp_path / "b.npz").read_bytes()


@pytest.mark.parametrize("exc", [RuntimeError("disk full"), KeyboardInterrupt()])
def test_a_failed_write_leaves_the_previous_file_and_no_temporary(tmp_path, exc):
    target = tmp_path / "out.json"
    target.write_text("previous\n")

    def writer(f):
        f.write(b"half of the new con")
        raise exc

    with pytest.raises(type(exc)):
        atomic_write(target, writer)
    assert target.read_text() == "previous\n" and _listing(tmp_path) == ["out.json"]


def test_an_os_error_while_writing_is_one_line(tmp_path):
    def writer(f):
        raise OSError(28, "No space left on device")

    with pytest.raises(OutputPathError, match=r"cannot write .*out.json.*: No space left on device"):
        atomic_write(tmp_path / "out.json", writer)
    assert _listing(tmp_path) == []


def test_permissions_are_kept_or_follow_the_umask(tmp_path):
    old = tmp_path / "old.txt"
    old.write_text("x")
    os.chmod(old, 0o640)
    atomic_write_text(old, "y")
    assert stat.S_IMODE(old.stat().st_mode) == 0o640 and old.read_text() == "y"
    # a new file gets what open() would give it (not mkstemp's 0600)
    ref = tmp_path / "ref.txt"
    ref.write_text("r")
    new = atomic_write_text(tmp_path / "new.txt", "n")
    assert stat.S_IMODE(new.stat().st_mode) == stat.S_IMODE(ref.stat().st_mode)


def test_a_symlink_is_followed(tmp_path):
    real = tmp_path / "real.json"
    real.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(real)
    atomic_write_text(link, "new")
    assert link.is_symlink() and real.read_text() == "new"


# -- check_output_path -------------------------------------------------------------------------------------

def test_output_paths_are_refused_before_any_work(tmp_path):
    (tmp_path / "in.npz").write_bytes(b"input")
    (tmp_path / "afile").write_text("x")
    (tmp_path / "sub").mkdir()
    cases = [
        (tmp_path / "missing" / "out.npz", "folder .* does not exist; create it first"),
        (tmp_path / "sub", "is a folder; give a file name inside it"),
        (tmp_path / "afile" / "out.npz", "is not a folder"),
        (tmp_path / "in.npz", "is also an input of this command"),
        (tmp_path / "sub" / ".." / "in.npz", "is also an input of this command"),
        ("", "is empty"),
    ]
    for path, msg in cases:
        with pytest.raises(OutputPathError, match=msg) as e:
            check_output_path(path, option="--out", inputs=[tmp_path / "in.npz"])
        assert "\n" not in str(e.value) and str(e.value).startswith("--out")
    link = tmp_path / "alias.npz"
    link.symlink_to(tmp_path / "in.npz")
    with pytest.raises(OutputPathError, match="is also an input"):
        check_output_path(link, inputs=[tmp_path / "in.npz"])
    with pytest.raises(OutputPathError, match=r"must end in \.json"):
        check_output_path(tmp_path / "out.txt", suffix=".json")
    assert check_output_path(tmp_path / "ok.npz", inputs=[tmp_path / "in.npz", None]) == tmp_path / "ok.npz"
    assert check_output_path(tmp_path / "newdir", folder=True) == tmp_path / "newdir"
    with pytest.raises(OutputPathError, match="exists and is not a folder"):
        check_output_path(tmp_path / "afile", folder=True)


# -- the CLI: refused before the work, exact paths ---------------------------------------------------------

@pytest.fixture
def files(tmp_path):
    net = verifier.mlp([2, 3, 1])
    X = np.array([[1.0, 0.5], [-1.0, -0.2], [0.8, -0.1], [-0.7, 0.3]])
    y = np.array([1.0, -1.0, 1.0, -1.0])
    return write_files(tmp_path, net, net.init_params(0), X, y)


def test_train_refuses_an_output_equal_to_an_input_and_keeps_it(files, capsys):
    from verifier.cli import main

    before = files["data"].read_bytes()
    for opt in ("--out", "--history"):
        argv = ["train", "--net", str(files["net"]), "--data", str(files["data"]), "--steps", "2",
                "--out", str(files["net"].parent / "p.npz")]
        if opt == "--out":
            argv[-1] = str(files["data"])
        else:
            argv += ["--history", str(files["net"])]
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"{opt} " in err and "is also an input" in err
    assert files["data"].read_bytes() == before and not (files["net"].parent / "p.npz").exists()


def test_train_out_x_bin_writes_exactly_x_bin(files, capsys):
    from verifier.cli import main

    out = files["net"].parent / "x.bin"
    assert main(["train", "--net", str(files["net"]), "--data", str(files["data"]), "--steps", "3",
                 "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    assert out.exists() and not Path(str(out) + ".npz").exists()
    assert zipfile.is_zipfile(out) and set(np.load(out).files) == {"W1", "W2"}


def test_embed_and_import_refuse_bad_outputs_before_reading(files, tmp_path, capsys):
    from verifier.cli import main

    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["embed", "--net", str(files["net"]), "--params", str(files["params"]),
                 "--split", "layer=1,neuron=0,ratios=3/5,4/5", "--out", str(afile)]) == 2
    assert "exists and is not a folder" in capsys.readouterr().err
    # the input file does not even need to exist: the output is checked first
    assert main(["import", str(tmp_path / "model.onnx"), "--out", str(tmp_path / "nope" / "n.json"),
                 "--params", str(tmp_path / "p.npz")]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["import", str(tmp_path / "model.onnx"), "--out", str(tmp_path / "n.json"),
                 "--params", str(tmp_path / "n.json")]) == 2
    assert "--params" in capsys.readouterr().err


# -- Ctrl-C in a subprocess, at points fixed by the test hooks ---------------------------------------------

def _interrupt_at(marker_env: str, argv: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    marker = tmp_path / "paused"
    proc = subprocess.Popen(cli_command(argv), env=cli_env(**{marker_env: str(marker)}), cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(marker, proc), f"the hook was not reached: {proc.communicate()}"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


def test_ctrl_c_during_a_write_keeps_the_previous_output(files, tmp_path):
    out = tmp_path / "p.npz"
    hist = tmp_path / "h.json"
    out.write_bytes(b"previous parameters")
    hist.write_text("previous history\n")
    res = _interrupt_at("VERIFIER_TEST_PAUSE_BEFORE_RENAME",
                        ["train", "--net", files["net"], "--data", files["data"], "--steps", "2", "--out", out,
                         "--history", hist], tmp_path)
    assert res.returncode == 130, res
    assert res.stderr == "verifier train: interrupted\n"
    assert out.read_bytes() == b"previous parameters" and hist.read_text() == "previous history\n"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_ctrl_c_during_startup_is_one_line_and_130(tmp_path, files):
    res = _interrupt_at("VERIFIER_TEST_PAUSE_AT_STARTUP", ["describe", files["net"]], tmp_path)
    assert res.returncode == 130 and res.stderr == "verifier: interrupted\n" and res.stdout == ""


def test_a_closed_stdout_ends_quietly(files):
    """`verifier degree net.json --json | head -0`: the reader is gone before the first write."""
    r, w = os.pipe()
    os.close(r)
    try:
        proc = subprocess.run(cli_command(["degree", files["net"], "--json"]), env=cli_env(), stdout=w,
                              stderr=subprocess.PIPE, text=True)
    finally:
        os.close(w)
    assert proc.returncode == 141 and proc.stderr == ""
