"""Ablation of the Jacobi Forcing recipe at equal training tokens: one round of `hf-jacobi train` per arm, on the same
collected states, then held-out TPF (block 16, HumanEval prompts never trained on) and how much of the base model's
greedy answers the trained model keeps.

    python examples/ablate_smollm2.py --data runs/jf_anchor/round_0 --output-dir runs/ablation --steps 24
    python examples/ablate_smollm2.py --output-dir runs/ablation --prompts-per-round 96 --arms recipe horizon
    python examples/ablate_smollm2.py --output-dir runs/ablation --table      # the table of what has finished

`--data` is a finished round-0 folder of the recipe (`examples/train_smollm2.py`, same `--prompts-per-round`): its
collection (`data/`) and its base-model measurement (`tpf_base.json`) are copied into every arm, so arms differ only
in the training settings and nothing is collected again. Without `--data`, the first arm collects (and measures the
base model) and the other arms copy its round. Every arm trains `--steps` steps of 4 examples (no time box, so a busy machine changes
the wall time, not the result). Rerunning resumes: finished arms are skipped.

Arms (the recipe is `examples/train_smollm2.py`: full fine-tuning, AR weight 1, per-token consistency mean, hard
consistency target, 180 distinct prompts seen once):
- `recipe`: the recipe as is;
- `lora`: LoRA r=64 on all linear layers (lr 5e-4) instead of full fine-tuning;
- `ar10`: AR weight 10 (the reference's);
- `block_norm`: consistency divided by the number of states per example (the reference's normalisation);
- `soft`: soft consistency target (KL to the clean logits, the reference's);
- `horizon`: consistency counted only at the 3 noisy positions from each state's first wrong token
  (`--consistency_horizon 3`), the ones the next forward can accept; the recipe counts every later one too. With a
  horizon, `hf-jacobi train` cuts each state to those 3 tokens (`pack_states(horizon=3)`: the same loss from fewer
  tokens), so this arm's steps are cheaper, not different;
- `repeats`: the same number of examples from 24 prompts seen 4 times (few prompts many times).
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_smollm2 import RECIPE

from hf_jacobi import cli
from hf_jacobi.training.pipeline import _eval_prompts, answer_agreement, teacher_forced_agreement

ARMS = {
    "recipe": [],
    "lora": ["--use_peft", "true", "--lora_r", "64", "--lora_alpha", "128", "--lora_target_modules", "q_proj",
             "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "--learning_rate", "5e-4"],
    "ar10": ["--ar_loss_weight", "10"],
    "block_norm": ["--consistency_normalization", "block"],
    "soft": ["--consistency_target", "soft"],
    "horizon": ["--consistency_horizon", "3"],
    "repeats": ["--prompts_per_round", "24", "--num_train_epochs", "4"],
}
REPEATED_PROMPTS = 24
# Flags of the recipe that do not apply to one equal-token round: the time box and the LoRA export.
DROPPED = {"--max_minutes": 1, "--export_rank": 1, "--rounds": 1, "--prompts_per_round": 1}


def recipe_flags() -> list[str]:
    flags, skip = [], 0
    for flag in RECIPE:
        if skip:
            skip -= 1
        elif flag in DROPPED:
            skip = DROPPED[flag]
        else:
            flags.append(flag)
    return flags


def prepare(arm: str, data: Path | None, arm_dir: Path) -> None:
    """Copy the collection and the base measurement; the `repeats` arm keeps only the first prompts' records."""
    round_dir = arm_dir / "round_0"
    if data is None or (round_dir / "data").exists():
        return
    round_dir.mkdir(parents=True)
    shutil.copyfile(data / "tpf_base.json", round_dir / "tpf_base.json")
    shutil.copytree(data / "data", round_dir / "data", ignore=shutil.ignore_patterns("dataset", ".collect.lock"))
    if arm == "repeats":
        records = round_dir / "data" / "trajectories.jsonl"
        lines = [line for line in records.open() if json.loads(line)["prompt_index"] < REPEATED_PROMPTS]
        records.write_text("".join(lines))
        config_path = round_dir / "data" / "collect_config.json"
        config = json.loads(config_path.read_text())
        config.update(num_prompts=REPEATED_PROMPTS, prompts_done=REPEATED_PROMPTS)
        for key in ("prompts_sha256", "seconds"):
            config.pop(key, None)
        config_path.write_text(json.dumps(config, indent=1))


def token_agreement(round_dir: Path, measured: dict, base: dict) -> float | None:
    """Teacher-forced agreement with the base answers (`teacher_forced_agreement`), for arms measured before the
    pipeline recorded it: computed once from the saved model and kept in `quality.json`."""
    if "base_token_agreement" in measured:
        return measured["base_token_agreement"]
    path = round_dir / "quality.json"
    if not path.exists():
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(round_dir / "train" / "model").eval()
        tokenizer = AutoTokenizer.from_pretrained(round_dir / "train" / "model")
        agreement = teacher_forced_agreement(model, tokenizer, _eval_prompts(base["prompts"]), base["answers"])
        path.write_text(json.dumps({"base_token_agreement": agreement}))
    return json.loads(path.read_text())["base_token_agreement"]


def table(output_dir: Path) -> list[dict]:
    rows = []
    for arm, flags in ARMS.items():
        tpf_path = output_dir / arm / "round_0" / "tpf.json"
        if not tpf_path.exists():
            continue
        measured = json.loads(tpf_path.read_text())
        base = json.loads((output_dir / arm / "round_0" / "tpf_base.json").read_text())
        log = [json.loads(line) for line in (output_dir / arm / "round_0" / "train" / "train_log.json").open()][-1]
        losses = [h for h in log["log_history"] if "consistency_loss" in h]
        rows.append({
            "arm": arm, "flags": " ".join(flags), "steps": log["global_step"], "tokens_seen": log["tokens_seen"],
            "train_seconds": round(log["seconds"]), "ar_loss_last": round(float(losses[-1]["ar_loss"]), 3) if losses else None,
            "consistency_loss_last": round(float(losses[-1]["consistency_loss"]), 3) if losses else None,
            "tpf": round(measured["tpf"], 3), "base_tpf": round(base["tpf"], 3),
            "base_answers_kept": round(answer_agreement(measured["answers"], base["answers"]), 3)
            if "answers" in base and "answers" in measured else None,
            "base_token_agreement": round(token_agreement(output_dir / arm / "round_0", measured, base), 3)
            if "answers" in base else None,
        })
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="a finished round_0 folder of the recipe")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--prompts-per-round", type=int, default=180, help="distinct prompts of the collection")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--table", action="store_true", help="only print the table of finished arms")
    args = parser.parse_args(argv)
    if not args.table:
        data = args.data
        if data is not None and not ((data / "tpf_base.json").exists() and (data / "data").exists()):
            parser.error("--data must be a finished round_0 folder (with data/ and tpf_base.json).")
        for arm in args.arms:
            arm_dir = args.output_dir / arm
            if not (arm_dir / "round_0" / "tpf.json").exists():
                prepare(arm, data, arm_dir)
                cli.main(["train", "--output_dir", str(arm_dir), *recipe_flags(), "--rounds", "1",
                          "--prompts_per_round", str(args.prompts_per_round), "--max_steps", str(args.steps),
                          *ARMS[arm]])
            data = data or arm_dir / "round_0"  # without --data, the first arm's collection serves the others
    rows = table(args.output_dir)
    (args.output_dir / "ablation.json").write_text(json.dumps(rows, indent=1))
    print("| arm | flags | steps | training tokens | held-out TPF (base) | base answers kept | base tokens predicted | "
          "last AR loss | last consistency loss |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['arm']} | `{r['flags'] or '-'}` | {r['steps']} | {r['tokens_seen']} | {r['tpf']} ({r['base_tpf']}) | "
              f"{r['base_answers_kept']} | {r['base_token_agreement']} | {r['ar_loss_last']} | {r['consistency_loss_last']} |")


if __name__ == "__main__":
    main()
