"""Steps that give the visited-states arm about the training tokens of the control arm's 100 steps, from the control
arm's collected answers: a control example holds up to 96 states of 4 tokens, a visited one about one per forward
of the 3-guess replay (its answers' length / 2.467, the shipped adapter's decoder TPF on the unseen 64 of this
kind). The exact tokens each arm saw are in its train_log.json.

    python docs/gated_cpu/thirteenth_run/equal_tokens.py runs/arm_even/round_0/data 100
"""

import json
import sys

from hf_jacobi.loading import load_model
from hf_jacobi.training import pack_states

data, steps = sys.argv[1], int(sys.argv[2])
with open(f"{data}/trajectories.jsonl") as lines:
    records = [json.loads(line) for line in lines]
eos = load_model(dtype="float32")[1].eos_token_id
every = pack_states(records, 16, eos_token_id=eos, trim_loops=True, horizon=4, filler_token_id=16)
base = [len(p) + len(c) for p, c in zip(every["prompt_ids"], every["clean_ids"])]
control = sum(b + 4 * min(96, len(s)) for b, s in zip(base, every["noisy_starts"])) / len(base)
visited = sum(b + 4 * len(s) / 2.467 for b, s in zip(base, every["noisy_starts"])) / len(base)
print(round(steps * control / visited))
