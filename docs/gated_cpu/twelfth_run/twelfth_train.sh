#!/bin/bash
# Twelfth sitting: the shipped recipe (lr 3e-4, hard targets) on a HumanEval-like prompt mix: 800 new prompts that are
# all "Complete this Python function:" stubs (a signature and docstring in a code block, as HumanEval's are asked),
# the first 800 such prompts of coding_prompts()[12200:] (none among the last 64 or the earlier sittings' files; no
# HumanEval entry point among them), one epoch from the shipped eleven-sitting adapter. Same command as
# ../eleventh_run/eleventh_train.sh but for the prompts, the output dir and a 68-minute box.
cd /work/main; . .venv/bin/activate
. docs/gated_cpu/sitting_args.sh
ARGS="$SITTING_ARGS --consistency_target hard --max_minutes 68"
date
hf-jacobi train --prompts runs/prompts_12th.jsonl $ARGS --learning_rate 3e-4 --output_dir runs/gated_twelfth
date
