#!/bin/bash
# After eval_twelfth.sh: apply the ship rule and ship (with the float32 check) if it says so. The README and card are
# edited by hand after it (model_cards/ must then get the card's copy), then the README's test command.
cd /work/main; . .venv/bin/activate
while pgrep -f eval_twelfth.sh > /dev/null; do sleep 20; done
if python docs/gated_cpu/decide_ship.py runs/gated_eleventh/model docs/gated_cpu/eleventh_run/offset_eleventh.json \
    docs/gated_cpu/eleventh_run/offset_unseen64_eleventh.json runs/gated_twelfth/model runs/offset_twelfth.json \
    runs/offset_unseen64_twelfth.json runs/tails_eval_twelfth.json; then
  docs/gated_cpu/ship_run.sh runs/gated_twelfth runs/tails_eval_twelfth_fp32.json
fi
date
