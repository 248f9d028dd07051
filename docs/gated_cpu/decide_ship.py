"""The ship rule of the continued sittings, fixed before any result (since the tenth): ship the new sitting's adapter
if its decoder TPF with 3 guesses, averaged over HumanEval 16 and the unseen 64, is not below the shipped adapter's,
and its decoded 4-tail TPF is not lower by more than 0.03. Exit 0 to ship, 1 to keep the shipped adapter; prints the
numbers the rule reads.

    python docs/gated_cpu/decide_ship.py OLD_MODEL OLD_HUMANEVAL OLD_UNSEEN64 NEW_MODEL NEW_HUMANEVAL NEW_UNSEEN64 DECODED

OLD_/NEW_MODEL name the adapters as their offset files (examples/offset_accuracy.py) do; DECODED is the
examples/fresh_rows_eval.py run that decoded the shipped adapter and NEW_MODEL side by side."""

import json
import sys
from pathlib import Path

SHIPPED = "src/hf_jacobi/assets/smollm2-jacobi-forcing"


def results(path: str) -> dict:
    return json.loads(Path(path).read_text())["results"]


def guesses3(path: str, model: str) -> float:
    return results(path)[model]["decoder_tpf"]["3 guesses"]


def main(old_model, old_humaneval, old_unseen, new_model, new_humaneval, new_unseen, decoded_path) -> int:
    old = (guesses3(old_humaneval, old_model) + guesses3(old_unseen, old_model)) / 2
    new = (guesses3(new_humaneval, new_model) + guesses3(new_unseen, new_model)) / 2
    decoded = results(decoded_path)
    tails = {m: decoded[m]["n=16 clean + 4 fresh tails"]["tpf"] for m in (SHIPPED, new_model)}
    ship = new >= old and tails[new_model] >= tails[SHIPPED] - 0.03
    print(f"decoder TPF, 3 guesses, mean of HumanEval 16 and unseen 64: shipped {old:.3f}, {new_model} {new:.3f}")
    print(f"decoded, 4 fresh tails: shipped {tails[SHIPPED]:.3f}, {new_model} {tails[new_model]:.3f}")
    print(f"ship {new_model}" if ship else "keep the shipped adapter")
    return 0 if ship else 1


if __name__ == "__main__":
    if len(sys.argv) != 8:
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
