"""`ocl-infer import-darknet`: any Darknet cfg + weights → a model folder (model.onnx, model.nnef/, model.json)."""

import argparse
from pathlib import Path


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("import-darknet", help="import a Darknet YOLO (cfg + weights) into a model folder")
    p.add_argument("cfg", type=Path, help="Darknet .cfg file")
    p.add_argument("weights", type=Path, help="Darknet .weights file")
    p.add_argument("-o", "--output", type=Path, required=True, help="model folder to create")
    p.add_argument("--force", action="store_true",
                   help="replace an existing output, if it is a prepared model folder (holds model.json)")
    p.add_argument("--names", type=Path, default=None, help="class names, one per line (e.g. coco.names)")
    p.add_argument("--size", type=int, default=None, help="input size (default: width/height from the cfg)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ocl_infer.detection.prepare import build_model_folder, read_names
    from ocl_infer.errors import ModelError

    for label, path in (("cfg", args.cfg), ("weights", args.weights)):
        if not path.is_file():
            raise ModelError(f"{label} file {path} does not exist")
    if args.size is not None and (args.size <= 0 or args.size % 32):
        raise ModelError(f"--size {args.size} must be a positive multiple of 32")
    names = read_names(args.names) if args.names is not None else None
    out = build_model_folder(args.cfg, args.weights, names, args.output, size=args.size, name=args.cfg.stem,
                             force=args.force)
    print(f"imported {args.cfg.name} into {out}")
    return 0
