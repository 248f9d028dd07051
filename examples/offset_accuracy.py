"""Where the accepted tokens must come from: accuracy of the carried predictions by distance from the first wrong token,
on the states the base model's decoder visits on held-out prompts, for the base model and trained models side by side.

    python examples/offset_accuracy.py --models runs/h/recipe/round_0/train/model runs/h/horizon/round_0/train/model \\
        --output runs/h/offset_accuracy.json

The states are collected once (base SmolLM2, block 16, first `--prompts` HumanEval prompts, greedy answers of the base
model, every state the decoder feeds) into `--states-dir` and reused. For every model the table gives, per offset `k`
from a state's first wrong token, how often the argmax is the clean next token (`accuracy_by_offset`); the next
forward accepts about `1 + a_0 + a_0 a_1 + ...` tokens, so that sum (over the offsets measured) is the TPF these
predictions allow; `run TPF` is the same without assuming the offsets independent (`1 + sum_k run_accuracy_k`: the
share of states right at every offset up to `k`). HumanEval is an evaluation set: nothing here trains on it.

With `--filler ID` the states are instead the fresh-block states of a fixed filler, `[c_p, ID, ..., ID]` at every
position `p` of the base model's greedy answers (`pack_states(filler_token_id=ID)`; the answers come from plain
`generate`, `CollectConfig(states="answers")`): what `--states fresh` trains, and what the `draft_carry="clean"`
decoder starts each block from. Their run TPF is the tokens per forward of a decoder whose every forward drafts from
such a state; the clean carry spends about every other forward on one (`(1 + run TPF) / 2` per forward).
`decoder TPF` replays that decoder along the answers instead (a forward starts where the last one ended, so hard
positions weigh more than in run TPF); with at most 3 guesses a forward it is what `fresh_tails=4` allows.

`--prompts-file FILE` scores the first `--prompts` prompts of a JSONL file instead (states in `runs/<stem>_answers`):
a training run's prompts against unseen ones of the same kind tell a gap in generalisation (more distinct data would
close it) from a limit the trained states themselves hit (more data of the same kind would not).
"""

import argparse
import json
from collections import Counter
from pathlib import Path

import torch

from hf_jacobi.collection import CollectConfig, collect_trajectories, load_prompts
from hf_jacobi.loading import load_model, load_saved_model
from hf_jacobi.training import pack_states
from hf_jacobi.training.pipeline import _eval_prompts, accuracy_by_offset, decoder_visits, forward_commits


def implied_tpf(rows: list[dict]) -> float:
    """`1 + a_0 + a_0 a_1 + ...` over the measured offsets."""
    total, product = 1.0, 1.0
    for row in rows:
        product *= row["accuracy"]
        total += product
    return total


def decoder_replay(run_lengths: dict, max_guesses: int | None = None, first_ranks: dict | None = None,
                   alternatives: int = 0) -> list[tuple[int, int, int]]:
    """`(example index, start, tokens committed)` of each forward along `decoder_visits` (a forward at start `p`
    commits `forward_commits(...)` tokens, the next starts there)."""
    ranks = first_ranks or {}
    visits = decoder_visits(run_lengths, max_guesses, first_ranks, alternatives)
    return [(index, p, forward_commits(run_lengths.get((index, p), 0), max_guesses, ranks.get((index, p), 0),
                                       alternatives)) for index in visits for p in visits[index]]


def decoder_commits(run_lengths: dict, max_guesses: int | None = None, first_ranks: dict | None = None,
                    alternatives: int = 0) -> list[int]:
    """The tokens each forward commits along `decoder_visits` (`decoder_replay`)."""
    return [commit for _, _, commit in decoder_replay(run_lengths, max_guesses, first_ranks, alternatives)]


def decoder_tpf(run_lengths: dict, max_guesses: int | None = None) -> float:
    """Tokens per forward of `decoder_commits`. Unlike run TPF (every position weighted alike) this visits positions as
    decoding does: a forward that accepts many tokens skips the easy positions it covered, so hard positions weigh
    more."""
    commits = decoder_commits(run_lengths, max_guesses)
    return sum(commits) / max(len(commits), 1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="*", default=[],
                        help="saved models or LoRA adapters (folders with adapter_config.json; a filler-gated one stays "
                             "gated, `load_model(adapter=...)`) to compare with the base model")
    parser.add_argument("--prompts", type=int, default=16)
    parser.add_argument("--prompts-file", type=Path,
                        help="a JSONL file of {\"prompt\": ...} (e.g. a training run's prompts, to compare seen with "
                        "unseen prompts): its first --prompts prompts instead of HumanEval's")
    parser.add_argument("--block-size", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--offsets", type=int, default=6, help="offsets shown in the table")
    parser.add_argument("--states-dir", type=Path,
                        help="default: runs/heldout_states (runs/heldout_answers with --filler)")
    parser.add_argument("--filler", type=int, help="fresh-block states of this filler token instead of decoder states")
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"], help="of the scored models")
    parser.add_argument("--no-base", action="store_true",
                        help="score only --models (the base model's row is the same in every run: ~1/3 of the time)")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    base, tokenizer = load_model(dtype="float32")
    if args.states_dir is None:
        stem = "heldout" if args.prompts_file is None else args.prompts_file.stem
        args.states_dir = Path(f"runs/{stem}_answers" if args.filler is not None else f"runs/{stem}_states")
    if args.prompts_file is None:
        prompts = _eval_prompts(args.prompts)
    else:
        prompts = load_prompts(args.prompts_file)[:args.prompts]
    config = CollectConfig(block_size=args.block_size, max_new_tokens=args.max_new_tokens, batch_size=8,
                           states="decoding" if args.filler is None else "answers",
                           model_name="SmolLM2-135M-Instruct (base)")
    records = collect_trajectories(base, tokenizer, prompts, args.states_dir, config)
    examples = pack_states(records, args.block_size, eos_token_id=tokenizer.eos_token_id, trim_loops=True,
                           filler_token_id=args.filler)
    examples = [examples[i] for i in range(len(examples))]
    results = {}
    for name in ([] if args.no_base else ["base"]) + args.models:
        model = base if name == "base" else load_saved_model(name)
        model = model.to(getattr(torch, args.dtype)).eval()
        run_lengths, first_ranks = {}, {}
        rows = accuracy_by_offset(model, examples, tokenizer.pad_token_id, tokenizer.eos_token_id,
                                  run_lengths=run_lengths, first_ranks=first_ranks)
        run_tpf = 1 + sum(row["run_accuracy"] for row in rows)
        # The 3-guess replay (what fresh_tails=4 allows) and how its forwards end: the share committing 1 (first
        # guess wrong), 2, 3 or 4 tokens.
        replay = decoder_replay(run_lengths, 3)
        commits = [commit for _, _, commit in replay]
        decoder = {"all": decoder_tpf(run_lengths), "3 guesses": sum(commits) / max(len(commits), 1),
                   "3 guesses commits": {n: commits.count(n) / max(len(commits), 1) for n in range(1, 5)}}
        # Tree branches for the first guess's next choices (each a node and a tail of its own: 4 more tokens of a
        # 16-token forward with 4 tails): what the choices after the argmax would add, with 3 or 2 guesses on the
        # main chain (2 guesses + 1 branch fits 16 tokens: a draft of 3, 3 tails of 3, a branch and its tail of 3).
        for guesses, alternatives in ((3, 1), (3, 2), (2, 1)):
            branched = decoder_commits(run_lengths, guesses, first_ranks, alternatives)
            decoder[f"{guesses} guesses + {alternatives} branches"] = sum(branched) / max(len(branched), 1)
        ranks = Counter(min(first_ranks.get((i, p), 0), 3) for i, p, _ in replay)
        decoder["3-guess visits: first guess rank 0/1/2/3+"] = [ranks[k] / max(len(replay), 1) for k in range(4)]
        results[name] = {"offsets": rows, "implied_tpf": implied_tpf(rows), "run_tpf": run_tpf, "decoder_tpf": decoder}
        print(f"{name}: implied TPF {results[name]['implied_tpf']:.3f}, run TPF {run_tpf:.3f}, decoder TPF "
              f"{decoder['all']:.3f} ({decoder['3 guesses']:.3f} with 3 guesses a forward; its forwards commit 1/2/3/4 "
              f"tokens in " + "/".join(f"{share:.3f}" for share in decoder["3 guesses commits"].values()) + "); "
              + ", ".join(f"{key} {value:.3f}" for key, value in decoder.items() if "branches" in key)
              + "; first guess at the 3-guess visits has rank 0/1/2/3+ in "
              + "/".join(f"{share:.3f}" for share in decoder["3-guess visits: first guess rank 0/1/2/3+"]),
              flush=True)
    shown = range(args.offsets)
    print("| model | " + " | ".join(f"k={k}" for k in shown) + " | implied TPF | run TPF |")
    print("|---|" + "---|" * len(shown) + "---|---|")
    for name, result in results.items():
        by_k = {row["offset"]: row for row in result["offsets"]}
        cells = [f"{by_k[k]['accuracy']:.3f} ({by_k[k]['cross_entropy']:.1f})" if k in by_k else "-" for k in shown]
        print(f"| {name} | " + " | ".join(cells) + f" | {result['implied_tpf']:.3f} | {result['run_tpf']:.3f} |")
    if args.output:
        paths = {name: str(value) for name, value in vars(args).items() if isinstance(value, Path)}
        args.output.write_text(json.dumps({"settings": vars(args) | paths,
                                           "results": results}, indent=1))


if __name__ == "__main__":
    main()
