"""End to end: a small multi-layer CNN (YOLO-like: conv+BN+leaky, max pools incl. the stride-1 one, 1x1 convs,
nearest upsample, concat) and the real YOLOv3-tiny on real frames, both against onnxruntime; save/reload;
archives; program cache across engines; input checks."""

import tarfile
import time
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper
from onnx_models import convert, make_model, rel_error, run_onnx

from ocl_infer.engine import Engine
from ocl_infer.errors import ConfigError, DeviceError, ModelError

TOL = 1e-4


def small_cnn() -> tuple[list, dict[str, np.ndarray]]:
    rng = np.random.default_rng(7)
    nodes, inits = [], {}

    def conv_bn_leaky(src: str, dst: str, ci: int, co: int, k: int = 3) -> None:
        inits[f"{dst}_w"] = (rng.standard_normal((co, ci, k, k)) * np.sqrt(2 / (ci * k * k))).astype(np.float32)
        for p, fn in (("g", rng.random), ("b", rng.standard_normal), ("m", rng.standard_normal)):
            inits[f"{dst}_{p}"] = (fn(co) * 0.5 + (0.5 if p == "g" else 0)).astype(np.float32)
        inits[f"{dst}_v"] = (rng.random(co) + 0.5).astype(np.float32)
        pad = k // 2
        nodes.append(helper.make_node("Conv", [src, f"{dst}_w"], [f"{dst}_c"], pads=[pad] * 4))
        nodes.append(helper.make_node("BatchNormalization", [f"{dst}_c", f"{dst}_g", f"{dst}_b", f"{dst}_m",
                                                             f"{dst}_v"], [f"{dst}_n"]))
        nodes.append(helper.make_node("LeakyRelu", [f"{dst}_n"], [dst], alpha=0.1))

    conv_bn_leaky("image", "l1", 3, 12)
    nodes.append(helper.make_node("MaxPool", ["l1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]))
    conv_bn_leaky("p1", "l2", 12, 20)
    nodes.append(helper.make_node("MaxPool", ["l2"], ["p2"], kernel_shape=[2, 2], strides=[2, 2]))
    conv_bn_leaky("p2", "l3", 20, 36)
    nodes.append(helper.make_node("MaxPool", ["l3"], ["p3"], kernel_shape=[2, 2], strides=[1, 1], pads=[0, 0, 1, 1]))
    conv_bn_leaky("p3", "l4", 36, 18, k=1)
    inits["head1_w"] = (rng.standard_normal((21, 18, 1, 1)) * 0.2).astype(np.float32)
    inits["head1_b"] = rng.standard_normal(21).astype(np.float32)
    nodes.append(helper.make_node("Conv", ["l4", "head1_w", "head1_b"], ["out_small"]))
    conv_bn_leaky("l4", "l5", 18, 10, k=1)
    inits["scales"] = np.array([1, 1, 2, 2], np.float32)
    nodes.append(helper.make_node("Resize", ["l5", "", "scales"], ["up"], mode="nearest"))
    nodes.append(helper.make_node("Concat", ["up", "l2"], ["cat"], axis=1))
    conv_bn_leaky("cat", "l6", 30, 24)
    inits["head2_w"] = (rng.standard_normal((21, 24, 1, 1)) * 0.2).astype(np.float32)
    inits["head2_b"] = rng.standard_normal(21).astype(np.float32)
    nodes.append(helper.make_node("Conv", ["l6", "head2_w", "head2_b"], ["out_big"]))
    return nodes, inits


INPUT_SHAPE = (1, 3, 52, 60)


@pytest.fixture(scope="module")
def cnn(tmp_path_factory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("cnn")
    nodes, inits = small_cnn()
    model = make_model(nodes, {"image": INPUT_SHAPE}, ["out_small", "out_big"], inits)
    import onnx

    onnx.save(model, tmp / "cnn.onnx")
    return tmp / "cnn.onnx", convert(model, tmp / "cnn.nnef")


def frames(n: int) -> list[np.ndarray]:
    rng = np.random.default_rng(11)
    return [rng.random(INPUT_SHAPE, dtype=np.float32) for _ in range(n)]


def test_small_cnn_matches_onnxruntime(cnn):
    onnx_path, nnef_path = cnn
    with Engine(nnef_path, poison=True) as engine:
        assert engine.inputs["image"].shape == INPUT_SHAPE
        assert set(engine.outputs) == {"out_small", "out_big"}
        for x in frames(3):
            got = engine.run({"image": x})
            want = run_onnx(onnx_path, {"image": x})
            for name in want:
                assert rel_error(got[name], want[name]) <= TOL, name
        # conv + batch norm + leaky became single conv steps; the plan knows its memory before allocation
        kinds = [s.kind for s in engine.plan.steps]
        assert "batch_normalization" not in kinds and "leaky_relu" not in kinds
        weights = sum(t.data.nbytes for t in engine.graph.tensors.values() if t.data is not None)
        assert engine.memory_bytes() >= weights
        assert engine.memory_bytes() == engine.plan.peak_bytes
        prof = engine.profile({"image": frames(1)[0]})
        assert [name for name, _ in prof] == [f"{s.name} [{s.variant}]" for s in engine.plan.steps
                                              if s.variant != "alias"]
        assert all(ms >= 0 for _, ms in prof)


def test_submit_returns_futures_in_order_and_stats(cnn):
    onnx_path, nnef_path = cnn
    xs = frames(4)
    with Engine(nnef_path) as engine:
        futures = [engine.submit({"image": x}) for x in xs]
        results = [f.result(timeout=60) for f in futures]
        for x, got in zip(xs, results, strict=True):
            want = run_onnx(onnx_path, {"image": x})
            assert rel_error(got["out_big"], want["out_big"]) <= TOL
        assert all(f.device.startswith("cl:0") for f in futures)
        (stats,) = engine.stats()
        assert stats.frames == 4 and stats.errors == 0 and stats.busy_s > 0
        assert 0 < stats.latency_p50_ms <= stats.latency_p95_ms <= stats.latency_p99_ms


def test_save_and_reload_gives_same_outputs(cnn, tmp_path):
    _, nnef_path = cnn
    x = frames(1)[0]
    with Engine(nnef_path) as engine:
        first = engine.run({"image": x})
        saved = engine.save(tmp_path / "saved.nnef")
    with Engine(saved) as again:
        second = again.run({"image": x})
    for name in first:
        np.testing.assert_array_equal(first[name], second[name])


def test_archive_model_runs(cnn, tmp_path, monkeypatch):
    _, nnef_path = cnn
    monkeypatch.setenv("OCL_INFER_CACHE", str(tmp_path / "cache"))
    archive = tmp_path / "cnn.nnef.tgz"
    with tarfile.open(archive, "w:gz") as tar:
        for f in sorted(nnef_path.iterdir()):
            tar.add(f, arcname=f.name)
    x = frames(1)[0]
    with Engine(archive) as a, Engine(nnef_path) as b:
        np.testing.assert_array_equal(a.run({"image": x})["out_big"], b.run({"image": x})["out_big"])


def test_program_cache_on_disk_skips_compiles(cnn, tmp_path, monkeypatch):
    _, nnef_path = cnn
    monkeypatch.setenv("OCL_INFER_CACHE", str(tmp_path / "cache"))
    with Engine(nnef_path) as first:
        compiled = first.runtimes[0].programs.compiles
        # binaries are written by a background child after start-up, not on the way to the first frame
        assert first.wait_for_program_cache(timeout=120)
    bins = sorted((tmp_path / "cache" / "kernels").glob("*.bin"))
    assert compiled > 0 and len(bins) == compiled
    assert not list((tmp_path / "cache" / "kernels").glob(".jobs-*")), "the writer removes its job file"
    assert not list((tmp_path / "cache" / "kernels").glob(".tmp-*")), "no half-written binary is left"
    with Engine(nnef_path) as second:
        assert second.runtimes[0].programs.compiles == 0
        assert second.runtimes[0].programs.hits == compiled
        x = frames(1)[0]
        with Engine(nnef_path, disk_cache=False) as fresh:
            np.testing.assert_array_equal(second.run({"image": x})["out_big"], fresh.run({"image": x})["out_big"])


def test_input_checks_name_the_tensor(cnn):
    _, nnef_path = cnn
    with Engine(nnef_path) as engine:
        with pytest.raises(ModelError, match=r"input 'image' has shape \[1, 3, 52, 59\]"):
            engine.run({"image": np.zeros((1, 3, 52, 59), np.float32)})
        with pytest.raises(ModelError, match=r"missing \['image'\]"):
            engine.run({"img": np.zeros(INPUT_SHAPE, np.float32)})


@pytest.mark.parametrize("wait", ["spin", "block", "auto"])
def test_every_wait_mode_returns_the_finished_frame(cnn, wait, monkeypatch):
    """A spinning wait (EngineOptions.wait) returns only once the frame is done: poisoned buffers, every output
    read back matches onnxruntime, frame after frame; "auto" spins on CPU devices only. Each frame follows an
    idle spell long enough to take the spinning path (IDLE_BEFORE_SPIN_S), and one follows none."""
    from ocl_infer.engine.runtime import executor
    from ocl_infer.engine.runtime.executor import IDLE_BEFORE_SPIN_S

    spins = []
    real = executor.spin_until_complete
    monkeypatch.setattr(executor, "spin_until_complete", lambda q, ev: (spins.append(ev), real(q, ev)))

    onnx_path, nnef_path = cnn
    with Engine(nnef_path, poison=True, wait=wait) as engine:
        (rt,) = engine.runtimes
        assert rt.spin_wait == (wait == "spin" or (wait == "auto" and engine.devices[0].type == "cpu"))
        xs = frames(3)
        wants = [run_onnx(onnx_path, {"image": x}) for x in xs]
        spins.clear()  # the engine's warm-up frame at start follows no frame: it may have spun
        gots = []
        for x in xs:
            time.sleep(1.5 * IDLE_BEFORE_SPIN_S)
            gots.append(engine.run({"image": x}))
        gots.append(engine.run({"image": xs[0]}))  # back to back: no idle spell
        for got, want in zip(gots, [*wants, wants[0]], strict=True):
            for name in want:
                assert rel_error(got[name], want[name]) <= TOL, (wait, name)
    assert len(spins) == (3 if rt.spin_wait else 0)  # the frames after an idle spell, not the back-to-back one


def test_bad_options_and_selectors(cnn):
    _, nnef_path = cnn
    with pytest.raises(ConfigError, match="unknown engine option"):
        Engine(nnef_path, turbo=True)
    with pytest.raises(ConfigError, match="wait must be one of"):
        Engine(nnef_path, wait="busy")
    with pytest.raises(DeviceError, match="matches no OpenCL device"):
        Engine(nnef_path, devices="no-such-device-xyz")


def test_unsupported_op_fails_at_load(tmp_path):
    """ArgMax converts (to NNEF's argmax_reduce) but has no kernel: refused at load with the op named."""
    model = make_model([helper.make_node("Relu", ["x"], ["r"]), helper.make_node("ArgMax", ["r"], ["i"], axis=1),
                        helper.make_node("Cast", ["i"], ["y"], to=TensorProto.FLOAT)], {"x": (1, 4)}, ["y"])
    path = convert(model, tmp_path / "argmax.nnef")
    with pytest.raises(ModelError, match=r"unsupported op 'argmax_reduce'.*supported ops:"):
        Engine(path)


def _letterbox(img: np.ndarray, size: int = 416) -> np.ndarray:
    """BGR uint8 -> 1x3xSxS RGB float in [0, 1], aspect kept, grey (0.5) borders."""
    import cv2

    h, w = img.shape[:2]
    scale = min(size / h, size / w)
    nh, nw = round(h * scale), round(w * scale)
    resized = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_LINEAR)
    canvas = np.full((size, size, 3), 127, np.uint8)
    top, left = (size - nh) // 2, (size - nw) // 2
    canvas[top:top + nh, left:left + nw] = resized
    rgb = canvas[:, :, ::-1].astype(np.float32) / 255.0
    return np.ascontiguousarray(rgb.transpose(2, 0, 1)[None])


@pytest.mark.slow
def test_yolov3_tiny_on_real_frames_matches_onnxruntime(model_dir, data_dir):
    import cv2

    images = [cv2.imread(str(data_dir / "dog.jpg"))]
    cap = cv2.VideoCapture(str(data_dir / "vtest.avi"))
    for _ in range(2):
        ok, frame = cap.read()
        assert ok
        images.append(frame)
    cap.release()
    with Engine(model_dir / "model.nnef", poison=True) as engine:
        (name,) = engine.inputs
        assert len(engine.outputs) == 2
        for img in images:
            x = _letterbox(img)
            got = engine.run({name: x})
            want = run_onnx(model_dir / "model.onnx", {name: x})
            for out in want:
                assert rel_error(got[out], want[out]) <= TOL, out


def test_cold_start_shares_compiling_with_a_prewarm_child(cnn, tmp_path, monkeypatch):
    """With nothing on disk the engine starts a child compiling from the last step; the child stops by itself
    once the engine is ready, leaves no files behind, and the engine's results are unchanged. A warm start
    starts no child."""
    _, nnef_path = cnn
    monkeypatch.setenv("OCL_INFER_CACHE", str(tmp_path / "cache"))
    kernels = tmp_path / "cache" / "kernels"
    x = frames(1)[0]
    with Engine(nnef_path) as cold:
        children = list(cold._children)
        assert len(children) == 1
        assert children[0].wait(timeout=60) == 0, "the child ends by itself once its stdin is closed"
        assert cold.wait_for_program_cache(timeout=120)
        got = cold.run({"image": x})
    assert not list(kernels.glob(".prewarm-*")), "the child deletes the plan it was given"
    with Engine(nnef_path) as warm, Engine(nnef_path, disk_cache=False) as reference:
        assert warm._children == [] and warm.runtimes[0].programs.compiles == 0
        for name, want in reference.run({"image": x}).items():
            np.testing.assert_array_equal(got[name], want)


def test_reverse_bind_stops_early_and_keeps_plan_order(cnn):
    """The prewarm child's walk: from the last step backwards, stopping when told; what it bound stays in plan
    order, and a step launched once (primed) leaves the runtime usable."""
    from ocl_infer.engine.runtime import DeviceRuntime

    _, nnef_path = cnn
    with Engine(nnef_path, disk_cache=False, warmup=False) as engine:
        plan, device = engine.plan, engine.runtimes[0].device
        steps = [s for s in plan.steps if s.variant != "alias"]
        asked = []
        rt = DeviceRuntime(plan, device, "t", disk_cache=False, prime=True, reverse=True,
                           stop=lambda: asked.append(1) or len(asked) > 3)
        try:
            names = list(dict.fromkeys(rt.launch_steps))
            assert names == [f"{s.name} [{s.variant}]" for s in steps[-3:]]
        finally:
            rt.close()
