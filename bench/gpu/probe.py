"""Record the machine and what OpenCL sees there; exit 0 only when a usable device is present (run.sh skips the
OpenCL steps otherwise, and tries OCL_ICD_FILENAMES when the vendor folder gave no platform).

    python3 bench/gpu/probe.py [--fragment NAME]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
from importlib import metadata

from common import DRY, Fragment, log

PACKAGES = ("numpy", "pyopencl", "nnef", "nnef_tools", "onnx", "onnxruntime", "opencv-python-headless", "torch",
            "pytest", "pytools", "platformdirs", "siphash24", "typing_extensions", "six")
ENV_VARS = ("OCL_ICD_VENDORS", "OCL_ICD_FILENAMES", "LD_LIBRARY_PATH", "OCL_INFER_CACHE", "PYTHONPATH",
            "CUDA_VISIBLE_DEVICES", "NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES", "POCL_DEVICES")


def machine() -> dict[str, object]:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        pass
    versions = {}
    for pkg in PACKAGES:
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    try:
        with open("/sys/fs/cgroup/cpu.max") as f:
            quota = f.read().strip()  # "max 100000" = no limit; "1600000 100000" = 16 cores
    except OSError:
        quota = None
    return {"python": sys.version.split()[0], "executable": sys.executable, "platform": platform.platform(),
            "cpu": cpu, "cores": len(os.sched_getaffinity(0)), "host_cpus": os.cpu_count(), "cgroup_cpu_max": quota,
            "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
            "packages": versions, "dry_run": DRY,
            "env": {k: os.environ.get(k) for k in ENV_VARS}}


def opencl() -> dict[str, object]:
    """Every platform and device with the facts the kernels care about (pyopencl directly, not our engine,
    so this works even if the engine fails to import)."""
    import pyopencl as cl

    plats = []
    for p in cl.get_platforms():
        devs = []
        try:
            devices = p.get_devices()
        except cl.Error as err:
            plats.append({"name": p.name, "error": str(err)})
            continue
        for d in devices:
            info: dict[str, object] = {}
            for attr in ("name", "vendor", "version", "driver_version", "opencl_c_version", "max_compute_units",
                         "max_clock_frequency", "global_mem_size", "local_mem_size", "max_mem_alloc_size",
                         "max_work_group_size", "max_work_item_sizes", "preferred_vector_width_float",
                         "preferred_vector_width_half", "image_support", "global_mem_cache_size",
                         "global_mem_cacheline_size", "max_constant_buffer_size"):
                try:
                    info[attr] = getattr(d, attr)
                except (cl.Error, AttributeError) as err:
                    info[attr] = f"n/a ({type(err).__name__})"
            info["type"] = ",".join(t for t in ("GPU", "CPU", "ACCELERATOR") if d.type & getattr(cl.device_type, t)
                                    ) or f"other ({d.type})"
            info["extensions"] = d.extensions.split()
            devs.append(info)
        plats.append({"name": p.name, "vendor": p.vendor, "version": p.version, "devices": devs})
    return {"pyopencl": cl.VERSION_TEXT, "platforms": plats}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fragment", default="probe")
    args = parser.parse_args()
    frag = Fragment(args.fragment)
    frag.put("machine", machine())
    cl_info = frag.attempt("opencl", opencl)
    if not cl_info:
        return 4
    devices = [(p["name"], d) for p in cl_info["platforms"] for d in p.get("devices", [])]
    for plat, d in devices:
        log(f"OpenCL: {plat} | {d['name']} | {d['type']} | driver {d['driver_version']} | {d['version']}")
    if not devices:
        frag.fail("devices", "the ICD loader found no OpenCL device")
        return 4
    if not DRY and not any("GPU" in str(d["type"]) for _, d in devices):
        frag.fail("devices", "no GPU among the OpenCL devices")
        return 4
    return 0


if __name__ == "__main__":
    sys.exit(main())
