#!/bin/bash
# Tenth sitting: more tokens with the ninth sitting's shipped recipe (lr 3e-4, hard targets), 1,000 new prompts
# (coding_prompts()[10200:11200], none among the last 64), one epoch from the shipped nine-sitting adapter.
# Same flags as ../ninth_run/ninth_ab.sh's lr3e-4 arm (../sitting_args.sh) except --max_minutes 80 (a quarter more prompts).
cd /work/main
docs/gated_cpu/train_sitting.sh runs/prompts_10th.jsonl tenth 80
