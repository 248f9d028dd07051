"""One round_0/data folder from the 7 collections of the fresh-state run (runs/fresh), for a single round over all of
their 2,800 prompts. With `--states fresh --answers base` every round's records are the base model's greedy answers to
prompts[r * 400:(r + 1) * 400] of `--coding_prompts 3000`, so together they are the collection of prompts[:2800] in
order: only the prompt and chunk indices move. The prompts' hash is left out (the collection check then takes the
records as they are); the model fingerprint is the base model's, as in round 0.

    python docs/gated_cpu/combine_rounds.py runs/fresh runs/gated_big/round_0
"""

import json
import shutil
import sys
from pathlib import Path

source, target = Path(sys.argv[1]), Path(sys.argv[2])
rounds = sorted(source.glob("round_*/data/trajectories.jsonl"), key=lambda p: int(p.parent.parent.name[6:]))
(target / "data").mkdir(parents=True, exist_ok=True)
config = json.loads((source / "round_0" / "data" / "collect_config.json").read_text())
per_round, chunks = config["num_prompts"], config["num_prompts"] // config["batch_size"]
with open(target / "data" / "trajectories.jsonl", "w") as out:
    for r, path in enumerate(rounds):
        for line in path.open():
            record = json.loads(line)
            record["prompt_index"] += r * per_round
            record["chunk"] += r * chunks
            out.write(json.dumps(record) + "\n")
total = per_round * len(rounds)
config.update(num_prompts=total, prompts_done=total)  # model_name stays round 0's, which the new run's round 0 gives
for key in ("prompts_sha256", "seconds"):
    config.pop(key)
(target / "data" / "collect_config.json").write_text(json.dumps(config, indent=1))
shutil.copyfile(source / "round_0" / "tpf_base.json", target / "tpf_base.json")
print(f"{total} prompts from {len(rounds)} rounds in {target / 'data'}")
