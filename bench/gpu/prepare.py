"""Build the YOLOv3-tiny model folders on the device machine from the carried Darknet files, with our importer.

Batch 1: `ocl_infer.detection.prepare.build_model_folder` (what `ocl-infer prepare-model` calls after fetching
the sdist): Darknet → model.onnx → model.nnef/ (nnef-tools) + model.json. Batch 8: the same ONNX with the batch
dimension of its input and outputs set to 8 (the graph has no reshape, and Resize takes scales), converted
again; a failure there is recorded and the batch-8 measurements are skipped.

    python3 bench/gpu/prepare.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from common import CARRY, Fragment, log, model_dir


def build_batch1() -> dict[str, Any]:
    from ocl_infer.detection.prepare import WEIGHTS_SHA256, build_model_folder, read_names, sha256_of

    weights = CARRY / "yolov3-tiny.weights"
    digest = sha256_of(weights)
    if digest != WEIGHTS_SHA256:
        raise ValueError(f"{weights}: sha256 {digest} is not the official weights' {WEIGHTS_SHA256}")
    t0 = time.perf_counter()
    out = build_model_folder(CARRY / "yolov3-tiny.cfg", weights, read_names(CARRY / "coco.names"), model_dir(1),
                             size=416, name="yolov3-tiny", source={"carried": ".gpu_carry (bench/gpu/make_carry.py)"})
    return {"folder": str(out), "seconds": time.perf_counter() - t0, "weights_sha256": digest,
            "files": sorted(p.name for p in out.iterdir())}


def batch_model(src: Path, dst: Path, batch: int) -> None:
    """model.onnx of `src` with batch `batch` → `dst`/model.onnx, checked with onnx's checker and shape inference."""
    import onnx

    model = onnx.load(str(src / "model.onnx"))
    for vi in (*model.graph.input, *model.graph.output):
        vi.type.tensor_type.shape.dim[0].dim_value = batch
    del model.graph.value_info[:]
    model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    onnx.checker.check_model(model)
    dst.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(dst / "model.onnx"))


def build_batch(batch: int) -> dict[str, Any]:
    import numpy as np
    import onnxruntime as ort

    from ocl_infer.detection.prepare import convert_onnx_to_nnef

    t0 = time.perf_counter()
    dst = model_dir(batch)
    batch_model(model_dir(1), dst, batch)
    sess = ort.InferenceSession(str(dst / "model.onnx"), providers=["CPUExecutionProvider"])
    shapes = {o.name: o.shape for o in sess.get_outputs()}
    x = np.zeros([batch, *sess.get_inputs()[0].shape[1:]], np.float32)
    got = {o.name: list(v.shape) for o, v in zip(sess.get_outputs(), sess.run(None, {sess.get_inputs()[0].name: x}),
                                                 strict=True)}
    convert_onnx_to_nnef(dst / "model.onnx", dst / "model.nnef")
    return {"folder": str(dst), "seconds": time.perf_counter() - t0, "onnx_output_shapes": shapes,
            "onnxruntime_output_shapes": got}


def main() -> int:
    frag = Fragment("prepare")
    if frag.attempt("batch1", build_batch1) is None:
        return 1
    log(f"prepared {model_dir(1)}")
    if frag.attempt("batch8", lambda: build_batch(8)) is not None:
        log(f"prepared {model_dir(8)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
