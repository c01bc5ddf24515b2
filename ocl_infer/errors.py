"""The root of every error ocl_infer raises on purpose.

Each layer owns a family below :class:`OclInferError`; messages name the file, op, tensor, topic or field at
fault, so a user can act on one line. Callers that must never die (a ROS node's frame loop) catch
:class:`OclInferError` alone and let real bugs surface.
"""


class OclInferError(Exception):
    """Base of all ocl_infer errors."""


class SetupError(OclInferError):
    """The environment lacks something we need (no OpenCL platform, no model prepared, ...)."""


class ModelError(OclInferError):
    """A model file or folder is missing, malformed, unsafe, or uses something we do not support."""


class DeviceError(OclInferError):
    """An OpenCL device could not be found, selected, or failed while running."""


class KernelError(OclInferError):
    """An OpenCL kernel failed to build or was given arguments it cannot handle."""


class DetectionError(OclInferError):
    """A detection model description or detection input is invalid."""


class ImageError(OclInferError):
    """A frame could not be decoded (bad encoding, size, step or compressed data)."""


class BagError(OclInferError):
    """A rosbag2 could not be read or written."""


class ConfigError(OclInferError):
    """A configuration value (parameter, flag or YAML entry) is invalid; the message names it."""
