"""BatchPolicy: batches only where measured time per frame is lower, probes again later, fits the deadline."""

from __future__ import annotations

import pytest

from ocl_infer.errors import ConfigError
from ocl_infer.scheduling import BatchPolicy


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_auto_measures_each_size_then_keeps_the_faster_per_frame():
    clock = FakeClock()
    policy = BatchPolicy([2, 4], "auto", probe_every_s=30.0, clock=clock)
    assert policy.choose([5.0], 100.0) == 1  # one waiting: nothing to batch
    assert policy.choose([5.0, 1.0, 1.0, 1.0], 100.0) == 4  # never ran: try it
    policy.record(4, 200.0)  # 50 ms per frame
    assert policy.choose([5.0, 1.0, 1.0, 1.0], 1000.0) == 2
    policy.record(2, 80.0)  # 40 ms per frame
    assert policy.choose([5.0, 1.0], 1000.0) == 1  # one frame alone has not been measured yet
    policy.record(1, 30.0)
    assert policy.choose([5.0, 1.0, 1.0, 1.0], 1000.0) == 1  # 30 ms alone beats 40 and 50 per frame
    policy.record(2, 40.0)
    policy.record(2, 40.0)
    policy.record(2, 40.0)
    policy.record(2, 40.0)  # the moving average drops below 30 per frame after a few fast batches
    assert policy.per_frame_ms(2) < 30.0
    assert policy.choose([5.0, 1.0, 1.0, 1.0], 1000.0) == 2
    clock.now = 31.0  # size 4 not run for a while: probe it again
    assert policy.choose([5.0, 1.0, 1.0, 1.0], 1000.0) == 4


def test_a_batch_that_would_miss_the_deadline_shrinks():
    policy = BatchPolicy([2, 3], "always", clock=FakeClock())
    policy.record(1, 30.0)
    policy.record(2, 40.0)
    policy.record(3, 50.0)
    assert policy.choose([10.0, 10.0, 10.0], 100.0) == 3
    assert policy.choose([55.0, 10.0, 10.0], 100.0) == 2  # 55 + 50 > 100, 55 + 40 fits
    assert policy.choose([65.0, 10.0, 10.0], 100.0) == 1
    assert policy.choose([10.0, 10.0, 60.0], 100.0) == 2  # the third frame is the old one


def test_off_never_batches_and_bad_modes_are_refused():
    policy = BatchPolicy([2], "off")
    policy.record(1, 30.0)
    policy.record(2, 10.0)
    assert policy.choose([1.0, 1.0], 100.0) == 1
    with pytest.raises(ConfigError, match="batching: 'sometimes'"):
        BatchPolicy([2], "sometimes")


def test_the_scheduling_layer_imports_neither_ros_nor_the_layers_above():
    import ast
    from pathlib import Path

    import ocl_infer.scheduling as layer

    for path in Path(layer.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            for name in names:
                assert name.split(".")[0] not in {"rclpy", "sensor_msgs", "vision_msgs", "pyopencl"}, (path, name)
                assert not name.startswith(("ocl_infer.ros", "ocl_infer.engine", "ocl_infer.detection")), (path, name)
