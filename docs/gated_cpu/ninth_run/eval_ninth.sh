#!/bin/bash
# The ninth sitting's A/B measurements, run before anything was shipped (src/hf_jacobi/assets held the eight-sitting
# adapter, whose offsets on HumanEval 16 and the unseen 16 are in ../eighth_run/offset*_eighth_ab.json, "hard").
# runs/prompts_unseen64.jsonl is the last 64 of coding_prompts() (never trained on; its last 16 are prompts_unseen16).
# Ship rule, fixed before any result: the lr1e-3 arm if its decoder TPF with 3 guesses, averaged over HumanEval 16 and
# the unseen 64, leads lr3e-4's by >= 0.02 and its decoded 4-tail TPF is not lower by more than 0.03; else lr3e-4.
cd /work/main; . .venv/bin/activate
while pgrep -f ninth_ab.sh > /dev/null; do sleep 20; done
A=runs/gated_ninth_lr3e-4/model; B=runs/gated_ninth_lr1e-3/model; S=src/hf_jacobi/assets/smollm2-jacobi-forcing
date
python examples/offset_accuracy.py --filler 16 --dtype bfloat16 --offsets 8 --models $A $B --output runs/offset_ninth.json
date
python examples/offset_accuracy.py --filler 16 --dtype bfloat16 --offsets 8 --prompts-file runs/prompts_unseen16.jsonl \
  --models $A $B --output runs/offset_unseen16_ninth.json
date
python examples/offset_accuracy.py --filler 16 --dtype bfloat16 --offsets 8 --prompts 64 \
  --prompts-file runs/prompts_unseen64.jsonl --models $S $A $B --output runs/offset_unseen64_ninth.json
date
python examples/fresh_rows_eval.py --models $S $A $B --block-sizes 16 --fresh-rows --fresh-tails 4 --lookup 2 \
  --only "clean carry" tails --output runs/tails_eval_ninth.json
date
