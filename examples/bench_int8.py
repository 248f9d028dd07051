"""int8 weights against float32 and bfloat16, side by side in one run (issue 16: the fixed cost of a forward).

The same model (the shipped Jacobi Forcing SmolLM2 by default) three ways: float32, bfloat16, and int8 weights with
float32 activations (`hf_jacobi.quantization`). Each runs HF greedy, HF prompt lookup, Jacobi at block 16 and Jacobi
with the lookup continuation in the draft, interleaved prompt by prompt. Exact match is against greedy decoding of
the same model (for int8: of the int8 model); `vs_fp32_greedy` is tokens/s against float32 HF greedy (plain HF
eager), `cost1_ms` the measured 1-token forward of each model, timed in the same run.

    python examples/bench_int8.py --output-dir docs/bench_smollm2_cpu_int8 [--base] [--num-prompts 8]
"""

import argparse
import json

from hf_jacobi import benchmark
from hf_jacobi.data import load_humaneval
from hf_jacobi.loading import load_model

KINDS = {"fp32": dict(dtype="float32"), "bf16": dict(dtype="bfloat16"), "int8": dict(dtype="float32", quantize="int8")}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", action="store_true", help="the base model instead of the shipped adapter")
    parser.add_argument("--num-prompts", type=int, default=8)
    parser.add_argument("--offset", type=int, default=0)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=list(KINDS))
    parser.add_argument("--output-dir", default="runs/bench_int8")
    args = parser.parse_args(argv)

    problems = load_humaneval(args.num_prompts, args.offset)
    models, tokenizer = {}, None
    for kind in args.kinds:
        models[kind], tokenizer = load_model(jacobi_forcing=not args.base, device="cpu", **KINDS[kind])
    methods = [m for kind in args.kinds
               for m in benchmark.default_methods((16,), prompt_lookup=True, model=kind, lookup_draft=(1,))]
    result = benchmark.run_benchmark(models, tokenizer, problems, methods, max_new_tokens=args.max_new_tokens)
    costs = result["forward_costs"]
    reference = next((r for r in result["methods"] if r["method"] == "fp32/hf_greedy"), None)
    for row in result["methods"]:
        row["cost1_ms"] = 1000 * costs[row["model"]]["1"]
        if reference is not None:
            row["vs_fp32_greedy"] = row["tokens_per_s"] / reference["tokens_per_s"]
    meta = {"model": "SmolLM2-135M-Instruct" + ("" if args.base else " + Jacobi Forcing (shipped adapter)"),
            "machine": benchmark.machine_description(), "num_prompts": len(problems),
            "max_new_tokens": args.max_new_tokens, "kinds": {k: KINDS[k] for k in args.kinds}}
    out = benchmark.write_outputs(result, args.output_dir, meta)
    columns = ["method", "tpf", "width", "cost_ratio", "cost1_ms", "tokens_per_s", "speedup", "vs_fp32_greedy",
               "efficiency", "exact_match"]
    table = benchmark.markdown_table(result, columns)
    (out / "results_int8.md").write_text(table + "\n")
    print(json.dumps(meta))
    print(table)


if __name__ == "__main__":
    main()
