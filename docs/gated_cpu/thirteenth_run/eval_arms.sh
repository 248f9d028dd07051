#!/bin/bash
# Thirteenth sitting's measurements: both arms' offsets and 3-guess replay on HumanEval 16 and the unseen 64 (bf16;
# the shipped adapter's are the twelfth's files, ../twelfth_run/offset_commits_*.json, and the base model's rows,
# computed again, match them within 0.002). Neither arm was decoded: neither
# beat the shipped adapter on HumanEval by more than the sittings' drift, and the session's time was up (the
# unseen-64 run did not finish inside it).
cd /work/main; . .venv/bin/activate
A=runs/arm_even/model; B=runs/arm_visited/model
date
python examples/offset_accuracy.py --filler 16 --dtype bfloat16 --offsets 8 --models $A $B --output runs/offset_arms.json
date
python examples/offset_accuracy.py --filler 16 --dtype bfloat16 --offsets 8 --prompts 64 \
  --prompts-file runs/prompts_unseen64.jsonl --models $A $B --output runs/offset_unseen64_arms.json
date
