"""The eleventh sitting's ship rule (fixed before any result, see eval_eleventh.sh): exit 0 to ship the eleventh
sitting's adapter, 1 to keep the ten-sitting one. Prints the numbers the rule reads. It read the runs/ files as they
were written; their copies are in this folder."""

import json
import sys
from pathlib import Path

TENTH = "runs/gated_tenth/model"  # the shipped ten-sitting adapter, as the tenth sitting's offsets name it
ELEVENTH = "runs/gated_eleventh/model"
SHIPPED = "src/hf_jacobi/assets/smollm2-jacobi-forcing"


def results(path: str) -> dict:
    return json.loads(Path(path).read_text())["results"]


def guesses3(path: str, model: str) -> float:
    return results(path)[model]["decoder_tpf"]["3 guesses"]


old = (guesses3("docs/gated_cpu/tenth_run/offset_tenth.json", TENTH)
       + guesses3("docs/gated_cpu/tenth_run/offset_unseen64_tenth.json", TENTH)) / 2
new = (guesses3("runs/offset_eleventh.json", ELEVENTH) + guesses3("runs/offset_unseen64_eleventh.json", ELEVENTH)) / 2
decoded = results("runs/tails_eval_eleventh.json")
tails = {m: decoded[m]["n=16 clean + 4 fresh tails"]["tpf"] for m in (SHIPPED, ELEVENTH)}
ship = new >= old and tails[ELEVENTH] >= tails[SHIPPED] - 0.03
print(f"decoder TPF, 3 guesses, mean of HumanEval 16 and unseen 64: ten sittings {old:.3f}, eleventh {new:.3f}")
print(f"decoded, 4 fresh tails: ten sittings {tails[SHIPPED]:.3f}, eleventh {tails[ELEVENTH]:.3f}")
print("ship the eleventh" if ship else "keep the ten-sitting adapter")
sys.exit(0 if ship else 1)
