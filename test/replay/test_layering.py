"""ocl_infer.bag works without ROS: no rclpy, no message packages, nothing from ocl_infer.ros or cli."""

import ast
import subprocess
import sys
from pathlib import Path

BAG = Path(__file__).resolve().parents[2] / "ocl_infer" / "bag"
ROS = {"rclpy", "sensor_msgs", "vision_msgs", "ocl_infer_msgs", "diagnostic_msgs", "rosgraph_msgs", "std_msgs"}


def test_bag_layer_never_imports_ros():
    for path in BAG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            for name in names:
                assert name.split(".")[0] not in ROS, f"{path.name} imports {name}"
                assert not name.startswith(("ocl_infer.ros", "ocl_infer.cli")), f"{path.name} imports {name}"


def test_importing_the_bag_layer_loads_no_rclpy():
    code = ("import sys, ocl_infer.bag, ocl_infer.bag.report, ocl_infer.bag.plot, ocl_infer.bag.overlay; "
            "print(any(m.split('.')[0] == 'rclpy' for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"
