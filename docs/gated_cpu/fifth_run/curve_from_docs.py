"""Rebuild the run folders `examples/plot_learning_curve.py` reads from what docs/gated_cpu keeps of each sitting (the
runs/ folders are not in git), so the curve can be drawn again on a fresh checkout:

    python docs/gated_cpu/fifth_run/curve_from_docs.py runs/curve
    python examples/plot_learning_curve.py runs/curve/gated_big docs/learning_curve_smollm2_gated.png \
        runs/curve/gated_more runs/curve/gated_third runs/curve/gated_fourth runs/curve/gated_fifth runs/curve/gated_sixth \
        runs/curve/gated_seventh runs/curve/gated_eighth runs/curve/gated_ninth runs/curve/gated_tenth runs/curve/gated_eleventh \
        "previous adapter=1.245"

A sitting's files are `pipeline_config.json`, `train_log.json` and `tpf.json` in its folder; for a sitting trained as an
A/B (the eighth, the ninth), those of the shipped arm, named with the arm's suffix (`train_log_hard.json`).
"""

import json
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent
SITTINGS = {"gated_big": "shipped_run", "gated_more": "continued_run", "gated_third": "third_run",
            "gated_fourth": "fourth_run", "gated_fifth": "fifth_run",
            "gated_sixth": "sixth_run", "gated_seventh": "seventh_run", "gated_eighth": "eighth_run",
            "gated_ninth": "ninth_run", "gated_tenth": "tenth_run",
            "gated_eleventh": "eleventh_run"}
#: A sitting trained as an A/B keeps every arm's files; the shipped arm's suffix names the ones the curve reads.
SHIPPED_ARM = {"gated_eighth": "_hard", "gated_ninth": "_lr3e-4"}


def round_tpf(folder: Path, suffix: str = "") -> dict:
    """The round's measurement: a round's own tpf.json, or round 0 of a run-level one."""
    if (folder / "round_0_tpf.json").exists():
        return json.loads((folder / "round_0_tpf.json").read_text())
    measured = json.loads((folder / f"tpf{suffix}.json").read_text())
    return measured["rounds"][0] if "rounds" in measured else measured


def main(target: str) -> None:
    for name, sitting in SITTINGS.items():
        suffix = SHIPPED_ARM.get(name, "")
        source, run = DOCS / sitting, Path(target) / name
        (run / "round_0" / "train").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / f"pipeline_config{suffix}.json", run / "pipeline_config.json")
        shutil.copyfile(DOCS / "shipped_run" / "tpf_base.json", run / "round_0" / "tpf_base.json")
        shutil.copyfile(source / f"train_log{suffix}.json", run / "round_0" / "train" / "train_log.json")
        (run / "round_0" / "tpf.json").write_text(json.dumps(round_tpf(source, suffix)))
        print(run)


if __name__ == "__main__":
    main(sys.argv[1])
