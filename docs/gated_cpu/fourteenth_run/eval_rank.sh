#!/bin/bash
# Fourteenth sitting's measurement: the grown arm's offsets and 3-guess replay on HumanEval 16 (bf16), beside the
# thirteenth's control (runs/offset_arms.json from ../thirteenth_run/eval_arms.sh; the base row is skipped, it is the
# same in every run).
cd /work/main; . .venv/bin/activate
R=$1
date
python examples/offset_accuracy.py --filler 16 --dtype bfloat16 --offsets 8 --no-base --models runs/arm_r$R/model \
  --output runs/offset_r$R.json
date
