"""ament_python package: `colcon build` on a ROS 2 install, or `pip install -e .` into a plain venv."""

from pathlib import Path

from setuptools import find_packages, setup

PACKAGE = "ocl_infer"


def data_files_under(folder: str) -> list[tuple[str, list[str]]]:
    """Install every file of `folder` under share/ocl_infer/<folder>, keeping sub-folders."""
    entries: dict[str, list[str]] = {}
    for path in sorted(Path(folder).rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            entries.setdefault(f"share/{PACKAGE}/{path.parent}", []).append(str(path))
    return list(entries.items())


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    package_data={PACKAGE: ["py.typed", "**/*.cl", "**/*.xml", "**/*.json"]},
    include_package_data=True,
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        *data_files_under("launch"),
        *data_files_under("config"),
    ],
    python_requires=">=3.10",
    install_requires=["numpy", "pyopencl", "nnef", "nnef-tools", "onnx", "opencv-python-headless", "PyYAML",
                      "rosbags"],
    zip_safe=False,
    maintainer="ocl_infer maintainers",
    maintainer_email="maintainers@ocl-infer.dev",
    description="Vehicle detection on a multi-device OpenCL NNEF engine, with deadline monitoring, for ROS 2.",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "ocl-infer = ocl_infer.cli.main:main",
            "vehicle_detector = ocl_infer.ros.vehicle_detector_node:main",
            "managed_vehicle_detector = ocl_infer.ros.vehicle_detector_node:main_managed",
            "deadline_monitor = ocl_infer.ros.deadline_monitor_node:main",
        ],
    },
)
