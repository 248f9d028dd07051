#!/bin/bash
# Ship a sitting's trained run into the package: fp16 copy whose generation config keeps the shipped decoding defaults
# (4 fresh tails beside a lookup row), then the float32 identity check of the shipped setting.
# Usage: docs/gated_cpu/ship_run.sh runs/gated_tenth runs/tails_eval_tenth_fp32.json
# (the eighth and ninth sittings' ship.sh call it with their shipped arm).
set -e
cd /work/main; . .venv/bin/activate
RUN=${1:?run directory, e.g. runs/gated_tenth}; FP32_OUT=${2:?output json of the float32 check}
date
python examples/train_smollm2.py --output-dir "$RUN" --ship
cp "$RUN"/ship/adapter_model.safetensors "$RUN"/ship/adapter_config.json "$RUN"/ship/generation_config.json \
   src/hf_jacobi/assets/smollm2-jacobi-forcing/
git status --short
date
python examples/fresh_rows_eval.py --models src/hf_jacobi/assets/smollm2-jacobi-forcing --block-sizes 16 --dtype float32 \
  --fresh-rows --fresh-tails 4 --lookup 2 --only "tails + lookup 2 row" --output "$FP32_OUT"
date
