#!/bin/bash
# A continued sitting's measurements before anything is shipped: the new adapter's offsets on HumanEval 16 and the
# unseen 64 (bf16 offsets are deterministic on this machine, so the shipped adapter's come from its own sitting's
# files), then the shipped and the new adapter decoded in one run.
# Usage: docs/gated_cpu/eval_sitting.sh runs/gated_eleventh/model eleventh  (writes runs/offset_eleventh.json,
# runs/offset_unseen64_eleventh.json, runs/tails_eval_eleventh.json)
cd /work/main; . .venv/bin/activate
T=${1:?the new adapter, e.g. runs/gated_eleventh/model}; TAG=${2:?a name for the output files, e.g. eleventh}
S=src/hf_jacobi/assets/smollm2-jacobi-forcing
date
python examples/offset_accuracy.py --filler 16 --dtype bfloat16 --offsets 8 --models $T --output runs/offset_$TAG.json
date
python examples/offset_accuracy.py --filler 16 --dtype bfloat16 --offsets 8 --prompts 64 \
  --prompts-file runs/prompts_unseen64.jsonl --models $T --output runs/offset_unseen64_$TAG.json
date
python examples/fresh_rows_eval.py --models $S $T --block-sizes 16 --fresh-rows --fresh-tails 4 --lookup 2 \
  --only "clean carry" tails --output runs/tails_eval_$TAG.json
date
