#!/usr/bin/env bash
# One call on a lent GPU machine (the `device` tool): the engines benchmark at tuna-1.5b shapes,
# then PAPAYA plans for tuna-1.5b (t2i, then train). Run from the repo root there, with `.whl`
# carried (docs/PERFORMANCE_GPU_PLAN.md says which wheels), as
#     set -o pipefail; bash scripts/gpu_session.sh 2>&1 | tee $OUT/log.txt
# Everything is packed into $OUT/results.tgz after every stage, and each profiling run is kept
# in a journal as it finishes, so a stage cut short by its timeout keeps what it measured. Put
# the results.tgz of an earlier call into .whl/ (as results.tgz) and the plans resume from it.
# A stage's seconds can be set, 0 skipping it: BENCH_S, T2I_S, TRAIN_S (defaults fit a 10-minute call).
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl ||
    exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 TUNA_ENGINE_CACHE=/tmp/engines TQDM_MININTERVAL=10
R=/tmp/res
mkdir -p $R/memory
[ -f .whl/results.tgz ] && tar xzf .whl/results.tgz -C $R
[ -f $R/PERFORMANCE.md ] || cp docs/PERFORMANCE.md $R/PERFORMANCE.md
pack() { tar czf "$OUT/results.tgz" -C $R . && echo "[$(date -u +%T)] packed"; }

date -u
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import sys, torch, transformers, diffusers
print(sys.version.split()[0], torch.__version__, transformers.__version__, diffusers.__version__, torch.cuda.get_device_name())"

# stage NAME SECONDS COMMAND...: run it under a timeout (0 skips it), then pack the results.
stage() {
    local name=$1 seconds=$2
    shift 2
    if [ "$seconds" = 0 ]; then echo "== $name: skipped"; return; fi
    echo "== $name"
    timeout "$seconds" "$@"
    echo "rc=$?"
    pack
}
stage "engines bench" "${BENCH_S:-120}" python3 -m engines.bench --preset tuna-1.5b --size 512 --runs 20 \
    --backends eager,compile,tensorrt --out $R/PERFORMANCE.md
stage "plan t2i" "${T2I_S:-170}" python3 -m tuna_core plan --preset tuna-1.5b --task t2i --budget 24GiB \
    --device cuda --batch-sizes 1,2,3,4 --sampling-steps 4 --measure-limit 16 --resume --out $R/memory
stage "plan train" "${TRAIN_S:-270}" python3 -m tuna_core plan --preset tuna-1.5b --task train --budget 80GiB \
    --device cuda --batch-sizes 1,2,3,4 --measure-limit 8 --steps 2 --resume --out $R/memory
date -u
