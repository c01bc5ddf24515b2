"""The Detector: frame → letterbox → network (OpenCL engine or onnxruntime) → decode → NMS → image boxes."""

from __future__ import annotations

import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ocl_infer.detection.decode import decode_outputs, needs_nms
from ocl_infer.detection.description import ModelDescription, load_description
from ocl_infer.detection.nms import nms_per_class
from ocl_infer.detection.preprocess import (
    Letterbox,
    boxes_to_image,
    check_image,
    letterbox_geometry,
    preprocess,
)
from ocl_infer.errors import ConfigError, DetectionError, ModelError

BACKENDS = ("opencl", "onnxruntime")
PREPROCESS = ("device", "host")  # where letterbox/colour/scale/NCHW runs: OpenCL kernel or cv2 on the host


@dataclass(frozen=True)
class Detection:
    """One detected object: box is (x1, y1, x2, y2) in source-image pixels."""

    class_id: int
    label: str
    score: float
    box: tuple[float, float, float, float]


@dataclass(frozen=True)
class DetectionResult:
    detections: list[Detection]
    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float
    device: str

    @property
    def total_ms(self) -> float:
        return self.preprocess_ms + self.inference_ms + self.postprocess_ms


class _Runner(Protocol):
    label: str

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...

    def submit(self, feed: dict[str, np.ndarray]) -> Future[dict[str, np.ndarray]]: ...

    def close(self) -> None: ...


class _OnnxRunner:
    """The reference path: onnxruntime on the CPU, running model.onnx."""

    def __init__(self, path: Path, outputs: list[str], threads: int | None) -> None:
        import onnxruntime as ort

        if not path.is_file():
            raise ModelError(f"{path} is missing: the onnxruntime backend needs the model's ONNX file")
        opts = ort.SessionOptions()
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own untyped errors
            raise ModelError(f"{path}: onnxruntime cannot load it ({err})") from err
        known = {o.name for o in self.session.get_outputs()}
        missing = [n for n in outputs if n not in known]
        if missing:
            raise ModelError(
                f"{path}: outputs {missing} named in model.json are not in the ONNX graph ({sorted(known)})")
        self.outputs = outputs
        self.label = "onnxruntime:cpu"
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self.outputs, self.session.run(self.outputs, feed), strict=True))

    def submit(self, feed: dict[str, np.ndarray]) -> Future[dict[str, np.ndarray]]:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ocl_infer-ort")
            return self._pool.submit(self.run, feed)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


class _EngineRunner:
    """Our OpenCL engine on model.nnef/ (one or many devices)."""

    def __init__(self, path: Path, devices: Any, options: dict[str, Any], input_name: str,
                 outputs: list[str]) -> None:
        from ocl_infer.engine import Engine  # part of this package: an import error is a real fault, not a fallback

        if not path.exists():
            raise ModelError(f"{path} is missing: the opencl backend needs the model's NNEF folder")
        self.engine = Engine(str(path), devices=devices, **options)
        missing = [n for n in outputs if n not in self.engine.outputs]
        if missing:
            self.engine.close()
            raise ModelError(f"{path}: outputs {missing} named in model.json are not in the NNEF graph "
                             f"({sorted(self.engine.outputs)})")
        if input_name not in self.engine.inputs:
            self.engine.close()
            raise ModelError(f"{path}: input {input_name!r} named in model.json is not in the NNEF graph "
                             f"({sorted(self.engine.inputs)})")
        try:
            labels = [s.label for s in self.engine.stats()]
        except Exception:  # stats are informative only; a missing field must not stop detection
            labels = []
        self.labels = labels
        self.label = ",".join(labels) if labels else "opencl"
        self._lock = threading.Lock()
        self._build = (path, devices, options)
        self.batches: dict[int, Any] = {}  # N -> Engine(batch=N) on the same devices (Detector.prepare_batch)

    def batch_engine(self, n: int) -> Any:
        """The engine running n frames at once, built on first use (same devices and options)."""
        from ocl_infer.engine import Engine

        with self._lock:
            if n not in self.batches:
                path, devices, options = self._build
                self.batches[n] = Engine(str(path), devices=devices, **{**options, "batch": n})
            return self.batches[n]

    def run(self, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return self.engine.run(feed)

    def submit_image(self, image: np.ndarray, transform: Any) -> Future[dict[str, np.ndarray]]:
        """The raw uint8 frame; the device builds the input tensor (`transform`: engine ImageToTensor)."""
        return self.engine.submit_image(image, transform)

    def submit(self, feed: dict[str, np.ndarray]) -> Future[dict[str, np.ndarray]]:
        return self.engine.submit(feed)  # the engine's dispatcher: frames in flight per device

    def close(self) -> None:
        for engine in self.batches.values():
            engine.close()
        self.engine.close()


class Detector:
    """Detect objects (by default the COCO vehicle classes) in BGR frames.

    ``model``: a prepared model folder (default: ``paths.default_model_dir()``). ``devices``: engine device
    selectors (opencl backend). ``classes``: names or ids, ``None`` = vehicles. ``backend``: "opencl" (model.nnef/
    on our engine) or "onnxruntime" (model.onnx, the reference). ``preprocess``: "device" (the uint8 frame goes to
    the OpenCL device, which letterboxes it into the input; default for opencl) or "host" (cv2 on the host; the
    reference, and the only choice for onnxruntime). Extra keyword options go to the Engine (e.g.
    ``precision="fp16"``: conv weights stored as half; opencl backend only).
    """

    def __init__(
        self,
        model: str | Path | None = None,
        devices: Any = None,
        classes: list[str | int] | tuple[str | int, ...] | None = None,
        score_threshold: float = 0.25,
        nms_iou: float = 0.45,
        backend: str = "opencl",
        preprocess: str | None = None,
        **engine_options: Any,
    ) -> None:
        from ocl_infer.paths import default_model_dir

        if not 0.0 <= float(score_threshold) < 1.0:
            raise ConfigError(f"score_threshold={score_threshold} must be in [0, 1)")
        if not 0.0 < float(nms_iou) <= 1.0:
            raise ConfigError(f"nms_iou={nms_iou} must be in (0, 1]")
        if backend not in BACKENDS:
            raise ConfigError(f"backend={backend!r} must be one of {', '.join(BACKENDS)}")
        if preprocess is None:
            preprocess = "device" if backend == "opencl" else "host"
        if preprocess not in PREPROCESS:
            raise ConfigError(f"preprocess={preprocess!r} must be one of {', '.join(PREPROCESS)}")
        if preprocess == "device" and backend != "opencl":
            raise ConfigError(f"preprocess='device' needs backend='opencl' (backend={backend!r} runs on the host)")
        if backend != "opencl" and engine_options.get("precision", "fp32") != "fp32":
            raise ConfigError(f"precision={engine_options['precision']!r} needs backend='opencl' "
                              f"(backend={backend!r} runs model.onnx in float32)")
        self.preprocess_mode = preprocess
        self.description: ModelDescription = load_description(model if model is not None else default_model_dir())
        self.class_ids = self.description.class_ids(classes)
        self.score_threshold = float(score_threshold)
        self.nms_iou = float(nms_iou)
        self.backend = backend
        outputs = self.description.output_names
        self._runner: _Runner
        if backend == "onnxruntime":
            self._runner = _OnnxRunner(self.description.onnx_path, outputs, engine_options.pop("threads", None))
        else:
            self._runner = _EngineRunner(self.description.nnef_path, devices, engine_options,
                                         self.description.input.name, outputs)
        self._closed = False
        self._transforms: dict[tuple[int, int], Any] = {}  # frame (w, h) -> ImageToTensor
        if preprocess == "device" and engine_options.get("warmup", True):
            # the image kernel's compile and first launch, now rather than on the first frame
            spec = self.description.input
            transform, _ = self.image_transform(np.zeros((spec.height, spec.width, 3), np.uint8))
            try:
                self._runner.engine.warm_image(transform)  # type: ignore[union-attr]
            except BaseException:
                self.close()
                raise

    @property
    def class_names(self) -> list[str]:
        return list(self.description.classes)

    @property
    def device(self) -> str:
        return self._runner.label

    def device_stats(self) -> list[Any]:
        """The engine's per-device statistics (errors, hangs, in rotation); empty for onnxruntime."""
        engine = getattr(self._runner, "engine", None)
        return list(engine.stats()) if engine is not None else []

    def __enter__(self) -> Detector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._runner.close()

    def _check_open(self) -> None:
        if self._closed:
            raise DetectionError("this Detector is closed")

    def preprocess(self, image_bgr: np.ndarray) -> tuple[dict[str, np.ndarray], Letterbox]:
        tensor, box = preprocess(image_bgr, self.description.input)
        return {self.description.input.name: tensor}, box

    def image_transform(self, image_bgr: np.ndarray) -> tuple[Any, Letterbox]:
        """The engine's ImageToTensor for this frame size (Darknet letterbox placement) and its geometry."""
        from ocl_infer.engine import ImageToTensor

        img = check_image(image_bgr)
        h, w = img.shape[:2]
        spec = self.description.input
        box = letterbox_geometry(w, h, spec.width, spec.height, spec.letterbox)
        transform = self._transforms.get((w, h))
        if transform is None:
            transform = ImageToTensor(spec.name, (box.dx, box.dy, box.new_w, box.new_h), source="BGR",
                                      target=spec.color, scale=spec.scale, mean=tuple(spec.mean),
                                      pad=spec.pad_value, quantize=True)  # the same tensor as the host path
            if len(self._transforms) >= 16:
                self._transforms.clear()
            self._transforms[(w, h)] = transform
        return transform, box

    def _start(self, image_bgr: np.ndarray) -> tuple[Future[dict[str, np.ndarray]], Letterbox, float]:
        """Preprocess (host) or hand the frame to the device (device), and submit: (future, box, host ms)."""
        t0 = time.perf_counter()
        if self.preprocess_mode == "device":
            assert isinstance(self._runner, _EngineRunner)
            transform, box = self.image_transform(image_bgr)
            inner = self._runner.submit_image(image_bgr, transform)
            return inner, box, (time.perf_counter() - t0) * 1e3
        feed, box = self.preprocess(image_bgr)
        ms = (time.perf_counter() - t0) * 1e3
        return self._runner.submit(feed), box, ms

    def postprocess(self, outputs: dict[str, np.ndarray], box: Letterbox) -> list[Detection]:
        """Decode, per-class NMS (not after an end-to-end head), map to image pixels and clip; best score first."""
        desc, spec = self.description, self.description.input
        cand = decode_outputs(outputs, desc.head, spec.width, spec.height, self.class_ids, self.score_threshold,
                              len(desc.classes))
        keep = (nms_per_class(cand.boxes, cand.scores, cand.class_ids, self.nms_iou) if needs_nms(desc.head)
                else np.argsort(-cand.scores, kind="stable"))
        boxes = boxes_to_image(cand.boxes[keep], box)
        return [
            Detection(int(c), desc.classes[int(c)], float(s), (float(b[0]), float(b[1]), float(b[2]), float(b[3])))
            for b, s, c in zip(boxes, cand.scores[keep], cand.class_ids[keep], strict=True)
        ]

    def detect_timed(self, image_bgr: np.ndarray) -> DetectionResult:
        if isinstance(self._runner, _EngineRunner) and len(self._runner.labels) > 1:
            return self.submit(image_bgr).result()  # so the result names the device that ran it
        self._check_open()
        if self.preprocess_mode == "device":
            return self.submit(image_bgr).result()
        t0 = time.perf_counter()
        feed, box = self.preprocess(image_bgr)
        t1 = time.perf_counter()
        outputs = self._runner.run(feed)
        t2 = time.perf_counter()
        dets = self.postprocess(outputs, box)
        t3 = time.perf_counter()
        return DetectionResult(dets, (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3, self._runner.label)

    def detect(self, image_bgr: np.ndarray) -> list[Detection]:
        return self.detect_timed(image_bgr).detections

    def prepare_batch(self, sizes: list[int] | tuple[int, ...]) -> tuple[int, ...]:
        """Build the engines that run N frames as one batch (the model's batch dimension set to N at load), for
        each N > 1 of `sizes`; returns the sizes this detector can batch (none with onnxruntime, whose model
        file fixes the batch at 1). Seconds per size on a cold kernel cache: call it at start-up."""
        if not isinstance(self._runner, _EngineRunner):
            return ()
        for n in sorted({int(n) for n in sizes if int(n) > 1}):
            fresh = n not in self._runner.batches
            engine = self._runner.batch_engine(n)
            if fresh and self.preprocess_mode == "device" and engine.options.warmup:
                spec = self.description.input  # the image kernel's compile and first launch, as in __init__
                engine.warm_image(self.image_transform(np.zeros((spec.height, spec.width, 3), np.uint8))[0])
        return tuple(sorted(self._runner.batches))

    @property
    def batch_sizes(self) -> tuple[int, ...]:
        """The batch sizes prepared so far (see prepare_batch)."""
        return tuple(sorted(self._runner.batches)) if isinstance(self._runner, _EngineRunner) else ()

    def detect_batch_timed(self, images: list[np.ndarray]) -> list[DetectionResult]:
        """Several frames (e.g. one per camera) as one batch on the engine prepared for len(images) frames: one
        run, results split back per frame with that frame's letterbox. With preprocess="device" the uint8 frames
        go to the device, which letterboxes each into its slice of the batch (Engine.submit_images); with "host"
        cv2 letterboxes them here and the float32 batch is uploaded. The times of each result are the whole
        batch's. Without a prepared engine of that size, frame by frame."""
        self._check_open()
        for i, img in enumerate(images):
            check_image(img, f"images[{i}]")
        engine = self._runner.batches.get(len(images)) if isinstance(self._runner, _EngineRunner) else None
        if engine is None:
            return [self.detect_timed(img) for img in images]
        t0 = time.perf_counter()
        if self.preprocess_mode == "device":
            transforms, boxes = zip(*(self.image_transform(img) for img in images), strict=True)
            future = engine.submit_images(images, transforms)
        else:
            feeds, boxes = zip(*(self.preprocess(img) for img in images), strict=True)
            name = self.description.input.name
            future = engine.submit({name: np.concatenate([f[name] for f in feeds])})
        t1 = time.perf_counter()
        outputs = future.result()
        t2 = time.perf_counter()
        dets = [self.postprocess({k: v[i : i + 1] for k, v in outputs.items()}, box) for i, box in enumerate(boxes)]
        t3 = time.perf_counter()
        device = str(getattr(future, "device", self._runner.label))
        return [DetectionResult(d, (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t3 - t2) * 1e3, device) for d in dets]

    def detect_batch(self, images: list[np.ndarray]) -> list[list[Detection]]:
        """Several frames: as one batch where prepare_batch built its size, else submitted together in flight."""
        for i, img in enumerate(images):
            check_image(img, f"images[{i}]")
        if isinstance(self._runner, _EngineRunner) and len(images) in self._runner.batches:
            return [r.detections for r in self.detect_batch_timed(images)]
        futures = [self.submit(img) for img in images]
        return [f.result().detections for f in futures]

    def submit(self, image_bgr: np.ndarray) -> Future[DetectionResult]:
        """Start one frame; the Future gives its DetectionResult (inference_ms includes time queued). With
        preprocess="device" the frame is read when the device runs it: leave it unchanged until then."""
        self._check_open()
        inner, box, pre_ms = self._start(image_bgr)
        t1 = time.perf_counter()
        result: Future[DetectionResult] = Future()

        def finish(done: Future[dict[str, np.ndarray]]) -> None:
            t2 = time.perf_counter()
            try:
                dets = self.postprocess(done.result(), box)
            except BaseException as err:  # hand every failure to the caller through the Future
                result.set_exception(err)
                return
            t3 = time.perf_counter()
            # The engine's dispatcher tags each future with the device that ran it.
            device = str(getattr(done, "device", self._runner.label))
            result.set_result(DetectionResult(dets, pre_ms, (t2 - t1) * 1e3, (t3 - t2) * 1e3, device))

        inner.add_done_callback(finish)
        return result
