"""`ocl-infer convert`: ONNX or TFLite -> NNEF (constants folded, input/output names kept) with nnef-tools.

Never deletes or overwrites what it did not write: the output appears only when the conversion (and `--check`)
succeeded, and an existing output is replaced only with `--force`, and only if it is an NNEF model."""

import argparse
from pathlib import Path


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("convert", help="convert an ONNX or TFLite model to NNEF")
    p.add_argument("model", type=Path, metavar="MODEL", help="MODEL.onnx or MODEL.tflite")
    p.add_argument("-o", "--output", type=Path, required=True, metavar="OUT.nnef",
                   help="output folder (or archive with --compress)")
    p.add_argument("--input-shape", action="append", default=[], metavar="NAME=1,3,416,416",
                   help="fix an input's shape (repeatable); needed when the model has dynamic dims")
    p.add_argument("--compress", action="store_true", help="write a .tgz archive instead of a folder")
    p.add_argument("--no-fold-constants", action="store_true", help="keep constant subgraphs as they are")
    p.add_argument("--check", action="store_true",
                   help="load the result with the engine's loader before writing it; nothing is written if it fails")
    p.add_argument("--force", action="store_true",
                   help="replace an existing output, if it is an NNEF model (never any other file or folder)")
    p.set_defaults(func=run)


def parse_shapes(items: list[str]) -> dict[str, tuple[int, ...]]:
    from ocl_infer.errors import ConfigError

    shapes: dict[str, tuple[int, ...]] = {}
    for item in items:
        name, sep, dims = item.partition("=")
        try:
            shape = tuple(int(d) for d in dims.split(","))
        except ValueError:
            shape = ()
        if not sep or not name or not shape or any(d <= 0 for d in shape):
            raise ConfigError(f"--input-shape {item!r}: expected NAME=D1,D2,... with positive integers")
        shapes[name] = shape
    return shapes


def run(args: argparse.Namespace) -> int:
    from ocl_infer.engine.graph import Graph, load_graph
    from ocl_infer.engine.graph.convert import convert_model

    checked: list[Graph] = []
    written = convert_model(args.model, args.output, input_shapes=parse_shapes(args.input_shape) or None,
                            compress=args.compress, fold_constants=not args.no_fold_constants, force=args.force,
                            check=(lambda path: checked.append(load_graph(path))) if args.check else None)
    print(f"wrote {written}")
    for g in checked:
        ins = ", ".join(f"{n}{list(g.tensors[n].shape)}" for n in g.inputs)
        outs = ", ".join(f"{n}{list(g.tensors[n].shape)}" for n in g.outputs)
        print(f"{len(g.ops)} ops; inputs {ins}; outputs {outs}")
    return 0
