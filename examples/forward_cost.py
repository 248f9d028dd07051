"""What a forward costs with an unmerged (filler-gated) adapter: median time of one forward of `m` new tokens over a
64-token cache, for the base model and each adapter side by side, in one process and interleaved, so that the
machine's noise hits them alike (report the ratios).

    python examples/forward_cost.py runs/ablation/gated/round_0/train/model runs/ablation/gated_mlp/round_0/train/model

The timed tokens after the first are the filler (`hf_jacobi.generation.auto.measure_forward_costs(filler_token_id=)`),
as in a fresh Jacobi draft: a filler-gated adapter computes only on forwards that hold it.
"""

import argparse
import json
import statistics
from pathlib import Path

import torch

from hf_jacobi.generation.auto import measure_forward_costs
from hf_jacobi.loading import load_model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("adapters", nargs="*", help="adapter folders ('shipped': the package's adapter)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float32"])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds of `--repeats` forwards per model")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--filler", type=int, default=16)
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    models = {"base": load_model(dtype=args.dtype)[0]}
    for name in args.adapters:
        kwargs = {"jacobi_forcing": True} if name == "shipped" else {"adapter": name}
        models[name] = load_model(dtype=args.dtype, **kwargs)[0].eval()
    times = {name: {size: [] for size in args.sizes} for name in models}
    for _ in range(args.rounds):
        for name, model in models.items():
            for size, seconds in measure_forward_costs(model, args.sizes, repeats=args.repeats,
                                                       filler_token_id=args.filler).items():
                times[name][size].append(seconds)
    medians = {name: {size: statistics.median(t) for size, t in by_size.items()} for name, by_size in times.items()}
    base = medians["base"]
    results = {}
    print("| model | " + " | ".join(f"{m} tokens (ms, x base)" for m in args.sizes) + " |")
    print("|---|" + "---|" * len(args.sizes))
    for name, median in medians.items():
        results[name] = {size: {"ms": 1000 * median[size], "x_base": median[size] / base[size]} for size in args.sizes}
        cells = [f"{1000 * median[size]:.1f} ({median[size] / base[size]:.2f}x)" for size in args.sizes]
        print(f"| {name} | " + " | ".join(cells) + " |")
    if args.output:
        args.output.write_text(json.dumps({"settings": vars(args) | {"output": str(args.output)},
                                           "threads": torch.get_num_threads(), "results": results}, indent=1))


if __name__ == "__main__":
    main()
