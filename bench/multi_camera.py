"""Several cameras through one vehicle_detector: per-camera frames answered within the budget, and frames/s.

    .venv/bin/python bench/multi_camera.py fairness [--before DIR] [--rate 20] [--seconds 20]
    .venv/bin/python bench/multi_camera.py throughput [--cameras 1 2 4] [--seconds 15]

Each camera is a process of its own (test/ros/camera_process.py: 768x576 bgr8 vtest.avi frames, sensor-data
QoS, the shared-memory DDS profile), the node is the console script with a params file, and this script counts
the node's FrameTiming per camera. `fairness`: 2 cameras at --rate, budget --deadline-ms: answered within budget
(published, latency <= budget) / sent, per camera, for the code in this checkout and, with --before DIR, for an
older tree (e.g. `git archive 93ece93 | tar -x -C /tmp/before`, run with PYTHONPATH=DIR). `throughput`: every
camera at --rate (overload), budget 10 s, batching off / auto / always: processed frames/s and batch sizes.
DDS stays on loopback with a random domain id. Prints a Markdown table; check /proc/loadavg first.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def environment(before: Path | None) -> dict[str, str]:
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST", PYTHONUNBUFFERED="1",
               FASTDDS_DEFAULT_PROFILES_FILE=str(ROOT / "config" / "fastdds_shm.xml"))
    env.setdefault("ROS_DOMAIN_ID", str(random.randint(120, 200)))
    env.pop("PYTHONPATH", None)  # the code under test: this checkout's, unless --before names another tree
    if before is not None:
        env["PYTHONPATH"] = str(before)
    return env


def run(cameras: int, rate: float, seconds: float, deadline_ms: float, params: dict, before: Path | None,
        log_dir: Path, keep_log: Path | None = None) -> dict[str, dict]:
    """One node, `cameras` camera processes at `rate` for `seconds`: per camera the counts of its FrameTiming."""
    os.environ.update({k: v for k, v in environment(None).items() if k.startswith(("ROS_", "FASTDDS_"))})
    import rclpy
    from ocl_infer_msgs.msg import FrameTiming
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    topics = [f"/cam{i}/image" for i in range(cameras)]
    pfile = log_dir / "params.yaml"
    from ocl_infer.paths import default_model_dir

    pfile.write_text(yaml.safe_dump({"/**": {"ros__parameters": {  # the model of this checkout, for --before too
        "model": str(default_model_dir()), "image_topics": topics, "deadline_ms": deadline_ms,
        "expected_rate_hz": rate, **params}}}))
    env = environment(before)
    log = (log_dir / "node.log").open("wb")
    node = subprocess.Popen([str(BIN / "vehicle_detector"), "--ros-args", "--params-file", str(pfile)], env=env,
                            stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    context = rclpy.Context()
    rclpy.init(context=context)
    harness = rclpy.create_node("bench_multi_camera", context=context)
    records: dict[str, list] = {t: [] for t in topics}
    lock = threading.Lock()
    subs = [harness.create_subscription(FrameTiming, f"{t.rsplit('/', 1)[0]}/timing",
                                        lambda m, t=t: (lock.acquire(), records[t].append(m), lock.release()),
                                        QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE))
            for t in topics]
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=context)
    executor.add_node(harness)
    spinning = threading.Thread(target=lambda: executor.spin(), daemon=True)
    spinning.start()
    # The cameras start once the node's timing publishers have matched ours: a camera waits only for the node's
    # image subscription, and timings published before this harness is discovered would be lost (they showed as
    # frames neither answered nor dropped).
    end = time.monotonic() + 180
    while node.poll() is None and time.monotonic() < end and any(s.get_publisher_count() == 0 for s in subs):
        time.sleep(0.1)
    frames = int(seconds * rate)
    cams = [subprocess.Popen([sys.executable, str(ROOT / "test" / "ros" / "camera_process.py"), t,
                              "--frames", str(frames), "--rate", str(rate), "--wait-match", "180"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, cwd=ROOT) for t in topics]
    while node.poll() is None and any(c.poll() is None for c in cams):
        time.sleep(0.5)
    if node.poll() is not None:  # the node ended early: say why rather than wait for the cameras
        for c in cams:
            c.kill()
        raise SystemExit(f"vehicle_detector ended: {(log_dir / 'node.log').read_text()[-2000:]}")
    sent = {t: json.loads(c.communicate(timeout=seconds + 300)[0].decode().strip().splitlines()[-1])["sent"]
            for t, c in zip(topics, cams, strict=True)}
    end = time.monotonic() + 10
    while time.monotonic() < end and any(len(records[t]) < sent[t] for t in topics):
        time.sleep(0.2)
    node.send_signal(2)
    node.wait(timeout=30)
    log.close()
    if keep_log is not None:
        keep_log.write_text((log_dir / "node.log").read_text(errors="replace"))
    executor.shutdown()
    rclpy.try_shutdown(context=context)
    out = {}
    for t in topics:
        recs = records[t]
        ok = [r for r in recs if r.outcome == FrameTiming.OUTCOME_PUBLISHED]
        lat = [r.latency_ms for r in recs if r.latency_ms > 0]
        processed = [r for r in recs if r.published.sec or r.published.nanosec]
        span = ((max(r.published.sec * 1e9 + r.published.nanosec for r in processed)
                 - min(r.published.sec * 1e9 + r.published.nanosec for r in processed)) / 1e9) if processed else 0
        batches = [int(r.detail.rsplit("batch of ", 1)[1].split(";")[0]) if "batch of" in r.detail else 1
                   for r in processed]
        out[t] = {"sent": sent[t], "timings": len(recs), "within_budget": len(ok), "processed": len(processed),
                  "overload_drop": sum(r.outcome == FrameTiming.OUTCOME_OVERLOAD_DROP for r in recs),
                  "stale_drop": sum(r.outcome == FrameTiming.OUTCOME_STALE_DROP for r in recs),
                  "miss": sum(r.outcome == FrameTiming.OUTCOME_MISS for r in recs),
                  "p50_ms": float(np.percentile(lat, 50)) if lat else float("nan"),
                  "p95_ms": float(np.percentile(lat, 95)) if lat else float("nan"),
                  "span_s": span, "mean_batch": float(np.mean(batches)) if batches else 0.0}
    return out


def fairness(args: argparse.Namespace) -> None:
    print(f"load {Path('/proc/loadavg').read_text().split()[:3]}; {args.rate:g} Hz x 2 cameras, 768x576, "
          f"budget {args.deadline_ms:g} ms, {args.seconds:g} s")
    print("| code | camera | sent | within budget | % | overload | stale | miss | no timing | p50 ms | p95 ms "
          "| mean batch |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    variants = ([("before", args.before, {})] if args.before else []) + [
        (f"after, batching {mode}", None, {"batching": mode}) for mode in args.batching]
    for name, before, params in variants:
        with tempfile.TemporaryDirectory() as tmp:
            res = run(2, args.rate, args.seconds, args.deadline_ms, params, before, Path(tmp),
                      Path(f"/tmp/multi_camera_{name.replace(' ', '_').replace(',', '')}.log"))
        for t, r in res.items():
            print(f"| {name} | {t} | {r['sent']} | {r['within_budget']} | {100 * r['within_budget'] / r['sent']:.0f} "
                  f"| {r['overload_drop']} | {r['stale_drop']} | {r['miss']} | {r['sent'] - r['timings']} "
                  f"| {r['p50_ms']:.0f} | {r['p95_ms']:.0f} "
                  f"| {r['mean_batch']:.2f} |",
                  flush=True)


def throughput(args: argparse.Namespace) -> None:
    print(f"load {Path('/proc/loadavg').read_text().split()[:3]}; cameras at {args.rate:g} Hz each (overload), "
          f"768x576, budget 10 s, {args.seconds:g} s")
    print("| cameras | batching | processed frames/s | mean batch | p50 latency ms |")
    print("|---|---|---|---|---|")
    for n in args.cameras:
        for mode in (("off",) if n == 1 else args.modes):
            with tempfile.TemporaryDirectory() as tmp:
                res = run(n, args.rate, args.seconds, 10000.0, {"batching": mode}, None, Path(tmp))
            processed = sum(r["processed"] for r in res.values())
            span = max(r["span_s"] for r in res.values()) or 1.0
            batch = np.mean([r["mean_batch"] for r in res.values()])
            p50 = np.mean([r["p50_ms"] for r in res.values()])
            print(f"| {n} | {mode} | {processed / span:.1f} | {batch:.2f} | {p50:.0f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    f = sub.add_parser("fairness")
    f.add_argument("--before", type=Path, default=None, help="an older source tree to compare (PYTHONPATH)")
    f.add_argument("--rate", type=float, default=20.0)
    f.add_argument("--seconds", type=float, default=20.0)
    f.add_argument("--deadline-ms", type=float, default=100.0)
    f.add_argument("--batching", nargs="+", default=["off"], help="batching modes to run (after)")
    t = sub.add_parser("throughput")
    t.add_argument("--cameras", type=int, nargs="+", default=[1, 2, 4])
    t.add_argument("--modes", nargs="+", default=["off", "always"])
    t.add_argument("--rate", type=float, default=30.0)
    t.add_argument("--seconds", type=float, default=15.0)
    args = parser.parse_args()
    (fairness if args.what == "fairness" else throughput)(args)


if __name__ == "__main__":
    main()
