"""Cost of the Jacobi verification step: the fused `jacobi-verify` Triton kernel against the torch implementation.

Microbenchmark (default): for each block size and vocabulary, random logits `(batch * candidates, n, vocab)` and a
partly accepted draft; times `hf_jacobi.verify_block` (argmax + acceptance, what decoding runs today), the
kernel package's torch reference of the whole step (argmax + acceptance + best row + next draft) and the fused kernel,
and checks the kernel's output against the reference. The kernel needs a CUDA GPU; on CPU only the torch columns
are measured.

    python examples/bench_verify_kernel.py                        # block 16/64/256 x vocab 32000/151936
    python examples/bench_verify_kernel.py --dtype bfloat16 --batch 4 --candidates 2

End to end (`--model`): tokens/s of `generate(generation_mode="jacobi")` with `use_kernels=False` and `use_kernels=True`
on a local model, and whether the tokens are identical.

    python examples/bench_verify_kernel.py --model path/to/model --block-size 16 --max-new-tokens 256

The kernel comes from `--kernel-dir` (default: `kernels/jacobi_verify` of this repository, set as
`HF_JACOBI_VERIFY_KERNEL`), or from the Hub with `--kernel-dir ''`.
"""

import argparse
import functools
import logging
import os
import time
from pathlib import Path

import torch

DEFAULT_KERNEL_DIR = Path(__file__).resolve().parents[1] / "kernels" / "jacobi_verify"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--block-sizes", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--vocab-sizes", type=int, nargs="+", default=[32000, 151936])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--candidates", type=int, default=1, help="Candidate rows per sequence.")
    parser.add_argument("--dtype", choices=["float32", "bfloat16", "float16"], default="float32")
    parser.add_argument("--iters", type=int, default=50, help="Timed calls per cell.")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads.")
    parser.add_argument("--kernel-dir", default=str(DEFAULT_KERNEL_DIR), help="Local kernel package; '' for the Hub.")
    parser.add_argument("--model", default=None, help="Local model directory: run the end-to-end comparison.")
    parser.add_argument("--prompt", default="def fibonacci(n):")
    parser.add_argument("--block-size", type=int, default=16, help="End to end: Jacobi block size.")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3, help="End to end: timed generations per variant.")
    return parser.parse_args(argv)


def timer(device: torch.device):
    """Seconds per call of `fn`, synchronizing the device around the timed loop."""

    def run(fn, iters: int, warmup: int) -> float:
        for _ in range(warmup):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(iters):
            fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return (time.perf_counter() - start) / iters

    return run


def make_case(rows: int, n: int, vocab: int, dtype: torch.dtype, device: torch.device, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, n, vocab, generator=generator).to(device=device, dtype=dtype)
    predictions = logits.argmax(-1).cpu()
    draft = torch.randint(0, vocab, (rows, n), generator=generator)
    keep = torch.rand(rows, n - 1, generator=generator) < 0.8
    draft[:, 1:] = torch.where(keep, predictions[:, :-1], draft[:, 1:])
    return draft.to(device), logits


def load_kernel(kernel_dir: str):
    from hf_jacobi.kernels import load_verify_kernel

    if kernel_dir:
        os.environ["HF_JACOBI_VERIFY_KERNEL"] = kernel_dir
    return load_verify_kernel()


def microbenchmark(args) -> None:
    from hf_jacobi.generation import verification as jacobi

    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    rows = args.batch * args.candidates
    try:
        kernel, source = load_kernel(args.kernel_dir)
    except Exception as error:  # noqa: BLE001 (the torch column is still worth printing)
        kernel, source = None, f"not loaded ({type(error).__name__}: {str(error).splitlines()[0][:200]})"
    use_kernel = device.type == "cuda" and kernel is not None and kernel.triton is not None
    time_it = timer(device)
    print(f"device={device} dtype={args.dtype} batch={args.batch} candidates={args.candidates} kernel: {source}")
    if not use_kernel:
        if kernel is None:
            why = "the kernel package could not be loaded"
        elif kernel.triton is None:
            why = "Triton is not installed"
        else:
            why = "it needs a CUDA GPU"
        print(f"Fused kernel not timed: {why}; torch columns only.")
    header = f"{'block':>6} {'vocab':>7} {'torch verify_block':>19} {'torch full step':>16} {'fused kernel':>13}"
    print(header + (f" {'speedup':>8} {'exact':>6}" if use_kernel else ""))
    for n in args.block_sizes:
        for vocab in args.vocab_sizes:
            draft, logits = make_case(rows, n, vocab, dtype, device)
            scores = logits.float()  # decoding verifies float32 scores
            t_block = time_it(functools.partial(jacobi.verify_block, draft, scores, False), args.iters, args.warmup)
            line = f"{n:>6} {vocab:>7} {t_block * 1e6:>16.1f} us"
            if kernel is None:
                print(line + f" {'-':>16} {'unavailable':>13}")
                continue
            reference = functools.partial(kernel.verify_reference, draft, logits, args.candidates)
            t_full = time_it(reference, args.iters, args.warmup)
            line += f" {t_full * 1e6:>13.1f} us"
            if use_kernel:
                fused = functools.partial(kernel.verify_triton, draft, logits, args.candidates)
                t_kernel = time_it(fused, args.iters, args.warmup)
                exact = all(torch.equal(a, b) for a, b in zip(fused(), reference()))
                line += f" {t_kernel * 1e6:>10.1f} us {t_full / t_kernel:>7.2f}x {exact!s:>6}"
            else:
                line += f" {'needs GPU':>13}"
            print(line)


def end_to_end(args) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import hf_jacobi  # noqa: F401  (generation_mode="jacobi")
    from hf_jacobi.kernels import get_verify_fn

    device = torch.device(args.device)
    if args.kernel_dir:
        os.environ["HF_JACOBI_VERIFY_KERNEL"] = args.kernel_dir
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=getattr(torch, args.dtype)).to(device).eval()
    inputs = tokenizer([args.prompt], return_tensors="pt").to(device)
    settings = dict(
        do_sample=False, max_new_tokens=args.max_new_tokens, generation_mode="jacobi", block_size=args.block_size
    )
    chosen = get_verify_fn()
    print(f"use_kernels=True path: {'fused kernel' if hasattr(chosen, 'kernel') else 'torch fallback'}")
    outputs = {}
    for use_kernels in (False, True):
        model.generate(**inputs, use_kernels=use_kernels, **settings)  # warm-up (and Triton compilation)
        best = float("inf")
        for _ in range(args.repeats):
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            out = model.generate(**inputs, use_kernels=use_kernels, **settings)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            best = min(best, time.perf_counter() - start)
        new_tokens = out.shape[1] - inputs["input_ids"].shape[1]
        outputs[use_kernels] = out
        print(
            f"use_kernels={use_kernels!s:>5}: {new_tokens / best:8.1f} tokens/s ({new_tokens} tokens, best of {args.repeats})"
        )
    print(f"identical tokens: {torch.equal(outputs[False], outputs[True])}")


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")  # hf_jacobi's line on the chosen path
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model:
        end_to_end(args)
    else:
        microbenchmark(args)


if __name__ == "__main__":
    main()
