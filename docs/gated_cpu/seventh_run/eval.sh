#!/bin/bash
# The seventh sitting's measurements (2026-12-07 08:50-09:10), run before it was shipped: src/hf_jacobi/assets held the
# six-sitting adapter then. prompts_6th/7th.jsonl are the sixth and seventh sittings' training prompts
# (coding_prompts(7000)[5400:7000], coding_prompts(8600)[7000:8600]); prompts_unseen16.jsonl (here) is the last 16 of
# coding_prompts(), which no sitting trained on.
cd /work/main; . .venv/bin/activate
date
python examples/fresh_rows_eval.py --models src/hf_jacobi/assets/smollm2-jacobi-forcing runs/gated_seventh/model --block-sizes 16 \
  --fresh-rows --fresh-tails 4 --lookup 2 --only "clean carry" tails --output runs/tails_eval_seventh.json
date
python examples/offset_accuracy.py --filler 16 --dtype bfloat16 --offsets 8 --models runs/gated_seventh/model --output runs/offset_seventh.json
date
python examples/offset_accuracy.py --filler 16 --dtype bfloat16 --offsets 8 --prompts-file runs/prompts_6th.jsonl \
  --models src/hf_jacobi/assets/smollm2-jacobi-forcing runs/gated_seventh/model --output runs/offset_seen6.json
date
python examples/offset_accuracy.py --filler 16 --dtype bfloat16 --offsets 8 --prompts-file runs/prompts_unseen16.jsonl \
  --models src/hf_jacobi/assets/smollm2-jacobi-forcing runs/gated_seventh/model --output runs/offset_unseen16.json
date
python examples/offset_accuracy.py --filler 16 --dtype bfloat16 --offsets 8 --prompts-file runs/prompts_7th.jsonl \
  --models src/hf_jacobi/assets/smollm2-jacobi-forcing runs/gated_seventh/model --output runs/offset_seen7.json
date
