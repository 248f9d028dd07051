"""The arm whose decoder TPF with 3 guesses, averaged over HumanEval 16 and the unseen 64, is higher (the number the
ship rule reads, ../decide_ship.py).

    python docs/gated_cpu/thirteenth_run/best_arm.py runs/arm_even/model runs/arm_visited/model
"""

import sys

sys.path.insert(0, "docs/gated_cpu")
from decide_ship import guesses3


def mean(model: str) -> float:
    return (guesses3("runs/offset_arms.json", model) + guesses3("runs/offset_unseen64_arms.json", model)) / 2


print(max(sys.argv[1:], key=mean))
