"""Train a causal LM with Jacobi Forcing on its own Jacobi trajectories.

Like an SFTTrainer script, with two differences: the data are trajectory records (`prompt_ids`, `trajectory`) written
by trajectory collection, packed here into (noisy block, clean block) pairs; and the trainer is
`JacobiForcingTrainer`. Nothing is downloaded unless `--allow-download` is given.

    python examples/train_jacobi_forcing.py --model path/to/model --trajectories trajectories.jsonl \\
        --block-size 16 --output-dir runs/jacobi-n16 [--lora] [--bf16]

For a curriculum, collect trajectories with the model trained at n=16, then train again at n=32 from it.
Multi-GPU: `accelerate launch examples/train_jacobi_forcing.py ...`.
"""

import argparse
import os

from datasets import load_dataset, load_from_disk
from transformers import AutoModelForCausalLM, AutoTokenizer

from hf_jacobi.training import JacobiForcingConfig, JacobiForcingTrainer


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="Model directory (or Hub id with --allow-download).")
    parser.add_argument("--trajectories", required=True, help="`save_to_disk` directory, or a .json/.jsonl file.")
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--block-size", type=int, required=True, help="Block size n of the trajectories.")
    parser.add_argument("--noise-schedule", choices=["progressive", "random"], default="progressive")
    parser.add_argument("--noise-window", type=int, default=16)
    parser.add_argument("--min-noise-ratio", type=float, default=0.0)
    parser.add_argument("--max-noise-ratio", type=float, default=1.0)
    parser.add_argument("--max-blocks", type=int, default=None, help="Keep at most this many blocks per record.")
    parser.add_argument("--mask-context", choices=["noisy", "clean"], default="noisy")
    parser.add_argument("--learning-rate", type=float, default=1e-5)
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--max-steps", type=int, default=-1)
    parser.add_argument("--batch-size", type=int, default=1, help="Per device.")
    parser.add_argument("--gradient-accumulation-steps", type=int, default=1)
    parser.add_argument("--bf16", action="store_true")
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--lora", action="store_true", help="Train a LoRA adapter instead of all weights.")
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--attn-implementation", choices=["sdpa", "eager", "flex_attention"], default="sdpa")
    parser.add_argument("--allow-download", action="store_true", help="Let from_pretrained use the Hub.")
    return parser.parse_args(argv)


def load_trajectories(path):
    if os.path.isdir(path):
        return load_from_disk(path)
    return load_dataset("json", data_files=path, split="train")


def main(argv=None):
    args = parse_args(argv)
    local = not args.allow_download
    tokenizer = AutoTokenizer.from_pretrained(args.model, local_files_only=local)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(
        args.model, local_files_only=local, dtype="auto", attn_implementation=args.attn_implementation
    )

    # Raw trajectory records: the trainer packs them with the config's noise schedule (pack_trajectories)
    train_dataset = load_trajectories(args.trajectories)

    config = JacobiForcingConfig(
        output_dir=args.output_dir,
        block_size=args.block_size,
        mask_context=args.mask_context,
        noise_schedule=args.noise_schedule,
        noise_window=args.noise_window,
        min_noise_ratio=args.min_noise_ratio,
        max_noise_ratio=args.max_noise_ratio,
        max_blocks=args.max_blocks,
        learning_rate=args.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=0.03,  # a fraction of the total steps, as the reference recipe (3% warm-up)
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        bf16=args.bf16,
        gradient_checkpointing=args.gradient_checkpointing,
        logging_steps=10,
        save_strategy="epoch",
        report_to="none",
    )

    peft_config = None
    if args.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, target_modules="all-linear")

    trainer = JacobiForcingTrainer(
        model=model,
        args=config,
        train_dataset=train_dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
    )
    trainer.train()
    trainer.save_model()  # weights (or adapter), tokenizer and README.md model card
    return trainer


if __name__ == "__main__":
    main()
