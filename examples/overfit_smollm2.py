"""The overfit diagnostic on SmolLM2-135M-Instruct: proof that the training chain makes Jacobi decoding accept more
tokens per forward, before any compute is spent at scale.

    python examples/overfit_smollm2.py --output-dir runs/overfit_smollm2          # both arms, then the table
    python examples/overfit_smollm2.py --output-dir runs/overfit_smollm2 --table  # only the table of finished rounds

Two calls of `hf-jacobi train --overfit` on the same few coding prompts: every round collects the states the current
model's Jacobi decoder visits on those prompts (along the base model's greedy answers, `--answers base`), trains on
them, and measures TPF at block 16 on the *same* prompts.

- `consistency`: the recipe's losses (AR + hard consistency, counted over a horizon of 8 positions from each state's
  first wrong token). TPF must climb far above the base model's, round after round.
- `ar_only`: the control, `--consistency_loss_weight 0`, same data and steps. It must stay at the base model's TPF:
  fitting the answers alone does not teach the model to predict through wrong draft tokens.
- `fixed_filler`: as `consistency`, with a fixed filler token instead of tokens drawn from the prompt
  (`--draft_init 16`, SmolLM2's unused `<empty_output>`) in collection and decoding. The state a fresh block starts
  from, `[last token, filler, ...]`, is then known without decoding and is trained at every position of each answer.
- `clean_carry`: as `fixed_filler`, and the decoder drops every prediction made after a wrong draft token for the
  filler (`--draft_carry clean`), so it only meets states built from exact tokens, its own clean guesses and filler.

Each arm is a resumable `hf-jacobi train` run in `OUTPUT_DIR/<arm>`; rerunning resumes it. The table lists TPF,
answer agreement with the base model (share of the base answers' tokens reproduced before the first difference) and
the training tokens per round. These are trained prompts: the numbers say the chain works, not what unseen prompts
get (the pipeline's held-out measurement, `examples/train_smollm2.py`).
"""

import argparse
import json
from pathlib import Path

from hf_jacobi import cli
from hf_jacobi.benchmark import markdown_table
from hf_jacobi.training.pipeline import answer_agreement

# SmolLM2's <empty_output> (id 16), a special token no answer uses, as the fixed filler of the third arm
ARMS = {"consistency": [], "ar_only": ["--consistency_loss_weight", "0"], "fixed_filler": ["--draft_init", "16"],
        "clean_carry": ["--draft_init", "16", "--draft_carry", "clean"]}
TPF, KEPT, TOKENS = "TPF (trained prompts)", "base answers kept", "training tokens"


def recipe(args) -> list[str]:
    return [
        "--coding_prompts", str(args.prompts), "--overfit", "--rounds", str(args.rounds),
        "--max_steps", str(args.steps), "--per_device_train_batch_size", str(args.prompts),
        "--round_block_sizes", "16", "--eval_block_size", "16", "--max_new_tokens", str(args.tokens),
        "--eval_max_new_tokens", str(args.tokens), "--states", "decoding", "--max_states", "160",
        "--answers", "base", "--consistency_target", "hard", "--consistency_horizon", "8",
        "--ar_target", "hard", "--ar_loss_weight", "1", "--ar_loss_on_prompt", "false",
        "--consistency_normalization", "token", "--learning_rate", str(args.learning_rate),
        "--lr_scheduler_type", "constant", "--warmup_steps", "0", "--collect_batch_size", str(args.prompts),
        "--gradient_checkpointing", "false", "--use_cpu", "--report_to", "none", "--save_strategy", "no",
        "--logging_steps", "5", "--dataloader_num_workers", "0", "--trim_loops", "false",
    ]  # fmt: skip


def round_tokens(log: dict) -> int:
    """Training tokens of one round: tokens per pass over its examples times the passes (the trainer's epochs).
    Logs written before 2026-12-06 capped `tokens_seen` at one pass (docs/overfit_cpu/consistency); this reads both."""
    epochs = max(entry["epoch"] for entry in log["log_history"] if "epoch" in entry)
    return round(log["tokens_seen"] * log["examples"] / log["examples_seen"] * epochs)


def table(output_dir: Path, arms) -> str:
    rows = []
    for arm in arms:
        base_path = output_dir / arm / "round_0" / "tpf_base.json"
        if not base_path.exists():
            continue
        base = json.loads(base_path.read_text())
        rows.append({"arm": arm, "round": "base", TPF: base["tpf"], KEPT: 1.0, TOKENS: 0})
        r, tokens = 0, 0
        while (path := output_dir / arm / f"round_{r}" / "tpf.json").exists():
            measured = json.loads(path.read_text())
            log = output_dir / arm / f"round_{r}" / "train" / "train_log.json"
            if log.exists():
                tokens += sum(round_tokens(json.loads(line)) for line in log.open())
            rows.append({"arm": arm, "round": r, TPF: measured["tpf"], TOKENS: tokens,
                         KEPT: answer_agreement(measured["answers"], base["answers"])})
            r += 1
    return markdown_table({"methods": rows}, ["arm", "round", TPF, KEPT, TOKENS])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", type=Path, default=Path("runs/overfit_smollm2"))
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--prompts", type=int, default=4, help="coding prompts trained and measured on")
    parser.add_argument("--tokens", type=int, default=64, help="new tokens per prompt")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20, help="training steps per round (one batch of all prompts)")
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--table", action="store_true", help="only print the table of finished rounds")
    args, extra = parser.parse_known_args(argv)
    if not args.table:
        for arm in args.arms:
            cli.main(["train", "--output_dir", str(args.output_dir / arm), *recipe(args), *ARMS[arm], *extra])
    text = table(args.output_dir, args.arms)
    (args.output_dir / "table.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
