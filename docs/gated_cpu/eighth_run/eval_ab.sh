#!/bin/bash
# The eighth sitting's A/B measurements, run before anything was shipped (src/hf_jacobi/assets held the seven-sitting
# adapter). The seven-sitting adapter's offsets on the same prompts are in ../seventh_run/offset_seventh.json and
# offset_unseen16.json (deterministic, the same command).
cd /work/main; . .venv/bin/activate
while pgrep -f eighth_ab.sh > /dev/null; do sleep 20; done
date
python examples/offset_accuracy.py --filler 16 --dtype bfloat16 --offsets 8 \
  --models runs/gated_eighth_hard/model runs/gated_eighth_soft/model --output runs/offset_eighth_ab.json
date
python examples/offset_accuracy.py --filler 16 --dtype bfloat16 --offsets 8 --prompts-file runs/prompts_unseen16.jsonl \
  --models runs/gated_eighth_hard/model runs/gated_eighth_soft/model --output runs/offset_unseen16_eighth_ab.json
date
python examples/fresh_rows_eval.py --models src/hf_jacobi/assets/smollm2-jacobi-forcing runs/gated_eighth_hard/model \
  runs/gated_eighth_soft/model --block-sizes 16 --fresh-rows --fresh-tails 4 --lookup 2 --only "clean carry" tails \
  --output runs/tails_eval_eighth_ab.json
date
