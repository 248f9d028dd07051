#!/bin/bash
# After eval_tenth.sh: apply the ship rule, ship (with the float32 check) if it says so, then the README's test command.
# (Its test step was stopped on this run: the shipped card had to be copied to model_cards/ first, and the suite was
# then run by hand with the README command.)
cd /work/main; . .venv/bin/activate
while pgrep -f eval_tenth.sh > /dev/null; do sleep 20; done
docs/gated_cpu/ship_sitting.sh runs/gated_ninth_lr3e-4/model ninth tenth
date
python -m pytest -q -x 2>&1 | tail -15
date
