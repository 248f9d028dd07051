"""pass@1 and TPF on all 164 HumanEval problems in one pass: each answer is decoded with Jacobi decoding in float32,
which gives greedy decoding's tokens (the package's identity tests), so the same run measures quality and tokens per
forward on prompts the model never trained on. Resumable: finished problems are kept in the output jsonl.

    python examples/eval_humaneval.py --adapter runs/smollm2_jf/adapter --name trained --output docs/he164_trained.jsonl \
        --execute-code
    python examples/eval_humaneval.py --model runs/jf_anchor/model --name anchored --output he.jsonl --execute-code

Model-written code is executed (the HumanEval tests, in a subprocess with a timeout, not a sandbox): it runs only
with `--execute-code`, where that is acceptable.
"""

import argparse
import json
from pathlib import Path

import torch
from tqdm.auto import tqdm

import hf_jacobi  # noqa: F401
from hf_jacobi.benchmark import humaneval_prompt, load_humaneval, passes_tests
from hf_jacobi.loading import load_model
from hf_jacobi.training import loop_start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapter", default=None, help="LoRA adapter folder (default: the base model)")
    parser.add_argument("--model", default=None, help="a saved model folder (e.g. an hf-jacobi train run's model/)")
    parser.add_argument("--execute-code", action="store_true",
                        help="consent to run the model-written code and the HumanEval tests (not a sandbox)")
    parser.add_argument("--name", required=True, help="label of the model in the output")
    parser.add_argument("--output", type=Path, required=True, help="jsonl, one line per problem (resumes)")
    parser.add_argument("--block-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=256)
    parser.add_argument("--quantize", default=None, choices=["int8"],
                        help="int8 weights, float32 activations (hf_jacobi.quantization); default: float32")
    parser.add_argument("--num-problems", type=int, default=None)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                        help="bfloat16: near-ties flip with the forward's width, so the answers are no longer greedy's "
                             "float32 ones; the change it makes to pass@1 is the noise floor of any other change")
    parser.add_argument("--task-ids", nargs="+", default=None,
                        help="only these problems, e.g. those another model passes (a retention check)")
    args = parser.parse_args(argv)
    if not args.execute_code:
        parser.error("pass --execute-code: pass@1 runs the model-written code and the tests on this machine.")

    model, tokenizer = load_model(model=args.model, adapter=args.adapter, quantize=args.quantize,
                                  dtype=args.dtype)
    done = {}
    if args.output.exists():
        for line in args.output.open():
            try:
                record = json.loads(line)
                done[record["task_id"]] = record
            except json.JSONDecodeError:
                break  # a torn last line is redone
    problems = load_humaneval(args.num_problems)
    if args.task_ids:
        unknown = set(args.task_ids) - {p["task_id"] for p in problems}
        if unknown:
            parser.error(f"unknown --task-ids {sorted(unknown)}")
        problems = [p for p in problems if p["task_id"] in set(args.task_ids)]
    with open(args.output, "a") as handle:
        for problem in tqdm([p for p in problems if p["task_id"] not in done], desc=args.name):
            inputs = tokenizer(humaneval_prompt(tokenizer, problem), return_tensors="pt")
            with torch.inference_mode():
                out = model.generate(**inputs, do_sample=False, max_new_tokens=args.max_new_tokens,
                                     generation_mode="jacobi", block_size=args.block_size,
                                     return_dict_in_generate=True)
            new = out.sequences[0, inputs["input_ids"].shape[1]:].tolist()
            answer = tokenizer.decode(new, skip_special_tokens=True)
            record = {"task_id": problem["task_id"], "model": args.name, "passed": passes_tests(problem, answer),
                      "new_tokens": len(new), "accepted": int(out.accepted_tokens.sum()), "forwards": out.num_forwards,
                      "at_limit": len(new) >= args.max_new_tokens,
                      "exact_loop": len(new) >= args.max_new_tokens and loop_start(new) is not None}
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            done[record["task_id"]] = record
    records = [done[p["task_id"]] for p in problems]
    summary = {"model": args.name, "problems": len(records), "passed": sum(r["passed"] for r in records),
               "pass_at_1": sum(r["passed"] for r in records) / len(records),
               "tpf": sum(r["accepted"] for r in records) / sum(r["forwards"] for r in records),
               "at_limit": sum(r["at_limit"] for r in records), "exact_loops": sum(r["exact_loop"] for r in records),
               "block_size": args.block_size, "max_new_tokens": args.max_new_tokens, "dtype": args.dtype}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
