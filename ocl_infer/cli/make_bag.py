"""`ocl-infer make-bag`: a rosbag2 of camera frames from real footage (a video or still images)."""

import argparse
import sys


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "make-bag",
        help="write a rosbag2 of camera frames from a video or images",
        description="Write a rosbag2 (sqlite3 or mcap) of sensor_msgs/Image (bgr8) or CompressedImage (jpeg) "
        "frames from real footage, stamped at a fixed rate. Replaces an existing bag only with --force (and nothing "
        "but a bag); a failure leaves the disk as it was.",
    )
    p.add_argument("footage", nargs="+", metavar="VIDEO|IMAGE", help="one video file, or one or more images")
    p.add_argument("-o", "--output", required=True, metavar="BAG", help="bag folder to create")
    p.add_argument("--force", action="store_true", help="replace an existing output, if it is a rosbag2 folder")
    p.add_argument(
        "--topic",
        default=None,
        help="camera topic (default: /camera/image_raw, or /camera/image_raw/compressed with --compressed)",
    )
    p.add_argument("--rate", type=float, default=30.0, help="frame rate of the stamps in Hz (default: %(default)s)")
    p.add_argument("--compressed", action="store_true", help="write sensor_msgs/CompressedImage (jpeg)")
    p.add_argument("--format", choices=("sqlite3", "mcap"), default="sqlite3", help="storage (default: %(default)s)")
    p.add_argument("--frame-id", default="camera", help="header.frame_id (default: %(default)s)")
    p.add_argument("--max-frames", type=int, default=None, metavar="N", help="stop after N frames")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ocl_infer.bag.writer import ImageBagOptions, write_image_bag

    options = ImageBagOptions(
        topic=args.topic or ("/camera/image_raw/compressed" if args.compressed else "/camera/image_raw"),
        rate_hz=args.rate,
        compressed=args.compressed,
        storage=args.format,
        frame_id=args.frame_id,
        max_frames=args.max_frames,
    )
    tty = sys.stderr.isatty()

    def progress(n: int) -> None:
        if tty and n % 10 == 0:
            print(f"\r  {n} frames", end="", file=sys.stderr, flush=True)

    bag = write_image_bag(args.footage, args.output, options, progress, force=args.force)
    if tty:
        print("\r", end="", file=sys.stderr)
    kind = "CompressedImage jpeg" if args.compressed else "Image bgr8"
    span = (bag.last_stamp_ns - bag.first_stamp_ns) / 1e9
    print(
        f"wrote {bag.path} ({bag.storage}): {bag.frames} frames {bag.width}x{bag.height} {kind} on {bag.topic}, "
        f"{args.rate:g} Hz, {span:.2f} s, frame_id {args.frame_id!r}"
    )
    return 0
