#!/usr/bin/env bash
# build_msgs.sh VENV CACHE: build the interface packages under msgs/ into the venv prefix with CMake.
#   vision_msgs     only when no ROS install already provides it (`import vision_msgs.msg` fails), or when the
#                   copy in VENV is ours (rebuilt so edits to msgs/vision_msgs take effect);
#   ocl_infer_msgs  always (ours).
# Build trees live in CACHE/msgs-build (incremental: a second run takes seconds). Each failure prints one line.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
VENV=${1:?usage: scripts/build_msgs.sh VENV CACHE}
CACHE=${2:?usage: scripts/build_msgs.sh VENV CACHE}
VENV=$(cd "$VENV" && pwd)
mkdir -p "$CACHE" && CACHE=$(cd "$CACHE" && pwd)
VPY=$VENV/bin/python

say() { echo "build_msgs: $*"; }
fail() { echo "build_msgs: FAILED: $*" >&2; exit 1; }

[ -x "$VPY" ] || fail "no Python in $VENV: run make setup first"
command -v cmake >/dev/null || fail "cmake is missing: sudo apt-get install cmake ninja-build, then rerun"
GENERATOR=()
command -v ninja >/dev/null && GENERATOR=(-G Ninja)

ours() {  # is the package installed in VENV the copy built from msgs/?
  grep -q "ocl_infer maintainers" "$VENV/share/$1/package.xml" 2>/dev/null
}
packages=()
if ! "$VPY" -c 'import vision_msgs.msg' >/dev/null 2>&1 || ours vision_msgs; then
  packages+=(vision_msgs)
fi
packages+=(ocl_infer_msgs)

# The ament/rosidl build tools (Python wheels); already-satisfied requirements cost no network.
"$VPY" -m pip install -q -r requirements-msgs.txt >"$CACHE/pip-msgs.log" 2>&1 \
  || fail "pip install -r requirements-msgs.txt failed (log: $CACHE/pip-msgs.log): check the network to PyPI"

export AMENT_PREFIX_PATH=$VENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}
export CMAKE_PREFIX_PATH=$VENV${CMAKE_PREFIX_PATH:+:$CMAKE_PREFIX_PATH}
export PATH=$VENV/bin:$PATH
for pkg in "${packages[@]}"; do
  build=$CACHE/msgs-build/$pkg
  log=$CACHE/msgs-build/$pkg.log
  mkdir -p "$build"
  say "building $pkg into $VENV"
  {
    cmake -S "$ROOT/msgs/$pkg" -B "$build" "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_PREFIX_PATH="$VENV" -DCMAKE_INSTALL_PREFIX="$VENV" -DPython3_EXECUTABLE="$VPY" \
      -DBUILD_TESTING=OFF \
      && cmake --build "$build" --parallel "$(nproc)" \
      && cmake --install "$build"
  } >"$log" 2>&1 || fail "cmake build of msgs/$pkg failed (log: $log)"
done

"$VPY" -c 'from vision_msgs.msg import Detection2DArray; from ocl_infer_msgs.msg import FrameTiming' \
  >"$CACHE/msgs-build/import.log" 2>&1 \
  || fail "the built messages do not import in $VENV (log: $CACHE/msgs-build/import.log)"
say "vision_msgs and ocl_infer_msgs import in $VENV"
