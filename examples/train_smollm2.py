"""Recipe: Jacobi Forcing for SmolLM2-135M-Instruct on a CPU, as one call of `hf-jacobi train`.

    python examples/train_smollm2.py --output-dir runs/smollm2_jf            # collect -> train -> TPF, 3 rounds
    python examples/train_smollm2.py --output-dir runs/smollm2_jf --ship     # the exported adapter, ready to ship
    python examples/train_smollm2.py --gated --output-dir runs/gated         # a filler-gated adapter (shipped)

Rerunning the first command with the same folder resumes where it stopped (collection by batch, training from its
last checkpoint, measurements only if missing). Extra flags go to `hf-jacobi train` (every JacobiForcingConfig and
TRL ModelConfig field is one), e.g. `--max_minutes 30` or `--rounds 4`.

The recipe, and why (README "Fresh-block states at scale"):
- fresh-block states (`--states fresh --draft_init 16 --draft_carry clean`): with a fixed filler token, the state
  every block of the clean-carry decoder starts from, `[last token, 16, ..., 16]`, is known from the answer alone, so
  collection is plain batched `generate` (~1.1-1.9 prompts/s in bf16 on the 2-core CPU; decoder states: ~0.2) and
  training sees that state at 48 random positions of every answer, cut to a horizon of 8 positions;
- anchored targets (`--answers base`): the clean continuations are the base model's greedy answers in every round,
  and `--consistency_target hard` trains the noisy positions with cross-entropy against their next token;
- 7 rounds of 400 distinct prompts (one pass, no prompt twice), 14 minutes of training each;
- full fine-tuning of the layers' weight matrices (embeddings, norms frozen), lr 1e-4, the AR term as the KL from
  the frozen base model at weight 5 (`--ar_target soft --ar_loss_weight 5`: it keeps the base model's loop count),
  on the answers only (not the prompt), consistency averaged per token, bf16 autocast where the CPU has bf16 units
  (JacobiForcingConfig's default; float32 elsewhere, where emulated bf16 trains ~23x slower);
- the change is shipped as a rank-64 LoRA adapter (truncated SVD, `--export_rank 64`) with the trained filler and
  carry in its `generation_config.json`, measured after export.

Measured on the 2-core CPU: held-out TPF at block 16 (16 HumanEval prompts, bf16, clean carry) 1.045 (base) -> 1.170
-> 1.269 -> 1.304 -> 1.298 -> 1.404 -> 1.345 -> 1.381 after rounds 0-6 (1.32M training tokens, 159 minutes), 1.360
after the export. Not shipped: on all 164 HumanEval problems the export passes 6 (base 11, the shipped adapter 10).
`--ship` still copies an export to OUTPUT_DIR/ship for a maintainer to ship.

`--gated` trains the same states into a filler-gated LoRA adapter (`hf_jacobi.filler_gate`): the model's output stays
the base model's, token for token. The shipped adapter is `--gated --rounds 1 --prompts_per_round 2800 --max_minutes
55` over the seven collections of the run above (`docs/gated_cpu/combine_rounds.py`): held-out TPF 1.354 after 566k
tokens, all 11 of the base model's HumanEval passes kept; then the same on a copy of that folder without its
`round_0/train/model` and with `--max_minutes 45`, which resumes from the last checkpoint through the same epoch:
1.444 after 983k tokens, and a second time (45 minutes more): 1.504 after 1.38M tokens, 1.744 decoded with
`fresh_tails=4` (README "The filler-gated adapter"). `--ship` copies a gated run's adapter in fp16. Earlier recipes: decoder states
(`--states decoding --max_states 160 --consistency_horizon 4`), which reached 1.23 at 3 rounds.
"""

import argparse
import json
from pathlib import Path

from safetensors.torch import load_file, save_file

from hf_jacobi import cli
from hf_jacobi.generation.configuration_jacobi import MODEL_DEFAULTS_OFF
from hf_jacobi.loading import ADAPTER_DIR

RECIPE = [
    "--coding_prompts", "3000", "--rounds", "7", "--prompts_per_round", "400", "--round_block_sizes", "16",
    "--states", "fresh", "--draft_init", "16", "--draft_carry", "clean", "--max_states", "48",
    "--max_new_tokens", "128", "--collect_batch_size", "16",
    "--answers", "base", "--consistency_target", "hard", "--consistency_horizon", "8",
    "--eval_prompts", "16", "--eval_max_new_tokens", "128", "--eval_block_size", "16",
    "--learning_rate", "1e-4", "--ar_target", "soft", "--ar_loss_weight", "5", "--ar_loss_on_prompt", "false",
    "--consistency_normalization", "token", "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "1",
    "--gradient_checkpointing", "false", "--use_cpu", "--report_to", "none", "--save_steps", "10",
    "--save_total_limit", "1", "--logging_steps", "5", "--max_minutes", "14", "--export_rank", "64",
    "--dataloader_num_workers", "0", "--num_train_epochs", "1", "--trim_loops", "true",
]  # fmt: skip


# `--gated`: the same states, trained into a filler-gated LoRA adapter (hf_jacobi.filler_gate) instead of the full
# weights, so that the model's output stays the base model's; the AR term has no gradient then (its cheap hard form)
LORA = [
    "--use_peft", "true", "--lora_r", "64", "--lora_alpha", "128", "--lora_target_modules", "q_proj", "k_proj",
    "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj", "--learning_rate", "5e-4",
]  # fmt: skip
GATED = [*LORA, "--filler_gated_adapter", "true", "--ar_target", "hard", "--export_rank", "0"]


def ship(output_dir: Path, decoding: dict | None = None) -> Path:
    """Put the exported adapter (fp16) and its measurements in `output_dir/ship`, and print the command that copies
    them into the package: examples never write into `src/`; shipping new weights is a maintainer's deliberate step.

    The decoding defaults a model's generation config may turn on (`MODEL_DEFAULTS_OFF`: fresh tails, a lookup row)
    are measured choices, not trained ones: the new generation config keeps the shipped adapter's, each replaced by
    `decoding[name]` where given (0: off)."""
    adapter = output_dir / "adapter"
    if (output_dir / "model" / "adapter_config.json").exists():  # a --filler_gated_adapter run: model/ is the adapter
        adapter = output_dir / "model"
    if not (adapter / "adapter_model.safetensors").exists():
        raise SystemExit(f"No exported adapter in {adapter}: run the recipe (with --export_rank) first.")
    summary = json.loads((output_dir / "tpf.json").read_text())
    ship_dir = output_dir / "ship"
    ship_dir.mkdir(parents=True, exist_ok=True)
    names = ("adapter_model.safetensors", "adapter_config.json", "generation_config.json")  # + the trained filler
    adapter_config = json.loads((adapter / names[1]).read_text())
    if isinstance(adapter_config.get("target_modules"), list):  # PEFT writes a set, in any order: sort it
        adapter_config["target_modules"] = sorted(adapter_config["target_modules"])
    (ship_dir / names[1]).write_text(json.dumps(adapter_config, indent=2, sort_keys=True) + "\n")
    shipped = ADAPTER_DIR / names[2]
    shipped = json.loads(shipped.read_text()) if shipped.exists() else {}
    config = json.loads((adapter / names[2]).read_text())
    for name, off in MODEL_DEFAULTS_OFF.items():
        value = (decoding or {}).get(name)
        value = shipped.get(name, off) if value is None else value
        config.pop(name, None)
        if value != off:
            config[name] = value
    (ship_dir / names[2]).write_text(json.dumps(dict(sorted(config.items())), indent=2) + "\n")
    weights = load_file(adapter / names[0])  # fp16 on disk (a trained adapter is saved in fp32)
    save_file({k: v.half() if v.is_floating_point() else v for k, v in weights.items()}, ship_dir / names[0],
              metadata={"format": "pt"})
    (ship_dir / "training_summary.json").write_text(json.dumps(summary, indent=1))  # what it shipped with
    print(f"ready to ship in {ship_dir}; to ship it: cp {' '.join(str(ship_dir / n) for n in names)} {ADAPTER_DIR}/")
    return ship_dir


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", type=Path, default=Path("runs/smollm2_jf"))
    parser.add_argument("--ship", action="store_true", help="put the exported adapter in OUTPUT_DIR/ship, ready to ship")
    parser.add_argument("--gated", action="store_true",
                        help="train a filler-gated LoRA adapter (the output stays the base model's; the shipped one)")
    parser.add_argument("--fresh-tails", type=int, default=None,
                        help="with --ship: the shipped generation config's fresh_tails (0: off; default: the shipped "
                        "adapter's)")
    parser.add_argument("--lookup-ngram", type=int, default=None,
                        help="with --ship: the shipped generation config's lookup_ngram (0: off; default: the shipped "
                        "adapter's)")
    args, extra = parser.parse_known_args(argv)
    if args.ship:
        return ship(args.output_dir, {"fresh_tails": args.fresh_tails, "lookup_ngram": args.lookup_ngram})
    if args.fresh_tails is not None or args.lookup_ngram is not None:
        parser.error("--fresh-tails / --lookup-ngram set what --ship writes: pass --ship")
    cli.main(["train", "--output_dir", str(args.output_dir), *RECIPE, *(GATED if args.gated else []), *extra])


if __name__ == "__main__":
    main()
