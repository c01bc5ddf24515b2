"""OpenCL device discovery, selection and (multi-device) dispatch. Only this package and `runtime/` import pyopencl."""

from ocl_infer.engine.devices.discovery import DeviceInfo, list_devices

__all__ = ["DeviceInfo", "list_devices"]
