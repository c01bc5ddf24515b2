"""From a discovered device to the facts kernel choice reads (`DeviceFacts`), and the kernel families a caller
may force. It lives with the devices because it describes one; the planner, the tuner and the engine import it
from here, so none of them has to import another to learn what a device is."""

from ocl_infer.engine.devices.discovery import DeviceInfo
from ocl_infer.engine.plan.model import DeviceFacts
from ocl_infer.errors import ConfigError

KERNEL_FAMILIES = ("auto", "cpu", "gpu")


def facts_of(info: DeviceInfo, kernels: str = "auto") -> DeviceFacts:
    """The device facts kernel choice reads. `kernels` picks the kernel family: "auto" takes the GPU family on
    GPU and accelerator devices and the CPU family elsewhere; "cpu"/"gpu" force one (tests run each family on
    every device, and a user can try the other family on an unusual device)."""
    if kernels not in KERNEL_FAMILIES:
        raise ConfigError(f"kernels must be one of {list(KERNEL_FAMILIES)}, got {kernels!r}")
    family = "" if kernels == "auto" else kernels  # "": DeviceFacts takes it from the device type
    return DeviceFacts(type=info.type, compute_units=info.compute_units, local_mem_bytes=info.local_mem_bytes,
                       max_work_group_size=info.max_work_group_size, fp16=info.fp16, family=family,
                       key=f"{info.platform} | {info.name} | {info.driver}", base_align_bytes=info.base_align_bytes)
