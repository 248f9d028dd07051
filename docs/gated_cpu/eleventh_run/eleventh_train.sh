#!/bin/bash
# Eleventh sitting: more tokens with the shipped recipe (lr 3e-4, hard targets), 1,000 new prompts
# (coding_prompts()[11200:12200], none among the last 64 or the earlier sittings' files), one epoch from the
# shipped ten-sitting adapter. Same command as ../tenth_run/tenth_train.sh but for the prompts and output dir.
cd /work/main
docs/gated_cpu/train_sitting.sh runs/prompts_11th.jsonl eleventh 80
