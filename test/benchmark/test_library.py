"""The benchmark library without a device: report rendering, the docs section, timing helpers, model resolution
errors, and the reference backends behind the Backend protocol on a one-op graph (its layering: test_layout.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper

from ocl_infer.benchmark import BACKENDS, Backend, BackendOptions, ModelResult, Timing, render_report, write_section
from ocl_infer.benchmark.measure import max_abs_diff, rel_error, time_alternating
from ocl_infer.benchmark.models import resolve_model
from ocl_infer.errors import ModelError

META = {"date": "d", "machine": "m", "devices": "cl:0", "command": "c", "threads": "2", "frames": "3",
        "warmup": "1", "load_start": "0.10", "load_end": "0.20"}


def _result(model: str, size: int, ort_ms: float, ours_ms: float | None) -> ModelResult:
    ours = (Timing("ours (OpenCL)", size, ours_ms, ours_ms * 1.1, 3, (0.1, 0.2)) if ours_ms
            else Timing("ours (OpenCL)", size, error="conversion failed: a\nb | c"))
    return ModelResult(size, model, 2.0, None, [Timing("onnxruntime", size, ort_ms, ort_ms, 3, (0.1, 0.1)), ours])


def test_report_has_a_model_column_only_when_a_run_covers_several_models() -> None:
    one = render_report([_result("yolov3-tiny", 416, 20.0, 25.0), _result("yolov3-tiny", 320, 10.0, 12.0)],
                        200.0, META)
    assert "| size | backend | median ms |" in one and "| model |" not in one
    assert "| 416 | ours (OpenCL) | 25.00 | 27.50 | 80 | 40 % | 1.25 | 0.10 / 0.20 |" in one
    several = render_report([_result("yolov3-tiny", 416, 20.0, 25.0), _result("odd", 8, 1.0, None)], 200.0, META)
    assert "| model | size | backend | median ms |" in several
    assert "| yolov3-tiny | 416 | ours (OpenCL) | 25.00 |" in several
    # a multi-line message stays in its cell, one line, no extra column
    assert "| odd | 8 | ours (OpenCL) | n/a | n/a | n/a | n/a | n/a | conversion failed: a b / c |" in several


def test_write_section_replaces_only_its_own_section(tmp_path: Path) -> None:
    doc = tmp_path / "perf.md"
    doc.write_text("# P\n\nintro\n")
    write_section(doc, "first\n")
    write_section(doc, "second\n")
    text = doc.read_text()
    assert text.startswith("# P\n\nintro\n") and "second" in text and "first" not in text
    assert text.count("<!-- bench:begin") == 1


def test_alternating_blocks_give_each_step_its_frames() -> None:
    calls: list[str] = []
    times = time_alternating({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 5, 2, 0.0)
    assert [len(t) for t in times.values()] == [6, 6]
    assert calls[:6] == ["a", "a", "b", "b", "a", "a"]


def test_agreement_measures() -> None:
    want = np.array([1.0, -4.0])
    assert rel_error(np.array([1.0, -3.0]), want) == pytest.approx(0.25)
    assert np.isnan(rel_error(np.zeros(3), want)) and rel_error(np.array([np.nan, 0.0]), want) == float("inf")
    assert max_abs_diff({"y": np.array([1.0, 2.0]), "z": np.zeros(1)}, {"y": np.array([1.0, 2.5])}) == 0.5
    with pytest.raises(ModelError, match="no output in common"):
        max_abs_diff({"y": want}, {"x": want})


def test_resolve_model_names_what_it_cannot_use(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such file"):
        resolve_model(tmp_path / "missing.onnx", tmp_path)
    (tmp_path / "notes").mkdir()
    with pytest.raises(ModelError, match="notes: not an ONNX file"):
        resolve_model(tmp_path / "notes", tmp_path)


def test_reference_backends_follow_the_protocol(tmp_path: Path) -> None:
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    src = tmp_path / "relu.onnx"
    src.write_bytes(model.SerializeToString())
    bench_model = resolve_model(src, tmp_path)
    assert bench_model.inputs == {"x": (1, 3, 4, 4)} and bench_model.nnef is not None and bench_model.size == 4
    x = np.random.default_rng(0).standard_normal((1, 3, 4, 4)).astype(np.float32)
    for name in ("onnxruntime", "opencv"):
        backend: Backend = BACKENDS[name](bench_model, BackendOptions(threads=1))
        try:
            out = backend.run({"x": x})
        finally:
            backend.close()
        np.testing.assert_allclose(next(iter(out.values())), np.maximum(x, 0), err_msg=name)


def test_bench_model_alternates_backends_and_keeps_the_others_when_one_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """Stand-in backends (the scheduling logic alone): frames alternate in blocks between the open backends, and
    one failing while timed leaves the rotation with a row naming the error while the other keeps its frames."""
    from ocl_infer.benchmark import suite
    from ocl_infer.benchmark.models import BenchModel
    from ocl_infer.errors import DeviceError

    calls: list[str] = []

    class Fake:
        def __init__(self, name: str, fail_at: int | None) -> None:
            self.label, self.name, self.fail_at, self.runs, self.closed = name, name, fail_at, 0, False

        def run(self, feed: object) -> dict[str, np.ndarray]:
            self.runs += 1
            calls.append(self.name)
            if self.fail_at is not None and self.runs >= self.fail_at:
                raise DeviceError(f"{self.name}: lost the device")
            return {"y": np.ones(2, np.float32)}

        def details(self) -> dict[str, object]:
            return {}

        def close(self) -> None:
            self.closed = True

    fakes = {"onnxruntime": Fake("onnxruntime", None), "opencv": Fake("opencv", 4)}
    monkeypatch.setattr(suite, "open_backend", lambda name, model, options: fakes[name])
    model = BenchModel("m", None, None, {"x": (1, 3, 4, 4)})
    options = suite.RunOptions(frames=6, warmup=1, first_frame=False, block=2, pause_s=0.0)
    result = suite.bench_model(model, ["onnxruntime", "opencv"], options)
    ort, cv = result.timings
    assert ort.error is None and ort.frames == 6 and ort.median_ms is not None
    assert cv.median_ms is None and "lost the device" in (cv.error or "")
    # once each to check outputs, one warm-up each, then blocks of 2: opencv fails on its 4th run, then is skipped
    assert calls == ["onnxruntime", "opencv", "onnxruntime", "opencv", "onnxruntime", "onnxruntime", "opencv",
                     "opencv", "onnxruntime", "onnxruntime", "onnxruntime", "onnxruntime"]
    assert all(f.closed for f in fakes.values())
