#!/bin/bash
# Twelfth sitting: the shipped recipe (lr 3e-4, hard targets) on a HumanEval-like prompt mix: 800 new prompts that are
# all "Complete this Python function:" stubs (a signature and docstring in a code block, as HumanEval's are asked),
# the first 800 such prompts of coding_prompts()[12200:] (none among the last 64 or the earlier sittings' files; no
# HumanEval entry point among them), one epoch from the shipped eleven-sitting adapter. Same command as
# ../eleventh_run/eleventh_train.sh but for the prompts, the output dir and a 68-minute box.
cd /work/main
docs/gated_cpu/train_sitting.sh runs/prompts_12th.jsonl twelfth 68
