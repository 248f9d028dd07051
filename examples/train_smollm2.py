"""Recipe: Jacobi Forcing for SmolLM2-135M-Instruct on a CPU, as one call of `hf-jacobi train`.

    python examples/train_smollm2.py --output-dir runs/smollm2_jf            # collect -> train -> TPF, 3 rounds
    python examples/train_smollm2.py --output-dir runs/smollm2_jf --ship     # the exported adapter, ready to ship

Rerunning the first command with the same folder resumes where it stopped (collection by batch, training from its
last checkpoint, measurements only if missing). Extra flags go to `hf-jacobi train` (every JacobiForcingConfig and
TRL ModelConfig field is one), e.g. `--max_minutes 30` or `--rounds 4`.

The recipe, and why:
- on-policy states (`--states decoding`): each round trains on the drafts the current model's decoder feeds, on
  prompts no earlier round used; `--round_block_sizes 16 32` would make round 2 a block-32 curriculum stage;
- anchored targets (`--answers base`): after round 0 the clean continuations stay the base model's greedy answers,
  and the states are what the current model's decoder would feed along them; `--consistency_target hard`:
  cross-entropy of the noisy positions against the clean next token;
- states cut to a consistency horizon of 4 (`--consistency_horizon 4`: the loss counts the 4 positions from a state's
  first wrong token, the ones the next forward can accept, and `pack_states` cuts each state to them), every
  decoder state of a prompt (up to 160);
- full fine-tuning of the layers' weight matrices (embeddings, norms frozen), lr 1e-4, the AR term as the KL from
  the frozen base model at weight 5 (`--ar_target soft --ar_loss_weight 5`: it keeps the base model's loop count;
  the cross-entropy at weight 1 looped on 7 of 16 answers), on the answers only (not the prompt), consistency
  averaged per token, bf16 autocast where the CPU has bf16 units (JacobiForcingConfig's default; float32 elsewhere,
  where emulated bf16 trains ~23x slower);
- the change is shipped as a rank-64 LoRA adapter (truncated SVD, `--export_rank 64`), measured after export.

Measured on the 2-core CPU (README, "Anchoring the distribution, and TPF outside loops"), three rounds: held-out TPF
1.05 -> 1.18 -> 1.23 -> 1.23, outside repetition loops 1.06 -> 1.17 -> 1.19 -> 1.24, with 1-2 exact loops of 16 (the
base model's 2) and ~0.915 of the base answers' tokens predicted; the shipped adapter: 1.25, 1.18, 1 loop, 0.899.
Not shipped: on all 164 HumanEval problems (256 tokens) it passes 7, the shipped adapter 10 and the base model 11;
the recipe is the starting point for a longer (GPU) run.
Earlier settings: `--ar_target hard --ar_loss_weight 1` (the horizon run), and without `--consistency_horizon`, with
`--max_states 32 --prompts_per_round 180 --max_minutes 12` (the anchored run).
"""

import argparse
import json
import shutil
from pathlib import Path

from hf_jacobi import cli
from hf_jacobi.loading import ADAPTER_DIR

REPO = Path(__file__).resolve().parents[1]
RECIPE = [
    "--coding_prompts", "3000", "--rounds", "3", "--prompts_per_round", "240", "--round_block_sizes", "16", "16",
    "--states", "decoding", "--max_states", "160", "--max_new_tokens", "128", "--collect_batch_size", "8",
    "--answers", "base", "--consistency_target", "hard", "--consistency_horizon", "4",
    "--eval_prompts", "16", "--eval_max_new_tokens", "128", "--eval_block_size", "16",
    "--learning_rate", "1e-4", "--ar_target", "soft", "--ar_loss_weight", "5", "--ar_loss_on_prompt", "false",
    "--consistency_normalization", "token", "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "1",
    "--gradient_checkpointing", "false", "--use_cpu", "--report_to", "none", "--save_steps", "10",
    "--save_total_limit", "1", "--logging_steps", "5", "--max_minutes", "20", "--export_rank", "64",
    "--dataloader_num_workers", "0", "--num_train_epochs", "1", "--trim_loops", "true",
]  # fmt: skip


def ship(output_dir: Path) -> Path:
    """Put the exported adapter (fp16) and its measurements in `output_dir/ship`, and print the command that copies
    them into the package: examples never write into `src/`; shipping new weights is a maintainer's deliberate step."""
    adapter = output_dir / "adapter"
    if not (adapter / "adapter_model.safetensors").exists():
        raise SystemExit(f"No exported adapter in {adapter}: run the recipe (with --export_rank) first.")
    summary = json.loads((output_dir / "tpf.json").read_text())
    ship_dir = output_dir / "ship"
    ship_dir.mkdir(parents=True, exist_ok=True)
    for name in ("adapter_model.safetensors", "adapter_config.json"):
        shutil.copyfile(adapter / name, ship_dir / name)
    (ship_dir / "training_summary.json").write_text(json.dumps(summary, indent=1))
    print(f"ready to ship in {ship_dir}; to ship it: cp {ship_dir}/* {ADAPTER_DIR}/")
    return ship_dir


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", type=Path, default=Path("runs/smollm2_jf"))
    parser.add_argument("--ship", action="store_true", help="put the exported adapter in OUTPUT_DIR/ship, ready to ship")
    args, extra = parser.parse_known_args(argv)
    if args.ship:
        return ship(args.output_dir)
    cli.main(["train", "--output_dir", str(args.output_dir), *RECIPE, *extra])


if __name__ == "__main__":
    main()
