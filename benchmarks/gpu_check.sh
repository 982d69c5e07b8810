#!/usr/bin/env bash
# GPU readiness in one script (issue 20, part 3), under 8 minutes on one H100/H200-class GPU:
#   1. ViT-B/16 `clip` on synthetic data in bf16, eager and torch.compile: synclip vs open_clip's
#      model + ClipLoss on the same batch (interleaved), samples/s and model FLOPs utilisation
#      (benchmarks/gpu_mfu.py);
#   2. `slip` and `siglip` step time relative to `clip` (benchmarks/recipe_ratio.py);
#   3. a short real `clip` training run (about 2 minutes) from webdataset shards of the emoji corpus,
#      with the share of wall time the loop waited for the loader (metrics.jsonl: data_wait_frac).
# Prints one markdown table; writes gpu_check.json and every part's output under the output folder.
#
#   benchmarks/gpu_check.sh                          # on a GPU; output in $OUT (else ./gpu_check_out)
#   benchmarks/gpu_check.sh --cpu --tiny --out /tmp/g # the same steps on the CPU, tiny, in a few minutes
#
# Options: --cpu (device cpu), --tiny (micro-vit-32, small batches, ~20 s of training),
# --out DIR, --peak-tflops N (the device's dense bf16 peak when its name is not in gpu_mfu.py's table),
# --train-seconds N (default 120). PYTHON picks the interpreter (default: python).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
PYTHON="${PYTHON:-python}"
out="${OUT:-gpu_check_out}"
device=cuda
tiny=0
peak=()
train_seconds=120
while [[ $# -gt 0 ]]; do
  case "$1" in
    --cpu) device=cpu ;;
    --tiny) tiny=1 ;;
    --out) out="$2"; shift ;;
    --peak-tflops) peak=(--peak-tflops "$2"); shift ;;
    --train-seconds) train_seconds="$2"; shift ;;
    -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}"; exit 0 ;;
    *) echo "gpu_check.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

if [[ $tiny == 1 ]]; then
  model=micro-vit-32; batch=16; rounds=1; steps=1; warmup=1
  ratio_batch=16; ratio_rounds=1; train_batch=32; workers=2; log_every=2
  [[ $train_seconds == 120 ]] && train_seconds=20
else
  model=ViT-B-16; batch=256; rounds=4; steps=3; warmup=3
  ratio_batch=128; ratio_rounds=3; train_batch=256; workers=8; log_every=10
fi
if [[ $device == cuda ]] && ! "$PYTHON" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  echo "gpu_check.sh: no CUDA device; run with --cpu (and --tiny) to check the script on the CPU" >&2
  exit 2
fi
mkdir -p "$out"
out="$(cd "$out" && pwd)"
export PYTHONPATH="$root/src${PYTHONPATH:+:$PYTHONPATH}"
start=$SECONDS
log() { echo "[gpu_check $((SECONDS - start))s] $*" >&2; }

log "1/3 clip step: synclip vs open_clip, eager and compiled ($model, batch $batch, bf16, $device)"
"$PYTHON" "$here/gpu_mfu.py" --model "$model" --batch "$batch" --precision bf16 --device "$device" \
  --rounds "$rounds" --steps "$steps" --warmup "$warmup" ${peak[@]+"${peak[@]}"} \
  --json "$out/mfu.json" > "$out/mfu.log" 2>&1 || log "part 1 failed: see $out/mfu.log"

log "2/3 step ratios of slip and siglip to clip ($model, batch $ratio_batch)"
"$PYTHON" "$here/recipe_ratio.py" --model "$model" --batch "$ratio_batch" --precision bf16 \
  --device "$device" --rounds "$ratio_rounds" --steps "$steps" --recipes clip,slip,siglip \
  --json "$out/ratio.json" > "$out/ratio.log" 2>&1 || log "part 2 failed: see $out/ratio.log"

log "3/3 real training from webdataset shards (~${train_seconds}s)"
run="$out/runs/gpu_check_clip"
if "$PYTHON" -m synclip.cli data shards --source emoji --out "$out/shards" --shard-size 500 \
    > "$out/shards.log" 2>&1; then
  sources="$(sed -n 's/^data.sources="\(.*\)"$/\1/p' "$out/shards.log")"
  # steps for about train_seconds at the synthetic step time of part 1 (plus the data it must wait for)
  max_steps="$("$PYTHON" - "$out/mfu.json" "$train_seconds" "$tiny" <<'EOF'
import json, sys
path, seconds, tiny = sys.argv[1], float(sys.argv[2]), sys.argv[3] == "1"
try:
    step = json.load(open(path))["modes"]["eager"]["synclip"]["step_s"]
except Exception:
    step = 1.0 if tiny else 0.3
print(max(10, min(20000, int(seconds / max(step, 1e-3)))))
EOF
)"
  rm -rf "$run"
  "$PYTHON" -m synclip.cli train clip "data.sources=$sources" "model.name=$model" \
    "train.batch_size=$train_batch" train.precision=bf16 "train.max_steps=$max_steps" \
    "data.workers=$workers" "train.log_every=$log_every" "train.out_dir=$out/runs" \
    train.name=gpu_check_clip train.progress=false eval.at_end=false \
    > "$out/train.log" 2>&1 || log "part 3 training failed: see $out/train.log"
else
  log "part 3: writing shards failed: see $out/shards.log"
fi

log "report"
"$PYTHON" "$here/gpu_report.py" --mfu "$out/mfu.json" --ratio "$out/ratio.json" --run "$run" \
  --json "$out/gpu_check.json"
log "done in $((SECONDS - start))s; JSON in $out/gpu_check.json"
