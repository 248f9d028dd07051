"""Main demo: the same prompt decoded by HF greedy and by Jacobi decoding, side by side, on the offline SmolLM2.

    python examples/demo.py [--block-size 16] [--max-new-tokens 128] [--base]

Uses the Jacobi Forcing SmolLM2 shipped with hf_jacobi when present (else the base model, which is lossless but
accepts about one token per forward). Prints tokens/forward and tokens/s of both and checks the texts are identical.
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
    parser.add_argument("--block-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--base", action="store_true", help="use the base SmolLM2 even if the trained one is shipped")
    args = parser.parse_args()

    trained = not args.base and (ADAPTER_DIR / "adapter_config.json").exists()
    model, tokenizer = load_model(jacobi_forcing=trained)
    print(f"model: SmolLM2-135M-Instruct{' + Jacobi Forcing' if trained else ' (base)'}, {torch.get_num_threads()} threads")
    inputs = tokenizer(chat_prompt(tokenizer, args.prompt), return_tensors="pt")
    common = dict(max_new_tokens=args.max_new_tokens, do_sample=False, return_dict_in_generate=True)
    model.generate(**inputs, **{**common, "max_new_tokens": 4})  # warm-up

    results = {}
    for name, extra in (("HF greedy", {}), (f"Jacobi n={args.block_size}", dict(generation_mode="jacobi", block_size=args.block_size))):
        start = time.perf_counter()
        out = model.generate(**inputs, **common, **extra)
        seconds = time.perf_counter() - start
        new_tokens = out.sequences.shape[1] - inputs["input_ids"].shape[1]
        forwards = getattr(out, "num_forwards", None) or new_tokens - 1
        results[name] = (out.sequences, new_tokens, (new_tokens - 1) / forwards, new_tokens / seconds)

    (greedy, *_), (jacobi, *_) = results.values()
    print("\n" + tokenizer.decode(jacobi[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True) + "\n")
    print(f"{'method':<16}{'tokens':>8}{'tokens/forward':>16}{'tokens/s':>10}")
    for name, (_, tokens, tpf, speed) in results.items():
        print(f"{name:<16}{tokens:>8}{tpf:>16.2f}{speed:>10.1f}")
    print(f"identical output: {torch.equal(greedy, jacobi)}; speedup {results[list(results)[1]][3] / results['HF greedy'][3]:.2f}x")


if __name__ == "__main__":
    main()
