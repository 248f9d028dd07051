"""The thirteenth sitting's prompts: coding_prompts()[12200:12680] (the training kind, mixed templates; the shipped
eleven-sitting adapter was trained on prompts before 12200 only), checked to hold none of the last 64 (the unseen set)
and no HumanEval entry point; also writes the unseen set itself (the last 64 of coding_prompts()).

    python docs/gated_cpu/thirteenth_run/make_prompts.py runs/prompts_13th.jsonl runs/prompts_unseen64.jsonl
"""

import argparse
import json

from hf_jacobi.data import coding_prompts, load_humaneval

parser = argparse.ArgumentParser()
parser.add_argument("output")
parser.add_argument("unseen")
args = parser.parse_args()
prompts = coding_prompts()
chosen, unseen = prompts[12200:12680], prompts[-64:]
if set(chosen) & set(unseen):
    raise SystemExit("a training prompt is in the unseen set")
entry_points = {problem["entry_point"] for problem in load_humaneval()}
if any(f"def {name}(" in prompt for prompt in chosen for name in entry_points):
    raise SystemExit("a prompt defines a HumanEval entry point: HumanEval is an evaluation set, never train on it")
for path, rows in ((args.output, chosen), (args.unseen, unseen)):
    with open(path, "w") as handle:
        handle.writelines(json.dumps({"prompt": prompt}) + "\n" for prompt in rows)
    print(f"{len(rows)} prompts in {path}")
