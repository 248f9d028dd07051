#!/bin/bash
# The eleventh sitting's measurements, run before anything was shipped (src/hf_jacobi/assets held the ten-sitting
# adapter, whose offsets on both sets are in ../tenth_run/offset*_tenth.json; bf16 offsets are deterministic on this
# machine, so only the new adapter is measured there). The decoded run has both adapters.
# Ship rule, fixed before any result: ship the eleventh sitting if its decoder TPF with 3 guesses, averaged over
# HumanEval 16 and the unseen 64, is not below the ten-sitting adapter's and its decoded 4-tail TPF is not lower by
# more than 0.03; else keep the ten-sitting adapter (decide_ship.py).
cd /work/main; . .venv/bin/activate
while pgrep -f eleventh_train.sh > /dev/null; do sleep 20; done
T=runs/gated_eleventh/model; S=src/hf_jacobi/assets/smollm2-jacobi-forcing
date
python examples/offset_accuracy.py --filler 16 --dtype bfloat16 --offsets 8 --models $T --output runs/offset_eleventh.json
date
python examples/offset_accuracy.py --filler 16 --dtype bfloat16 --offsets 8 --prompts 64 \
  --prompts-file runs/prompts_unseen64.jsonl --models $T --output runs/offset_unseen64_eleventh.json
date
python examples/fresh_rows_eval.py --models $S $T --block-sizes 16 --fresh-rows --fresh-tails 4 --lookup 2 \
  --only "clean carry" tails --output runs/tails_eval_eleventh.json
date
