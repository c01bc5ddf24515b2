"""Bag replay over real DDS: play camera topics with /clock, run vehicle_detector node(s), record outputs.

`run_replay(ReplayOptions)` is the whole session; `BagPlayer`, `OutputRecorder` and `DetectorProcesses` are
its parts. Report maths lives in `ocl_infer.bag.report` (no rclpy), fed by what the recorder wrote.
"""

from ocl_infer.ros.replay.session import ReplayOptions, ReplayResult, run_replay

__all__ = ["ReplayOptions", "ReplayResult", "run_replay"]
