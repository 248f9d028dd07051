#!/bin/bash
# Thirteenth sitting, control arm: the shipped recipe (../sitting_args.sh, hard targets, lr 3e-4) on 480 new prompts
# of the training kind, from the shipped adapter, for a fixed 100 steps (not a time box, so that the visited-states
# arm can be given the same training tokens whatever else the machine runs).
cd /work/main; . .venv/bin/activate
. docs/gated_cpu/sitting_args.sh
date
hf-jacobi train --prompts runs/prompts_13th.jsonl $SITTING_ARGS --consistency_target hard --learning_rate 3e-4 \
  --max_steps 100 --output_dir runs/arm_even
date
