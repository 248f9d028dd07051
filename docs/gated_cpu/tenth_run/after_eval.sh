#!/bin/bash
# After eval_tenth.sh: apply the ship rule, ship (with the float32 check) if it says so, then the README's test command.
# (Its test step was stopped on this run: the shipped card had to be copied to model_cards/ first, and the suite was
# then run by hand with the README command.)
cd /work/main; . .venv/bin/activate
while pgrep -f eval_tenth.sh > /dev/null; do sleep 20; done
if python docs/gated_cpu/decide_ship.py runs/gated_ninth_lr3e-4/model docs/gated_cpu/ninth_run/offset_ninth.json \
    docs/gated_cpu/ninth_run/offset_unseen64_ninth.json runs/gated_tenth/model runs/offset_tenth.json \
    runs/offset_unseen64_tenth.json runs/tails_eval_tenth.json; then
  docs/gated_cpu/ship_run.sh runs/gated_tenth runs/tails_eval_tenth_fp32.json
fi
date
python -m pytest -q -x 2>&1 | tail -15
date
