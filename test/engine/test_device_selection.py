"""Device selectors on a made-up machine (no OpenCL needed) and on the real one."""

import pytest

from ocl_infer.engine.devices import DeviceInfo, list_devices, select_devices
from ocl_infer.errors import DeviceError


def info(index: int, platform: int, device: int, name: str, type_: str) -> DeviceInfo:
    return DeviceInfo(index=index, platform_index=platform, device_index=device, platform=f"Plat{platform}",
                      name=name, vendor="V", type=type_, version="OpenCL 3.0", driver="1", compute_units=2,
                      max_clock_mhz=1000, global_mem_bytes=2**30, local_mem_bytes=2**16, max_alloc_bytes=2**28,
                      max_work_group_size=256, fp16=False, fp64=True)


MACHINE = [info(0, 0, 0, "pthread-cpu", "cpu"), info(1, 1, 0, "GeForce RTX", "gpu"),
           info(2, 1, 1, "GeForce GTX", "gpu"), info(3, 2, 0, "FPGA thing", "accelerator")]


@pytest.mark.parametrize("sel,want", [
    (None, [0]), ("all", [0, 1, 2, 3]), ("2", [2]), (2, [2]), ("cl:3", [3]), ("1:1", [2]), ("gpu", [1, 2]),
    ("cpu", [0]), ("accelerator", [3]), ("rtx", [1]), ("geforce", [1, 2]), (["cl:2", "0"], [2, 0]),
    ("gpu,cpu", [1, 2, 0]), (["gpu", "rtx"], [1, 2]), ("Plat2", [3]),
])
def test_selectors(sel, want):
    assert [d.index for d in select_devices(sel, MACHINE)] == want


@pytest.mark.parametrize("sel", ["cl:9", "7", "3:0", "tpu-of-dreams", ["0", "nope"]])
def test_selector_without_match_names_it_and_lists_devices(sel):
    with pytest.raises(DeviceError) as err:
        select_devices(sel, MACHINE)
    assert "matches no OpenCL device" in str(err.value) and "cl:1 (GeForce RTX) [gpu, platform 1:0]" in str(err.value)


def test_real_machine_first_device_is_default():
    devices = list_devices()
    assert select_devices(None) == devices[:1]
    assert select_devices("all") == devices
