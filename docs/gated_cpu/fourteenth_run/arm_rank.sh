#!/bin/bash
# Fourteenth sitting: does the adapter's capacity bind the first guess? The thirteenth's control arm (the shipped
# recipe, 100 steps on the answers to runs/prompts_13th.jsonl, from the shipped r=64 adapter) again, with the adapter
# grown to rank $1 (`--lora_r $1 --lora_alpha 2*$1`: the same scaling, so it starts as the shipped adapter; the new
# ranks start at zero). Same answers (copied from runs/arm_even: run ../thirteenth_run/arm_even.sh first), same
# seed, so the same batches in the same order: its loss is compared log by log with the control's.
set -e
cd /work/main; . .venv/bin/activate
. docs/gated_cpu/sitting_args.sh
R=$1; OUT=runs/arm_r$R
mkdir -p $OUT/round_0
[ -d $OUT/round_0/data ] || cp -r runs/arm_even/round_0/data runs/arm_even/round_0/tpf_base.json $OUT/round_0/
date
hf-jacobi train --prompts runs/prompts_13th.jsonl $SITTING_ARGS --consistency_target hard --learning_rate 3e-4 \
  --max_steps 100 --output_dir $OUT --lora_r $R --lora_alpha $((2 * R))
date
