"""Train a causal LM with Jacobi Forcing on its own Jacobi trajectories.

Like TRL's example scripts: `TrlParser((ScriptArguments, JacobiForcingConfig, ModelConfig))` turns every field of the
three dataclasses into a flag (`--block_size`, `--noise_window`, `--learning_rate`, `--use_peft --lora_r 16`, ...).
The data are trajectory records (`prompt_ids`, `trajectory`) written by `hf-jacobi collect`; the trainer packs them
into (noisy block, clean block) pairs with the config's noise schedule. Nothing is downloaded unless
`--allow_download` is given.

    python examples/train_jacobi_forcing.py --model_name_or_path path/to/model --trajectories trajectories.jsonl \\
        --block_size 16 --output_dir runs/jacobi-n16 [--use_peft] [--bf16]

For a curriculum, collect trajectories with the model trained at n=16, then train again at n=32 from it.
Multi-GPU: `accelerate launch examples/train_jacobi_forcing.py ...`.
"""

import os
from dataclasses import dataclass, field

from datasets import load_dataset, load_from_disk
from transformers import AutoModelForCausalLM, AutoTokenizer
from trl import ModelConfig, TrlParser, get_peft_config

from hf_jacobi.training import JacobiForcingConfig, JacobiForcingTrainer


@dataclass
class ScriptArguments:
    trajectories: str = field(metadata={"help": "`save_to_disk` directory, or a .json/.jsonl file of records."})
    allow_download: bool = field(default=False, metadata={"help": "Let from_pretrained use the Hub."})


def load_trajectories(path):
    if os.path.isdir(path):
        return load_from_disk(path)
    return load_dataset("json", data_files=path, split="train")


def main(argv=None):
    parser = TrlParser((ScriptArguments, JacobiForcingConfig, ModelConfig))
    script_args, config, model_args = parser.parse_args_and_config(argv)
    if model_args.model_name_or_path is None:
        parser.error("--model_name_or_path is required")
    local = not script_args.allow_download
    tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path, local_files_only=local)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        model_args.model_name_or_path, local_files_only=local, dtype=model_args.dtype or "auto",
        attn_implementation=model_args.attn_implementation or "sdpa",
    )
    trainer = JacobiForcingTrainer(
        model=model,
        args=config,
        train_dataset=load_trajectories(script_args.trajectories),  # raw records: packed by the trainer
        processing_class=tokenizer,
        peft_config=get_peft_config(model_args),
    )
    trainer.train()
    trainer.save_model()  # weights (or adapter), tokenizer and README.md model card
    return trainer


if __name__ == "__main__":
    main()
