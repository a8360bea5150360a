#!/usr/bin/env bash
# Issue 13 on the GPU machine, in one call: tests/gpu, then benchmarks/api_speed.py (ours vs upstream
# 8.4.190 in worker processes, alternating rounds) with a cProfile host breakdown.
#
# Here, first:  scripts/gpu_run.sh --stage        (fixtures → .devcarry/gpu_shared)
#               put upstream's wheels in .whl/ (ultralytics-8.4.190, ultralytics-thop) and the extra
#               weights in .devcarry/models/ (e.g. yolov8s_random_upstream.pt, saved by upstream)
# Send, with carry [".devcarry", ".whl"]:  bash scripts/api_speed_run.sh [api_speed args...]
# GPU_RUN_TESTS=0 skips tests/gpu; TAG=x suffixes the output names. Logs land in $OUT (or ./gpu_out).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-./gpu_out}"
mkdir -p "$OUT"
STAGE=.devcarry/gpu_shared
export ULTRALYTICS_SHARED="$PWD/$STAGE" PYTHONPATH=. PYTHONUNBUFFERED=1
[[ -d "$STAGE/fixtures" ]] || { echo "no $STAGE: run 'scripts/gpu_run.sh --stage' here and carry it"; exit 2; }
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
nproc | tee -a "$OUT/gpu.txt"
python3 -c "import torch, cv2; print('torch', torch.__version__, 'cv2', cv2.__version__)" | tee -a "$OUT/gpu.txt"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/upsite .whl/*.whl || exit 3
if [[ "${GPU_RUN_TESTS:-1}" != 0 ]]; then
    timeout 300 python3 -m pytest tests/gpu tests/predict/test_decode_pool.py tests/predict/test_predict_rows.py \
        --deselect tests/predict/test_predict_rows.py::test_no_fixed_size_warning_without_imgsz \
        -q -rs -p no:cacheprovider 2>&1 | tail -25 | tee "$OUT/pytest.log"
fi
MODELS=("$STAGE/fixtures/models/yolov8n_random_upstream.pt")
for m in .devcarry/models/*.pt; do [[ -f "$m" ]] && MODELS+=("$PWD/$m"); done
timeout "${GPU_RUN_BENCH_TIMEOUT:-420}" python3 benchmarks/api_speed.py --shared "$ULTRALYTICS_SHARED" \
    --models "${MODELS[@]/#$STAGE/$PWD/$STAGE}" --upstream-site /tmp/upsite --json "$OUT/api_speed${TAG:-}.json" \
    --profile "$OUT/profile${TAG:-}.txt" "$@" 2>&1 | tee "$OUT/api_speed${TAG:-}.log"
echo "benchmark exit: ${PIPESTATUS[0]}"
