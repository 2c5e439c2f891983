"""Reading and writing the files the CLI takes: network JSON, parameter ``.npz``, data ``.npz``.

* network: the JSON format of :meth:`verifier.Network.to_json`;
* parameters: an ``.npz`` keyed by parameter name (``W1``, ``W2``, ...);
* data: an ``.npz`` with arrays ``X`` (``(n, d)`` or ``(n, C, H, W)``) and ``y``
  (``+-1`` for one output unit, class indices ``0..C-1`` otherwise).

Every file the CLI writes goes through two helpers:

* :func:`check_output_path` before any work starts: the folder exists and is writable, the path is
  not a folder, not an input of the same command, and has the suffix the format needs;
* :func:`atomic_write`: the bytes go to a temporary file in the same folder, which is renamed over the
  target only when complete, so an interrupted or failed write leaves the previous file intact.

>>> import tempfile, os
>>> d = tempfile.mkdtemp()
>>> p = check_output_path(os.path.join(d, "out.json"), option="--out", suffix=".json")
>>> _ = atomic_write_text(p, "{}")
>>> open(p).read(), sorted(os.listdir(d))
('{}', ['out.json'])
>>> check_output_path(d, option="--out")
Traceback (most recent call last):
...
verifier.errors.OutputPathError: --out ...: is a folder; give a file name inside it
"""

from __future__ import annotations

import os
import signal
import stat
import tempfile
import zipfile
from pathlib import Path
from typing import IO, Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from .errors import FormatError, OutputPathError
from .graph import Network


#: size limits of a network read from a file (checked before anything is allocated); pass larger
#: values to :func:`load_network` to raise them
MAX_NODES = 10_000
MAX_DIM = 2**31 - 1
MAX_PARAMS = 50_000_000
#: entries of one sample's activation at one node
MAX_ACTIVATION = 50_000_000


def _walk_ints(x: Any, path: str) -> Iterable[tuple[str, int]]:
    if isinstance(x, bool):
        return
    if isinstance(x, int):
        yield path, x
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _walk_ints(v, f"{path}[{i}]")
    elif isinstance(x, dict):
        for k, v in x.items():
            yield from _walk_ints(v, f"{path}.{k}")


def _check_sizes(doc: Any, where: str, *, max_nodes: int, max_params: int) -> None:
    """Bound what a network file asks for, from the JSON alone (no array is allocated)."""
    if not isinstance(doc, dict):
        return  # Network.from_dict names the problem
    nodes = doc.get("nodes")
    if isinstance(nodes, list):
        if len(nodes) > max_nodes:
            raise FormatError(f"{where}: field 'nodes' has {len(nodes)} entries, more than the limit of {max_nodes}")
        for i, nd in enumerate(nodes):
            if isinstance(nd, dict):
                for field, v in _walk_ints(nd.get("attrs"), f"nodes[{i}].attrs"):
                    if abs(v) > MAX_DIM:
                        raise FormatError(f"{where}: {field} = {v} is beyond the limit of {MAX_DIM} for a size")
    total = 0
    params = doc.get("parameters")
    for i, pd in enumerate(params if isinstance(params, list) else []):
        shape = pd.get("shape") if isinstance(pd, dict) else None
        if not isinstance(shape, list) or not all(isinstance(n, int) and not isinstance(n, bool) for n in shape):
            continue
        size = 1
        for n in shape:
            if n < 0 or n > MAX_DIM:
                raise FormatError(f"{where}: parameters[{i}].shape {shape} has a dimension outside [0, {MAX_DIM}]")
            size *= n
        total += size
        if total > max_params:
            raise FormatError(f"{where}: the parameters hold more than {max_params} entries (parameters[{i}] "
                              f"{pd.get('name')!r} has shape {shape}); the limit is {max_params}")


def load_network(path: str | Path, *, max_nodes: int = MAX_NODES, max_params: int = MAX_PARAMS) -> Network:
    """A network from its JSON file, with sizes bounded before anything is allocated.

    Limits (documented in ``docs/robustness.md``): at most ``max_nodes`` nodes, ``max_params`` parameter
    entries in total, :data:`MAX_DIM` per dimension and :data:`MAX_ACTIVATION` entries per node and sample.
    Every failure is one :class:`~verifier.errors.FormatError` line naming the file and the field.
    """
    from ._json import read_json

    p = Path(path)
    doc = read_json(p, "network")
    where = str(p)
    _check_sizes(doc, where, max_nodes=max_nodes, max_params=max_params)
    net = Network.from_dict(doc, source=where)
    if net.num_params > max_params:
        raise FormatError(f"{where}: the network has {net.num_params} parameters, more than the limit of {max_params}")
    for n in net.order:
        size = 1
        for d in net.shapes[n]:
            size *= int(d)
        if size > MAX_ACTIVATION:
            raise FormatError(f"{where}: node {n!r} has activations of shape {list(net.shapes[n])} per sample, "
                              f"more than the limit of {MAX_ACTIVATION} entries")
    return net


def _load_npz(path: str | Path, what: str) -> dict[str, np.ndarray]:
    p = Path(path)
    if not p.exists():
        raise FormatError(f"{what} file {str(p)!r} does not exist")
    if p.is_dir():
        raise FormatError(f"{what} file {str(p)!r} is a folder; give an .npz file")
    _refuse_torch_file(p, what)
    try:
        with np.load(p, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
        raise FormatError(f"{what} file {str(p)!r} is not a readable .npz archive ({type(e).__name__}: {e})") from None


_TORCH_HINT = ("import the model instead: `verifier kkt --torch model.py:Net --checkpoint FILE ...`, or in Python "
               "`net, params = verifier.from_torch(model, example_input)`")


def _refuse_torch_file(p: Path, what: str) -> None:
    """A torch checkpoint (a zip with ``data.pkl``) or any pickle is not an ``.npz``: say so, and how to import it."""
    try:
        with open(p, "rb") as f:
            head = f.read(4)
        if head[:1] == b"\x80":
            raise FormatError(f"{what} file {str(p)!r} is a Python pickle (a legacy torch.save file?), not an .npz "
                              f"archive; {_TORCH_HINT}")
        if head[:2] != b"PK":
            return
        with zipfile.ZipFile(p) as z:
            names = z.namelist()
    except (OSError, zipfile.BadZipFile):
        return  # np.load names the problem
    if any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
        raise FormatError(f"{what} file {str(p)!r} is a PyTorch checkpoint (torch.save), not an .npz archive keyed "
                          f"by tensor name; {_TORCH_HINT}")


def load_params(path: str | Path, net: Network) -> dict[str, np.ndarray]:
    """Parameters from an ``.npz`` keyed by tensor name, validated against ``net``."""
    return net.check_params(_load_npz(path, "parameter"), where=str(path))


def save_params(path: str | Path, params: dict[str, Any]) -> Path:
    """Write parameters as an ``.npz`` keyed by tensor name, atomically, to exactly ``path``."""
    arrays = {k: np.asarray(v, dtype=np.float64) for k, v in params.items()}
    return atomic_write(path, lambda f: write_npz(f, arrays))


def load_data(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` from an ``.npz`` with arrays ``X`` and ``y`` (validated later against a network)."""
    d = _load_npz(path, "data")
    missing = [k for k in ("X", "y") if k not in d]
    if missing:
        raise FormatError(f"data file {str(path)!r} lacks array(s) {missing}; it must hold arrays 'X' and 'y' (has {sorted(d)})")
    return d["X"], d["y"]


def save_data(path: str | Path, X: np.ndarray, y: np.ndarray) -> Path:
    """Write ``X`` and ``y`` as an ``.npz``, atomically, to exactly ``path``."""
    Xa, ya = np.asarray(X, dtype=np.float64), np.asarray(y)
    return atomic_write(path, lambda f: write_npz(f, {"X": Xa, "y": ya}))


def write_npz(file: str | Path | IO[bytes], arrays: Mapping[str, Any]) -> None:
    """Write ``arrays`` as the ``.npz`` that ``np.savez(file, **arrays)`` writes (one ``NAME.npy`` per array).

    Any name works: ``np.savez`` takes ``file`` and ``allow_pickle`` as its own keywords, so a tensor called
    ``file`` made it raise and one called ``allow_pickle`` was silently left out.  Object arrays are refused
    (``np.load(..., allow_pickle=False)`` could not read them back).
    """
    with zipfile.ZipFile(file, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, value in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)


# -- writing: checked first, then atomic --------------------------------------------------------------------

def _same_file(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return Path(os.path.realpath(a)) == Path(os.path.realpath(b))


def check_output_path(path: str | Path, *, option: str = "--out", inputs: Iterable[str | Path | None] = (),
                      suffix: str | Sequence[str] | None = None, folder: bool = False) -> Path:
    """Refuse an output path before any work is done; return it as a :class:`~pathlib.Path`.

    ``option`` names the command-line option in the message.  ``inputs``: files the same command reads
    (``None`` entries are skipped); the output may not be one of them.  ``suffix``: the required suffix
    (or one of several), compared case-insensitively.  ``folder=True``: the output is a folder that is
    created if missing (its parent must then exist and be writable).

    Raises :class:`~verifier.errors.OutputPathError` (one line: the option, the path, what is wrong and what
    would be valid).
    """
    if path is None or str(path) == "":
        raise OutputPathError(f"{option} is empty; give a file path")
    p = Path(path)
    where = f"{option} {str(p)!r}"
    if folder:
        if p.exists() and not p.is_dir():
            raise OutputPathError(f"{where}: exists and is not a folder; give a folder path")
        target_dir = p if p.exists() else p.parent
    else:
        if p.is_dir():
            raise OutputPathError(f"{where}: is a folder; give a file name inside it")
        if p.exists() and not stat.S_ISREG(p.stat().st_mode):
            raise OutputPathError(f"{where}: exists and is not a regular file; give a file path")
        if suffix is not None:
            allowed = (suffix,) if isinstance(suffix, str) else tuple(suffix)
            if p.suffix.lower() not in {a.lower() for a in allowed}:
                raise OutputPathError(f"{where}: must end in {' or '.join(allowed)} (the file is written to "
                                      "exactly this path)")
        target_dir = p.parent
    target_dir = target_dir if str(target_dir) else Path(".")
    if not target_dir.exists():
        raise OutputPathError(f"{where}: folder {str(target_dir)!r} does not exist; create it first")
    if not target_dir.is_dir():
        raise OutputPathError(f"{where}: {str(target_dir)!r} is not a folder")
    if not os.access(target_dir, os.W_OK | os.X_OK):
        raise OutputPathError(f"{where}: folder {str(target_dir)!r} is not writable")
    if p.exists() and not folder and not os.access(p, os.W_OK):
        raise OutputPathError(f"{where}: the file exists and is read-only")
    for inp in inputs:
        if inp is None:
            continue
        if _same_file(p, Path(inp)):
            raise OutputPathError(f"{where}: is also an input of this command ({str(inp)!r}); writing it would "
                                  "destroy the input, choose another path")
    return p


#: test hook: when set to a path, :func:`atomic_write` creates that file once the temporary file is complete
#: and then waits for a signal before renaming (lets tests interrupt a write at a known point, no clock)
_PAUSE_ENV = "VERIFIER_TEST_PAUSE_BEFORE_RENAME"


def _default_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | Path, writer: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``writer(f)`` on a temporary binary file next to ``path``, then rename it to exactly ``path``.

    The previous file at ``path`` stays intact until the new one is complete (also on Ctrl-C, a full disk or
    an exception in ``writer``, which is re-raised after the temporary file is removed).  A symbolic link at
    ``path`` is followed: its target is replaced.  Returns ``Path(path)``.
    """
    p = Path(path)
    target = Path(os.path.realpath(p))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    except OSError as e:
        raise OutputPathError(f"cannot write {str(p)!r}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            writer(f)
            f.flush()
            os.fsync(f.fileno())
        mode = stat.S_IMODE(target.stat().st_mode) if target.exists() else _default_mode()
        os.chmod(tmp, mode)
        marker = os.environ.get(_PAUSE_ENV)
        if marker:
            Path(marker).write_text(str(target) + "\n")
            signal.pause()
        os.replace(tmp, target)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError) and not isinstance(e, (BrokenPipeError,)):
            raise OutputPathError(f"cannot write {str(p)!r}: {e.strerror or e}") from None
        raise
    return p


def atomic_write_text(path: str | Path, text: str) -> Path:
    """:func:`atomic_write` of UTF-8 text."""
    data = text.encode("utf-8")
    return atomic_write(path, lambda f: f.write(data))
