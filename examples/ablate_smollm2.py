"""Ablation of the Jacobi Forcing recipe at equal training tokens: one round of `hf-jacobi train` per arm, on the same
collected states, then held-out TPF (block 16, HumanEval prompts never trained on), how much of the base model's
greedy answers the trained model keeps, and pass@1 on the HumanEval problems that the base model passes.

    python examples/ablate_smollm2.py --data runs/fresh/round_0 --prompts-per-round 400 --output-dir runs/ablation --steps 40
    python examples/ablate_smollm2.py --output-dir runs/ablation --arms recipe lora
    python examples/ablate_smollm2.py --output-dir runs/ablation --table      # the table of what has finished

`--data` is a finished round-0 folder of the recipe (`examples/train_smollm2.py`, same `--prompts-per-round`): its
collection (`data/`) and its base-model measurement (`tpf_base.json`) are copied into every arm, so arms differ only
in the training settings and nothing is collected again. Without `--data`, the first arm collects (and measures the
base model) and the other arms copy its round. Every arm trains `--steps` steps of 4 examples (no time box, so a busy
machine changes the wall time, not the result). Rerunning resumes: finished arms and checks are skipped.

pass@1 ("base passes kept"): the problems the base model passes in `docs/humaneval164_pass_at_1.json` (float32,
256 new tokens, its chat template), decoded by the arm's model the same way (`examples/eval_humaneval.py`, which
runs the model-written code: pass `--execute-code`, or the column stays empty). This is the part of pass@1 a
fine-tune can lose; problems the base model fails are not decoded (a 256-token answer costs ~10 s here).

Arms (the recipe is `examples/train_smollm2.py`: fresh-block states, full fine-tuning, AR term = KL from the base
model at weight 5, per-token consistency mean, hard consistency target, distinct prompts seen once):
- `recipe`: the recipe as is;
- `lora`: LoRA r=64 on all linear layers (lr 5e-4) instead of full fine-tuning;
- `gated`: the same LoRA, gated to the filler positions (`--filler_gated_adapter`, `hf_jacobi.filler_gate`): the
  model's greedy output stays the base model's;
- `ar1`, `ar10`: AR weight 1 and 10 (the reference's);
- `block_norm`: consistency divided by the number of states per example (the reference's normalisation);
- `soft`: soft consistency target (KL to the clean logits, the reference's);
- `horizon`: consistency counted only at the 3 noisy positions from each state's first wrong token
  (`--consistency_horizon 3`; the recipe counts 8);
- `repeats`: as many examples from a quarter as many prompts, each seen 4 times (few prompts many times);
- `gated_mlp`, `gated_qv`: the gated adapter on the MLP projections only, or on q and v only: an unmerged adapter's
  cost per forward grows with the number of adapted modules (`examples/forward_cost.py`).
- `gated_h4`: the gated adapter with states cut to 4 positions (`--consistency_horizon 4`) and twice as many of them
  (`--max_states 96`), the same tokens: fresh tails (`fresh_tails=4`) read only the first 3 guesses of a state.
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_smollm2 import GATED, LORA, RECIPE

from hf_jacobi import cli
from hf_jacobi.training.pipeline import _eval_prompts, answer_agreement, teacher_forced_agreement

ARMS = {
    "recipe": [],
    "lora": LORA,
    "gated": GATED,
    "ar1": ["--ar_loss_weight", "1"],
    "ar10": ["--ar_loss_weight", "10"],
    "block_norm": ["--consistency_normalization", "block"],
    "soft": ["--consistency_target", "soft"],
    "horizon": ["--consistency_horizon", "3"],
    "repeats": [],  # its prompts and epochs depend on --steps: see `arm_flags`
    # fewer gated LoRA modules: an unmerged adapter costs per module on a CPU (`examples/forward_cost.py`)
    "gated_mlp": [*GATED, "--lora_target_modules", "gate_proj", "up_proj", "down_proj"],
    "gated_qv": [*GATED, "--lora_target_modules", "q_proj", "v_proj"],
    # the gated adapter trained only where fresh tails read it: offsets 0-3 of each state, twice as many states
    "gated_h4": [*GATED, "--consistency_horizon", "4", "--max_states", "96"],
}
REPEATS = 4
BATCH = 4  # examples per step (the recipe's per_device_train_batch_size)
BASE_PASSES = Path(__file__).resolve().parents[1] / "docs" / "humaneval164_pass_at_1.json"
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


def repeated_prompts(steps: int) -> int:
    """Prompts of the `repeats` arm: its `steps * BATCH` examples are each prompt's record seen `REPEATS` times."""
    return max(1, steps * BATCH // REPEATS)


def arm_flags(arm: str, steps: int) -> list[str]:
    if arm == "repeats":
        return ["--prompts_per_round", str(repeated_prompts(steps)), "--num_train_epochs", str(REPEATS)]
    return ARMS[arm]


def base_passed_tasks(path: Path = BASE_PASSES) -> list[str]:
    """The HumanEval problems that the base model passes (float32 greedy, 256 new tokens)."""
    per_problem = json.loads(path.read_text())["per_problem"]
    return [task for task, models in per_problem.items() if models["base"]]


def retention(arm_dir: Path) -> None:
    """pass@1 of the arm's model on the base model's passing problems, into `round_0/retention.jsonl` (resumes)."""
    import eval_humaneval

    model = arm_dir / "round_0" / "train" / "model"
    kind = "--adapter" if (model / "adapter_config.json").exists() else "--model"  # a filler-gated adapter
    eval_humaneval.main([kind, str(model), "--execute-code",
                         "--name", arm_dir.name, "--output", str(arm_dir / "round_0" / "retention.jsonl"),
                         "--task-ids", *base_passed_tasks()])


def prepare(arm: str, data: Path | None, arm_dir: Path, steps: int) -> None:
    """Copy the collection and the base measurement; the `repeats` arm keeps only the first prompts' records."""
    round_dir = arm_dir / "round_0"
    if data is None or (round_dir / "data").exists():
        return
    round_dir.mkdir(parents=True)
    shutil.copyfile(data / "tpf_base.json", round_dir / "tpf_base.json")
    shutil.copytree(data / "data", round_dir / "data", ignore=shutil.ignore_patterns("dataset", ".collect.lock"))
    if arm == "repeats":
        records = round_dir / "data" / "trajectories.jsonl"
        kept = repeated_prompts(steps)
        lines = [line for line in records.open() if json.loads(line)["prompt_index"] < kept]
        records.write_text("".join(lines))
        config_path = round_dir / "data" / "collect_config.json"
        config = json.loads(config_path.read_text())
        config.update(num_prompts=kept, prompts_done=kept)
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
    for arm in ARMS:
        tpf_path = output_dir / arm / "round_0" / "tpf.json"
        if not tpf_path.exists():
            continue
        measured = json.loads(tpf_path.read_text())
        base = json.loads((output_dir / arm / "round_0" / "tpf_base.json").read_text())
        log = [json.loads(line) for line in (output_dir / arm / "round_0" / "train" / "train_log.json").open()][-1]
        losses = [h for h in log["log_history"] if "consistency_loss" in h]
        flags = arm_flags(arm, log["global_step"])
        kept = output_dir / arm / "round_0" / "retention.jsonl"
        kept = [json.loads(line) for line in kept.open()] if kept.exists() else []
        rows.append({
            "arm": arm, "flags": " ".join(flags), "steps": log["global_step"], "tokens_seen": log["tokens_seen"],
            "train_seconds": round(log["seconds"]), "ar_loss_last": round(float(losses[-1]["ar_loss"]), 3) if losses else None,
            "consistency_loss_last": round(float(losses[-1]["consistency_loss"]), 3) if losses else None,
            "tpf": round(measured["tpf"], 3), "base_tpf": round(base["tpf"], 3),
            "base_answers_kept": round(answer_agreement(measured["answers"], base["answers"]), 3)
            if "answers" in base and "answers" in measured else None,
            "base_token_agreement": round(token_agreement(output_dir / arm / "round_0", measured, base), 3)
            if "answers" in base else None,
            "base_passes_kept": f"{sum(r['passed'] for r in kept)}/{len(kept)}" if kept else None,
        })
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="a finished round_0 folder of the recipe")
    parser.add_argument("--output-dir", type=Path, default=Path("runs/ablation"))
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--prompts-per-round", type=int, default=int(RECIPE[RECIPE.index("--prompts_per_round") + 1]),
                        help="distinct prompts of the collection (the recipe's)")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--table", action="store_true", help="only print the table of finished arms")
    parser.add_argument("--execute-code", action="store_true",
                        help="measure pass@1 on the base model's passing problems (runs model-written code)")
    args = parser.parse_args(argv)
    if not args.table:
        data = args.data
        if data is not None and not ((data / "tpf_base.json").exists() and (data / "data").exists()):
            parser.error("--data must be a finished round_0 folder (with data/ and tpf_base.json).")
        for arm in args.arms:
            arm_dir = args.output_dir / arm
            if not (arm_dir / "round_0" / "tpf.json").exists():
                prepare(arm, data, arm_dir, args.steps)
                cli.main(["train", "--output_dir", str(arm_dir), *recipe_flags(), "--rounds", "1",
                          "--prompts_per_round", str(args.prompts_per_round), "--max_steps", str(args.steps),
                          *arm_flags(arm, args.steps)])
            if args.execute_code:
                retention(arm_dir)
            data = data or arm_dir / "round_0"  # without --data, the first arm's collection serves the others
    rows = table(args.output_dir)
    (args.output_dir / "ablation.json").write_text(json.dumps(rows, indent=1))
    print("| arm | flags | steps | training tokens | held-out TPF (base) | base answers kept | base tokens predicted | "
          "base passes kept | last AR loss | last consistency loss |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['arm']} | `{r['flags'] or '-'}` | {r['steps']} | {r['tokens_seen']} | {r['tpf']} ({r['base_tpf']}) | "
              f"{r['base_answers_kept']} | {r['base_token_agreement']} | {r['base_passes_kept']} | {r['ar_loss_last']} | {r['consistency_loss_last']} |")


if __name__ == "__main__":
    main()
