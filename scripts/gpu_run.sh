#!/usr/bin/env bash
# Issue 8 on the GPU machine, in one call: the CUDA tests of the GPU pipeline, the side-stream crash repro
# (scripts/gpu_upload_repro.py), then the speed table.
#
# Here, first:  scripts/gpu_run.sh --stage
#   copies the fixtures the tests need into .devcarry/gpu_shared (ignored by git; ../shared does not
#   travel to the GPU machine). Then send, with carry [".devcarry/gpu_shared"]:
#   bash scripts/gpu_run.sh [benchmark args...]
# Logs and the JSON table land in $OUT (or ./gpu_out when OUT is unset).
set -uo pipefail
cd "$(dirname "$0")/.."
STAGE=.devcarry/gpu_shared

if [[ "${1:-}" == "--stage" ]]; then
    SRC="${ULTRALYTICS_SHARED:-../shared}/fixtures"
    rm -rf "$STAGE" && mkdir -p "$STAGE/fixtures/models" "$STAGE/fixtures/shapes"
    cp -r "$SRC/images" "$STAGE/fixtures/"
    cp "$SRC/models/shapes_yolov8n.pt" "$SRC/models/yolov8n_random_upstream.pt" "$STAGE/fixtures/models/"
    cp -r "$SRC/shapes/val" "$SRC/shapes/shapes.yaml" "$STAGE/fixtures/shapes/"
    # upstream's recorded network inputs (tests/gpu/test_cv2_linear.py compares the letterbox to them)
    mkdir -p "$STAGE/fixtures/reference" && cp "$SRC"/reference/shapes_raw_*.npz "$STAGE/fixtures/reference/"
    du -sh "$STAGE"
    exit 0
fi

OUT="${OUT:-./gpu_out}"
mkdir -p "$OUT"
export ULTRALYTICS_SHARED="$PWD/$STAGE" PYTHONPATH=. PYTHONUNBUFFERED=1
[[ -d "$STAGE/fixtures" ]] || { echo "no $STAGE: run 'scripts/gpu_run.sh --stage' here and carry it"; exit 2; }

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, cv2; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cv2', cv2.__version__)" | tee -a "$OUT/gpu.txt"

timeout 240 python3 -m pytest tests/gpu -q -rs -p no:cacheprovider --durations=8 2>&1 | tee "$OUT/pytest.log"
echo "pytest exit: ${PIPESTATUS[0]}"

# the side-stream crash, isolated (old stream choice against gpu/streams.py), one process per case;
# GPU_RUN_SKIP_REPRO=1 skips it (the stream code is unchanged and test_overlap.py runs the crash pattern)
if [[ "${GPU_RUN_SKIP_REPRO:-0}" != 1 ]]; then
    timeout 200 python3 scripts/gpu_upload_repro.py 2>&1 | tee "$OUT/repro.log"
fi

timeout "${GPU_RUN_BENCH_TIMEOUT:-300}" python3 benchmarks/predict_speed.py --shared "$ULTRALYTICS_SHARED" --json "$OUT/predict_speed.json" "$@" 2>&1 \
    | tee "$OUT/bench.log"
echo "benchmark exit: ${PIPESTATUS[0]}"
