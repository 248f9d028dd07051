"""Cost of one Jacobi Forcing training step against a plain causal SFT step of the same length.

The Jacobi step runs the packed sequence `[prompt | k_0 | c_0 | ... ]` (length `P + 2*T*n`) with its 4D block mask
and both losses; the plain step runs a causal LM loss over random tokens of the same total length. Both do forward,
backward and an AdamW step on the same model, alternately, after warm-up. Collation (building the mask) is timed
separately, since a DataLoader overlaps it with training.

    python examples/bench_training_step.py --model path/to/SmolLM2-135M --block-size 16 --num-blocks 16 \\
        --prompt-len 256 --batch-size 2 --device cuda

Peak memory: on CUDA, `torch.cuda.max_memory_allocated` per variant. On CPU, each variant runs once more in a fresh
process, and a thread samples the resident set size (Linux `/proc/self/statm`) during the step: the reported value is
the peak RSS during the step minus the RSS just before it (sampling every millisecond can miss very short peaks).
"""

import argparse
import multiprocessing
import os
import threading
import time

import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM

from hf_jacobi.training import JacobiForcingCollator, ar_loss, consistency_loss


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="Local model directory.")
    parser.add_argument("--block-size", type=int, default=16)
    parser.add_argument("--num-blocks", type=int, default=8)
    parser.add_argument("--prompt-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--steps", type=int, default=5, help="Timed steps per variant.")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--attn-implementation", choices=["sdpa", "eager"], default="sdpa")
    parser.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--no-memory", action="store_true", help="Skip the peak memory measurement.")
    return parser.parse_args(argv)


def load_model(args):
    model = AutoModelForCausalLM.from_pretrained(
        args.model,
        local_files_only=True,
        dtype=getattr(torch, args.dtype),
        attn_implementation=args.attn_implementation,
    )
    return model.to(args.device).train()


def make_batches(args, vocab_size, pad_token_id):
    """Random packed Jacobi batch (half of each noisy block differs from its clean block) and a plain batch."""
    gen = torch.Generator().manual_seed(0)
    n, T, P = args.block_size, args.num_blocks, args.prompt_len
    examples = []
    for _ in range(args.batch_size):
        clean = torch.randint(0, vocab_size, (T, n), generator=gen)
        noisy = clean.clone()
        noisy[:, n // 2 :] = torch.randint(0, vocab_size, (T, n - n // 2), generator=gen)
        prompt = torch.randint(0, vocab_size, (P,), generator=gen)
        examples.append(
            {"prompt_ids": prompt.tolist(), "noisy_blocks": noisy.tolist(), "clean_blocks": clean.tolist()}
        )
    collator = JacobiForcingCollator(
        pad_token_id=pad_token_id,
        block_size=n,
        attn_implementation=args.attn_implementation,
        mask_dtype=getattr(torch, args.dtype),
    )
    start = time.perf_counter()
    jacobi = collator(examples)
    collate_seconds = time.perf_counter() - start
    jacobi = {k: v.to(args.device) for k, v in jacobi.items()}
    plain = torch.randint(0, vocab_size, (args.batch_size, P + 2 * T * n), generator=gen).to(args.device)
    return jacobi, plain, collate_seconds


def jacobi_step(model, optimizer, batch):
    logits = model(
        input_ids=batch["input_ids"],
        attention_mask=batch["attention_mask"],
        position_ids=batch["position_ids"],
        use_cache=False,
    ).logits
    rows = torch.arange(logits.shape[0], device=logits.device)[:, None]
    loss = 10.0 * ar_loss(logits, batch["shift_labels"]) + consistency_loss(
        logits[rows, batch["noisy_index"]],
        logits[rows, batch["clean_index"]],
        batch["consistency_mask"],
        1.0,
        batch["num_blocks"],
    )
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def plain_step(model, optimizer, input_ids):
    logits = model(input_ids=input_ids, use_cache=False).logits
    loss = F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), input_ids[:, 1:].flatten())
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def synchronize(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


class PeakRSS:
    """Context manager: peak resident set size, in bytes, sampled every `interval` seconds (Linux)."""

    def __init__(self, interval=0.001):
        self.interval, self.peak, self._stop = interval, 0, threading.Event()

    @staticmethod
    def current():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.current())
            self._stop.wait(self.interval)

    def __enter__(self):
        self.before = self.peak = self.current()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.current())


def run_variant(args, variant):
    """One step of one variant; returns the peak memory it added, in MiB."""
    model = load_model(args)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)
    pad = model.config.pad_token_id if model.config.pad_token_id is not None else 0
    jacobi, plain, _ = make_batches(args, model.config.vocab_size, pad)

    def step():
        if variant == "jacobi":
            jacobi_step(model, optimizer, jacobi)
        else:
            plain_step(model, optimizer, plain)

    if str(args.device).startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.max_memory_allocated()
        step()
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated() - before) / 2**20
    with PeakRSS() as rss:
        step()
    return (rss.peak - rss.before) / 2**20


def _child(args, variant, queue):
    queue.put(run_variant(args, variant))


def peak_memory(args, variant):
    if str(args.device).startswith("cuda"):
        return run_variant(args, variant)
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=_child, args=(args, variant, queue))
    process.start()
    result = queue.get()
    process.join()
    return result


def main(argv=None):
    args = parse_args(argv)
    model = load_model(args)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-6)  # tiny lr: weights barely move between variants
    pad = model.config.pad_token_id if model.config.pad_token_id is not None else 0
    jacobi, plain, collate_seconds = make_batches(args, model.config.vocab_size, pad)
    tokens = plain.numel()
    print(
        f"model={args.model} device={args.device} dtype={args.dtype} attn={args.attn_implementation} "
        f"batch={args.batch_size} length={plain.shape[1]} (prompt {args.prompt_len} + 2 x {args.num_blocks} blocks "
        f"of {args.block_size})"
    )

    for _ in range(args.warmup):
        jacobi_step(model, optimizer, jacobi)
        plain_step(model, optimizer, plain)
    times = {"jacobi": [], "plain": []}
    for _ in range(args.steps):  # alternate, so drifts (clocks, other load) hit both variants alike
        for name, step, batch in (("jacobi", jacobi_step, jacobi), ("plain", plain_step, plain)):
            synchronize(args.device)
            start = time.perf_counter()
            step(model, optimizer, batch)
            synchronize(args.device)
            times[name].append(time.perf_counter() - start)

    median = {name: sorted(t)[len(t) // 2] for name, t in times.items()}
    for name in ("plain", "jacobi"):
        print(f"{name:>6}: {median[name] * 1e3:9.1f} ms/step  {tokens / median[name]:12,.0f} tokens/s")
    print(f" ratio: Jacobi step takes {median['jacobi'] / median['plain']:.2f}x the plain step")
    print(f"collate (mask build, CPU): {collate_seconds * 1e3:.1f} ms/batch")
    if not args.no_memory:
        del model, optimizer, jacobi, plain
        for name in ("plain", "jacobi"):
            print(f"{name:>6}: peak memory added by one step {peak_memory(args, name):10.1f} MiB")
    return median


if __name__ == "__main__":
    main()
