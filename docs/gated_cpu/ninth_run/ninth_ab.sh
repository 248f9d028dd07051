#!/bin/bash
# Ninth sitting as an A/B of the learning rate at equal tokens: 800 new prompts (coding_prompts()[9400:10200]),
# collected once, trained twice from the shipped eight-sitting adapter: "lr3e-4" is the command of the earlier sittings
# (hard consistency target); "lr1e-3" differs only in --learning_rate 1e-3. Both train one epoch over the same examples
# in the same order.
cd /work/main; . .venv/bin/activate
. docs/gated_cpu/sitting_args.sh
ARGS="$SITTING_ARGS --consistency_target hard --max_minutes 60"
date
hf-jacobi train --prompts runs/prompts_9th.jsonl $ARGS --learning_rate 3e-4 --output_dir runs/gated_ninth_lr3e-4
date
mkdir -p runs/gated_ninth_lr1e-3/round_0
[ -d runs/gated_ninth_lr1e-3/round_0/data ] || cp -r runs/gated_ninth_lr3e-4/round_0/data runs/gated_ninth_lr1e-3/round_0/
hf-jacobi train --prompts runs/prompts_9th.jsonl $ARGS --learning_rate 1e-3 --output_dir runs/gated_ninth_lr1e-3
date
