#!/bin/bash
# The twelfth sitting's measurements, run before anything was shipped (src/hf_jacobi/assets held the eleven-sitting
# adapter, whose offsets on both sets are in ../eleventh_run/offset*_eleventh.json). The decoded run has both adapters.
# Ship rule, fixed before any result: ship the twelfth sitting if its decoder TPF with 3 guesses, averaged over
# HumanEval 16 and the unseen 64, is not below the eleven-sitting adapter's and its decoded 4-tail TPF is not lower by
# more than 0.03; else keep the eleven-sitting adapter (../decide_ship.py). Same rule as the eleventh's, kept although
# this sitting's prompts are all function stubs, so that a gain on HumanEval paid for by the training kind does not ship.
cd /work/main
while pgrep -f twelfth_train.sh > /dev/null; do sleep 20; done
docs/gated_cpu/eval_sitting.sh runs/gated_twelfth/model twelfth
