"""How often Jacobi decoding in bfloat16 returns exactly the tokens of greedy decoding in bfloat16.

In float32 the two are identical token for token (the test suite checks it across model families). In bfloat16 the
logits of a position differ slightly between a forward of 1 token and one of `n` (other matmul blockings), so near-ties
can flip: this script measures the rate on HumanEval prompts, and where the answers differ, at which token.
With `--execute-code` it also runs HumanEval's tests on both answers (untrusted model-written code, see
`hf_jacobi.benchmark.passes_tests`).

    python examples/bf16_exact_match.py --num-prompts 164 --output runs/bf16_exact_match.json [--jacobi-forcing]
"""

import argparse
import json
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

import hf_jacobi  # noqa: F401  (generation_mode="jacobi")
from hf_jacobi.benchmark import humaneval_prompt, passes_tests
from hf_jacobi.data import load_humaneval
from hf_jacobi.loading import load_model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-prompts", type=int, default=164)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--block-size", type=int, default=16)
    parser.add_argument("--dtype", default="bfloat16", choices=["bfloat16", "float16", "float32"])
    parser.add_argument("--jacobi-forcing", action="store_true", help="the shipped adapter instead of the base model")
    parser.add_argument("--execute-code", action="store_true", help="also run HumanEval's tests (untrusted code)")
    parser.add_argument("--output", type=Path, default=Path("runs/bf16_exact_match.json"))
    args = parser.parse_args(argv)

    model, tokenizer = load_model(jacobi_forcing=args.jacobi_forcing, dtype=args.dtype, device="cpu")
    done = {}
    if args.output.exists():  # resume
        done = {row["task_id"]: row for row in json.loads(args.output.read_text())["rows"]}
    rows = list(done.values())
    start = time.time()
    for problem in tqdm(load_humaneval(args.num_prompts), desc="prompts"):
        if problem["task_id"] in done:
            continue
        inputs = tokenizer(humaneval_prompt(tokenizer, problem), return_tensors="pt")
        common = {"do_sample": False, "max_new_tokens": args.max_new_tokens}
        with torch.inference_mode():
            greedy = model.generate(**inputs, **common)[0, inputs["input_ids"].shape[1] :].tolist()
            out = model.generate(**inputs, **common, generation_mode="jacobi", block_size=args.block_size,
                                 return_dict_in_generate=True)
        jacobi = out.sequences[0, inputs["input_ids"].shape[1] :].tolist()
        first = next((i for i, (a, b) in enumerate(zip(greedy, jacobi)) if a != b), None)
        if first is None and len(greedy) != len(jacobi):
            first = min(len(greedy), len(jacobi))
        row = {"task_id": problem["task_id"], "same": greedy == jacobi, "first_difference": first,
               "tokens": len(greedy), "tpf": out.tokens_per_forward}
        if args.execute_code:
            row["greedy_passes"] = passes_tests(problem, tokenizer.decode(greedy, skip_special_tokens=True))
            row["jacobi_passes"] = passes_tests(problem, tokenizer.decode(jacobi, skip_special_tokens=True))
        rows.append(row)
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(json.dumps({"settings": vars(args) | {"output": str(args.output)}, "rows": rows},
                                          indent=1))
    same = sum(row["same"] for row in rows)
    summary = {"prompts": len(rows), "exact_match": same / len(rows), "seconds_this_run": round(time.time() - start)}
    if args.execute_code:
        summary["pass_at_1_greedy"] = sum(row["greedy_passes"] for row in rows) / len(rows)
        summary["pass_at_1_jacobi"] = sum(row["jacobi_passes"] for row in rows) / len(rows)
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
