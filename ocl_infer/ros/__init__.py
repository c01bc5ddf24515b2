"""The ROS 2 layer: the only rclpy code of ocl_infer.

Nodes: `vehicle_detector` (camera frames -> detections, timed against a deadline; its console scripts' light
entry module is `vehicle_detector_node`), its managed (lifecycle) variant `managed_vehicle_detector`, and
`deadline_monitor_node` (end-to-end latency of any input/output topic pair). The deadline rules themselves are
`ocl_infer.deadline` (no ROS). The logic the nodes use lives in plain modules testable without spinning:
`image_conversion` (Image/CompressedImage <-> numpy), `latest_slot`, `frame_stats`, `diagnostics`, `options`
(NodeOptions and the parameter table), `params_file`, `qos`, `messages`, `stamp_matcher`, `dds_profile` (the
shared-memory Fast DDS profile for every process we start), `shutdown` (signals -> clean exit). `replay/` (bag
replay through the nodes) is its own subpackage.
Importing this package imports nothing heavy; import the modules you need.
"""
