"""The node's latest-slots live in the ROS-free scheduling layer (fair shares between cameras); this name stays
for existing imports."""

from ocl_infer.scheduling.latest_slots import LatestSlots

__all__ = ["LatestSlots"]
