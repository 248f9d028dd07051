"""Main demo: the same prompt decoded by HF greedy and by Jacobi decoding, side by side, on the offline SmolLM2.

    python examples/demo.py [--block-size 8] [--lookup-ngram 2] [--lookup-block-size 4] [--lookup-tokens 7]
                            [--max-new-tokens 128] [--base]

Uses the Jacobi Forcing SmolLM2 shipped with hf_jacobi when present (else the base model, which is lossless but
accepts about one token per forward). Runs HF greedy, Jacobi decoding, Jacobi decoding with context-lookup candidates
as extra rows (the GPU setting) and with the lookup continuation in the draft itself (the CPU setting); prints
tokens/forward and tokens/s of each and checks that the outputs are identical.
"""

import argparse
import time

import torch

import hf_jacobi  # noqa: F401  (adds generation_mode="jacobi" to generate)
from hf_jacobi.demo import ADAPTER_DIR, chat_prompt, load_model

PROMPT = "Write a Python function `fib(n)` that returns the n-th Fibonacci number iteratively, with a docstring."


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompt", default=PROMPT)
    parser.add_argument("--block-size", type=int, default=8)
    parser.add_argument("--lookup-ngram", type=int, default=2, help="n-gram size of the context-lookup candidates")
    parser.add_argument("--lookup-block-size", type=int, default=4, help="block size of the lookup-in-draft run")
    parser.add_argument("--lookup-tokens", type=int, default=7, help="lookup tokens per forward in that run")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--base", action="store_true", help="use the base SmolLM2 even if the trained one is shipped")
    args = parser.parse_args()

    trained = not args.base and (ADAPTER_DIR / "adapter_config.json").exists()
    model, tokenizer = load_model(jacobi_forcing=trained)
    print(f"model: SmolLM2-135M-Instruct{' + Jacobi Forcing' if trained else ' (base)'}, {torch.get_num_threads()} threads")
    inputs = tokenizer(chat_prompt(tokenizer, args.prompt), return_tensors="pt")
    common = dict(max_new_tokens=args.max_new_tokens, do_sample=False, return_dict_in_generate=True)
    model.generate(**inputs, **{**common, "max_new_tokens": 4})  # warm-up

    jacobi = dict(generation_mode="jacobi", block_size=args.block_size)
    methods = {
        "HF greedy": {},
        f"Jacobi n={args.block_size}": jacobi,
        "+ lookup rows": dict(jacobi, lookup_ngram=args.lookup_ngram),
        f"n={args.lookup_block_size} + lookup draft": dict(
            generation_mode="jacobi", block_size=args.lookup_block_size, lookup_ngram=args.lookup_ngram,
            lookup_mode="draft", lookup_num_tokens=args.lookup_tokens,
        ),
    }
    results = {}
    for name, extra in methods.items():
        start = time.perf_counter()
        out = model.generate(**inputs, **common, **extra)
        seconds = time.perf_counter() - start
        new_tokens = out.sequences.shape[1] - inputs["input_ids"].shape[1]
        forwards = getattr(out, "num_forwards", None) or new_tokens - 1
        results[name] = (out.sequences, new_tokens, (new_tokens - 1) / forwards, new_tokens / seconds)

    greedy, _, _, greedy_speed = results["HF greedy"]
    print("\n" + tokenizer.decode(greedy[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True) + "\n")
    print(f"{'method':<24}{'tokens':>8}{'tokens/forward':>16}{'tokens/s':>10}{'speedup':>9}  identical to greedy")
    for name, (sequences, tokens, tpf, speed) in results.items():
        same = torch.equal(sequences, greedy)
        print(f"{name:<24}{tokens:>8}{tpf:>16.2f}{speed:>10.1f}{speed / greedy_speed:>8.2f}x  {same}")


if __name__ == "__main__":
    main()
