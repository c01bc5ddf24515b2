"""OpenCL device discovery, selection and (multi-device) dispatch. Only this package and `runtime/` import pyopencl."""

from ocl_infer.engine.devices.discovery import DeviceInfo, list_devices
from ocl_infer.engine.devices.selection import cl_device, match_selector, select_devices

__all__ = ["DeviceInfo", "cl_device", "list_devices", "match_selector", "select_devices"]
