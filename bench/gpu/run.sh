#!/usr/bin/env bash
# The GPU device check: ONE command, run once on a machine with an NVIDIA GPU and no network, from a copy of this
# repo's working tree carrying .whl/ and .gpu_carry/ (bench/gpu/make_carry.py builds both):
#
#   OUT=/some/folder bash bench/gpu/run.sh                # on the device machine ($OUT is given there)
#   GPU_CHECK_DRY=1 bash bench/gpu/run.sh                 # dry run here on PoCL (OUT defaults to a temp folder)
#
# Steps (each with its own timeout; a failed step is recorded and the next one runs; the whole run stays within
# GPU_CHECK_BUDGET_S, default 460 s): install the carried wheels; find and register NVIDIA's OpenCL library;
# list devices; build the model from the carried Darknet files; correctness against onnxruntime; time-limited
# tuning; engine benchmark; PyTorch on the same network; op tests. Results: $OUT/gpu_results.json (merged after
# every step), $OUT/gpu.md (bench/gpu/report.py), $OUT/gpu_check.log (everything printed), $OUT/pytest.log,
# $OUT/tuning_table.json. See bench/gpu/README.md.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
DRY=${GPU_CHECK_DRY:-0}
if [ -z "${OUT:-}" ]; then
  if [ "$DRY" = 1 ]; then OUT=$(mktemp -d /tmp/gpu_check_out.XXXXXX); else echo "run.sh: set OUT" >&2; exit 2; fi
fi
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
export GPU_CHECK_DRY=$DRY PYTHONUNBUFFERED=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
export GPU_CHECK_WORK=${GPU_CHECK_WORK:-/tmp/gpu_check}
WORK=$GPU_CHECK_WORK
RES=$WORK/results
rm -rf "$WORK" && mkdir -p "$RES"
GPU_CHECK_T0=$(date +%s)
export GPU_CHECK_T0
BUDGET=${GPU_CHECK_BUDGET_S:-460}
# Every cache in fresh folders: the run measures this code and this driver, nothing left from before.
export OCL_INFER_CACHE=$WORK/cache XDG_CACHE_HOME=$WORK/xdg CUDA_CACHE_PATH=$WORK/nv_compute_cache \
  POCL_CACHE_DIR=$WORK/pocl_cache
if [ "$DRY" = 1 ]; then PY=${PY:-$ROOT/.venv/bin/python}; else PY=${PY:-python3}; fi
TORCH_PY=${GPU_CHECK_TORCH_PY:-$PY}  # dry run: a throwaway venv with a CPU torch can stand in
export PYTHONPATH=$ROOT

exec > >(tee -a "$OUT/gpu_check.log") 2>&1
TEE_PID=$!

say() { printf '[%s +%5ds] %s\n' "$(date +%H:%M:%S)" $(( $(date +%s) - GPU_CHECK_T0 )) "$*"; }
collect() {
  "$PY" bench/gpu/report.py --collect "$RES" --json "$OUT/gpu_results.json" --md "$OUT/gpu.md" \
    --pytest-log "$OUT/pytest.log" >/dev/null 2>&1 || say "report.py failed (results stay in $RES)"
}
record() {  # record STEP STATUS RC SECONDS TIMEOUT NOTE
  printf '{"step": "%s", "status": "%s", "rc": %s, "seconds": %s, "timeout_s": %s, "note": "%s"}\n' \
    "$1" "$2" "$3" "$4" "$5" "${6//\"/\'}" >>"$RES/steps.jsonl"
  collect
}
skip() { say "=== $1: SKIPPED ($2)"; record "$1" skipped null 0 null "$2"; }
step() {  # step NAME MAX_SECONDS CMD... : runs CMD under timeout (shortened to what the budget has left)
  local name=$1 max=$2; shift 2
  local left=$(( BUDGET - ($(date +%s) - GPU_CHECK_T0) - 10 ))
  local t=$(( max < left ? max : left ))
  if [ "$t" -lt 5 ]; then skip "$name" "time budget of ${BUDGET}s spent"; return 99; fi
  say "=== $name (timeout ${t}s)"
  local t0 rc status us secs
  t0=${EPOCHREALTIME/./}
  timeout -k 10 "$t" "$@"
  rc=$?
  case $rc in 0) status=ok ;; 124|137) status=timeout ;; *) status=failed ;; esac
  us=$(( ${EPOCHREALTIME/./} - t0 ))
  secs=$(printf '%d.%d' $(( us / 1000000 )) $(( us / 100000 % 10 )))
  say "=== $name: $status (exit $rc, ${secs}s)"
  record "$name" "$status" "$rc" "$secs" "$t" ""
  return $rc
}

# ---------------------------------------------------------------------------------------------- 0. what runs
git_commit=$(git rev-parse HEAD 2>/dev/null || echo "not a git checkout")
"$PY" - "$RES/meta.json" "$DRY" "$BUDGET" "$git_commit" "$OUT" <<'EOF'
import hashlib, json, socket, sys, time
from pathlib import Path
path, dry, budget, commit, out = sys.argv[1:]
h = hashlib.sha256()  # which code ran: every engine, test and check source, in a stable order
for f in sorted(p for d in ("ocl_infer", "test/engine", "bench/gpu") for p in Path(d).rglob("*")
                if p.suffix in (".py", ".cl", ".sh") and p.is_file()):
    h.update(str(f).encode() + b"\0" + f.read_bytes() + b"\0")
json.dump({"command": "bash bench/gpu/run.sh", "dry_run": dry == "1", "host": socket.gethostname(),
           "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "budget_s": int(budget),
           "git_commit": commit, "tree_sha256": h.hexdigest(), "out": out,
           "carried_bytes": {d: sum(p.stat().st_size for p in Path(d).rglob("*") if p.is_file())
                             for d in (".whl", ".gpu_carry") if Path(d).is_dir()}}, open(path, "w"))
print("code sha256", h.hexdigest()[:16])
EOF
say "GPU check: dry=$DRY out=$OUT work=$WORK python=$PY budget=${BUDGET}s"
du -sh .whl .gpu_carry 2>/dev/null

# ------------------------------------------------------------------------------------------ 1. carried wheels
install_wheels() {
  local site=$WORK/site wheels=()
  for w in .whl/*.whl; do
    case $(basename "$w") in
      typing_extensions-*)  # the image's own (torch needs one) wins when it is new enough for pyopencl
        "$PY" -c 'import importlib.metadata as m, sys; v = m.version("typing_extensions"); sys.exit(tuple(int(x) for x in v.split(".")[:2]) < (4, 6))' \
          2>/dev/null && continue ;;
    esac
    wheels+=("$w")
  done
  echo "installing ${#wheels[@]} wheels into $site"
  if ! "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "${wheels[@]}"; then
    echo "pip install failed; unpacking the wheels directly (they hold no .data folders)"
    "$PY" -c 'import sys, zipfile; [zipfile.ZipFile(w).extractall(sys.argv[1]) for w in sys.argv[2:]]' "$site" "${wheels[@]}" || return 1
  fi
  PYTHONPATH=$site:$ROOT "$PY" -c 'import pyopencl, nnef, nnef_tools.convert, onnx, onnxruntime, cv2, numpy; print("pyopencl", pyopencl.VERSION_TEXT, "| numpy", numpy.__version__, "| onnx", onnx.__version__, "| onnxruntime", onnxruntime.__version__, "| cv2", cv2.__version__)'
}
if [ "$DRY" = 1 ]; then
  skip install "dry run: .venv has everything"
else
  export -f install_wheels
  export WORK PY ROOT
  step install 90 bash -c install_wheels
  export PYTHONPATH=$WORK/site:$ROOT
fi

# ------------------------------------------------------------------------- 2. NVIDIA OpenCL, devices, the CLI
OPENCL=1
if [ "$DRY" = 1 ] && [ -z "${GPU_CHECK_ICD_PATTERN:-}" ]; then
  skip opencl_icd "dry run: the platform already registered here"
else
  command -v nvidia-smi >/dev/null && { nvidia-smi || true; }
  icd_args=("$WORK/icd")
  [ -n "${GPU_CHECK_ICD_PATTERN:-}" ] && icd_args+=(--pattern "$GPU_CHECK_ICD_PATTERN")
  [ "$DRY" = 1 ] && icd_args+=(--no-gpu-info)
  if step opencl_icd 60 "$PY" bench/gpu/opencl_icd.py "${icd_args[@]}" && [ -f "$WORK/icd/env.sh" ]; then
    # shellcheck disable=SC1091
    . "$WORK/icd/env.sh"
    say "OCL_ICD_VENDORS=$OCL_ICD_VENDORS ($(cat "$WORK/icd/nvidia.icd"))"
  else
    OPENCL=0
  fi
fi
if [ "$OPENCL" = 1 ] && ! step probe 60 "$PY" bench/gpu/probe.py; then
  if [ -n "${OPENCL_LIB:-}" ]; then  # the vendor folder gave no platform: name the library to the loader directly
    say "no OpenCL GPU through OCL_ICD_VENDORS; trying OCL_ICD_FILENAMES=$OPENCL_LIB"
    mkdir -p "$WORK/icd_empty"
    export OCL_ICD_VENDORS=$WORK/icd_empty OCL_ICD_FILENAMES=$OPENCL_LIB
    step probe_filenames 60 "$PY" bench/gpu/probe.py --fragment probe_filenames || OPENCL=0
  else
    OPENCL=0
  fi
elif [ "$OPENCL" = 0 ]; then
  step probe 60 "$PY" bench/gpu/probe.py  # still records the machine and package versions
fi
if [ "$OPENCL" = 1 ]; then
  step devices 60 bash -c "set -o pipefail; { '$PY' -m ocl_infer.cli devices && '$PY' -m ocl_infer.cli devices --json; } 2>&1 | tee '$RES/devices.txt'"
fi

# ------------------------------------------------------------------------------------------- 3. the model
step prepare 120 "$PY" bench/gpu/prepare.py
MODEL_OK=0
[ -f "$WORK/models/yolov3-tiny/model.json" ] && MODEL_OK=1

# ------------------------------------------------------------------------- 4.-8. measurements on the device
if [ "$OPENCL" = 1 ] && [ "$MODEL_OK" = 1 ]; then
  step correctness 120 "$PY" bench/gpu/correctness.py
  step tune 100 "$PY" bench/gpu/tune.py --limit "${GPU_CHECK_TUNE_S:-60}" --compare-timeout 30 \
    --copy-to "$OUT/tuning_table.json"
  step bench_engine 120 "$PY" bench/gpu/bench_gpu.py
else
  why=$([ "$OPENCL" = 1 ] && echo "no model (see prepare)" || echo "no NVIDIA OpenCL platform (see opencl_icd/probe)")
  for s in correctness tune bench_engine; do skip "$s" "$why"; done
fi
if [ "$MODEL_OK" = 1 ]; then
  saved_path=$PYTHONPATH
  export PYTHONPATH=$PYTHONPATH${GPU_CHECK_TORCH_PYTHONPATH:+:$GPU_CHECK_TORCH_PYTHONPATH}
  step bench_torch 100 "$TORCH_PY" bench/gpu/bench_torch.py
  export PYTHONPATH=$saved_path
else
  skip bench_torch "no model (see prepare)"
fi
if [ "$OPENCL" = 1 ]; then
  tests="test/engine/test_ops.py"
  # the GPU family's implicit-GEMM conv with every blocking its tuner may pick: 4 tests, where present
  [ -f test/engine/test_conv_gemm.py ] && tests="$tests test/engine/test_conv_gemm.py"
  [ "$DRY" = 1 ] && tests="-k concat_split_slice $tests"
  read -r -a pytest_args <<<"${GPU_CHECK_PYTEST_ARGS:-$tests}"
  echo "python3 -m pytest ${GPU_CHECK_PYTEST_OPTS:--q -p no:cacheprovider} ${pytest_args[*]}" >"$RES/pytest_command.txt"
  step pytest 150 bash -c "'$PY' -m pytest ${GPU_CHECK_PYTEST_OPTS:--q -p no:cacheprovider} ${pytest_args[*]} >'$OUT/pytest.log' 2>&1; rc=\$?; tail -5 '$OUT/pytest.log'; exit \$rc"
else
  skip pytest "no NVIDIA OpenCL platform"
fi

# ---------------------------------------------------------------------------------------------------- 9. end
"$PY" - "$RES/meta.json" <<'EOF'
import json, sys, time
path = sys.argv[1]
meta = json.load(open(path))
meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
json.dump(meta, open(path, "w"))
EOF
collect
say "done in $(( $(date +%s) - GPU_CHECK_T0 ))s; results in $OUT:"
ls -la "$OUT"
grep -A 30 '^## Summary' "$OUT/gpu.md" | head -30
exec >&- 2>&-
wait "$TEE_PID" 2>/dev/null
exit 0
