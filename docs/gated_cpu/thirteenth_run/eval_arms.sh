#!/bin/bash
# Thirteenth sitting's measurements: the shipped adapter and both arms' offsets and 3-guess replay on HumanEval 16
# and the unseen 64 (bf16, deterministic on this machine), then the shipped adapter and the arm with the higher mean
# 3-guess replay TPF decoded with the clean carry and 4 fresh tails, side by side.
cd /work/main; . .venv/bin/activate
S=src/hf_jacobi/assets/smollm2-jacobi-forcing; A=runs/arm_even/model; B=runs/arm_visited/model
date
python examples/offset_accuracy.py --filler 16 --dtype bfloat16 --offsets 8 --models $S $A $B --output runs/offset_arms.json
date
python examples/offset_accuracy.py --filler 16 --dtype bfloat16 --offsets 8 --prompts 64 \
  --prompts-file runs/prompts_unseen64.jsonl --models $S $A $B --output runs/offset_unseen64_arms.json
date
BEST=$(python docs/gated_cpu/thirteenth_run/best_arm.py $A $B)
echo "decoding $BEST"
python examples/fresh_rows_eval.py --models $S $BEST --block-sizes 16 --fresh-rows --fresh-tails 4 \
  --only "clean carry" "4 fresh tails" --output runs/tails_eval_arms.json
date
