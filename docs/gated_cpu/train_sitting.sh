#!/bin/bash
# A continued sitting's training since the tenth: the shipped recipe (../sitting_args.sh, hard targets, lr 3e-4) on one
# prompt file, one epoch from the shipped adapter, in a time box.
# Usage: docs/gated_cpu/train_sitting.sh runs/prompts_12th.jsonl twelfth 68  (writes runs/gated_twelfth)
cd /work/main; . .venv/bin/activate
PROMPTS=${1:?the prompt file}; TAG=${2:?a name for the output dir, e.g. twelfth}; MINUTES=${3:?the time box in minutes}
. docs/gated_cpu/sitting_args.sh
ARGS="$SITTING_ARGS --consistency_target hard --max_minutes $MINUTES"
date
hf-jacobi train --prompts $PROMPTS $ARGS --learning_rate 3e-4 --output_dir runs/gated_$TAG
date
