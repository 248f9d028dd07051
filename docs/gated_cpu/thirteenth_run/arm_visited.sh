#!/bin/bash
# Thirteenth sitting, visited-states arm: the control arm's command (arm_even.sh) with --state_selection visited, on
# its collected answers (copied, with its base TPF), for the steps that give about its training tokens.
cd /work/main; . .venv/bin/activate
. docs/gated_cpu/sitting_args.sh
mkdir -p runs/arm_visited/round_0
cp -rn runs/arm_even/round_0/data runs/arm_even/round_0/tpf_base.json runs/arm_visited/round_0/
STEPS=$(python docs/gated_cpu/thirteenth_run/equal_tokens.py runs/arm_even/round_0/data 100 2>/dev/null | tail -1)
echo "steps: $STEPS"
date
hf-jacobi train --prompts runs/prompts_13th.jsonl $SITTING_ARGS --consistency_target hard --learning_rate 3e-4 \
  --max_steps $STEPS --state_selection visited --output_dir runs/arm_visited
date
