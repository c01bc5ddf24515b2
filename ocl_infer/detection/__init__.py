"""Detection: model description (model.json), letterbox, YOLO decode, NMS, class filter, Darknet import, Detector.

Never imports rclpy; runs the network on the OpenCL engine (``backend="opencl"``) or onnxruntime (the
reference). Heavy optional pieces (onnx, nnef_tools) are imported only where used.
"""

from ocl_infer.detection.description import VEHICLE_CLASSES, ModelDescription, load_description
from ocl_infer.detection.detector import Detection, DetectionResult, Detector

__all__ = [
    "VEHICLE_CLASSES",
    "Detection",
    "DetectionResult",
    "Detector",
    "ModelDescription",
    "load_description",
]
