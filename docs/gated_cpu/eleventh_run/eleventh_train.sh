#!/bin/bash
# Eleventh sitting: more tokens with the shipped recipe (lr 3e-4, hard targets), 1,000 new prompts
# (coding_prompts()[11200:12200], none among the last 64 or the earlier sittings' files), one epoch from the
# shipped ten-sitting adapter. Same command as ../tenth_run/tenth_train.sh but for the prompts and output dir.
cd /work/main; . .venv/bin/activate
. docs/gated_cpu/sitting_args.sh
ARGS="$SITTING_ARGS --consistency_target hard --max_minutes 80"
date
hf-jacobi train --prompts runs/prompts_11th.jsonl $ARGS --learning_rate 3e-4 --output_dir runs/gated_eleventh
date
