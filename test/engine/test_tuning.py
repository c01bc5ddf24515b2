"""Per-device kernel tuning (engine/tuning.py): the table on disk, its use by the planner and the engine, and
the tuner. Outputs of tuned plans are checked against onnxruntime; nothing here asserts a time."""

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from onnx import helper
from onnx_models import convert, make_model, normal_floats, rel_error, run_onnx

from ocl_infer.engine.plan import DeviceFacts, make_plan

rng = np.random.default_rng(8)


rand = normal_floats(rng)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private OCL_INFER_CACHE: tuning tables (and program binaries) go there, not to the shared cache."""
    monkeypatch.setenv("OCL_INFER_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def two_conv_model(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any, np.ndarray]:
    """x 1x16x18x18 -> conv 3x3 16->128 + leaky + 2x2 max pool (covec, pool fused) -> conv 3x3 128->112 + relu
    (Winograd): one step of each tunable family. Returns (NNEF folder, ONNX model, input)."""
    x = rand(1, 16, 18, 18)
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("LeakyRelu", ["c1"], ["a1"], alpha=0.1),
             helper.make_node("MaxPool", ["a1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c2"], ["y"])]
    inits = {"w1": rand(128, 16, 3, 3) / np.float32(12), "b1": rand(128),
             "w2": rand(112, 128, 3, 3) / np.float32(34), "b2": rand(112)}
    model = make_model(nodes, {"x": x.shape}, ["y"], inits)
    return convert(model, tmp_path_factory.mktemp("tuning") / "model.nnef"), model, x


def entry(params: dict[str, Any], ms: float = 1.0) -> Any:
    from ocl_infer.engine.tuning import TuneEntry

    return TuneEntry(params=params, ms=ms, rule={"blocking": [1, 1]}, rule_ms=2 * ms, layer="conv")


def device_key() -> str:
    from ocl_infer.engine.devices.facts import facts_of
    from ocl_infer.engine.devices.selection import select_devices

    return facts_of(select_devices(None)[0]).key


def non_rule_choices(graph: Any, key: str) -> Any:
    """A table for `key` choosing, for every tunable step, the last candidate (never the rule's here)."""
    from ocl_infer.engine.tuning import TuningTable, tunable_steps

    plan = make_plan(graph, DeviceFacts(key=key))
    table = TuningTable(key)
    chosen = {}
    for step, cls, sig in tunable_steps(plan):
        cands = cls.candidates(step, plan.shapes)
        assert cands[-1] != cands[0]
        table.put(cls.variant, sig, entry(cands[-1]))
        chosen[cls.variant] = cands[-1]
    assert set(chosen) == {"covec", "winograd"}
    return table, chosen


def test_table_round_trip(cache: Path) -> None:
    from ocl_infer.engine.tuning import TuningTable, table_path

    table = TuningTable("Portable CL | dev A | 1.0")
    table.put("covec", "n1 ic16", entry({"blocking": [4, 2, 2], "local": [1, 1, 1]}, 0.5))
    table.put("winograd", "n1 ic64", entry({"blocking": [7, 3], "in_local": [16, 1], "out_local": [16, 1, 1]}))
    path = table.save()
    assert path == table_path("Portable CL | dev A | 1.0") and path.parent == cache / "tuning"
    assert json.loads(path.read_text())["device"] == "Portable CL | dev A | 1.0"
    back = TuningTable.load("Portable CL | dev A | 1.0")
    assert back.entries == table.entries
    assert back.get("covec", "n1 ic16").params == {"blocking": [4, 2, 2], "local": [1, 1, 1]}
    assert back.get("covec", "n1 ic64") is None


def test_a_shipped_table_serves_the_same_device_with_any_driver_until_the_user_tunes(cache: Path,
                                                                                    tmp_path: Path) -> None:
    from ocl_infer.engine.tuning import TuningTable

    shipped = tmp_path / "shipped"
    made = TuningTable("NVIDIA CUDA | NVIDIA H200 | 580.1", path=shipped / "h200.json")
    made.put("gemm", "n1 ic64", entry({"blocking": [16, 16, 8, 8, 16, 1]}))
    made.save()
    newer_driver = TuningTable.load("NVIDIA CUDA | NVIDIA H200 | 590.2", shipped=shipped)
    assert newer_driver.get("gemm", "n1 ic64").params == {"blocking": [16, 16, 8, 8, 16, 1]}
    assert newer_driver.path.parent == cache / "tuning"  # tuning later writes the user's own table
    assert len(TuningTable.load("NVIDIA CUDA | NVIDIA H100 | 580.1", shipped=shipped)) == 0  # another GPU
    newer_driver.put("gemm", "n1 ic32", entry({"blocking": [8, 8, 4, 4, 16, 1]}))  # the user tunes a layer more
    newer_driver.save()
    mine = TuningTable.load("NVIDIA CUDA | NVIDIA H200 | 590.2", shipped=None)  # the user's file alone
    assert mine.get("gemm", "n1 ic64") is not None and mine.get("gemm", "n1 ic32") is not None


def test_save_is_atomic_and_keeps_the_old_table_on_failure(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ocl_infer.engine import tuning

    table = tuning.TuningTable("dev")
    table.put("covec", "sig", entry({"blocking": [7, 2, 1]}))
    path = table.save()
    before = path.read_bytes()

    def dump_then_fail(obj: Any, f: Any, **kw: Any) -> None:
        f.write('{"format": "ocl_infer tun')  # half a file, then the disk fills up
        raise OSError("No space left on device")

    table.put("covec", "sig2", entry({"blocking": [2, 4, 2]}))
    with monkeypatch.context() as m, pytest.raises(OSError, match="No space"):
        m.setattr(tuning.json, "dump", dump_then_fail)
        table.save()
    assert path.read_bytes() == before
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left behind
    table.save()
    assert len(tuning.TuningTable.load("dev")) == 2


def test_corrupt_foreign_and_malformed_files_are_ignored_with_a_warning(
        cache: Path, caplog: pytest.LogCaptureFixture) -> None:
    from ocl_infer.engine.tuning import TuningTable, table_path

    path = table_path("mine")
    path.parent.mkdir(parents=True)
    caplog.set_level(logging.WARNING, logger="ocl_infer.engine.tuning")
    path.write_text('{"format": "ocl_infer tuning table", "entr')
    assert len(TuningTable.load("mine")) == 0
    assert "unreadable" in caplog.text and str(path) in caplog.text

    caplog.clear()
    other = TuningTable("someone else's GPU", path=path)  # a file for another device under this name
    other.put("covec", "sig", entry({"blocking": [7, 2, 1]}))
    other.save()
    assert len(TuningTable.load("mine")) == 0
    assert "written for device" in caplog.text

    caplog.clear()
    doc = {"format": "ocl_infer tuning table", "version": 1, "device": "mine",
           "entries": {"covec | good": {"params": {"blocking": [7, 2, 1]}, "ms": 1, "rule": {}, "rule_ms": 2},
                       "covec | bad": {"params": {"blocking": "seven"}, "ms": 1, "rule": {}, "rule_ms": 2}}}
    path.write_text(json.dumps(doc))
    table = TuningTable.load("mine")
    assert list(table.entries) == ["covec | good"]
    assert "malformed" in caplog.text and "covec | bad" in caplog.text


def test_tuned_entries_change_the_plan_and_outputs_still_match_onnxruntime(
        cache: Path, two_conv_model: tuple[Path, Any, np.ndarray]) -> None:
    from ocl_infer.engine import Engine
    from ocl_infer.engine.graph import load_graph
    from ocl_infer.engine.kernels.registry import kernel_for

    path, model, x = two_conv_model
    key = device_key()
    table, chosen = non_rule_choices(load_graph(path), key)
    plan = make_plan(load_graph(path), DeviceFacts(key=key), tuning=table)
    convs = [s for s in plan.steps if s.kind == "conv"]
    assert [s.variant for s in convs] == ["covec", "winograd"]
    for step in convs:
        assert step.attrs["tuned"] and step.attrs["blocking"] == chosen[step.variant]["blocking"]
    cov = kernel_for(convs[0])(convs[0], plan.shapes)  # as the runtime re-creates it from the plan
    assert [cov.np_, cov.nv, cov.ry] == chosen["covec"]["blocking"] and list(cov.local) == chosen["covec"]["local"]
    win = kernel_for(convs[1])(convs[1], plan.shapes)
    assert [win.nt, win.nv] == chosen["winograd"]["blocking"]
    assert list(win.in_local) == chosen["winograd"]["in_local"]

    table.save()
    want = run_onnx(model, {"x": x})["y"]
    with Engine(path, poison=True, disk_cache=False) as engine:
        assert all(s.attrs.get("tuned") for s in engine.plan.steps if s.kind == "conv")
        assert rel_error(engine.run({"x": x})["y"], want) <= 1e-4
    with Engine(path, poison=True, disk_cache=False, tuning=False) as engine:  # the rules, same answer
        assert not any(s.attrs.get("tuned") for s in engine.plan.steps)
        assert rel_error(engine.run({"x": x})["y"], want) <= 1e-4


def test_a_table_never_leaks_to_another_device(cache: Path, two_conv_model: tuple[Path, Any, np.ndarray]) -> None:
    from ocl_infer.engine import Engine
    from ocl_infer.engine.graph import load_graph
    from ocl_infer.engine.tuning import TuningTable, table_path

    path = two_conv_model[0]
    graph = load_graph(path)
    table, _ = non_rule_choices(graph, "Portable CL | some other device | 9.9")
    table.save()
    assert table_path("Portable CL | some other device | 9.9") != table_path(device_key())
    assert len(TuningTable.load(device_key())) == 0
    for key in (device_key(), "", "Portable CL | some other device | 9.8"):
        plan = make_plan(graph, DeviceFacts(key=key), tuning=TuningTable.load(key))
        assert not any(s.attrs.get("tuned") for s in plan.steps), key
    with Engine(path, disk_cache=False) as engine:
        assert not any(s.attrs.get("tuned") for s in engine.plan.steps)


def test_an_entry_that_is_not_a_candidate_is_ignored(cache: Path, two_conv_model: tuple[Path, Any, np.ndarray],
                                                     caplog: pytest.LogCaptureFixture) -> None:
    from ocl_infer.engine.graph import load_graph
    from ocl_infer.engine.tuning import TuningTable, tunable_steps

    graph = load_graph(path := two_conv_model[0])
    plan = make_plan(graph, DeviceFacts(key="k"))
    table = TuningTable("k")
    for _, cls, sig in tunable_steps(plan):  # e.g. a hand edit: RY 1 cannot hold a fused 2x2 pool
        table.put(cls.variant, sig, entry({"blocking": [7, 2, 1], "local": [1, 1, 1]}))
    with caplog.at_level(logging.WARNING, logger="ocl_infer.engine.tuning"):
        plan = make_plan(load_graph(path), DeviceFacts(key="k"), tuning=table)
    assert not any(s.attrs.get("tuned") for s in plan.steps)
    assert "is not a candidate" in caplog.text


def test_tuner_drops_wrong_candidates_and_engine_tune_saves_the_winners(
        cache: Path, two_conv_model: tuple[Path, Any, np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    from ocl_infer.engine import Engine
    from ocl_infer.engine.devices.selection import select_devices
    from ocl_infer.engine.graph import load_graph
    from ocl_infer.engine.kernels.conv_covec import ConvCovec
    from ocl_infer.engine.kernels.conv_winograd import ConvWinograd
    from ocl_infer.engine.tuning import TuningTable, table_path, tune_graph

    real = {cls: cls.candidates for cls in (ConvCovec, ConvWinograd)}

    def few_and_one_wrong(cls: Any, step: Any, shapes: Any) -> list[dict[str, Any]]:
        """Three real candidates (fewer programs to compile) and one that computes something else (tanh in
        place of the layer's activation): the tuner must find it wrong and drop it however fast it is."""
        cands = real[cls].__func__(cls, step, shapes)
        return [*cands[:2], cands[-1], {**cands[1], "activation": ("tanh", 0.0, 0.0)}]

    for cls in real:
        monkeypatch.setattr(cls, "candidates", classmethod(few_and_one_wrong))
    path, model, x = two_conv_model
    info = select_devices(None)[0]
    table = TuningTable("test")
    results = tune_graph(load_graph(path), info, table, rounds=1, reps=1)
    assert [(r.variant, r.tried, r.dropped) for r in results] == [("covec", 4, 1), ("winograd", 4, 1)]
    for r in results:
        assert "activation" not in r.best and r.best_ms > 0 and r.rule_ms > 0
        assert table.get(r.variant, r.signature).params == r.best

    with Engine(path, poison=True, disk_cache=False, tune=True) as engine:
        assert table_path(device_key()).is_file()
        assert rel_error(engine.run({"x": x})["y"], run_onnx(model, {"x": x})["y"]) <= 1e-4
    saved = TuningTable.load(device_key())
    assert len(saved) == 2 and all("activation" not in e.params for e in saved.entries.values())


def test_cli_tune_prints_rule_vs_tuned_and_saves_the_table(
        cache: Path, two_conv_model: tuple[Path, Any, np.ndarray], monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from ocl_infer.cli.main import main
    from ocl_infer.engine.kernels.conv_covec import ConvCovec
    from ocl_infer.engine.kernels.conv_winograd import ConvWinograd
    from ocl_infer.engine.tuning import TuningTable

    for cls in (ConvCovec, ConvWinograd):  # the first three candidates: fewer programs to compile
        monkeypatch.setattr(cls, "candidates", classmethod(lambda c, s, sh, f=cls.candidates: f(s, sh)[:3]))
    assert main(["tune", str(two_conv_model[0]), "--rounds", "1", "--reps", "1"]) == 0
    out = capsys.readouterr().out
    assert "| layer | kernel | rule | rule ms | tuned | tuned ms | speed-up |" in out
    assert "| conv1 | covec | blocking " in out and "| conv2 | winograd | blocking " in out
    assert "programs to compile at a cold start: rule 2, tuned " in out
    assert len(TuningTable.load(device_key())) == 2
    assert main(["tune", str(two_conv_model[0]), "--rounds", "0"]) == 2  # a clear error, no traceback


@pytest.mark.parametrize("confirmed", [True, False])
def test_a_screened_winner_must_be_confirmed_against_the_rule(
        cache: Path, two_conv_model: tuple[Path, Any, np.ndarray], monkeypatch: pytest.MonkeyPatch,
        confirmed: bool) -> None:
    """Device times replaced by fixed ones (the decision, not the clock, is under test): candidate 1 looks twice
    as fast as the rule in the screening runtime; in the paired confirmation runtime it does again or not."""
    from ocl_infer.engine.devices.selection import select_devices
    from ocl_infer.engine.graph import load_graph
    from ocl_infer.engine.kernels.conv_covec import ConvCovec
    from ocl_infer.engine.kernels.conv_winograd import ConvWinograd
    from ocl_infer.engine.runtime import DeviceRuntime
    from ocl_infer.engine.tuning import TuningTable, tunable_steps, tune_graph

    for cls in (ConvCovec, ConvWinograd):
        monkeypatch.setattr(cls, "candidates", classmethod(lambda c, s, sh, f=cls.candidates: f(s, sh)[:3]))
    fast: list[dict[str, Any]] = []
    real_profile = DeviceRuntime.profile

    def fixed_profile(self: Any, feeds: Any) -> list[tuple[str, float]]:
        real_profile(self, feeds)  # the launches still run
        steps = {f"{s.name} [{s.variant}]": s for s in self.plan.steps}
        pairs = len(self.plan.steps) > 4  # warm-up + 3 candidates when screening; warm-up + 8 in pairs

        def ms(name: str) -> float:
            is_fast = any(all(list(steps[name].attrs[k]) == v for k, v in p.items()) for p in fast)
            return 1.0 if is_fast and (confirmed or not pairs) else 2.0
        return [(name, ms(name)) for name in steps]

    monkeypatch.setattr(DeviceRuntime, "profile", fixed_profile)
    graph = load_graph(two_conv_model[0])
    plan = make_plan(graph, DeviceFacts())
    fast += [cls.candidates(step, plan.shapes)[1] for step, cls, _ in tunable_steps(plan)]
    results = tune_graph(graph, select_devices(None)[0], TuningTable("test"), rounds=1, reps=1)
    for r, f in zip(results, fast, strict=True):
        assert r.rule_ms == 2.0
        assert (r.best, r.best_ms) == ((f, 1.0) if confirmed else (r.rule, 2.0))


def test_tuner_handles_a_fused_residual_add(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """relu(conv(x) + x): covec with the add fused (a 4th, non-constant input); tuned plan vs onnxruntime."""
    from ocl_infer.engine import Engine
    from ocl_infer.engine.kernels.conv_covec import ConvCovec

    monkeypatch.setattr(ConvCovec, "candidates",
                        classmethod(lambda c, s, sh, f=ConvCovec.candidates: f(s, sh)[:3]))
    x = rand(1, 16, 12, 12)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
             helper.make_node("Add", ["c", "x"], ["s"]), helper.make_node("Relu", ["s"], ["y"])]
    model = make_model(nodes, {"x": x.shape}, ["y"], {"w": rand(16, 16, 3, 3) / np.float32(12), "b": rand(16)})
    path = convert(model, tmp_path / "res.nnef")
    with Engine(path, poison=True, disk_cache=False, tune=True) as engine:
        (conv,) = [s for s in engine.plan.steps if s.kind == "conv"]
        assert conv.variant == "covec" and conv.attrs.get("residual") and conv.attrs.get("tuned")
        assert rel_error(engine.run({"x": x})["y"], run_onnx(model, {"x": x})["y"]) <= 1e-4


def test_cli_tune_that_fails_on_a_later_device_saves_no_table(
        cache: Path, two_conv_model: tuple[Path, Any, np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    """Tables are saved only when every device was tuned: a failure on the second leaves the disk as it was."""
    from ocl_infer.cli.main import main
    from ocl_infer.engine import tuning
    from ocl_infer.engine.devices import selection
    from ocl_infer.engine.kernels.conv_covec import ConvCovec
    from ocl_infer.engine.kernels.conv_winograd import ConvWinograd
    from ocl_infer.errors import KernelError

    for cls in (ConvCovec, ConvWinograd):  # the first candidate only: fewer programs to compile
        monkeypatch.setattr(cls, "candidates", classmethod(lambda c, s, sh, f=cls.candidates: f(s, sh)[:1]))
    first = selection.select_devices(None)
    monkeypatch.setattr(selection, "select_devices", lambda _selectors: first * 2)  # "two devices"
    calls = []
    real = tuning.tune_graph

    def tune_then_fail(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if len(calls) == 2:
            raise KernelError("the second device failed")
        return real(*args, **kwargs)

    monkeypatch.setattr(tuning, "tune_graph", tune_then_fail)
    assert main(["tune", str(two_conv_model[0]), "--rounds", "1", "--reps", "1"]) == 2
    assert len(calls) == 2
    assert not (cache / "tuning").exists() or not any((cache / "tuning").iterdir())
