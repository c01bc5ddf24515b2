"""`ocl-infer replay`: play a bag's camera topics into vehicle_detector node(s) over DDS and report."""

import argparse
import json
import os
import random
import signal
import sys
from pathlib import Path


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser(
        "replay",
        help="replay a bag through the vehicle detector and report latency, misses and drops",
        description="Play the bag's camera topics (every Image and CompressedImage topic unless --topics) with "
        "/clock into vehicle_detector node(s) started here (use_sim_time) or already running (--external); "
        "record detections, timing and /diagnostics; print a summary and write a JSON report.",
    )
    p.add_argument("bag", type=Path, help="rosbag2 folder, or a .db3 / .mcap file")
    p.add_argument("-o", "--output", type=Path, default=None, metavar="OUT_BAG",
                   help="bag to record outputs into; moved into place when the replay ends (finished or "
                        "Ctrl-C), nothing left behind by a failed run")
    p.add_argument("--force", action="store_true", help="replace an existing OUT_BAG, if it is a rosbag2 folder")
    speed = p.add_mutually_exclusive_group()
    speed.add_argument(
        "--rate", type=float, default=1.0,
        help="playback speed factor; sim time runs at it, so latency is in bag time (default: %(default)s)",
    )
    speed.add_argument("--max-speed", action="store_true", help="publish frames back to back")
    p.add_argument("--topics", nargs="+", default=None, metavar="TOPIC", help="camera topics to play")
    p.add_argument("--report", type=Path, default=None, metavar="JSON", help="write the report here")
    p.add_argument("--plot", type=Path, default=None, metavar="PNG", help="draw latency per frame vs the budget")
    p.add_argument("--loop", type=int, default=1, metavar="N", help="play the bag N times (default: 1)")
    p.add_argument("--params", type=Path, default=None, metavar="FILE", help="ROS params YAML for the node(s)")
    p.add_argument("--external", action="store_true", help="feed nodes already running; start none")
    p.add_argument("--ready-timeout", type=float, default=120.0, metavar="S", help="wait for the node (default: 120)")
    p.set_defaults(func=run)


def prepare_environment(external: bool) -> None:
    """The process environment of a replay, set here by the entry point (never by the library): loopback-only
    discovery always (Kilted ignores ROS_LOCALHOST_ONLY), a random domain id for our own nodes unless the user
    chose one, and the shared-memory profile for big images unless the user has a Fast DDS set-up."""
    from ocl_infer.ros.dds_profile import use_shm_profile

    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = os.environ.get("ROS_AUTOMATIC_DISCOVERY_RANGE") or "LOCALHOST"
    os.environ.pop("ROS_LOCALHOST_ONLY", None)
    if not external and not os.environ.get("ROS_DOMAIN_ID"):
        os.environ["ROS_DOMAIN_ID"] = str(random.randint(100, 199))
    use_shm_profile()  # before rclpy initialises Fast DDS; the nodes we start inherit it


def _sigterm_as_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    prepare_environment(args.external)
    from ocl_infer.bag.plot import write_latency_plot
    from ocl_infer.bag.report import format_summary
    from ocl_infer.ros.replay import ReplayOptions, run_replay

    opts = ReplayOptions(
        bag=args.bag,
        output_bag=args.output,
        rate=None if args.max_speed else args.rate,
        topics=tuple(args.topics or ()),
        loop=args.loop,
        params_file=args.params,
        external=args.external,
        ready_timeout_s=args.ready_timeout,
        force=args.force,
    )
    for path in (args.report, args.plot):
        if path is not None and not path.parent.is_dir():
            from ocl_infer.errors import ConfigError

            raise ConfigError(f"{path}: folder {path.parent} does not exist")
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)

    def log(line: str) -> None:
        print(line, file=sys.stderr)

    result = run_replay(opts, log=log, progress=sys.stderr.isatty() or bool(os.environ.get("OCL_INFER_PROGRESS")))
    report = result.report
    if result.interrupted:
        print(f"interrupted after {len(result.sent)} frames sent; the report covers those")
    if "frames" in report:
        print(format_summary(report))
    if args.report is not None:
        args.report.write_text(json.dumps(report, indent=2) + "\n")
        print(f"report   {args.report}")
    if args.plot is not None and "per_frame" in report:
        print(f"plot     {write_latency_plot(report, args.plot)}")
    if result.output_bag is not None:
        print(f"outputs  {result.output_bag}")
    return 130 if result.interrupted else 0
