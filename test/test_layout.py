"""Package conventions: layering, ROS package files, and the installed entry points."""

import ast
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PKG = ROOT / "ocl_infer"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_engine_and_detection_never_import_ros() -> None:
    for layer in ("engine", "detection"):
        for path in (PKG / layer).rglob("*.py"):
            bad = {n for n in _imports(path) if n.split(".")[0] in {"rclpy", "sensor_msgs", "vision_msgs"}
                   or n.startswith("ocl_infer.ros") or n.startswith("ocl_infer.cli")}
            assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_deadline_rules_import_neither_ros_nor_another_layer() -> None:
    """ocl_infer/deadline.py is shared by the node, the FrameTiming outcome and the replay report (bag/, which never
    imports rclpy): it may only point down to errors."""
    names = _imports(PKG / "deadline.py")
    bad = {n for n in names if n.split(".")[0] in {"rclpy", "sensor_msgs", "vision_msgs", "ocl_infer_msgs"}
           or (n.startswith("ocl_infer") and n != "ocl_infer.errors")}
    assert not bad, f"ocl_infer/deadline.py imports {sorted(bad)}"


def test_engine_never_imports_detection_or_cv2() -> None:
    for path in (PKG / "engine").rglob("*.py"):
        bad = {n for n in _imports(path) if n.startswith("ocl_infer.detection") or n == "cv2"}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_the_benchmark_library_sits_below_the_cli_and_above_engine_and_detection() -> None:
    for path in (PKG / "benchmark").rglob("*.py"):
        bad = {n for n in _imports(path) if n.startswith(("ocl_infer.cli", "ocl_infer.ros", "rclpy"))}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"
    for layer in ("engine", "detection"):
        for path in (PKG / layer).rglob("*.py"):
            bad = {n for n in _imports(path) if n.startswith("ocl_infer.benchmark")}
            assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def test_only_runtime_and_devices_import_pyopencl() -> None:
    for path in PKG.rglob("*.py"):
        rel = path.relative_to(PKG)
        if "pyopencl" in {n.split(".")[0] for n in _imports(path)}:
            assert rel.parts[:2] in {("engine", "runtime"), ("engine", "devices"), ("engine", "kernels")}, rel


def test_package_xml_is_format_3_ament_python() -> None:
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "ocl_infer"
    assert root.findtext("export/build_type") == "ament_python"
    deps = {e.text for e in root if e.tag.endswith("depend")}
    assert {"rclpy", "sensor_msgs", "vision_msgs", "diagnostic_msgs", "lifecycle_msgs", "python3-pyopencl"} <= deps


def test_ament_marker_and_console_scripts() -> None:
    assert (ROOT / "resource" / "ocl_infer").is_file()
    setup_py = (ROOT / "setup.py").read_text()
    for script in ("ocl-infer =", "vehicle_detector =", "managed_vehicle_detector =", "deadline_monitor ="):
        assert script in setup_py
    assert "script_dir=$base/lib/ocl_infer" in (ROOT / "setup.cfg").read_text()
