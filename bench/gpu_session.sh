#!/usr/bin/env bash
# The CUDA side of the suite in one command, for a GPU machine lent for a few minutes (run from the
# repository root; reports under ${OUT:-gpu_out}). Each part has its own time limit and report, so a
# part cut short loses only itself:
#   1. the CUDA test selection in automatic mode, 8 xdist workers when pytest-xdist is there;
#   2. bench/gpu_evidence.py's agreement grid (fused vs eager vs float64), in two halves;
#   3. bench/monai_speed.py and bench/speed.py CUDA rows.
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
part "agreement 1" 150 python3 bench/gpu_evidence.py --skip tests,speed --losses dice,jaccard,tversky,log_cosh_dice --out "$OUT/agreement-region.json"
part "agreement 2" 120 python3 bench/gpu_evidence.py --skip tests,speed --losses focal,hybrid --out "$OUT/agreement-focal.json"
part "monai speed" 90 python3 bench/monai_speed.py --device cuda --repeats 20 --out "$OUT"
part "speed" 90 python3 bench/speed.py --device cuda --sources stableloss-eager,stableloss-fused,smp,monai --repeats 15 --out "$OUT"
