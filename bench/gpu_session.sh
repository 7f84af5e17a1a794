#!/usr/bin/env bash
# The CUDA side of the suite in one command, for a GPU machine lent for a few minutes (run from the
# repository root; reports under ${OUT:-gpu_out}). Each part has its own time limit and report, so a
# part cut short loses only itself:
#   1. the CUDA test selection in automatic mode, 8 xdist workers when pytest-xdist is there;
#   2. the distance engine's CUDA rows (bench/distance.py: signed maps and HD95) and the
#      dense/envelope crossover (bench/edt_cutoff.py);
#   3. the fused kernels' tests with STABLELOSS_FUSED=1;
#   4. bench/monai_speed.py CUDA rows;
# Wheels the machine lacks (MONAI, segmentation-models-pytorch, nibabel) may travel in .whl/.
set -u
OUT=${OUT:-gpu_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 MPLBACKEND=Agg
LOG=$OUT/session.log
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl >>"$LOG" 2>&1
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'triton', triton.__version__)"; } >>"$LOG" 2>&1
XDIST=$(python3 -c "import xdist" 2>/dev/null && echo "-n 8")
part() { echo "== $1 $(date -u +%T)" >>"$LOG"; shift; timeout "$@" >>"$LOG" 2>&1; echo "rc=$? $(date -u +%T)" >>"$LOG"; }
part "cuda tests" 200 python3 -m pytest tests -k "(cuda or triton) and not run_on_cpu" -q -rfE -p no:cacheprovider $XDIST
part "distance" 80 python3 bench/distance.py --device cuda --repeats 7 --budget 8 --out "$OUT"
part "edt cutoff" 45 python3 bench/edt_cutoff.py --device cuda --out "$OUT"
part "fused tests" 90 env STABLELOSS_FUSED=1 python3 -m pytest tests/test_fused_triton.py tests/test_stability.py -k "cuda and (dice or focal or tversky)" -q -rfE -p no:cacheprovider $XDIST
part "monai speed" 50 python3 bench/monai_speed.py --device cuda --repeats 20 --out "$OUT"
