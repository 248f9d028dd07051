"""The tenth sitting's ship rule (fixed before any result, see eval_tenth.sh): exit 0 to ship the tenth sitting's
adapter, 1 to keep the nine-sitting one. Prints the numbers the rule reads. It read the runs/ files as they were
written; their copies are in this folder."""

import json
import sys
from pathlib import Path

NINTH = "runs/gated_ninth_lr3e-4/model"  # the shipped nine-sitting adapter, as the ninth sitting's offsets name it
TENTH = "runs/gated_tenth/model"
SHIPPED = "src/hf_jacobi/assets/smollm2-jacobi-forcing"


def results(path: str) -> dict:
    return json.loads(Path(path).read_text())["results"]


def guesses3(path: str, model: str) -> float:
    return results(path)[model]["decoder_tpf"]["3 guesses"]


old = (guesses3("docs/gated_cpu/ninth_run/offset_ninth.json", NINTH)
       + guesses3("docs/gated_cpu/ninth_run/offset_unseen64_ninth.json", NINTH)) / 2
new = (guesses3("runs/offset_tenth.json", TENTH) + guesses3("runs/offset_unseen64_tenth.json", TENTH)) / 2
decoded = results("runs/tails_eval_tenth.json")
tails = {m: decoded[m]["n=16 clean + 4 fresh tails"]["tpf"] for m in (SHIPPED, TENTH)}
ship = new >= old and tails[TENTH] >= tails[SHIPPED] - 0.03
print(f"decoder TPF, 3 guesses, mean of HumanEval 16 and unseen 64: nine sittings {old:.3f}, tenth {new:.3f}")
print(f"decoded, 4 fresh tails: nine sittings {tails[SHIPPED]:.3f}, tenth {tails[TENTH]:.3f}")
print("ship the tenth" if ship else "keep the nine-sitting adapter")
sys.exit(0 if ship else 1)
