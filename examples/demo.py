"""Main demo: the same prompt decoded by HF greedy and by Jacobi decoding, side by side, on the offline SmolLM2.

    python examples/demo.py [--repeats 3] [--block-size 8] [--lookup-ngram 2] [--lookup-block-size 4]
                            [--lookup-tokens 7] [--fresh-tails 4] [--max-new-tokens 128] [--base]

Uses the Jacobi Forcing SmolLM2 shipped with hf_jacobi when present (else the base model, which is lossless but
accepts about one token per forward). Runs HF greedy, Jacobi decoding, Jacobi decoding with context-lookup candidates
as extra rows (the GPU setting) and with the lookup continuation in the draft itself (the CPU setting), and with the
trained model fresh tails beside a lookup row. Each method
runs `--repeats` times, round-robin (every repeat runs all methods once, starting from a different one), so that
load on the machine hits all methods alike; the table gives the median time and speedup with their spread, and
checks that every output is identical to HF greedy's. About a minute per repeat on a 2-core CPU.
"""

import argparse
import os
import statistics
import textwrap
import time

import torch

import hf_jacobi  # noqa: F401  (adds generation_mode="jacobi" to generate)
from hf_jacobi.generation import JacobiConfig
from hf_jacobi.generation.configuration_jacobi import MODEL_DEFAULTS_OFF
from hf_jacobi.loading import ADAPTER_DIR, chat_prompt, load_model

PROMPT = "Write a Python function `fib(n)` that returns the n-th Fibonacci number iteratively, with a docstring."
GREEDY = "HF greedy"


def methods(args, generation_config=None) -> dict[str, tuple[dict, str]]:
    """Name -> (extra `generate` arguments, what it is). A model trained with a token filler and the clean carry
    (the shipped adapter) also runs fresh tails beside a lookup row."""
    n, m = args.block_size, args.lookup_block_size

    def jacobi(**settings) -> dict:
        settings = {**MODEL_DEFAULTS_OFF, **settings}  # each row runs what it names, whatever the model's defaults
        JacobiConfig(**settings)  # checks them
        return {"generation_mode": "jacobi", **settings}  # the rest (e.g. a trained filler) from the model's config

    table = {
        GREEDY: ({}, "generate(do_sample=False), one token per forward (the reference)"),
        f"Jacobi n={n}": (jacobi(block_size=n), f'generation_mode="jacobi", block_size={n}: a block of {n} draft tokens per forward'),
        f"Jacobi n={n} + lookup rows": (
            jacobi(block_size=n, lookup_ngram=args.lookup_ngram),
            (f"the same, plus lookup_ngram={args.lookup_ngram}: what followed the last {args.lookup_ngram} tokens "
             "earlier in the context, verified as an extra batch row (the GPU setting)"),
        ),
        f"Jacobi n={m} + lookup draft": (
            jacobi(block_size=m, lookup_ngram=args.lookup_ngram, lookup_mode="draft",
                   lookup_num_tokens=args.lookup_tokens),
            (f'lookup_mode="draft": that continuation (up to {args.lookup_tokens} tokens) is the draft itself, '
             f"one row; a {m}-token Jacobi block when nothing matches (the CPU setting)"),
        ),
    }
    filler = getattr(generation_config, "draft_init", None)
    if args.fresh_tails and isinstance(filler, int) and getattr(generation_config, "draft_carry", None) == "clean":
        t = args.fresh_tails
        table[f"Jacobi n={t * t} tails + lookup"] = (
            jacobi(block_size=t * t, draft_init=filler, draft_carry="clean", fresh_tails=t,
                   lookup_ngram=args.lookup_ngram),
            (f"fresh_tails={t}, block_size={t * t}: a draft of {t} tokens and behind each of its prefixes a tail of "
             f"filler whose guesses the next draft verifies (one row, a tree mask), beside a lookup row as wide"),
        )
    return table


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def free_threads(load: float) -> int:
    """Torch's thread count less the cores that other processes keep busy (`load`: the 1-minute load average). On a
    loaded CPU a multi-threaded forward waits for threads that are not scheduled, far more for a block of tokens than
    for one: on 2 cores under a load of ~4, Jacobi decoding took 4x as long as greedy with 2 threads, 1.3x with 1."""
    return max(1, min(torch.get_num_threads(), round(cores() - load)))


def legend(repeats: int, names: dict[str, str]) -> str:
    width = max(len(name) for name in names) + 2
    lines = [
        "Columns:",
        "  tokens     new tokens generated",
        "  TPF        tokens per forward: new tokens after the first / decoding forwards (prefill excluded; greedy 1.00)",
        f"  time s     median wall time of the {repeats} runs of the method, [min-max] of those runs",
        "  tokens/s   tokens / median time",
        "  speedup    HF greedy median time / the method's median time (above 1x: faster than greedy);",
        "             [min-max] of the same ratio within each repeat (greedy and the method under the same load)",
        "  identical  every run gave the same tokens as HF greedy (Jacobi decoding is lossless under greedy decoding)",
        "Methods:",
    ]
    lines += [textwrap.fill(what, 119, initial_indent=f"  {name:<{width}}", subsequent_indent=" " * (width + 2))
              for name, what in names.items()]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompt", default=PROMPT)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each method, round-robin (default 3)")
    parser.add_argument("--block-size", type=int, default=8)
    parser.add_argument("--lookup-ngram", type=int, default=2, help="n-gram size of the context-lookup candidates")
    parser.add_argument("--lookup-block-size", type=int, default=4, help="block size of the lookup-in-draft run")
    parser.add_argument("--lookup-tokens", type=int, default=7, help="lookup tokens per forward in that run")
    parser.add_argument("--fresh-tails", type=int, default=4,
                        help="fresh tails of the tails + lookup run (models trained with a token filler; 0: off)")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--base", action="store_true", help="use the base SmolLM2 even if the trained one is shipped")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's choice, less the cores other work keeps busy)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    torch.set_num_threads(args.threads or free_threads(load))
    threads = "set by --threads" if args.threads else f"load average {load:.1f} on {cores()} cores before loading"

    trained = not args.base and (ADAPTER_DIR / "adapter_config.json").exists()
    model, tokenizer = load_model(jacobi_forcing=trained)
    print(f"model: SmolLM2-135M-Instruct{' + Jacobi Forcing' if trained else ' (base)'}, "
          f"{torch.get_num_threads()} threads ({threads}), {args.repeats} repeats", flush=True)
    inputs = tokenizer(chat_prompt(tokenizer, args.prompt), return_tensors="pt")
    prompt_len = inputs["input_ids"].shape[1]
    common = {"max_new_tokens": args.max_new_tokens, "do_sample": False, "return_dict_in_generate": True}
    table = methods(args, model.generation_config)
    names = list(table)
    for extra, _ in table.values():  # warm-up of every code path
        model.generate(**inputs, **{**common, "max_new_tokens": 4}, **extra)

    times = {name: [] for name in names}
    runs = {name: [] for name in names}  # (sequences, forwards) of each repeat
    for r in range(args.repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:  # round-robin, a different method first in each repeat
            start = time.perf_counter()
            out = model.generate(**inputs, **common, **table[name][0])
            times[name].append(time.perf_counter() - start)
            runs[name].append((out.sequences, getattr(out, "num_forwards", None)))
        print(f"repeat {r + 1}/{args.repeats}: " + ", ".join(f"{name} {times[name][-1]:.1f} s" for name in names),
              flush=True)

    greedy = runs[GREEDY][0][0]
    print("\n" + tokenizer.decode(greedy[0, prompt_len:], skip_special_tokens=True) + "\n")
    greedy_median = statistics.median(times[GREEDY])
    print(f"{'method':<28}{'tokens':>7}{'TPF':>6}  {'time s [min-max]':<22}{'tokens/s':>8}  {'speedup [min-max]':<20}"
          "identical")
    results = {}
    for name in names:
        sequences, forwards = runs[name][0]
        tokens = sequences.shape[1] - prompt_len
        tpf = (tokens - 1) / (forwards or max(tokens - 1, 1))
        median = statistics.median(times[name])
        speedup = greedy_median / median
        paired = [g / t for g, t in zip(times[GREEDY], times[name])]
        identical = all(torch.equal(seq, greedy) for seq, _ in runs[name])
        results[name] = {"tokens": tokens, "tpf": tpf, "times": times[name], "speedup": speedup,
                         "speedup_range": (min(paired), max(paired)), "identical": identical}
        spread = f"{median:.2f} [{min(times[name]):.2f}-{max(times[name]):.2f}]"
        ratio = f"{speedup:.2f}x [{min(paired):.2f}-{max(paired):.2f}]"
        print(f"{name:<28}{tokens:>7}{tpf:>6.2f}  {spread:<22}{tokens / median:>8.1f}  {ratio:<20}{identical}")
    print("\n" + legend(args.repeats, {name: what for name, (_, what) in table.items()}))
    return results


if __name__ == "__main__":
    main()
