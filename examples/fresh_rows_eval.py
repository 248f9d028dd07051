"""Decoding settings of a fixed-filler model side by side on held-out prompts: the Jacobi carry, the clean carry, and
the clean carry with fresh-tail rows (`fresh_rows`) or the same tails packed into the draft's sequence
(`--fresh-tails`, `fresh_tails`), context lookup (`--lookup`: in the draft, or as a row beside the draft or the
tails) and several blocks in flight
(`--num-blocks`), against HF greedy, in one process.

    python examples/fresh_rows_eval.py --models runs/fresh/round_0/train/model --block-sizes 16 8 --fresh-rows 3 7 \\
        --output runs/fresh/decode_eval.json

Every prompt is decoded by every (model, setting) in turn, so the machine's noise hits them alike: the speedups are
ratios of decoded tokens per second against HF greedy of the same model, in the same dtype (tokens per second, as in
bf16 an answer may leave greedy's at a near-tie and end elsewhere). TPF counts decoding forwards
(prefill excluded) of `generate(generation_mode="jacobi")`; a fresh-row forward feeds `1 + rows` blocks, so its TPF
is per forward, not per token fed, and the wall time says what the rows cost. `same` is the share of prompts whose
answer equals greedy's (bf16: near-ties may flip, see the README). The filler is the model's own
(`generation_config.draft_init`, else `--filler`). HumanEval is an evaluation set: nothing here trains on it.
"""

import argparse
import json
import time
from pathlib import Path

import torch

import hf_jacobi  # noqa: F401  (generation_mode="jacobi")
from hf_jacobi.collection import load_prompts
from hf_jacobi.filler_gate import is_filler_gated
from hf_jacobi.generation.configuration_jacobi import MODEL_DEFAULTS_OFF
from hf_jacobi.loading import chat_prompt, load_model, load_saved_model
from hf_jacobi.training.pipeline import _eval_prompts


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=[], help="saved models (folders); 'base' is SmolLM2")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--offset", type=int, default=0, help="first HumanEval problem (or line of --prompts-file)")
    parser.add_argument("--prompts-file", type=Path,
                        help="a JSONL file of {\"prompt\": ...} (e.g. unseen prompts of the training kind) instead of "
                        "HumanEval")
    parser.add_argument("--block-sizes", type=int, nargs="+", default=[16])
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--fresh-rows", type=int, nargs="*", default=[3])
    parser.add_argument("--fresh-tails", type=int, nargs="*", default=[],
                        help="also the clean carry with T fresh tails in the draft's sequence (block size >= T*T)")
    parser.add_argument("--lookup", type=int, default=0, metavar="NGRAM",
                        help="also each rows setting with context-lookup rows (lookup_ngram=NGRAM)")
    parser.add_argument("--lookup-tokens", type=int, default=7,
                        help="most lookup tokens in the draft of the fresh-tails + lookup settings")
    parser.add_argument("--num-blocks", type=int, nargs="*", default=[],
                        help="also multi-block decoding with K blocks in flight (clean carry; with --lookup, also + lookup)")
    parser.add_argument("--filler", type=int, default=16, help="filler of models without one in their config")
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--only", nargs="*", default=[], metavar="TEXT",
                        help="run only the settings whose name contains one of these (and greedy, the reference)")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    base, tokenizer = load_model(dtype="float32")
    if args.prompts_file is None:
        prompts = _eval_prompts(args.offset + args.prompts)[args.offset:]
    else:
        prompts = load_prompts(args.prompts_file)[args.offset:args.offset + args.prompts]
    settings = {"greedy": None}
    for n in args.block_sizes:
        settings |= {f"n={n} jacobi (carry all)": {"block_size": n, "draft_carry": "all"},
                     f"n={n} clean carry": {"block_size": n, "draft_carry": "clean"}}
        settings |= {f"n={n} clean + {r} fresh rows": {"block_size": n, "draft_carry": "clean", "fresh_rows": r}
                     for r in args.fresh_rows}
        for t in (t for t in args.fresh_tails if n >= t * t):
            settings[f"n={n} clean + {t} fresh tails"] = {"block_size": n, "draft_carry": "clean", "fresh_tails": t}
            if args.lookup:  # the lookup continuation in the draft, the tails behind its first t prefixes
                settings[f"n={n} clean + {t} fresh tails + lookup {args.lookup} in draft ({args.lookup_tokens})"] = {
                    "block_size": n, "draft_carry": "clean", "fresh_tails": t, "lookup_ngram": args.lookup,
                    "lookup_mode": "draft", "lookup_num_tokens": args.lookup_tokens}
                # the lookup continuation as a row of its own, as wide as the draft with its tails
                settings[f"n={n} clean + {t} fresh tails + lookup {args.lookup} row"] = {
                    "block_size": n, "draft_carry": "clean", "fresh_tails": t, "lookup_ngram": args.lookup}
        if args.lookup:
            settings |= {f"n={n} clean + {r} fresh rows + lookup {args.lookup}":
                         {"block_size": n, "draft_carry": "clean", "fresh_rows": r, "lookup_ngram": args.lookup}
                         for r in [0, *args.fresh_rows]}
        for k in args.num_blocks:
            settings[f"n={n} clean, {k} blocks"] = {"block_size": n, "draft_carry": "clean", "num_blocks": k}
            if args.lookup:
                settings[f"n={n} clean, {k} blocks + lookup {args.lookup}"] = {
                    "block_size": n, "draft_carry": "clean", "num_blocks": k, "lookup_ngram": args.lookup}
    if args.only:
        settings = {k: v for k, v in settings.items() if v is None or any(text in k for text in args.only)}
    # each setting runs what its name says: tails and lookup a model's config turns on are off unless named
    settings = {k: v if v is None else {**MODEL_DEFAULTS_OFF, **v} for k, v in settings.items()}
    results = {}
    for name in args.models or ["base"]:
        model = base if name == "base" else load_saved_model(name)
        model = model.to(dtype).eval()
        # A filler-gated adapter's greedy output is the base model's: greedy decoding runs on the base model, without
        # the unmerged adapter's cost (the speedups are then against what a user of the base model runs)
        greedy_model = base.to(dtype) if is_filler_gated(model) else model
        filler = getattr(model.generation_config, "draft_init", None)
        filler = filler if isinstance(filler, int) else args.filler
        stats = {s: {"tokens": 0, "forwards": 0, "seconds": 0.0, "same": 0} for s in settings}
        for prompt in prompts:
            inputs = tokenizer(chat_prompt(tokenizer, prompt), return_tensors="pt")
            reference = None
            for setting, kwargs in settings.items():
                started = time.perf_counter()
                if kwargs is None:
                    out = greedy_model.generate(**inputs, do_sample=False, max_new_tokens=args.max_new_tokens,
                                                pad_token_id=tokenizer.pad_token_id)
                    sequence = out[0]
                    accepted = forwards = len(sequence) - inputs["input_ids"].shape[1] - 1  # one token per forward
                else:
                    out = model.generate(**inputs, do_sample=False, max_new_tokens=args.max_new_tokens,
                                         generation_mode="jacobi", draft_init=filler,
                                         return_dict_in_generate=True, pad_token_id=tokenizer.pad_token_id, **kwargs)
                    sequence, accepted, forwards = out.sequences[0], int(out.accepted_tokens.sum()), out.num_forwards
                row = stats[setting]
                row["seconds"] += time.perf_counter() - started
                reference = sequence if reference is None else reference
                row["same"] += int(torch.equal(sequence, reference))
                row["tokens"] += accepted
                row["forwards"] += forwards
        greedy = stats["greedy"]["tokens"] / stats["greedy"]["seconds"]
        for setting, row in stats.items():
            row["tpf"] = row["tokens"] / max(row["forwards"], 1)
            row["speedup"] = row["tokens"] / row["seconds"] / greedy
            row["same"] = row["same"] / len(prompts)
        results[name] = stats
        where = args.prompts_file or "HumanEval"
        print(f"\n{name} ({args.dtype}, {len(prompts)} held-out prompts of {where}, filler {filler})")
        print("| setting | TPF | speedup vs greedy | same as greedy |")
        print("|---|---|---|---|")
        for setting, row in stats.items():
            print(f"| {setting} | {row['tpf']:.3f} | {row['speedup']:.2f}x | {row['same']:.2f} |", flush=True)
    if args.output:
        args.output.write_text(json.dumps({"settings": {k: str(v) for k, v in vars(args).items()},
                                           "results": results}, indent=1))


if __name__ == "__main__":
    main()
