"""Overload soak of the vehicle_detector node: frames at twice the rate it can sustain, for many frames.

    .venv/bin/python bench/soak.py                       # 10,000 frames, 640x480, YOLOv3-tiny 320
    .venv/bin/python bench/soak.py --frames 300 --width 320 --height 240 --json out.json

The node runs as a child process (real DDS on loopback, a random domain id). First the Detector is timed here
on the same frames (the sustainable rate), then frames go out at `--overload` times that rate. Every frame the
node receives gives one FrameTiming (frames DDS drops from the writer's depth-1 history never arrive). From
those records and the node's resident memory (sampled every 0.5 s) it reports:
- memory: RSS growth after warm-up (first 10% of frames) must stay under 5%;
- queues: age_at_start (stamp -> worker start) must not grow: its p95 over the last quarter may exceed the
  first quarter's by at most one frame time;
- latency: every processed frame within deadline_ms plus one frame time (deadline_ms defaults to 2.5x the
  measured processing time: one frame waiting for the worker plus its own processing).
Exit status 0 when all three hold, 1 otherwise; `--json` writes every number.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

# DDS stays on this machine, away from other runs; large frames go through shared memory.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.pop("ROS_LOCALHOST_ONLY", None)
os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(101, 200)))
ROOT = Path(__file__).resolve().parent.parent
if (ROOT / "config" / "fastdds_shm.xml").is_file():
    os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(ROOT / "config" / "fastdds_shm.xml"))

import numpy as np  # noqa: E402

from ocl_infer.child_process import ChildProcess  # noqa: E402

RSS_PERIOD_S = 0.5
WARMUP_FRACTION = 0.1


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def load_frames(width: int, height: int, count: int = 8) -> list[np.ndarray]:
    """Real street frames (vtest.avi) or, without it, the darknet sample photos, resized."""
    import cv2

    from ocl_infer.paths import data_dir

    frames: list[np.ndarray] = []
    video = data_dir() / "vtest.avi"
    if video.is_file():
        cap = cv2.VideoCapture(str(video))
        while len(frames) < count:
            ok, img = cap.read()
            if not ok:
                break
            frames.append(cv2.resize(img, (width, height)))
            for _ in range(20):
                cap.grab()
        cap.release()
    for jpg in sorted(data_dir().glob("*.jpg")):
        if len(frames) >= count:
            break
        frames.append(cv2.resize(cv2.imread(str(jpg)), (width, height)))
    if not frames:
        raise SystemExit(f"no sample frames in {data_dir()}: run `make setup`")
    return frames


def calibrate(model: str, backend: str, frames: list[np.ndarray], n: int = 12) -> float:
    """Median milliseconds per frame of the Detector alone on these frames (kernels built first)."""
    import itertools

    from ocl_infer.benchmark.measure import percentile_ms, time_frames
    from ocl_infer.detection import Detector

    with Detector(model=model, backend=backend) as det:
        det.detect(frames[0])
        frame = itertools.cycle(frames)
        return percentile_ms(time_frames(lambda: det.detect(next(frame)), n, 0), 50)


class Collector:
    """A test-side node in its own context: publishes images, records FrameTiming by frame_id."""

    def __init__(self, ns: str) -> None:
        import rclpy
        from ocl_infer_msgs.msg import FrameTiming
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("soak_driver", context=self.context)
        self.timings: dict[str, Any] = {}
        self.duplicates = 0
        self.lock = threading.Lock()
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        self.pub = self.node.create_publisher(Image, f"{ns}/image", qos)
        self.node.create_subscription(FrameTiming, f"{ns}/timing", self._on_timing, 1000)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:  # context shut down under us
                if self.context.ok():
                    raise
                return

    def _on_timing(self, msg: Any) -> None:
        with self.lock:
            if msg.header.frame_id in self.timings:
                self.duplicates += 1
            self.timings[msg.header.frame_id] = msg

    def wait(self, predicate: Any, timeout: float, what: str) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate():
                return
            time.sleep(0.02)
        raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")

    def close(self) -> None:
        import rclpy

        rclpy.try_shutdown(context=self.context)
        self.thread.join(timeout=5)
        self.node.destroy_node()


def run_soak(args: argparse.Namespace) -> dict[str, Any]:
    from ocl_infer.paths import models_dir
    from ocl_infer.ros.image_conversion import bgr_to_image

    model = args.model or str(models_dir() / "yolov3-tiny-320")
    frames = load_frames(args.width, args.height)
    calib_ms = calibrate(model, args.backend, frames)
    rate_hz = args.overload * 1000.0 / calib_ms
    period_s = 1.0 / rate_hz
    deadline_ms = args.deadline_ms or 2.5 * calib_ms
    ns = "/soak"
    node_cmd = [str(Path(sys.executable).parent / "vehicle_detector"), "--ros-args", "-r", "__node:=soak_vd",
                "-r", f"__ns:={ns}", "-p", f"model:={model}", "-p", f"backend:={args.backend}",
                "-p", "qos_reliability:=reliable", "-p", f"deadline_ms:={deadline_ms:.3f}",
                "-p", "expected_rate_hz:=0.0", "-p", "overlay:=false"]
    node = ChildProcess(node_cmd, args.log, cwd=ROOT, new_session=True)
    collector = Collector(ns)
    rss: list[tuple[int, int]] = []  # (frames sent so far, KiB)
    sent = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set() and node.alive():
            try:
                rss.append((sent[0], node.rss_kib()))
            except (OSError, RuntimeError):  # the node exited between the check and the read
                return
            stop.wait(RSS_PERIOD_S)

    try:
        collector.wait(lambda: collector.pub.get_subscription_count() > 0, 120, "the node to subscribe")
        msgs = [bgr_to_image(f) for f in frames]
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        t_start = time.monotonic()
        next_t = t_start
        for i in range(args.frames):
            msg = msgs[i % len(msgs)]
            msg.header.frame_id = str(i)
            msg.header.stamp = collector.node.get_clock().now().to_msg()
            collector.pub.publish(msg)
            sent[0] = i + 1
            next_t = max(next_t + period_s, time.monotonic() - period_s)  # no catch-up bursts
            time.sleep(max(0.0, next_t - time.monotonic()))
        send_s = time.monotonic() - t_start
        # Frames DDS never delivered (the writer keeps only the newest) get no FrameTiming: wait until the
        # last frame's record arrives or records stop coming.
        last, quiet_since = -1, time.monotonic()
        while node.alive() and str(args.frames - 1) not in collector.timings:
            if len(collector.timings) != last:
                last, quiet_since = len(collector.timings), time.monotonic()
            elif time.monotonic() - quiet_since > 5 + 5 * deadline_ms / 1e3:
                break
            time.sleep(0.05)
        time.sleep(0.5)  # a duplicate record would arrive by now
        stop.set()
        sampler.join(timeout=2)
        alive = node.alive()
    finally:
        stop.set()
        node.stop(grace_s=15)  # SIGINT: the node's clean shutdown; SIGKILL to its group after 15 s
        collector.close()
    return summarize(args, collector, rss, calib_ms, rate_hz, deadline_ms, send_s, alive, node.returncode)


def summarize(args: argparse.Namespace, collector: Collector, rss: list[tuple[int, int]], calib_ms: float,
              rate_hz: float, deadline_ms: float, send_s: float, alive: bool, returncode: int | None
              ) -> dict[str, Any]:
    from ocl_infer_msgs.msg import FrameTiming

    names = {FrameTiming.OUTCOME_PUBLISHED: "published", FrameTiming.OUTCOME_STALE_DROP: "stale_drop",
             FrameTiming.OUTCOME_OVERLOAD_DROP: "overload_drop", FrameTiming.OUTCOME_MISS: "miss",
             FrameTiming.OUTCOME_DECODE_ERROR: "decode_error", FrameTiming.OUTCOME_INFERENCE_ERROR: "inference_error"}
    records = [collector.timings[k] for k in sorted(collector.timings, key=int)]
    seqs = [int(r.sequence) for r in records]  # the node numbers every frame it received, from 1
    outcomes = {n: sum(1 for r in records if r.outcome == o) for o, n in names.items()}
    processed = [r for r in records if r.outcome in (FrameTiming.OUTCOME_PUBLISHED, FrameTiming.OUTCOME_MISS)]
    latency = [r.latency_ms for r in processed]
    processing = [r.processing_ms for r in processed]
    age = [r.age_at_start_ms for r in processed]
    quarter = max(1, len(age) // 4)
    frame_ms = 1000.0 / rate_hz
    warm = int(args.frames * WARMUP_FRACTION)
    after = [k for n, k in rss if n >= warm]
    rss_warm = after[0] if after else 0
    rss_growth = (max(after) - rss_warm) / rss_warm * 100 if rss_warm else float("nan")
    # (frame, latency, age_at_start, processing): a long wait before start would be queueing, a long
    # processing the machine (other work on its cores)
    over_budget = [(int(r.header.frame_id), round(r.latency_ms, 1), round(r.age_at_start_ms, 1),
                    round(r.processing_ms, 1)) for r in processed if r.latency_ms > deadline_ms + frame_ms]
    age_drift = pct(age[-quarter:], 95) - pct(age[:quarter], 95)
    checks = {
        "rss_growth_under_5pct": bool(rss_growth < 5.0),
        "age_at_start_does_not_grow": bool(age_drift <= frame_ms),
        "latency_within_budget_plus_one_frame": not over_budget,
        "every_received_frame_timed_once": collector.duplicates == 0 and sorted(seqs) == list(
            range(1, len(seqs) + 1)),
        "node_alive": alive,
    }
    return {
        "frames": args.frames, "width": args.width, "height": args.height, "backend": args.backend,
        "detector_ms_calibrated": round(calib_ms, 2), "send_rate_hz": round(rate_hz, 2),
        "achieved_send_rate_hz": round(args.frames / send_s, 2), "frame_ms": round(frame_ms, 2),
        "node_processing_ms_p50": round(pct(processing, 50), 2),
        "overload_factor_vs_node": round(pct(processing, 50) / frame_ms, 2) if processing else None,
        "deadline_ms": round(deadline_ms, 2), "timings": len(records), "duplicates": collector.duplicates,
        "not_delivered_by_dds": args.frames - len(records),
        "outcomes": outcomes,
        "latency_ms": {q: round(pct(latency, p), 2) for q, p in (("p50", 50), ("p95", 95), ("p99", 99),
                                                                 ("max", 100))},
        "over_budget_plus_frame": len(over_budget), "over_budget_frames": over_budget[:20],
        "over_budget_max_age_at_start_ms": max((o[2] for o in over_budget), default=0.0),
        "age_at_start_p95_first_quarter_ms": round(pct(age[:quarter], 95), 2),
        "age_at_start_p95_last_quarter_ms": round(pct(age[-quarter:], 95), 2),
        "rss_kib_after_warmup": rss_warm, "rss_kib_max_after_warmup": max(after) if after else 0,
        "rss_kib_end": rss[-1][1] if rss else 0, "rss_growth_pct": round(rss_growth, 2),
        "rss_samples": len(rss), "node_exit": returncode, "checks": checks, "ok": all(checks.values()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=10_000)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--model", default="", help="prepared model folder (default: yolov3-tiny-320)")
    parser.add_argument("--backend", default="opencl", choices=("opencl", "onnxruntime"))
    parser.add_argument("--overload", type=float, default=2.0, help="send rate / sustainable rate")
    parser.add_argument("--deadline-ms", type=float, default=0.0, help="default: 2.5x the measured frame time")
    parser.add_argument("--json", default="", help="write the results here")
    parser.add_argument("--log", default="", help="write the node's output here")
    args = parser.parse_args(argv)
    result = run_soak(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
