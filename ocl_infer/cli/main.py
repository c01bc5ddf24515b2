"""`ocl-infer`: entry point. Subcommands live one per module and are imported lazily by name."""

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from ocl_infer import __version__
from ocl_infer.errors import OclInferError

# Module names under ocl_infer.cli, in the order `--help` lists them. Each module defines
# `register(subparsers) -> None`, which adds its parser and sets `func=run(args) -> int`.
COMMANDS = (
    "devices",
    "convert",
    "import_darknet",
    "prepare_model",
    "run_model",
    "detect",
    "bench",
    "tune",
    "make_bag",
    "replay",
    "launch",
    "demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ocl-infer",
        description="Vehicle detection on a multi-device OpenCL NNEF engine, with deadline monitoring.",
    )
    parser.add_argument("--version", action="version", version=f"ocl-infer {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        importlib.import_module(f"ocl_infer.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except OclInferError as err:
        print(f"ocl-infer {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
