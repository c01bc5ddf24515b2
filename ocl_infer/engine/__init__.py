"""The inference engine: NNEF graph -> plan -> kernels -> runtime, over one or many OpenCL devices."""

from ocl_infer.engine.devices.dispatch import DeviceStats
from ocl_infer.engine.engine import Engine, EngineOptions, TensorSpec
from ocl_infer.engine.kernels.image import ImageToTensor

__all__ = ["DeviceStats", "Engine", "EngineOptions", "ImageToTensor", "TensorSpec"]
