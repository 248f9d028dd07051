#!/bin/bash
# After eval_eleventh.sh: apply the ship rule and ship (with the float32 check) if it says so. The README and card are
# edited by hand after it (model_cards/ must then get the card's copy), then the README's test command.
cd /work/main; . .venv/bin/activate
while pgrep -f eval_eleventh.sh > /dev/null; do sleep 20; done
if python docs/gated_cpu/decide_ship.py runs/gated_tenth/model docs/gated_cpu/tenth_run/offset_tenth.json \
    docs/gated_cpu/tenth_run/offset_unseen64_tenth.json runs/gated_eleventh/model runs/offset_eleventh.json \
    runs/offset_unseen64_eleventh.json runs/tails_eval_eleventh.json; then
  docs/gated_cpu/ship_run.sh runs/gated_eleventh runs/tails_eval_eleventh_fp32.json
fi
date
