"""The twelfth sitting's prompts: the first 800 "Complete this Python function:" stubs of coding_prompts()[12200:],
leaving out the last 64 (the unseen set) and every prompt of an earlier sitting's file (runs/prompts_*.jsonl; pass
--exclude-files to list them if the folder differs), and checked to hold no HumanEval entry point.

    python docs/gated_cpu/twelfth_run/make_prompts.py runs/prompts_12th.jsonl
"""

import argparse
import glob
import json

from hf_jacobi.data import coding_prompts, load_humaneval

parser = argparse.ArgumentParser()
parser.add_argument("output")
parser.add_argument("--exclude-files", nargs="*", default=None, help="earlier sittings' prompt files (default runs/prompts_*.jsonl)")
args = parser.parse_args()
prompts = coding_prompts()
used = set(prompts[:12200]) | set(prompts[-64:])
for path in args.exclude_files if args.exclude_files is not None else glob.glob("runs/prompts_*.jsonl"):
    if path != args.output:
        with open(path) as handle:
            used.update(json.loads(line)["prompt"] for line in handle if line.strip())
stubs = [p for p in prompts[12200:-64] if p not in used and p.startswith("Complete this Python function:")][:800]
entry_points = {problem["entry_point"] for problem in load_humaneval()}
if any(f"def {name}(" in stub for stub in stubs for name in entry_points):
    raise SystemExit("a stub defines a HumanEval entry point: HumanEval is an evaluation set, never train on it")
with open(args.output, "w") as handle:
    handle.writelines(json.dumps({"prompt": stub}) + "\n" for stub in stubs)
print(f"{len(stubs)} prompts in {args.output}")
