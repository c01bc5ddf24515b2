"""Does the engine compute the same network on the GPU? Two checks on real frames (dog.jpg, vtest.avi):

1. raw outputs: the engine (fp32 and fp16 storage) against onnxruntime (CPU) on the same model.onnx and the same
   letterboxed input tensor (Detector's host pre-processing), max abs error per output; plus the engine's own
   device pre-processing (`run_image`) against its run on the host tensor;
2. detections: Detector(backend="opencl") — host and device pre-processing, fp32 and fp16 — against
   Detector(backend="onnxruntime"), all 80 classes: same class ids, boxes within 0.5 px, scores within 1e-3.

    python3 bench/gpu/correctness.py
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from common import Fragment, load_images, log, model_dir, preprocessed

BOX_TOL_PX = 0.5
SCORE_TOL = 1e-3


def output_errors(got: dict[str, Any], want: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Per output: max abs error, the reference's largest magnitude, and their ratio; NaN/inf count as inf."""
    import numpy as np

    out = {}
    for name, ref in want.items():
        g = got[name].astype(np.float64)
        err = float(np.max(np.abs(g - ref))) if np.all(np.isfinite(g)) else float("inf")
        scale = float(np.max(np.abs(ref)))
        out[name] = {"max_abs": err, "ref_max_abs": scale, "rel": err / max(scale, 1e-12)}
    return out


def onnx_reference(feeds: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model_dir(1) / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    return {img: dict(zip(names, sess.run(names, feed), strict=True)) for img, feed in feeds}


def engine_outputs(precision: str, feeds: Sequence[tuple[str, dict[str, Any]]], ref: dict[str, dict[str, Any]],
                   images: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    """Engine vs onnxruntime per image; with fp32 also device pre-processing vs host pre-processing."""
    from ocl_infer.detection import Detector
    from ocl_infer.engine import Engine

    result: dict[str, Any] = {}
    with Engine(model_dir(1) / "model.nnef", precision=precision) as engine:
        result["device"] = [s.label for s in engine.stats()]
        result["kernels"] = sorted({s.variant for s in engine.plan.steps if s.variant != "alias"})
        result["tuned_steps"] = sum(1 for s in engine.plan.steps if s.attrs.get("tuned"))
        result["launches_per_frame"] = len(engine.runtimes[0].launches)
        per_image = {}
        for img, feed in feeds:
            per_image[img] = output_errors(engine.run(feed), ref[img])
        result["images"] = per_image
        result["worst_max_abs"] = max(e["max_abs"] for errs in per_image.values() for e in errs.values())
        result["worst_rel"] = max(e["rel"] for errs in per_image.values() for e in errs.values())
        if precision == "fp32":
            # the transform Detector would use for this frame size (public Detector.image_transform)
            det = Detector(model_dir(1), backend="onnxruntime")
            try:
                dev = {}
                for (img, feed), (_, bgr) in zip(feeds, images, strict=True):
                    transform, _ = det.image_transform(bgr)
                    dev[img] = output_errors(engine.run_image(bgr, transform), engine.run(feed))
                result["device_preprocess_vs_host"] = dev
                result["device_preprocess_worst_max_abs"] = max(
                    e["max_abs"] for errs in dev.values() for e in errs.values())
            finally:
                det.close()
    log(f"engine {precision}: worst max abs error vs onnxruntime {result['worst_max_abs']:.3g} "
        f"(relative {result['worst_rel']:.3g}), kernels {result['kernels']}")
    return result


def compare_detections(ref: Sequence[Any], got: Sequence[Any]) -> dict[str, Any]:
    """Pair each reference detection with the closest unpaired one of the same class (largest box-corner gap
    smallest); equal when every one pairs within BOX_TOL_PX and SCORE_TOL and none is left over."""
    left = list(got)
    box_diff = score_diff = 0.0
    missing, pairs = [], 0
    for r in sorted(ref, key=lambda d: -d.score):
        same = [g for g in left if g.class_id == r.class_id]
        if not same:
            missing.append(f"{r.label} {r.score:.4f} {[round(v, 1) for v in r.box]}")
            continue
        g = min(same, key=lambda g: max(abs(a - b) for a, b in zip(g.box, r.box, strict=True)))
        left.remove(g)
        pairs += 1
        box_diff = max(box_diff, max(abs(a - b) for a, b in zip(g.box, r.box, strict=True)))
        score_diff = max(score_diff, abs(g.score - r.score))
    extra = [f"{g.label} {g.score:.4f} {[round(v, 1) for v in g.box]}" for g in left]
    equal = not missing and not extra and box_diff <= BOX_TOL_PX and score_diff <= SCORE_TOL
    return {"equal": equal, "reference": len(ref), "got": len(got), "paired": pairs, "max_box_diff_px": box_diff,
            "max_score_diff": score_diff, "missing": missing, "extra": extra}


def detections(images: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    from ocl_infer.detection import Detector

    every_class = list(range(80))
    ref_det = Detector(model_dir(1), backend="onnxruntime", classes=every_class)
    try:
        ref = {img: ref_det.detect(bgr) for img, bgr in images}
    finally:
        ref_det.close()
    out: dict[str, Any] = {"reference": {img: [f"{d.label} {d.score:.4f} {[round(v, 1) for v in d.box]}"
                                               for d in dets] for img, dets in ref.items()}}
    variants = {"opencl fp32, host preprocess": {"preprocess": "host"},
                "opencl fp32, device preprocess": {"preprocess": "device"},
                # half weights: score differences of a few 1e-3 are expected, so "equal" is informative only
                "opencl fp16 storage, device preprocess (1e-3 not expected)": {"preprocess": "device",
                                                                               "precision": "fp16"}}
    for label, opts in variants.items():
        try:
            with Detector(model_dir(1), backend="opencl", classes=every_class, **opts) as det:
                per = {img: compare_detections(ref[img], det.detect(bgr)) for img, bgr in images}
        except Exception as err:
            from common import error_text

            out[label] = {"error": error_text(err)}
            log(f"detections {label}: FAILED {out[label]['error']}")
            continue
        out[label] = {"equal": all(v["equal"] for v in per.values()), "images": per}
        log(f"detections {label}: {'equal' if out[label]['equal'] else 'DIFFERENT'} to onnxruntime "
            f"({sum(v['reference'] for v in per.values())} reference detections)")
    return out


def main() -> int:
    frag = Fragment("correctness")
    frag.put("tolerances", {"box_px": BOX_TOL_PX, "score": SCORE_TOL})
    images = load_images()
    feeds = preprocessed(model_dir(1), images)
    frag.put("images", [name for name, _ in images])
    try:
        ref = onnx_reference(feeds)
    except Exception as err:
        frag.fail("onnxruntime_reference", err)
        return 1
    for precision in ("fp32", "fp16"):
        frag.attempt(f"engine_{precision}", lambda p=precision: engine_outputs(p, feeds, ref, images))
    frag.attempt("detections", lambda: detections(images))
    return 0 if not frag.data["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
