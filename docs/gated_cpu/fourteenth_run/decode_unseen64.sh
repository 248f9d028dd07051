#!/bin/bash
# The shipped adapter decoded on the 64 unseen prompts of the training kind (runs/prompts_unseen64.jsonl, the last 64
# of coding_prompts(): ../thirteenth_run/make_prompts.py), bf16, block 16, 128 tokens: one row with 4 fresh tails
# (Jacobi alone), and beside a lookup row / with lookup in the draft, against HF greedy. The offsets put its 3-guess
# bound there at 2.467 (../twelfth_run/offset_commits_unseen64.json).
cd /work/main; . .venv/bin/activate
date
python examples/fresh_rows_eval.py --models src/hf_jacobi/assets/smollm2-jacobi-forcing --prompts 64 \
  --prompts-file runs/prompts_unseen64.jsonl --block-sizes 16 --fresh-rows --fresh-tails 4 --lookup 2 \
  --only "4 fresh tails" --output runs/decode_unseen64.json
date
