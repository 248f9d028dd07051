"""`hf-jacobi` command line: generate, bench (and the training steps, once installed)."""

from __future__ import annotations

import argparse
import sys
import time


def _add_model_args(parser):
    parser.add_argument("--model", default=None, help="local path or Hub id (default: the offline SmolLM2-135M-Instruct)")
    parser.add_argument(
        "--jacobi-forcing", action="store_true", help="use the Jacobi Forcing SmolLM2 shipped with hf_jacobi"
    )
    parser.add_argument("--adapter", default=None, help="a LoRA adapter folder to apply instead of the shipped one")
    parser.add_argument("--device", default="auto", help="cpu, cuda, ... (default: CUDA when available)")


def _load(args, **overrides):
    from hf_jacobi.demo import load_model

    kwargs = dict(jacobi_forcing=args.jacobi_forcing, model=args.model, device=args.device, adapter=args.adapter)
    return load_model(**{**kwargs, **overrides})


def cmd_generate(args) -> None:
    import torch
    from transformers import TextStreamer

    import hf_jacobi  # noqa: F401
    from hf_jacobi.demo import chat_prompt

    model, tokenizer = _load(args)
    prompt = args.prompt if args.prompt is not None else sys.stdin.read()
    if not prompt.strip():
        raise SystemExit("error: empty prompt; pass it as an argument or on standard input")
    text = prompt if args.no_chat_template else chat_prompt(tokenizer, prompt)
    inputs = tokenizer(text, return_tensors="pt").to(model.device)
    streamer = TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    kwargs = dict(max_new_tokens=args.max_new_tokens, do_sample=False, streamer=streamer, return_dict_in_generate=True)
    if args.block_size > 0:
        kwargs.update(generation_mode="jacobi", block_size=args.block_size)
        if args.lookup:
            kwargs.update(lookup_ngram=args.lookup)
        if args.lookup_draft:
            kwargs.update(lookup_ngram=args.lookup or 2, lookup_mode="draft", lookup_num_tokens=args.lookup_draft)
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(**inputs, **kwargs)
    seconds = time.perf_counter() - start
    tokens = out.sequences.shape[1] - inputs["input_ids"].shape[1]
    forwards = getattr(out, "num_forwards", None)
    forwards = tokens - 1 if forwards is None else forwards  # plain greedy: one decoding forward per token
    tpf = (tokens - 1) / forwards if forwards else float("nan")
    print(
        f"\n[{tokens} tokens, {forwards} forwards, {tpf:.2f} tokens/forward, {tokens / seconds:.1f} tokens/s]",
        file=sys.stderr,
    )


def cmd_bench(args) -> None:
    import hf_jacobi  # noqa: F401
    from hf_jacobi import benchmark

    model, tokenizer = _load(args)
    problems = benchmark.load_humaneval(args.num_prompts, args.offset)
    trained = args.jacobi_forcing or args.adapter is not None
    models = {"trained" if trained else "base": model}
    methods = benchmark.default_methods(
        args.block_sizes, prompt_lookup=not args.no_prompt_lookup, model=next(iter(models)),
        multiblock=tuple(args.multiblock) if args.multiblock else None, auto=args.auto, lookup=args.lookup,
        lookup_draft=args.lookup_draft, lookup_num_tokens=args.lookup_tokens,
    )
    if trained and args.base_block_sizes is not None:
        models["base"] = _load(args, jacobi_forcing=False, adapter=None)[0]
        methods = benchmark.default_methods(
            args.base_block_sizes, prompt_lookup=False, model="base", lookup=args.lookup,
            lookup_draft=args.lookup_draft if args.base_block_sizes else (), lookup_num_tokens=args.lookup_tokens,
        ) + methods
    result = benchmark.run_benchmark(
        models, tokenizer, problems, methods, max_new_tokens=args.max_new_tokens, pass_at_1=not args.no_pass_at_1
    )
    meta = {
        "model": args.model or ("SmolLM2-135M-Instruct + Jacobi Forcing" if trained else "SmolLM2-135M-Instruct"),
        "machine": benchmark.machine_description(),
        "num_prompts": len(problems),
        "max_new_tokens": args.max_new_tokens,
    }
    out = benchmark.write_outputs(result, args.output_dir, meta)
    print(f"{meta['model']} on {meta['machine']}, {len(problems)} HumanEval prompts")
    print(benchmark.markdown_table(result))
    print(f"written to {out}/results.json, results.md, results.png")


def cmd_collect(args) -> None:
    from hf_jacobi.collection import CollectConfig, collect_trajectories
    from hf_jacobi.data import stdlib_coding_prompts

    if (args.prompts is None) == (args.stdlib_prompts is None):
        raise SystemExit("error: pass exactly one of --prompts FILE_OR_DIR and --stdlib-prompts N")
    prompts = args.prompts if args.prompts is not None else stdlib_coding_prompts(
        args.stdlib_prompts, templates_per_task=args.stdlib_templates, style=args.stdlib_style)
    model, tokenizer = _load(args)
    config = CollectConfig(
        block_size=args.block_size, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
        draft_init=args.draft_init, seed=args.seed, generate_block_size=args.generate_block_size,
        model_name=args.model or ("smollm2-jacobi-forcing" if args.jacobi_forcing else "smollm2"),
    )
    dataset = collect_trajectories(model, tokenizer, prompts, args.output_dir, config, max_chunks=args.max_chunks)
    print(f"{0 if dataset is None else len(dataset)} prompts collected in {args.output_dir}")


def cmd_train(argv) -> None:
    """`hf-jacobi train`: TRL-style flags (every JacobiForcingConfig and ModelConfig field), then the pipeline."""
    import logging

    from trl import ModelConfig, TrlParser

    from hf_jacobi.training import JacobiForcingConfig
    from hf_jacobi.training.pipeline import JacobiTrainScriptArguments, run_pipeline

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = TrlParser((JacobiTrainScriptArguments, JacobiForcingConfig, ModelConfig), prog="hf-jacobi train")
    try:
        script_args, training_args, model_args = parser.parse_args_and_config(argv)
    except ValueError as error:  # bad values found by the dataclasses' checks
        raise SystemExit(f"error: {error}") from None
    result = run_pipeline(script_args, training_args, model_args)
    for r, tpf in enumerate(result["rounds"]):
        print(f"round {r}: TPF {tpf.get('tpf', float('nan')):.2f} at block size {tpf.get('block_size')}")
    print(f"model in {training_args.output_dir}/model")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-jacobi", description="Jacobi decoding and Jacobi Forcing for HF models")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("train", add_help=False,
                   help="collect -> train -> measure TPF in on-policy rounds (hf-jacobi train --help for its flags)")

    gen = sub.add_parser("generate", help="stream a greedy answer with Jacobi decoding and print its statistics")
    gen.add_argument("prompt", nargs="?", help="the prompt (read from standard input when omitted)")
    _add_model_args(gen)
    gen.add_argument("--block-size", type=int, default=16, help="tokens per Jacobi block (0: plain greedy decoding)")
    gen.add_argument("--lookup", type=int, default=0, metavar="NGRAM",
                     help="also verify context-lookup drafts (lookup_ngram=NGRAM) as an extra row")
    gen.add_argument("--lookup-draft", type=int, default=0, metavar="TOKENS",
                     help="put up to TOKENS context-lookup tokens in the draft itself (lookup_mode='draft'; the CPU "
                     "setting, best with --block-size 1)")
    gen.add_argument("--max-new-tokens", type=int, default=256)
    gen.add_argument("--no-chat-template", action="store_true", help="feed the prompt as is")
    gen.set_defaults(func=cmd_generate)

    bench = sub.add_parser("bench", help="HF greedy vs prompt lookup vs Jacobi on HumanEval prompts")
    _add_model_args(bench)
    bench.add_argument("--num-prompts", type=int, default=8)
    bench.add_argument("--offset", type=int, default=0, help="index of the first HumanEval problem")
    bench.add_argument("--block-sizes", type=int, nargs="+", default=[4, 16, 64])
    bench.add_argument("--max-new-tokens", type=int, default=128)
    bench.add_argument("--no-prompt-lookup", action="store_true")
    bench.add_argument("--multiblock", type=int, nargs=2, metavar=("NUM_BLOCKS", "POOL_SIZE"),
                       help="also run multi-block Jacobi with rejection recycling at each block size")
    bench.add_argument("--auto", action="store_true", help="also run block_size='auto'")
    bench.add_argument("--lookup", type=int, default=None, metavar="NGRAM",
                       help="also run Jacobi with context-lookup candidate rows (lookup_ngram=NGRAM) at each block size")
    bench.add_argument("--lookup-draft", type=int, nargs="+", default=(), metavar="BLOCK_SIZE",
                       help="also run Jacobi with the lookup continuation in the draft itself (lookup_mode='draft', "
                       "one row; n-gram from --lookup, default 2) at these block sizes (1: lookup only)")
    bench.add_argument("--lookup-tokens", type=int, default=7,
                       help="lookup_num_tokens of the --lookup-draft methods (the block grows to 1 + this)")
    bench.add_argument("--base-block-sizes", type=int, nargs="*", default=None,
                       help="with --jacobi-forcing: also run the base model (HF greedy + Jacobi at these sizes; "
                       "no sizes: HF greedy only)")
    bench.add_argument("--no-pass-at-1", action="store_true", help="skip running the HumanEval tests")
    bench.add_argument("--output-dir", default="outputs/bench")
    bench.set_defaults(func=cmd_bench)
    collect = sub.add_parser("collect", help="collect Jacobi trajectories for training (resumable)")
    _add_model_args(collect)
    collect.add_argument("--prompts", help="a .jsonl file or dataset folder with a 'prompt' or 'messages' field")
    collect.add_argument("--stdlib-prompts", type=int, help="use N offline coding prompts built from stdlib docstrings")
    collect.add_argument("--stdlib-templates", type=int, default=1, choices=[1, 2, 3],
                         help="prompts per stdlib function (each with another task template): more data")
    collect.add_argument("--stdlib-style", default="instruction", choices=["instruction", "completion"],
                         help="instruction prompts, or the function's signature + docstring as code to complete")
    collect.add_argument("--output-dir", required=True, help="rerun with the same folder to resume")
    collect.add_argument("--block-size", type=int, default=16)
    collect.add_argument("--max-new-tokens", type=int, default=256)
    collect.add_argument("--batch-size", type=int, default=4)
    collect.add_argument("--draft-init", default="prompt", choices=["prompt", "repeat"])
    collect.add_argument("--seed", type=int, default=0)
    collect.add_argument("--generate-block-size", type=int, default=None,
                         help="block size of the greedy pass (default: --block-size; 1 is fastest for a base model on CPU)")
    collect.add_argument("--max-chunks", type=int, default=None, help="stop after this many batches (resume later)")
    collect.set_defaults(func=cmd_collect)
    return parser


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train"]:
        return cmd_train(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "block_size", 0) < 0:
        parser.error("--block-size must be >= 1 (or 0 for plain greedy decoding)")
    if args.command == "generate" and (args.lookup or args.lookup_draft) and args.block_size == 0:
        parser.error("--lookup / --lookup-draft need Jacobi decoding: pass --block-size >= 1")
    args.func(args)


if __name__ == "__main__":
    main()
