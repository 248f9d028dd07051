#!/bin/bash
# Thirteenth sitting, visited-states arm: the control arm's command (arm_even.sh) with --state_selection visited, on
# its collected answers (copied, with its base TPF), for one pass over its 477 examples (120 steps of 4): a visited
# example holds fewer states, so this comes to about the control's training tokens in its 100 steps (each arm's
# exact tokens are in its train_log.json); more steps would repeat examples.
cd /work/main; . .venv/bin/activate
. docs/gated_cpu/sitting_args.sh
mkdir -p runs/arm_visited/round_0
cp -rn runs/arm_even/round_0/data runs/arm_even/round_0/tpf_base.json runs/arm_visited/round_0/
date
hf-jacobi train --prompts runs/prompts_13th.jsonl $SITTING_ARGS --consistency_target hard --learning_rate 3e-4 \
  --max_steps 120 --state_selection visited --output_dir runs/arm_visited
date
