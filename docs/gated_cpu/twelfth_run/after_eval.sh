#!/bin/bash
# After eval_twelfth.sh: apply the ship rule and ship (with the float32 check) if it says so. The README and card are
# edited by hand after it (model_cards/ must then get the card's copy), then the README's test command.
cd /work/main; . .venv/bin/activate
while pgrep -f eval_twelfth.sh > /dev/null; do sleep 20; done
docs/gated_cpu/ship_sitting.sh runs/gated_eleventh/model eleventh twelfth
date
