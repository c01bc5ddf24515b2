"""Find OpenCL platforms and devices, and describe them with the facts the engine uses."""

from dataclasses import dataclass

from ocl_infer.errors import DeviceError

NO_PLATFORM_HELP = (
    "no OpenCL platform found. Install your GPU vendor's OpenCL driver, or the portable CPU driver: "
    "sudo apt-get install pocl-opencl-icd ocl-icd-libopencl1 (then check with: clinfo -l)"
)


@dataclass(frozen=True)
class DeviceInfo:
    """One OpenCL device as the engine sees it. `index` is its place in `list_devices()` order."""

    index: int
    platform_index: int
    device_index: int
    platform: str
    name: str
    vendor: str
    type: str  # "gpu", "cpu", "accelerator" or "other"
    version: str
    driver: str
    compute_units: int
    max_clock_mhz: int
    global_mem_bytes: int
    local_mem_bytes: int
    max_alloc_bytes: int
    max_work_group_size: int
    fp16: bool
    fp64: bool
    # CL_DEVICE_MEM_BASE_ADDR_ALIGN in bytes: where a sub-buffer may start (placed concats and split views)
    base_align_bytes: int = 512

    @property
    def label(self) -> str:
        """Short stable name used in logs, stats and diagnostics, e.g. ``cl:0 (pthread-skylake...)``."""
        return f"cl:{self.index} ({self.name})"


def _device_type(type_bits: int) -> str:
    import pyopencl as cl

    if type_bits & cl.device_type.GPU:
        return "gpu"
    if type_bits & cl.device_type.CPU:
        return "cpu"
    if type_bits & cl.device_type.ACCELERATOR:
        return "accelerator"
    return "other"


def list_devices() -> list[DeviceInfo]:
    """Every device of every platform, in platform order. Raises DeviceError when there is none."""
    try:
        import pyopencl as cl
    except ImportError as err:  # pragma: no cover - pyopencl is a hard dependency
        raise DeviceError(f"pyopencl is not installed ({err}); run `make setup`") from err
    try:
        platforms = cl.get_platforms()
    except cl.Error as err:  # the ICD loader raises when no vendor file is installed
        raise DeviceError(NO_PLATFORM_HELP) from err
    infos: list[DeviceInfo] = []
    for p_index, platform in enumerate(platforms):
        try:
            devices = platform.get_devices()
        except cl.Error:  # a platform without devices of any type
            continue
        for d_index, dev in enumerate(devices):
            extensions = dev.extensions.split()
            infos.append(
                DeviceInfo(
                    index=len(infos),
                    platform_index=p_index,
                    device_index=d_index,
                    platform=platform.name.strip(),
                    name=dev.name.strip(),
                    vendor=dev.vendor.strip(),
                    type=_device_type(dev.type),
                    version=dev.version.strip(),
                    driver=dev.driver_version.strip(),
                    compute_units=int(dev.max_compute_units),
                    max_clock_mhz=int(dev.max_clock_frequency),
                    global_mem_bytes=int(dev.global_mem_size),
                    local_mem_bytes=int(dev.local_mem_size),
                    max_alloc_bytes=int(dev.max_mem_alloc_size),
                    max_work_group_size=int(dev.max_work_group_size),
                    fp16="cl_khr_fp16" in extensions,
                    fp64="cl_khr_fp64" in extensions,
                    base_align_bytes=max(int(dev.mem_base_addr_align) // 8, 1),
                )
            )
    if not infos:
        raise DeviceError(NO_PLATFORM_HELP)
    return infos
