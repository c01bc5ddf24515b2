"""ocl_infer: vehicle detection on a multi-device OpenCL NNEF engine, with deadline monitoring.

Layers, imports pointing down only: ``ros`` → ``detection`` → ``engine``; ``cli`` uses all three.
The engine and detection layers never import rclpy.
"""

__version__ = "0.1.0"
