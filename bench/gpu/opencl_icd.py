"""Find the NVIDIA OpenCL driver library and register it for pyopencl's bundled ICD loader; record the GPU.

The device machine's driver folder (/usr/local/nvidia, read-only) may or may not hold libnvidia-opencl.so.1,
and nothing is registered under /etc/OpenCL/vendors. pyopencl's wheel ships the ocl-icd loader, which reads
every ``*.icd`` file (one library path each) in the folder named by OCL_ICD_VENDORS. So: search the usual
places, write ``nvidia.icd`` into a fresh folder, and print the shell lines run.sh sources. If nothing is
found, the search (every place and what it held) is recorded and run.sh skips the OpenCL steps.

    python3 bench/gpu/opencl_icd.py ICD_DIR [--pattern 'libnvidia-opencl.so*']   # writes ICD_DIR/env.sh
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import shlex
import subprocess
import sys
from pathlib import Path

from common import Fragment, log

SEARCH_DIRS = ("/usr/local/nvidia", "/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/lib")
RECURSIVE = ("/usr/local/nvidia",)  # the others: top level and one level down (e.g. nvidia/current)
# what NVIDIA's OpenCL library loads in turn (compiling a kernel needs the PTX JIT): recorded for diagnosis
RELATED = ("libcuda.so*", "libnvidia-ptxjitcompiler.so*", "libnvidia-nvvm.so*", "libnvidia-compiler.so*")


def search(pattern: str) -> tuple[list[str], dict[str, str]]:
    """Files matching `pattern`, best first (real file over link, .so.1 over others), and what each place held."""
    found: list[str] = []
    searched: dict[str, str] = {}
    for top in SEARCH_DIRS:
        root = Path(top)
        if not root.is_dir():
            searched[top] = "absent"
            continue
        hits: list[Path] = []
        try:
            if top in RECURSIVE:
                for dirpath, _dirs, files in os.walk(root, followlinks=False):
                    hits += [Path(dirpath) / f for f in files if fnmatch.fnmatch(f, pattern)]
                    hits += [Path(dirpath) / d for d in _dirs if fnmatch.fnmatch(d, pattern)]
            else:
                hits += list(root.glob(pattern)) + list(root.glob(f"*/{pattern}"))
        except OSError as err:
            searched[top] = f"unreadable: {err}"
            continue
        searched[top] = f"{len(hits)} match(es)" + (": " + ", ".join(str(h) for h in hits) if hits else "")
        found += [str(h) for h in hits]
    try:
        out = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=20, check=False).stdout
        ld = [line.split("=>")[-1].strip() for line in out.splitlines()
              if "=>" in line and fnmatch.fnmatch(line.split("=>")[0].strip().split(" ")[0], pattern)]
        searched["ldconfig -p"] = f"{len(ld)} match(es)" + (": " + ", ".join(ld) if ld else "")
        found += ld
    except (OSError, subprocess.SubprocessError) as err:
        searched["ldconfig -p"] = f"failed: {err}"
    unique = list(dict.fromkeys(os.path.realpath(f) for f in found if Path(f).is_file()))

    def rank(path: str) -> tuple[int, int]:
        return (0 if ".so.1" in Path(path).name else 1, len(path))

    return sorted(unique, key=rank), searched


def gpu_info() -> dict[str, object]:
    """nvidia-smi's view of the GPU (name, driver, memory, compute capability), or why there is none."""
    fields = "name,driver_version,memory.total,compute_cap,clocks.max.sm,power.limit,pci.bus_id"
    try:
        proc = subprocess.run(["nvidia-smi", f"--query-gpu={fields}", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError) as err:
        return {"error": f"nvidia-smi: {err}"}
    if proc.returncode != 0:
        return {"error": f"nvidia-smi exit {proc.returncode}: {proc.stderr.strip()[:300]}"}
    gpus = [dict(zip(fields.split(","), (v.strip() for v in line.split(",")), strict=False))
            for line in proc.stdout.strip().splitlines()]
    return {"gpus": gpus}


def ldd(lib: str) -> dict[str, object]:
    """The library's dependencies as the dynamic linker resolves them; "not found" ones would stop the ICD."""
    try:
        proc = subprocess.run(["ldd", lib], capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError) as err:
        return {"error": str(err)}
    lines = [ln.strip() for ln in proc.stdout.splitlines() if ln.strip()]
    return {"not_found": [ln for ln in lines if "not found" in ln], "lines": lines[:40]}


def listing(top: str, depth: int = 3, limit: int = 200) -> list[str]:
    """What the driver folder holds (for a reader working out why OpenCL is missing)."""
    out: list[str] = []
    root = Path(top)
    if not root.is_dir():
        return out
    for dirpath, dirs, files in os.walk(root):
        rel = Path(dirpath).relative_to(root)
        if len(rel.parts) >= depth:
            dirs[:] = []
        out += [str(Path(dirpath) / f) for f in sorted(files)]
        if len(out) >= limit:
            return [*out[:limit], f"... (more than {limit})"]
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("icd_dir", type=Path)
    parser.add_argument("--pattern", default="libnvidia-opencl.so*")
    parser.add_argument("--no-gpu-info", action="store_true")
    args = parser.parse_args()
    frag = Fragment("opencl_icd")
    if not args.no_gpu_info:
        frag.put("nvidia_smi", gpu_info())
    frag.put("pattern", args.pattern)
    frag.put("etc_vendors", sorted(str(p) for p in Path("/etc/OpenCL/vendors").glob("*.icd")))
    found, searched = search(args.pattern)
    frag.put("searched", searched)
    frag.put("found", found)
    frag.put("nvidia_folder", listing("/usr/local/nvidia"))
    env_sh = args.icd_dir / "env.sh"
    if not found:
        frag.fail("register", f"no {args.pattern} in {', '.join(searched)}: OpenCL steps skipped")
        return 3
    lib = found[0]
    frag.put("ldd", ldd(lib))
    frag.put("related_libraries", {pat: search(pat)[0] for pat in RELATED})
    args.icd_dir.mkdir(parents=True, exist_ok=True)
    (args.icd_dir / "nvidia.icd").write_text(lib + "\n")
    lib_dir = str(Path(lib).parent)
    env_sh.write_text(f"export OCL_ICD_VENDORS={shlex.quote(str(args.icd_dir))}\n"
                      f"export OPENCL_LIB={shlex.quote(lib)}\n"
                      f"export LD_LIBRARY_PATH={shlex.quote(lib_dir)}${{LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}}\n")
    frag.put("registered", {"library": lib, "icd_dir": str(args.icd_dir), "icd_file": lib})
    log(f"registered {lib} in {args.icd_dir}/nvidia.icd")
    return 0


if __name__ == "__main__":
    sys.exit(main())
