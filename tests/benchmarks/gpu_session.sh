#!/usr/bin/env bash
# One device call that measures everything the GPU figures in BENCHMARKS.md need, in order of
# importance, within a time budget (default 480 s of the 600 s a device command may run):
#   1. tests/gpu (every backend vs the float64 reference at 1024 px, many layouts)
#   2. step table 512/1024 px x 4/20 entities, every backend + official-style dense, peak memory
#   3. many layouts (20, 512-2048 px, 1-40 entities, hard/place, CFG on/off) with "auto",
#      two of them again in fresh processes
#   4. step table 2048 px / 20 entities
#   5. many layouts with compiled flex (compile count, unfused warning)
#   6. torch.profiler of one 1024 px / 20 entity step, split / tile sparsity
# Logs go to $OUT (the device tool returns that folder). ComfyUI comes from the git-ignored
# .device/ folder, which the device call must carry:
#   mkdir -p .device && tar -xzf ../shared/comfyui/ComfyUI-0.3.64.tar.gz -C .device
#   run(command="bash tests/benchmarks/gpu_session.sh", carry=[".device"], timeout_s=560)
# Dry run on the CPU with a tiny model: SEG2ANY_GPU_DRY=1 OUT=/tmp/gpu-dry bash tests/benchmarks/gpu_session.sh
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/out/gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
# "auto" times split against cuDNN SDPA once per size and kind of layer: its measurements come back too
export SEG2ANY_TUNING_FILE=${SEG2ANY_TUNING_FILE:-$OUT/attention-choices.json}
export COMFYUI_PATH=${COMFYUI_PATH:-$(ls -d "$PWD"/.device/ComfyUI-* 2>/dev/null | head -1)}
BUDGET=${SEG2ANY_GPU_BUDGET:-480}
if [ -n "${SEG2ANY_GPU_DRY:-}" ]; then
  BUDGET=${SEG2ANY_GPU_BUDGET:-3000}; DRY=1  # a shared CPU is slow: no per-step limits, fewer layouts
  NL=4; NF=3; FRESH=1
  M=(--dims tiny --device cpu --dtype fp32 --rank 4); R=(--warmup 1 --repeat 2); S1=(256); S2=(384); MANY=(256 384); N=(3 9); P=(--size 256 --entities 4)
else
  DRY=; NL=20; NF=12; FRESH=2
  M=(--dims flux --device cuda --dtype bf16); R=(--warmup 2 --repeat 5); S1=(512 1024); S2=(2048); MANY=(512 768 1024 1280 1536 2048); N=(4 20); P=(--size 1024 --entities 20)
fi

step() {  # step NAME LIMIT CMD...: run with min(LIMIT, what is left of the budget), log to $OUT/NAME.log
  local name=$1 limit=$2 left
  shift 2
  left=$((BUDGET - SECONDS))
  { [ -n "$DRY" ] || [ "$left" -lt "$limit" ]; } && limit=$left
  if [ "$limit" -lt 15 ]; then echo "## $name skipped: budget spent" | tee -a "$OUT/summary.txt"; return; fi
  echo "## $name (limit ${limit}s): $*" | tee -a "$OUT/summary.txt"
  local t0=$SECONDS
  timeout -k 5 "$limit" "$@" >"$OUT/$name.log" 2>&1
  echo "## $name rc=$? in $((SECONDS - t0))s" | tee -a "$OUT/summary.txt"
}

{
  date -u
  nvidia-smi 2>/dev/null || echo "no nvidia-smi"
  python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version())"
  echo "ComfyUI: $COMFYUI_PATH"
  git log --oneline -1 2>/dev/null
} >"$OUT/env.txt" 2>&1

step gpu_tests 180 python3 -m pytest tests/gpu -q -rs -p no:cacheprovider
step bench_small 130 python3 -m tests.benchmarks.step_latency "${M[@]}" --sizes "${S1[@]}" --entities "${N[@]}" "${R[@]}"
step many_auto 110 python3 -m tests.benchmarks.step_latency "${M[@]}" --many-layouts "$NL" --sizes "${MANY[@]}" --fresh "$FRESH"
step bench_large 70 python3 -m tests.benchmarks.step_latency "${M[@]}" --sizes "${S2[@]}" --entities "${N[@]: -1}" \
  --backends auto sdpa dense --attn-backends sdpa split dense --warmup 1 --repeat 3
step many_flex 80 python3 -m tests.benchmarks.step_latency "${M[@]}" --many-layouts "$NF" --sizes "${MANY[@]:0:5}" --backend flex
step profile 45 python3 -m tests.benchmarks.gpu_profile "${M[@]}" "${P[@]}"
echo "## total ${SECONDS}s" | tee -a "$OUT/summary.txt"
