#!/bin/bash
# How much a tree branch for the first guess's second (third) choice would add: the shipped adapter's offsets with
# the first guess's rank at every state, replayed with branches (examples/offset_accuracy.py prints "... branches"),
# on HumanEval 16 and the unseen 64 (bf16).
cd /work/main; . .venv/bin/activate
M=src/hf_jacobi/assets/smollm2-jacobi-forcing
date
python examples/offset_accuracy.py --filler 16 --dtype bfloat16 --offsets 8 --no-base --models $M \
  --output runs/offset_branches_he16.json
date
python examples/offset_accuracy.py --filler 16 --dtype bfloat16 --offsets 8 --no-base --prompts 64 \
  --prompts-file runs/prompts_unseen64.jsonl --models $M --output runs/offset_branches_unseen64.json
date
