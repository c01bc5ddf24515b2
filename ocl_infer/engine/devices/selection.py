"""Device selectors -> devices: "all", an index ("0"), "cl:N", "P:D" (platform:device), a type
("gpu", "cpu", "accelerator") or a case-insensitive name substring. Several selectors may be comma separated."""

from collections.abc import Sequence

from ocl_infer.engine.devices.discovery import DeviceInfo, list_devices
from ocl_infer.errors import DeviceError

DEVICE_TYPES = ("gpu", "cpu", "accelerator")


def _split(devices: str | int | Sequence[str | int] | None) -> list[str]:
    if devices is None:
        return ["0"]
    if isinstance(devices, int):
        return [str(devices)]
    if isinstance(devices, str):
        return [s.strip() for s in devices.split(",") if s.strip()] or ["0"]
    out: list[str] = []
    for d in devices:
        out += _split(d)
    return out


def match_selector(selector: str, infos: Sequence[DeviceInfo]) -> list[DeviceInfo]:
    """The devices one selector names (possibly none)."""
    sel = selector.strip()
    low = sel.lower()
    if low == "all":
        return list(infos)
    if low.startswith("cl:") and low[3:].isdigit():
        i = int(low[3:])
        return [d for d in infos if d.index == i]
    if sel.isdigit():
        return [d for d in infos if d.index == int(sel)]
    if ":" in sel:
        p, _, dv = sel.partition(":")
        if p.isdigit() and dv.isdigit():
            return [d for d in infos if d.platform_index == int(p) and d.device_index == int(dv)]
    if low in DEVICE_TYPES:
        return [d for d in infos if d.type == low]
    return [d for d in infos if low in d.name.lower() or low in d.platform.lower() or low in d.vendor.lower()]


def select_devices(devices: str | int | Sequence[str | int] | None = None,
                   infos: Sequence[DeviceInfo] | None = None) -> list[DeviceInfo]:
    """Resolve selectors (None: the first device) to a list without duplicates, in selector order.

    Raises DeviceError naming the selector that matched nothing and the devices there are."""
    infos = list(infos) if infos is not None else list_devices()
    chosen: list[DeviceInfo] = []
    for sel in _split(devices):
        found = match_selector(sel, infos)
        if not found:
            have = ", ".join(f"{d.label} [{d.type}, platform {d.platform_index}:{d.device_index}]" for d in infos)
            raise DeviceError(f"device selector '{sel}' matches no OpenCL device; devices: {have}")
        chosen += [d for d in found if d not in chosen]
    return chosen


def cl_device(info: DeviceInfo):  # noqa: ANN201 - pyopencl.Device, imported lazily
    """The pyopencl device object for `info`."""
    import pyopencl as cl

    try:
        return cl.get_platforms()[info.platform_index].get_devices()[info.device_index]
    except (cl.Error, IndexError) as err:
        raise DeviceError(f"{info.label}: device disappeared ({err})") from err
