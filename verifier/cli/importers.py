"""Model exchange commands: ``import`` (ONNX -> network JSON + params) and ``export --torch``.

``verifier import model.onnx --out net.json --params params.npz`` reads an ONNX
file.  PyTorch files are not accepted on the command line: a pickled
``torch.save(model)`` needs the model's class (user code) to be loaded, and a
state dict carries no architecture; in Python use
``verifier.from_torch(model, example_input)``, or export the model with
``torch.onnx.export`` first.

``verifier export --torch --net net.json --params params.npz --out state.pt``
writes the parameters as a torch state dict (``torch.save``) keyed by the
network's tensor names (the model's own names for a network imported from it).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..analysis.homogeneity import degree
from ..errors import FormatError, NotHomogeneousError
from ..io import atomic_write, atomic_write_text, check_output_path, load_network, load_params, save_params

_TORCH_SUFFIXES = (".pt", ".pth", ".pt2", ".pkl", ".bin", ".ckpt")


def _import(args: argparse.Namespace) -> int:
    from ..importers import from_onnx

    src = Path(args.model)
    if src.suffix.lower() in _TORCH_SUFFIXES:
        raise FormatError(
            f"{str(src)!r} looks like a PyTorch file; the command line imports ONNX only (a pickled torch model needs "
            "its Python class, a state dict has no architecture): in Python call verifier.from_torch(model, "
            "example_input), or write an ONNX file with torch.onnx.export(model, (x,), 'model.onnx', dynamo=False)"
        )
    out = check_output_path(args.out, option="--out", inputs=[src])
    params_out = check_output_path(args.params, option="--params", inputs=[src, out])
    shape = None
    if args.input_shape:
        try:
            shape = [int(s) for s in args.input_shape.split(",")]
        except ValueError:
            raise FormatError(f"--input-shape {args.input_shape!r} must be comma-separated integers, e.g. 1,28,28") from None
    net, params = from_onnx(src, input_shape=shape, check=not args.no_check)
    atomic_write_text(out, net.to_json() + "\n")
    save_params(params_out, params)
    print(f"imported {src}: {len(net.nodes)} nodes, {net.num_params} parameters "
          f"({', '.join(f'{p}{list(net.param_shapes[p])}' for p in net.param_names)})")
    try:
        print(f"positively homogeneous of degree {degree(net)}")
    except NotHomogeneousError as e:
        print(f"not homogeneous: {e}")
    print(f"wrote {args.out} and {args.params}")
    return 0


def _export(args: argparse.Namespace) -> int:
    if not args.torch:
        raise FormatError("choose an export format: --torch (a torch state dict written with torch.save)")
    from ..importers import to_torch_state_dict
    from ..importers._common import require

    out = check_output_path(args.out, option="--out", inputs=[args.net, args.params])
    torch = require("torch", "torch")
    net = load_network(args.net)
    params = load_params(args.params, net)
    sd = to_torch_state_dict(net, params, dtype=torch.float64 if args.dtype == "float64" else torch.float32)
    atomic_write(out, lambda f: torch.save(sd, f))
    print(f"wrote {len(sd)} tensors ({args.dtype}) to {args.out}: {', '.join(sd)}")
    print("load with: model.load_state_dict(torch.load(path), strict=False)")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("import", help="import an ONNX model as network JSON + parameter npz",
                       description="Import an ONNX model (Gemm/MatMul, Conv, Relu, LeakyRelu, MaxPool, AveragePool, "
                                   "Flatten/Reshape, Add). PyTorch files are not accepted here: use "
                                   "verifier.from_torch in Python or export to ONNX.")
    p.add_argument("model", help="an .onnx file")
    p.add_argument("--out", required=True, help="network JSON to write")
    p.add_argument("--params", required=True, help="parameter .npz to write (keyed by initializer name)")
    p.add_argument("--input-shape", default=None, help="per-sample input shape, e.g. 1,28,28 (only for symbolic dims)")
    p.add_argument("--no-check", action="store_true", help="skip the comparison with onnx.reference")
    p.set_defaults(handler=_import)
    p = sub.add_parser("export", help="export parameters for another framework (--torch: a torch state dict)")
    p.add_argument("--torch", action="store_true", help="write a torch state dict (torch.save)")
    p.add_argument("--net", required=True, help="network JSON")
    p.add_argument("--params", required=True, help="parameter .npz")
    p.add_argument("--out", required=True, help="output file, e.g. state.pt")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64", help="tensor dtype (default float64)")
    p.set_defaults(handler=_export)
