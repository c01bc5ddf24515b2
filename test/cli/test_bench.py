"""`ocl-infer bench --quick` as a user runs it: every backend row and every report line is there (no timing asserts)."""

import os
import subprocess
import sys
from pathlib import Path

OCL_INFER = [sys.executable, "-m", "ocl_infer.cli"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*OCL_INFER, *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ}, check=False)


def _table_rows(text: str, first_header: str) -> list[list[str]]:
    """Rows (cells) of the markdown table whose header starts with `first_header`."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(f"| {first_header} |"))
    rows = []
    for ln in lines[start + 2:]:
        if not ln.startswith("|"):
            break
        rows.append([c.strip() for c in ln.strip("|").split("|")])
    return rows


def test_quick_bench_prints_every_backend_and_writes_the_section(model_dir: Path, tmp_path: Path) -> None:
    doc = tmp_path / "performance.md"
    doc.write_text("# Performance\n\nHand-written intro stays.\n")
    out = _run("bench", "--quick", "--frames", "3", "--write", str(doc))
    assert out.returncode == 0, out.stderr
    rows = _table_rows(out.stdout, "size")
    assert [r[1] for r in rows] == ["onnxruntime", "opencv-dnn", "ours (OpenCL)", "ours fp16 (OpenCL)"]
    assert all(r[0] == "416" for r in rows)
    ort, cv = rows[0], rows[1]
    for r in (ort, cv):  # the references always run: real numbers, p99 >= median
        assert float(r[2]) > 0 and float(r[3]) >= float(r[2])
    assert ort[6] == "1.00"
    ours, half_row = rows[2], rows[3]
    for r in (ours, half_row):  # our engine must run: a broken engine fails this test, it is not a "n/a" row
        assert float(r[2]) > 0 and float(r[3]) >= float(r[2]), r
    assert "sgemm ceiling" in out.stdout and "load average" in out.stdout
    assert "the backends alternating in blocks of 3 frames, 0.1 s pause before each" in out.stdout
    # The second table: FLOPs counted from the NNEF graph, pre-processing time measured.
    lines = out.stdout.splitlines()
    second = next(i for i, ln in enumerate(lines) if ln.startswith("| size | model GFLOP"))
    cells = [c.strip() for c in lines[second + 2].strip("|").split("|")]
    assert cells[0] == "416" and abs(float(cells[1]) - 5.56) < 0.01 and float(cells[2]) > 0
    # the engine's outputs were compared with onnxruntime's on the same frame
    assert float(cells[7]) < 5e-3 and float(cells[6]) > 0
    # fp16 storage: its own small table, outputs still close to onnxruntime's
    half = _table_rows(out.stdout, "size | ours fp16: max abs diff vs onnxruntime")
    assert half[0][0] == "416" and float(half[0][1]) < 0.25 and float(half[0][2]) > 0

    text = doc.read_text()
    assert text.startswith("# Performance\n\nHand-written intro stays.\n")
    assert text.count("<!-- bench:begin") == 1 and text.count("<!-- bench:end -->") == 1
    # Writing again replaces the section instead of adding a second one.
    again = _run("bench", "--quick", "--frames", "2", "--backends", "onnxruntime", "--write", str(doc))
    assert again.returncode == 0, again.stderr
    text = doc.read_text()
    assert text.count("<!-- bench:begin") == 1 and "frames: 2 timed" in text and "frames: 3 timed" not in text


def test_bad_sizes_give_one_clear_line() -> None:
    out = _run("bench", "--sizes", "416,abc")
    assert out.returncode == 2
    assert "--sizes" in out.stderr and "Traceback" not in out.stderr


def _yolo_onnx() -> object:
    """test/detection/yolo_onnx.py (the graph builder of the detection tests), loaded by path."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("yolo_onnx", Path(__file__).parents[1] / "detection" / "yolo_onnx.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_bench_model_times_an_onnx_file_and_a_prepared_folder_against_the_references(tmp_path: Path) -> None:
    """--model with a user's ONNX file (converted on the fly) and the folder prepare-model --onnx makes of it; a
    graph the converter refuses gives a row naming why, and the others still run."""
    from onnx import TensorProto, helper

    src = _yolo_onnx().yolo_onnx(tmp_path / "v8.onnx", ["person", "bicycle", "car"])  # type: ignore[attr-defined]
    folder = tmp_path / "v8-model"
    assert _run("prepare-model", "--onnx", str(src), "-o", str(folder)).returncode == 0
    odd = tmp_path / "hardswish.onnx"  # nnef-tools has no conversion for HardSwish
    graph = helper.make_graph([helper.make_node("HardSwish", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    odd.write_bytes(model.SerializeToString())
    out = _run("bench", "--model", str(src), "--model", str(folder), "--model", str(odd), "--frames", "2",
               "--warmup", "0", "--no-first-frame", "--backends", "ours,onnxruntime")
    assert out.returncode == 0, out.stderr
    rows = _table_rows(out.stdout, "model")
    assert [(r[0], r[1], r[2]) for r in rows] == [
        ("v8", "96", "onnxruntime"), ("v8", "96", "ours (OpenCL)"), ("v8-model", "96", "onnxruntime"),
        ("v8-model", "96", "ours (OpenCL)"), ("hardswish", "8", "onnxruntime"), ("hardswish", "8", "ours (OpenCL)")]
    for r in rows[:5]:
        assert float(r[3]) > 0, r
    assert rows[5][3] == "n/a" and "conversion failed" in rows[5][-1] and "HardSwish" in rows[5][-1]
    second = _table_rows(out.stdout, "model | size | model GFLOP")
    assert [r[0] for r in second] == ["v8", "v8-model", "hardswish"]
    assert float(second[0][8]) < 1e-3 and float(second[1][8]) < 1e-3  # ours vs onnxruntime on the same input
    assert second[0][3] == "n/a" and float(second[1][3]) > 0  # pre-processing: only a folder with model.json
