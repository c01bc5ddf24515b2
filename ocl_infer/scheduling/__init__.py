"""Scheduling: which waiting camera frames a worker takes next, and whether to run them as one batch.

No ROS and no OpenCL here: the node feeds frames in and gets decisions out, so the policies are tested directly
(test/scheduling/). `LatestSlots` keeps one frame per camera and shares the worker fairly between cameras;
`BatchPolicy` decides from measured times how many waiting frames to run at once.
"""

from ocl_infer.scheduling.batching import BatchPolicy
from ocl_infer.scheduling.latest_slots import LatestSlots

__all__ = ["BatchPolicy", "LatestSlots"]
