#!/usr/bin/env bash
# The GPU check of issues 12 and 14, in one go (< 10 minutes on any CUDA machine; the step limits add up to 600 s):
# the CUDA parity tests of the dense and edge-list GAT paths, of cached graphs and of training on the GPU (every
# batch, weight and optimizer state on cuda; cuda vs cpu numbers; a cuda run scored and resumed on the cpu),
# benchmarks/gpu_heads.py, the demo (glot compare defaults), and the distributed path under torchrun (nccl, one
# process: cache, then train with --device cuda, checked to have trained on cuda:0).
#
#   bash benchmarks/gpu_check.sh [RESULTS_DIR]        (default benchmarks/results/gpu; PYTHON=... to pick python)
#
# Writes into RESULTS_DIR: gpu.txt (nvidia-smi), parity.txt (pytest), gpu_heads.{json,md} + gpu_heads.txt, and
# demo.txt + demo/ (the compare run), distributed.txt (torchrun cache + train). Each step has its own time limit, so one slow step cannot eat the rest;
# the script exits non-zero if any step failed, after running them all. CPU machines: the parity tests skip.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-benchmarks/results/gpu}
PY=${PYTHON:-python}
if [ -x .venv/bin/python ] && [ -z "${PYTHON:-}" ]; then PY=.venv/bin/python; fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TRANSFORMERS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false
mkdir -p "$OUT"
status=0
step() {  # step NAME SECONDS LOGFILE COMMAND...
  local name=$1 limit=$2 log=$3; shift 3
  echo "== $name (limit ${limit}s)"
  local t0=$SECONDS
  timeout "$limit" "$@" >"$log" 2>&1
  local rc=$?
  tail -n 15 "$log"
  echo "== $name: exit $rc after $((SECONDS - t0)) s"
  [ "$rc" -eq 0 ] || status=1
}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "nvidia-smi not found"
  "$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.is_available() and torch.cuda.get_device_name(0))"
} >"$OUT/gpu.txt" 2>&1
cat "$OUT/gpu.txt"
step "CUDA parity tests" 160 "$OUT/parity.txt" \
  "$PY" -m pytest -q -p no:cacheprovider -rs -k cuda tests/test_dense_gat.py tests/test_sparse_gat.py tests/test_graph_cache.py \
    tests/test_device_training.py
step "gpu_heads.py" 170 "$OUT/gpu_heads.txt" \
  "$PY" benchmarks/gpu_heads.py --device cuda --out "$OUT"
step "demo (glot compare)" 180 "$OUT/demo.txt" \
  "$PY" -c 'import sys; from glot.cli import main; sys.exit(main(sys.argv[1:]))' \
  compare --out "$OUT/demo" --overwrite --no-progress
step "torchrun: distributed cache + train on cuda (1 process, nccl)" 90 "$OUT/distributed.txt" bash -c "
  $PY -m torch.distributed.run --standalone --nproc_per_node 1 -m glot cache --model minilm --task tweets \
    --n-train 1000 --n-eval 200 --shard-size 256 --cache-dir '$OUT/dist-cache' --no-progress &&
  $PY -m torch.distributed.run --standalone --nproc_per_node 1 -m glot train --model minilm --task tweets \
    --n-train 1000 --n-eval 200 --epochs 2 --device cuda --cache-dir '$OUT/dist-cache' --out '$OUT/dist-run' \
    --overwrite --no-progress &&
  $PY -c \"import json, sys; m = json.load(open('$OUT/dist-run/seed-0/metrics.json')); print('trained on', m['device'],
    'head dtype', m['precision']['head_dtype']); sys.exit(m['device'] != 'cuda:0')\""
echo "results in $OUT"
exit $status
