"""`ocl-infer detect`: detect vehicles (or other classes) in images, folders of images and videos."""

import argparse
from pathlib import Path

VIDEO_EXTS = {".avi", ".mp4", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".m4v", ".wmv", ".flv", ".ts"}
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm", ".pbm", ".jp2", ".pnm"}


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    p = sub.add_parser("detect", help="detect objects in images, image folders or videos")
    p.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="image file, folder of images, or video")
    p.add_argument("--json", action="store_true", help="one JSON object per frame on stdout")
    p.add_argument("--overlay", type=Path, default=None, metavar="DIR", help="write images with boxes into DIR")
    p.add_argument("--classes", nargs="+", default=None,
                   help="class names or ids to report (default: vehicles; 'all' for every class)")
    p.add_argument("--devices", nargs="+", default=None,
                   help="OpenCL devices for the engine: 'all', indices, 'cl:1', name parts (default: first)")
    p.add_argument("--model", type=Path, default=None, help="model folder (default: the prepared yolov3-tiny)")
    p.add_argument("--score-threshold", type=float, default=0.25, help="minimum score (default 0.25)")
    p.add_argument("--nms-iou", type=float, default=0.45, help="NMS IoU threshold (default 0.45)")
    p.add_argument("--backend", choices=("opencl", "onnxruntime"), default="opencl",
                   help="opencl: our engine on model.nnef/ (default); onnxruntime: model.onnx, the reference")
    p.add_argument("--preprocess", choices=("device", "host"), default=None,
                   help="letterbox/colour/scale on the OpenCL device (default for opencl) or with cv2 on the host "
                        "(the reference; the only choice for onnxruntime)")
    p.add_argument("--precision", choices=("fp32", "fp16"), default="fp32",
                   help="opencl backend: fp16 stores conv weights and Winograd scratch as half (default fp32)")
    p.add_argument("--max-frames", type=int, default=None, help="stop each video after this many frames")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr for videos and folders (default: when stderr is a terminal)")
    p.set_defaults(func=run)


class _Progress:
    """A one-line bar on stderr: `name [#####-----] 12/795`."""

    def __init__(self, name: str, total: int | None, enabled: bool) -> None:
        self.name, self.total, self.enabled, self.done = name, total, enabled, 0
        self.ended = False

    def step(self) -> None:
        import sys

        self.done += 1
        if not self.enabled:
            return
        if self.total:
            filled = min(30, 30 * self.done // self.total)
            bar = f"[{'#' * filled}{'-' * (30 - filled)}] {self.done}/{self.total}"
        else:
            bar = f"{self.done} frames"
        self.ended = bool(self.total) and self.done >= self.total  # type: ignore[operator]
        sys.stderr.write(f"\r{self.name} {bar}" + ("\n" if self.ended else ""))
        sys.stderr.flush()

    def close(self) -> None:
        import sys

        if self.enabled and self.done and not self.ended:
            sys.stderr.write("\n")
            sys.stderr.flush()


def run(args: argparse.Namespace) -> int:
    import json
    import logging
    import sys
    from collections import deque
    from collections.abc import Iterator
    from concurrent.futures import Future

    import cv2
    import numpy as np

    from ocl_infer.detection import Detector
    from ocl_infer.detection.detector import DetectionResult
    from ocl_infer.detection.overlay import draw_detections
    from ocl_infer.errors import ConfigError, ImageError

    log = logging.getLogger("ocl_infer.detect")
    show_progress = sys.stderr.isatty() if args.progress is None else args.progress
    if args.max_frames is not None and args.max_frames <= 0:
        raise ConfigError(f"--max-frames {args.max_frames} must be positive")

    # Check every input before loading the model, so a typo fails fast.
    plan: list[tuple[str, Path]] = []
    for path in args.inputs:
        if path.is_dir():
            plan.append(("folder", path))
        elif not path.exists():
            raise ImageError(f"input {path} does not exist")
        elif path.suffix.lower() in VIDEO_EXTS:
            plan.append(("video", path))
        else:
            plan.append(("image", path))

    def read_image(path: Path) -> np.ndarray:
        img = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if img is None or img.size == 0:
            raise ImageError(f"{path} is not a readable image")
        return img

    bars: list[_Progress] = []

    def frames() -> Iterator[tuple[str, int, np.ndarray, _Progress | None]]:
        for kind, path in plan:
            if kind == "image":
                yield str(path), 0, read_image(path), None
            elif kind == "folder":
                entries = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
                files = [p for p in entries if p.suffix.lower() in IMAGE_EXTS]
                others = [p for p in entries if p.suffix.lower() not in IMAGE_EXTS]
                for p in others:
                    log.warning("skipping %s: not an image file", p)
                bar = _Progress(str(path), len(files), show_progress)
                for p in files:
                    try:
                        img = read_image(p)
                    except ImageError as err:
                        log.warning("skipping %s", err)
                        bar.step()
                        continue
                    yield str(p), 0, img, bar
                bars.append(bar)
            else:
                cap = cv2.VideoCapture(str(path))
                try:
                    ok, frame = cap.read() if cap.isOpened() else (False, None)
                    if not ok or frame is None:
                        raise ImageError(f"{path}: cannot read any frame (empty, truncated or unsupported video)")
                    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) or None
                    if args.max_frames is not None:
                        total = min(total or args.max_frames, args.max_frames)
                    bar = _Progress(str(path), total, show_progress)
                    n = 0
                    while ok and (args.max_frames is None or n < args.max_frames):
                        yield str(path), n, frame, bar
                        n += 1
                        ok, frame = cap.read()
                    bars.append(bar)
                finally:
                    cap.release()

    if args.overlay is not None:
        args.overlay.mkdir(parents=True, exist_ok=True)
    classes = args.classes
    devices = None if args.devices is None else (args.devices[0] if len(args.devices) == 1 else args.devices)
    detector = Detector(args.model, devices=devices, classes=classes, score_threshold=args.score_threshold,
                        nms_iou=args.nms_iou, backend=args.backend,
                        preprocess=args.preprocess, precision=args.precision)

    def emit(source: str, index: int, image: np.ndarray, result: DetectionResult) -> None:
        dets = result.detections
        if args.json:
            print(json.dumps({
                "source": source, "frame": index,
                "detections": [{"class_id": d.class_id, "label": d.label, "score": round(d.score, 4),
                                "box": [round(v, 1) for v in d.box]} for d in dets],
                "latency_ms": {"preprocess": round(result.preprocess_ms, 2), "inference": round(result.inference_ms, 2),
                               "postprocess": round(result.postprocess_ms, 2), "total": round(result.total_ms, 2)},
            }), flush=True)
        else:
            found = ", ".join(f"{d.label} {d.score:.2f} [{', '.join(f'{v:.0f}' for v in d.box)}]" for d in dets)
            print(f"{source}#{index}: {found or 'nothing'} ({result.total_ms:.1f} ms)", flush=True)
        if args.overlay is not None:
            stem = Path(source).stem + (f"_{index:06d}" if Path(source).suffix.lower() in VIDEO_EXTS else "")
            if not cv2.imwrite(str(args.overlay / f"{stem}.jpg"), draw_detections(image, dets)):
                raise ImageError(f"cannot write overlay {args.overlay / f'{stem}.jpg'}")

    # A few frames in flight keep several devices busy; results are still printed in input order.
    window: deque[tuple[str, int, np.ndarray, _Progress | None, Future[DetectionResult]]] = deque()
    in_flight = 4 if devices is not None else 2

    def finish_oldest() -> None:
        source, index, image, bar, future = window.popleft()
        emit(source, index, image, future.result())
        if bar is not None:
            bar.step()

    try:
        with detector:
            for source, index, image, bar in frames():
                window.append((source, index, image, bar, detector.submit(image)))
                if len(window) >= in_flight:
                    finish_oldest()
            while window:
                finish_oldest()
    except BrokenPipeError:  # e.g. `| head`: the reader has what it wanted
        sys.stdout = None  # type: ignore[assignment]  # nothing more can be written; skip the flush at exit
        return 0
    for b in bars:
        b.close()
    return 0
