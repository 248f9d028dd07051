#!/bin/bash
# The eleventh sitting's measurements, run before anything was shipped (src/hf_jacobi/assets held the ten-sitting
# adapter, whose offsets on both sets are in ../tenth_run/offset*_tenth.json; bf16 offsets are deterministic on this
# machine, so only the new adapter is measured there). The decoded run has both adapters.
# Ship rule, fixed before any result: ship the eleventh sitting if its decoder TPF with 3 guesses, averaged over
# HumanEval 16 and the unseen 64, is not below the ten-sitting adapter's and its decoded 4-tail TPF is not lower by
# more than 0.03; else keep the ten-sitting adapter (../decide_ship.py).
cd /work/main
while pgrep -f eleventh_train.sh > /dev/null; do sleep 20; done
docs/gated_cpu/eval_sitting.sh runs/gated_eleventh/model eleventh
