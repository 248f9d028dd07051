#!/bin/bash
# Eighth sitting as an A/B at equal tokens: 800 new prompts (coding_prompts(9400)[8600:9400]), collected once, trained
# twice from the shipped seven-sitting adapter: "hard" is the command of the earlier sittings (cross-entropy against the
# clean token at the 4 guess positions); "soft" differs only in --consistency_target soft (KL to the base model's
# distribution at the clean position, the reference's target). Both train one epoch over the same examples in the same order.
cd /work/main; . .venv/bin/activate
. docs/gated_cpu/sitting_args.sh
ARGS="$SITTING_ARGS --learning_rate 3e-4 --max_minutes 60"
date
hf-jacobi train --prompts runs/prompts_8th.jsonl $ARGS --consistency_target hard --output_dir runs/gated_eighth_hard
date
mkdir -p runs/gated_eighth_soft/round_0
[ -d runs/gated_eighth_soft/round_0/data ] || cp -r runs/gated_eighth_hard/round_0/data runs/gated_eighth_soft/round_0/
hf-jacobi train --prompts runs/prompts_8th.jsonl $ARGS --consistency_target soft --output_dir runs/gated_eighth_soft
date
