#!/bin/bash
# The tenth sitting's measurements, run before anything was shipped (src/hf_jacobi/assets held the nine-sitting
# adapter, whose offsets on both sets are the lr3e-4 entries of ../ninth_run/offset*_ninth.json; bf16 offsets
# are deterministic on this machine, so only the new adapter is measured there; the unseen 16 are the last 16 of the
# unseen 64 and are not measured apart this time). The decoded run has both adapters.
# Ship rule, fixed before any result: ship the tenth sitting if its decoder TPF with 3 guesses, averaged over
# HumanEval 16 and the unseen 64, is not below the nine-sitting adapter's and its decoded 4-tail TPF is not lower by
# more than 0.03; else keep the nine-sitting adapter.
cd /work/main
while pgrep -f tenth_train.sh > /dev/null; do sleep 20; done
docs/gated_cpu/eval_sitting.sh runs/gated_tenth/model tenth
