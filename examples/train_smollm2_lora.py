"""Recipe: Jacobi Forcing for SmolLM2-135M-Instruct on a CPU, end to end with hf_jacobi's own tools.

    # 1. trajectories of the base model on offline coding prompts (stdlib docstrings; never HumanEval), resumable
    hf-jacobi collect --stdlib-prompts 480 --output-dir runs/stage1_n16 --block-size 16 --max-new-tokens 128 \\
        --batch-size 4 --generate-block-size 1
    # 2. pack (progressive schedule + random re-packings) and train a LoRA adapter, time-boxed and resumable
    python examples/train_smollm2_lora.py --trajectories runs/stage1_n16 --output-dir runs/train_n16 --max-minutes 60
    # 3. measure TPF on a few HumanEval prompts and ship the adapter into the package (hf_jacobi/assets)
    python examples/train_smollm2_lora.py --trajectories runs/stage1_n16 --output-dir runs/train_n16 --ship

Rerunning step 1 or 2 with the same folder continues where it stopped. On a GPU the same steps run with bigger batches
(`examples/gpu_recipe.sh`: collect with --batch-size 128, train with --batch-size 16 --grad-accum 1 --time-cosine);
that is how the shipped adapter's first stage was trained. Its second stage ran on the CPU: collect with
`--stdlib-style completion` (prompts that contain code), then train with `--init-adapter <stage 1> --learning-rate 2e-4
--max-minutes 28 --time-cosine --keep-partial` on both folders. For a curriculum, collect again with
`hf-jacobi collect --jacobi-forcing --block-size 32 ...` and train with `--init-adapter src/hf_jacobi/assets/smollm2-jacobi-forcing`.
"""

import argparse
import json
import shutil
import time
from pathlib import Path

import torch
from datasets import concatenate_datasets, load_dataset
from safetensors.torch import load_file, save_file

import hf_jacobi
from hf_jacobi.benchmark import humaneval_instruction, load_humaneval
from hf_jacobi.loading import ADAPTER_DIR, load_model
from hf_jacobi.training import JacobiForcingConfig, JacobiForcingTrainer, pack_trajectories, pipeline
from hf_jacobi.training.pipeline import TimeBox

REPO = Path(__file__).resolve().parents[1]


def load_records(paths: list[Path]):
    """Trajectory records of one or more collection folders (e.g. instruction and completion prompts), together."""
    files = [str(path / "trajectories.jsonl" if path.is_dir() else path) for path in paths]
    return load_dataset("json", data_files=files, split="train")


def packed_dataset(records, block_size, repacks, eos_token_id, trim_loops=True):
    """Progressive schedule over each record's blocks, plus `repacks` random re-packings (other noisy iterates of the
    same trajectories, so later epochs see new noise levels at every position). Repetition loops the base model fell
    into at the token limit are trimmed (`trim_loops`): as AR targets they teach the loops."""
    num_blocks = max(len(t) for t in records["trajectory"])
    common = dict(eos_token_id=eos_token_id, trim_loops=trim_loops)
    parts = [pack_trajectories(records, block_size, "progressive", window=num_blocks, **common)]
    for seed in range(repacks):
        parts.append(pack_trajectories(records, block_size, "random", seed=seed, **common))
    return concatenate_datasets(parts).shuffle(seed=0)


def measure_tpf(model, tokenizer, block_size, num_prompts, max_new_tokens):
    prompts = [humaneval_instruction(problem) for problem in load_humaneval(num_prompts)]
    return pipeline.measure_tpf(model, tokenizer, prompts, block_size, max_new_tokens)["tpf"]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trajectories", type=Path, nargs="+", required=True,
                        help="collection folders (or their trajectories.jsonl); several are trained on together")
    parser.add_argument("--output-dir", type=Path, required=True)
    parser.add_argument("--block-size", type=int, default=16)
    parser.add_argument("--repacks", type=int, default=3, help="random re-packings added to the progressive one")
    parser.add_argument("--keep-loops", action="store_true",
                        help="train on repetition loops at the token limit too (trimmed by default)")
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--lora-r", type=int, default=32)
    parser.add_argument("--init-adapter", type=Path, default=None,
                        help="continue training this LoRA adapter (e.g. the shipped one) instead of a new one")
    parser.add_argument("--mask-context", choices=["clean", "noisy"], default="clean")
    parser.add_argument("--batch-size", type=int, default=1, help="packed examples per device step")
    parser.add_argument("--grad-accum", type=int, default=4)
    parser.add_argument("--max-steps", type=int, default=-1, help="optimizer steps (overrides --epochs when > 0)")
    parser.add_argument("--save-every", type=int, default=20, help="checkpoint every N optimizer steps")
    parser.add_argument("--time-cosine", action="store_true",
                        help="cosine learning-rate decay over --max-minutes instead of over the planned steps")
    parser.add_argument("--keep-partial", action="store_true",
                        help="when the time box ends training, still save the adapter as final (for one-shot runs)")
    parser.add_argument("--max-minutes", type=float, default=60.0, help="time box of this run (rerun to resume)")
    parser.add_argument("--ship", action="store_true", help="measure TPF and copy the adapter into hf_jacobi/assets")
    parser.add_argument("--tpf-prompts", type=int, default=4, help="HumanEval prompts to measure TPF on when shipping")
    parser.add_argument("--measured-tpf", type=float, default=None, help="TPF from a benchmark run, for the card")
    parser.add_argument("--measured-note", default="", help="where --measured-tpf was measured")
    args = parser.parse_args()

    torch.manual_seed(0)
    cuda = torch.cuda.is_available()
    model, tokenizer = load_model(device="auto")
    final_dir = args.output_dir / "final"
    if args.ship:
        return ship(args, model, tokenizer, final_dir)

    records = load_records(args.trajectories)
    train_dataset = packed_dataset(records, args.block_size, args.repacks, tokenizer.eos_token_id,
                                   trim_loops=not args.keep_loops)
    print(f"{len(records)} trajectories -> {len(train_dataset)} packed examples, "
          f"{sum(len(p) + 2 * sum(map(len, c)) for p, c in zip(train_dataset['prompt_ids'], train_dataset['clean_blocks']))} tokens")
    config = JacobiForcingConfig(
        output_dir=str(args.output_dir),
        block_size=args.block_size,
        # Jacobi decoding with one block drafts after an exact prefix, so noisy blocks see the clean blocks before
        # them (the noisy-context default of hao-ai-lab/JacobiForcing serves multi-block decoding)
        mask_context=args.mask_context,
        learning_rate=args.learning_rate,
        lr_scheduler_type="cosine",
        warmup_steps=0.03,
        num_train_epochs=args.epochs,
        max_steps=args.max_steps,
        per_device_train_batch_size=args.batch_size,
        gradient_accumulation_steps=args.grad_accum,
        logging_steps=5,
        save_steps=args.save_every,
        save_total_limit=2,
        report_to="none",
        bf16=cuda and torch.cuda.is_bf16_supported(),
        gradient_checkpointing=False,  # a 135M model fits; recomputation would cost ~30% more time
        use_cpu=not cuda,
        dataloader_num_workers=0,
        seed=0,
    )
    from peft import LoraConfig

    peft_config = LoraConfig(r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=0.0, target_modules="all-linear")
    if args.init_adapter is not None:  # a later stage: keep training the adapter (kept in float32 for the optimizer)
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, args.init_adapter, is_trainable=True)
        for param in model.parameters():
            if param.requires_grad:
                param.data = param.data.float()
        peft_config = None
    timebox = TimeBox(args.max_minutes)
    trainer = JacobiForcingTrainer(model=model, args=config, train_dataset=train_dataset, processing_class=tokenizer,
                                   peft_config=peft_config, callbacks=[timebox])
    if args.time_cosine:  # the Trainer keeps a scheduler that is set before `train`
        trainer.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(trainer.create_optimizer(), timebox.scale)
    resume = any(args.output_dir.glob("checkpoint-*"))
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=resume or None)
    seconds = time.perf_counter() - start
    log = {"seconds_this_run": seconds, "global_step": trainer.state.global_step, "max_steps": trainer.state.max_steps,
           "examples": len(train_dataset), "trajectories": len(records), "log_history": trainer.state.log_history}
    with open(args.output_dir / "train_log.json", "a") as handle:
        handle.write(json.dumps(log) + "\n")
    if trainer.state.global_step >= trainer.state.max_steps or (timebox.hit and args.keep_partial):
        trainer.save_model(str(final_dir))
        print(f"training {'finished' if not timebox.hit else 'time-boxed'} at step {trainer.state.global_step}/"
              f"{trainer.state.max_steps} in {seconds:.0f} s: adapter in {final_dir}")
    else:
        print(f"stopped at step {trainer.state.global_step}/{trainer.state.max_steps}; rerun to continue")


def ship(args, model, tokenizer, final_dir: Path):
    """Store the trained adapter in fp16 (half the size, loads the same) inside the package, with its model card.

    The card's TPF is measured here on `--tpf-prompts` HumanEval prompts, or taken from a benchmark run
    (`--measured-tpf`, with `--measured-note` saying where it comes from).
    """
    from peft import PeftModel

    if args.measured_tpf is not None:
        measured = f"{args.measured_tpf:.2f} {args.measured_note}".strip()
    elif args.tpf_prompts > 0:
        base_tpf = measure_tpf(model, tokenizer, args.block_size, args.tpf_prompts, 128)
        trained = PeftModel.from_pretrained(model, final_dir).merge_and_unload().eval()
        tpf = measure_tpf(trained, tokenizer, args.block_size, args.tpf_prompts, 128)
        measured = f"{tpf:.2f} at block size {args.block_size} ({args.tpf_prompts} HumanEval prompts, base model {base_tpf:.2f})"
    else:
        measured = "not measured"
    print(f"TPF: {measured}")
    # Ready to ship, inside the run folder: copying it into the package is a maintainer's deliberate step.
    ship_dir = final_dir.parent / "ship"
    ship_dir.mkdir(parents=True, exist_ok=True)
    weights = load_file(final_dir / "adapter_model.safetensors")
    save_file({k: v.to(torch.float16) for k, v in weights.items()}, ship_dir / "adapter_model.safetensors")
    shutil.copyfile(final_dir / "adapter_config.json", ship_dir / "adapter_config.json")
    card = (final_dir / "README.md").read_text().replace("(TPF): not measured", f"(TPF): {measured}")
    (ship_dir / "README.md").write_text(card)
    print(f"fp16 adapter and card in {ship_dir} (hf_jacobi {hf_jacobi.__version__}); to ship it:\n"
          f"  cp {ship_dir}/adapter_model.safetensors {ship_dir}/adapter_config.json {ship_dir}/README.md "
          f"{ADAPTER_DIR}/ && cp {ship_dir}/README.md {REPO / 'model_cards' / 'smollm2-135m-jacobi-forcing.md'}")


if __name__ == "__main__":
    main()
