#!/usr/bin/env bash
# One call on a lent GPU machine (the `device` tool): continue training the bundled model there.
# A CPU session adds about 1000 joint steps; a few GPU minutes at larger batches add several times that.
# Run from the repo root there, with `.whl` carried (docs/PERFORMANCE_GPU_PLAN.md says which wheels), as
#     set -o pipefail; bash scripts/gpu_train.sh 2>&1 | tee $OUT/log.txt
# It rebuilds the latent cache from the shipped VAE (the 439 MB cache cannot travel), times a short
# run, sizes the real run to TRAIN_S seconds at that pace, trains it from assets/tuna-tiny, and sends
# back the EMA checkpoint in 15 MiB parts with the training log. Back here:
#     mkdir -p runs/tiny-gpu && cat /work/.device/…/latest.tar.part-* | tar x -C runs/tiny-gpu
# Settings: TRAIN_S (seconds of joint steps, default 300), BATCH (per-task micro-batches, default four
# times the CPU recipe's), LR (default 2e-4), STAGE1 (a folder with the VAE, and the cache if it is there),
# INIT (the checkpoint to continue, default assets/tuna-tiny), RUN (the output folder, default /tmp/run),
# STEPS (skip the timing run and train this many steps, cut off after TRAIN_S + 120 s at the latest
# checkpoint), FLAGS (more `train` flags, e.g. "--time-shift 3", as the shipped weights' last run).
# A second call on the still-warm machine finds STAGE1's cache and the first run there:
#     INIT=/tmp/run/latest RUN=/tmp/run2 STEPS=1200 TRAIN_S=280 bash scripts/gpu_train.sh …
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl ||
    exit 1
export PYTHONPATH=/tmp/site PYTHONUNBUFFERED=1 TQDM_MININTERVAL=10
TRAIN_S=${TRAIN_S:-300}
BATCH=${BATCH:-t2i=128,caption=12,qa=24,edit=108,t2v=48,video_qa=32}
STAGE1=${STAGE1:-/tmp/stage1} RUN=${RUN:-/tmp/run} STEPS=${STEPS:-}
[ -d "$STAGE1/vae" ] || { mkdir -p "$STAGE1" && cp -r assets/tuna-tiny/vae "$STAGE1/vae"; }
train=(python3 -m tuna_core train --preset tiny --stage1 "$STAGE1" --init "${INIT:-assets/tuna-tiny}" --lr "${LR:-2e-4}"
    --follow-ups 0.5 --batch "$BATCH")
read -ra flags <<<"${FLAGS:-}"
train+=("${flags[@]}")

date -u
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
if [ -z "$STEPS" ]; then
    echo "== cache and a 30-step timing run"
    SECONDS=0
    timeout 300 "${train[@]}" --out /tmp/timing --steps 30 || exit 1
    echo "took ${SECONDS} s"
    # Steps 21-30 overestimate a long run's pace: timed at 0.45 s, 600 steps averaged 0.33 s (session 20).
    pace=$(python3 -c "import json; print(json.loads(open('/tmp/timing/log.jsonl').readlines()[-1])['s_per_step'])")
    STEPS=$(python3 -c "print(int($TRAIN_S / $pace) // 100 * 100)")  # checkpoints come every 100 steps
    echo "== $pace s a step: $STEPS steps"
fi
[ "$STEPS" -gt 0 ] || { echo "fewer than 100 steps fit in TRAIN_S=$TRAIN_S s"; exit 1; }
SECONDS=0
timeout $((TRAIN_S + 120)) "${train[@]}" --out "$RUN" --steps "$STEPS"
echo "rc=$? after ${SECONDS} s"
cp "$RUN"/log.jsonl "$RUN"/loss.png "$OUT"/
tar cf - -C "$RUN" latest | split -b 15M - "$OUT"/latest.tar.part-
ls -l "$OUT"
date -u
