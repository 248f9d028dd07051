"""`hf-jacobi train`: collect -> train -> measure TPF, in on-policy rounds, resumable at every stage.

Round `r` collects the states the *current* model's Jacobi decoder visits on fresh prompts (round 0: the base
model), trains on them with [`JacobiForcingTrainer`], and measures tokens per forward on held-out prompts. Round `r+1`
collects with the round-`r` model, possibly at a larger block size (a curriculum). Each round uses prompts no earlier
round used, so training makes one pass over distinct prompts. Layout of `output_dir`:

    pipeline_config.json          the settings; a rerun with other settings is refused, with the same ones it resumes
                                  (a larger --rounds with a fixed --prompts_per_round adds rounds)
    round_<r>/data/               collection (chunked, resumable)
    round_<r>/train/              checkpoints while training, `model/` when done
    round_<r>/tpf.json            TPF of the round's model on the held-out prompts (and the base model's, round 0)
    model/                        the last round's model with its card
"""

from __future__ import annotations

import copy
import json
import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from transformers import TrainerCallback, TrainerState
from transformers.trainer_callback import ExportableState

from ..loading import resolve_dtype

logger = logging.getLogger(__name__)


@dataclass
class JacobiTrainScriptArguments:
    """Arguments of `hf-jacobi train` beyond [`JacobiForcingConfig`] and TRL's `ModelConfig`."""

    prompts: str | None = field(
        default=None,
        metadata={"help": "Training prompts: a .jsonl file or dataset folder with a 'prompt' or 'messages' field."},
    )
    coding_prompts: int | None = field(
        default=None,
        metadata={"help": "Use N offline coding prompts built from installed packages' docs instead of --prompts."},
    )
    rounds: int = field(default=1, metadata={"help": "On-policy rounds (collect with the current model, train)."})
    prompts_per_round: int | None = field(
        default=None, metadata={"help": "Distinct prompts per round (default: all prompts split evenly)."}
    )
    round_block_sizes: list[int] = field(
        default_factory=lambda: [16],
        metadata={"help": "Block size of each round (the last one repeats): e.g. 16 32 for a curriculum."},
    )
    states: str = field(
        default="decoding",
        metadata={"help": "Noisy states to train on: the decoder's own drafts, every Jacobi iterate per block, or "
                          "only the fresh-block states [token, filler...] of a token-id --draft_init at every "
                          "position of the greedy answers (fresh: collection is plain batched generate, no Jacobi "
                          "decoding).",
                  "choices": ["decoding", "trajectory", "fresh"]},
    )
    max_states: int = field(default=48, metadata={"help": "Most noisy states per prompt (drawn evenly)."})
    state_selection: str = field(
        default="even",
        metadata={"help": "Which of an answer's --states fresh states to train on: drawn evenly, or only those the "
                          "decoder visits with the model the round starts from (a forward drafts from the state where "
                          "the last one ended and accepts at most --visit_guesses guesses; the positions after a "
                          "failed guess, where the next first guess is most often wrong).",
                  "choices": ["even", "visited"]},
    )
    visit_guesses: int = field(
        default=3, metadata={"help": "Guesses a forward can accept in --state_selection visited (fresh_tails=4: 3)."}
    )
    answers: str = field(
        default="model",
        metadata={"help": "Clean continuations of decoding states in rounds after the first: the current model's greedy "
                          "answers, or the base model's (fixed targets: the AR loss keeps the answers of the base "
                          "model while the states stay on-policy).", "choices": ["model", "base"]},
    )
    max_new_tokens: int = field(default=256, metadata={"help": "Tokens generated per training prompt."})
    collect_batch_size: int = field(default=8, metadata={"help": "Prompts decoded together while collecting."})
    collect_dtype: str = field(
        default="auto",
        metadata={"help": "Dtype of collection and TPF measurement (auto: bfloat16 where the device has it).",
                  "choices": ["auto", "float32", "bfloat16"]},
    )
    eval_prompts: int = field(default=8, metadata={"help": "Held-out HumanEval prompts to measure TPF on."})
    eval_max_new_tokens: int = field(default=128, metadata={"help": "Tokens generated per TPF prompt."})
    eval_block_size: int = field(
        default=16, metadata={"help": "Block size TPF is measured at after every round (comparable across rounds)."}
    )
    train_embeddings: bool = field(
        default=False,
        metadata={"help": "Full fine-tuning also trains the (tied) embeddings, norms and biases; by default only the "
                          "layers' weight matrices train: cheaper, and the change exports as a LoRA adapter "
                          "(--export_rank)."},
    )
    export_rank: int | None = field(
        default=None,
        metadata={"help": "Also write the last model's change as a rank-R LoRA adapter to output_dir/adapter and "
                          "measure its TPF."},
    )
    max_minutes: float | None = field(
        default=None, metadata={"help": "Time box of each round's training (cosine decay over it); rerun resumes."}
    )
    draft_init: str = field(
        default="prompt",
        metadata={"help": "Filler of undrafted positions in collection and TPF measurement: 'prompt', 'repeat' or a "
                          "token id. With a token id the trained model decodes with that filler by default (its "
                          "generation config), and every state a fresh block starts from, [token, filler...], is "
                          "trained at every position of each answer (pack_states(filler_token_id=...))."},
    )
    draft_carry: str = field(
        default="all",
        metadata={"help": "What the decoder's next draft keeps of the predictions past the accepted prefix: all "
                          "(Jacobi) or clean (with a token-id --draft_init: only predictions made from exact tokens "
                          "and filler, the fresh-block states trained with that filler).", "choices": ["all", "clean"]},
    )
    fresh_rows: int = field(
        default=0,
        metadata={"help": "With --draft_carry clean: fresh-tail candidate rows the trained model decodes with by "
                          "default (its generation config) and TPF is measured with; see JacobiConfig.fresh_rows."},
    )
    fresh_tails: int = field(
        default=0,
        metadata={"help": "With --draft_carry clean: fresh tails packed into the draft's own sequence (one row, a tree "
                          "mask; --eval_block_size >= T*T) that the trained model decodes with by default and TPF is "
                          "measured with; see JacobiConfig.fresh_tails."},
    )
    filler_gated_adapter: bool = field(
        default=False,
        metadata={"help": "Train a LoRA adapter (--use_peft true) that acts only where the input token is the filler "
                          "(a token-id --draft_init): the model's greedy output stays the base model's, token for "
                          "token (hf_jacobi.filler_gate), and only the guesses at filler positions are trained. The "
                          "run's model/ is then the adapter, gated again by load_model(adapter=...)."},
    )
    init_adapter: str | None = field(
        default=None,
        metadata={"help": "A LoRA adapter folder to start from (a finished run's model/, or the shipped adapter), e.g. "
                          "to go on training it on new prompts: a --filler_gated_adapter run trains on in it (pass "
                          "its --lora_target_modules and its --lora_r, or a larger one to grow it: its components "
                          "fill the first ranks and the new ones start at zero, so the run starts from the same "
                          "adapter with more capacity); any other run merges it into the model first."},
    )
    overfit: bool = field(
        default=False,
        metadata={"help": "The overfit diagnostic: every round trains on the same prompts (all of them) and TPF is "
                          "measured on those prompts instead of held-out ones. With the consistency loss TPF must "
                          "climb far above the base model's; with --consistency_loss_weight 0 (the AR-only control) "
                          "it must not. Use --max_steps for the steps of each round."},
    )

    def __post_init__(self):
        if (self.prompts is None) == (self.coding_prompts is None):
            raise ValueError("Pass exactly one of --prompts FILE_OR_DATASET and --coding_prompts N.")
        if self.rounds < 1 or not self.round_block_sizes or min(self.round_block_sizes) < 1:
            raise ValueError("--rounds must be >= 1 and --round_block_sizes positive.")
        for name in ("max_states", "max_new_tokens", "collect_batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}.")
        from ..generation.configuration_jacobi import check_draft_carry, check_draft_init, check_fresh_rows

        self.draft_init = check_draft_init(self.draft_init, "--draft_init")
        check_draft_carry(self.draft_carry, self.draft_init, "--draft_carry")
        check_fresh_rows(self.fresh_rows, self.draft_carry, "--fresh_rows", "--draft_carry clean")
        if self.fresh_tails:  # the decoding settings the trained model is measured and saved with, checked as such
            from ..generation.configuration_jacobi import JacobiConfig

            try:
                JacobiConfig(block_size=self.eval_block_size, draft_init=self.draft_init, draft_carry=self.draft_carry,
                             fresh_rows=self.fresh_rows, fresh_tails=self.fresh_tails)
            except ValueError as error:
                raise ValueError(f"--fresh_tails {self.fresh_tails} with --eval_block_size {self.eval_block_size}: "
                                 f"{error}") from None
        if self.init_adapter is not None and not all((Path(self.init_adapter) / name).exists() for name in (
                "adapter_model.safetensors", "adapter_config.json")):
            raise ValueError(f"--init_adapter {self.init_adapter}: no adapter_model.safetensors and "
                             "adapter_config.json there; pass a LoRA adapter folder (a finished run's model/ or an "
                             "`hf-jacobi train` adapter/).")
        if self.overfit and self.prompts_per_round is not None:
            raise ValueError("--overfit trains every round on all the prompts: drop --prompts_per_round.")
        if self.answers == "base" and self.states == "trajectory":
            raise ValueError("--answers base keeps the base answers of decoding or fresh states: use it with --states "
                             "decoding or fresh.")
        if self.filler_gated_adapter and not isinstance(self.draft_init, int):
            raise ValueError("--filler_gated_adapter gates the adapter on the filler token: pass a token id as "
                             f"--draft_init (e.g. an unused special token), not {self.draft_init!r}.")
        if self.filler_gated_adapter and self.export_rank:
            raise ValueError("--export_rank exports the change of a full fine-tune; a --filler_gated_adapter run's "
                             "model/ is already its (gated) adapter: drop --export_rank.")
        if self.state_selection == "visited" and self.states != "fresh":
            raise ValueError("--state_selection visited picks among the fresh-block states of every position: use it "
                             f"with --states fresh (--states {self.states} already gives the decoder's own states).")
        if self.visit_guesses < 1:
            raise ValueError(f"--visit_guesses must be >= 1, got {self.visit_guesses}.")
        if self.states == "fresh" and not isinstance(self.draft_init, int):
            raise ValueError("--states fresh trains the states a fixed filler starts each block from: pass a token id "
                             f"as --draft_init (e.g. an unused special token), not {self.draft_init!r}.")

    def block_size(self, round_index: int) -> int:
        return self.round_block_sizes[min(round_index, len(self.round_block_sizes) - 1)]


class TimeBox(TrainerCallback, ExportableState):
    """Stop (saving a checkpoint) after `minutes` of training; the learning rate decays over the box.

    The time spent is saved in every checkpoint (`trainer_state.json`), so a run interrupted inside its box resumes
    where its schedule stood instead of warming up again; resuming from the end of a finished box
    starts a new box (a continuation with a new `--max_minutes`).
    """

    def __init__(self, minutes: float, warmup: float = 0.03):
        self.seconds, self.warmup, self.start, self.hit = 60 * minutes, warmup, time.monotonic(), False
        self.spent = 0.0  # seconds of this box spent before this process

    def elapsed(self) -> float:
        return self.spent + time.monotonic() - self.start

    def state(self) -> dict:
        return {"args": {"minutes": self.seconds / 60, "warmup": self.warmup},
                "attributes": {"spent": self.elapsed(), "hit": self.hit}}

    def on_train_begin(self, args, state, control, **kwargs):
        # Resumed (the trainer has loaded the checkpoint's state): go on with the box it was saved in, unless that box
        # ran out or the checkpoint predates boxes keeping time
        saved = state.stateful_callbacks.get(type(self).__name__, {}) if state.global_step else {}
        saved = saved.get("attributes", {})
        if not saved.get("hit") and saved.get("spent", self.seconds) < self.seconds:
            self.spent = saved["spent"]
        self.start = time.monotonic()
        state.stateful_callbacks[type(self).__name__] = self.state()  # the trainer's save expects an entry

    def scale(self, _step) -> float:
        t = min(self.elapsed() / self.seconds, 1.0)
        if t < self.warmup:
            return max(t / self.warmup, 0.01)
        return max(0.5 * (1 + math.cos(math.pi * (t - self.warmup) / (1 - self.warmup))), 0.01)

    def on_step_end(self, args, state, control, **kwargs):
        if self.elapsed() > self.seconds:
            control.should_training_stop = control.should_save = self.hit = True
        return control


def last_complete_checkpoint(folder: Path) -> str | None:
    """The newest checkpoint in `folder` whose `trainer_state.json` (the trainer writes it last) reads back. A run killed
    while saving leaves a partial checkpoint, which the trainer's own `get_last_checkpoint` picks and cannot resume."""
    steps = {int(path.name.split("-")[1]): path for path in Path(folder).glob("checkpoint-*")
             if path.name.split("-")[1].isdigit()}
    for step in sorted(steps, reverse=True):
        try:
            TrainerState.load_from_json(str(steps[step] / "trainer_state.json"))
        except (OSError, ValueError, TypeError):  # missing, torn (JSONDecodeError) or from another version
            logger.warning(f"Skipping {steps[step]}: it was not written to the end (the run stopped while saving it).")
            continue
        return str(steps[step])
    return None


@torch.no_grad()
def measure_tpf(model, tokenizer, prompts: list[str], block_size: int, max_new_tokens: int) -> dict:
    """Tokens per forward of Jacobi decoding (greedy, prefill excluded) over `prompts`, one at a time; also the answers
    (token ids), to compare a trained model's greedy output with the base model's, and the TPF outside repetition loops.
    The filler is the model's own (`generation_config.draft_init`, else "prompt").
    """
    import hf_jacobi  # noqa: F401  (generation_mode="jacobi")

    from ..loading import chat_prompt
    from .packing import loop_start

    tokens = forwards = loops = tokens_outside = forwards_outside = 0
    answers = []
    for prompt in prompts:
        inputs = tokenizer(chat_prompt(tokenizer, prompt), return_tensors="pt").to(model.device)
        out = model.generate(**inputs, do_sample=False, max_new_tokens=max_new_tokens, generation_mode="jacobi",
                             block_size=block_size, return_dict_in_generate=True, pad_token_id=tokenizer.pad_token_id)
        tokens += int(out.accepted_tokens.sum())
        forwards += out.num_forwards
        answer = out.sequences[0, inputs["input_ids"].shape[1]:].tolist()
        answers.append(answer)
        # A repetition loop is drafted almost for free, so a model that loops more shows a higher TPF without
        # decoding real text faster: count the tokens before each answer's loop (the first comes from the prefill).
        loop = loop_start(answer)
        loops += loop is not None
        end, position = (loop[0] if loop else len(answer)), 1
        for accepted in out.accepted_tokens.tolist():
            if position >= end:
                break
            forwards_outside += 1
            tokens_outside += min(accepted, end - position)
            position += accepted
    return {"tpf": tokens / max(forwards, 1), "tokens": tokens, "forwards": forwards, "block_size": block_size,
            "prompts": len(prompts), "dtype": str(model.dtype).replace("torch.", ""), "loops": loops,
            "tpf_outside_loops": tokens_outside / max(forwards_outside, 1), "answers": answers}


def answer_agreement(answers: list[list[int]], reference: list[list[int]]) -> float:
    """Share of the reference answers' tokens that `answers` reproduce before their first difference (1.0: the same
    greedy output), e.g. a trained model's `measure_tpf` answers against the base model's."""
    same = [next((i for i, (a, b) in enumerate(zip(x, y)) if a != b), min(len(x), len(y)))
            for x, y in zip(answers, reference)]
    return sum(same) / max(sum(len(y) for y in reference), 1)


@torch.no_grad()
def teacher_forced_agreement(model, tokenizer, prompts: list[str], answers: list[list[int]]) -> float:
    """Share of the reference answers' tokens that `model` predicts (argmax) from the reference prefix, e.g. a trained
    model against the base model's `measure_tpf` answers. Unlike `answer_agreement`, one early flip of a near-tie does
    not count the rest of the answer as lost, so it separates small drifts from real damage."""
    from ..loading import chat_prompt

    hits = total = 0
    for prompt, answer in zip(prompts, answers):
        if not answer:
            continue
        prompt_ids = tokenizer(chat_prompt(tokenizer, prompt), return_tensors="pt").input_ids.to(model.device)
        ids = torch.cat([prompt_ids, torch.tensor([answer], device=model.device)], dim=-1)
        predictions = model(input_ids=ids).logits[0, prompt_ids.shape[1] - 1 : -1].argmax(-1)
        hits += int((predictions == ids[0, prompt_ids.shape[1]:]).sum())
        total += len(answer)
    return hits / max(total, 1)


@torch.no_grad()
def accuracy_by_offset(model, examples, pad_token_id: int, eos_token_id=None, batch_size: int = 4,
                       run_lengths: dict | None = None, first_ranks: dict | None = None) -> list[dict]:
    """How often the model's argmax at a noisy position is the clean next token, by the position's distance `k` from
    its state's first wrong token (k = 0: one wrong token just before the predicted one), on state-layout examples
    (`pack_states`). The next forward accepts a carried prediction only if those before it were right, so the first
    offsets bound TPF: a model that is right with probability `a_k` at offset `k` accepts about
    `1 + a_0 + a_0 a_1 + ...` tokens per forward. Returns per offset `k`: positions counted, accuracy, mean
    cross-entropy (nats), and `run_accuracy`: the share of the counted states right at every offset `0..k` (the joint
    probability behind that product: `1 + sum_k run_accuracy_k` is what the predictions allow without assuming the
    offsets independent). With a dict `run_lengths`, also fills it with `(example index, start) -> ` the number of
    leading offsets right in that state (what a forward drafting from it would accept beyond its first token), and with
    a dict `first_ranks` the same keys -> the rank of the clean token among the first guess's logits (0: the argmax;
    1: the second choice, which a tree branch holding it would get accepted)."""
    from .collator import JacobiForcingCollator

    collator = JacobiForcingCollator(pad_token_id=pad_token_id, eos_token_id=eos_token_id)
    hits, losses, counts, runs = {}, {}, {}, {}
    for first in range(0, len(examples), batch_size):
        chunk = [examples[i] for i in range(first, min(first + batch_size, len(examples)))]
        batch = collator(chunk)
        logits = model(input_ids=batch["input_ids"].to(model.device), position_ids=batch["position_ids"].to(model.device),
                       attention_mask=batch["attention_mask"].to(model.device)).logits.float().cpu()
        rows = torch.arange(len(chunk))[:, None]
        noisy_logits = logits[rows, batch["noisy_index"]]  # [B, L, V]
        labels = batch["shift_labels"][rows, batch["clean_index"]]  # [B, L]
        for row, example in enumerate(chunk):
            n = len(example["noisy_blocks"][0])
            clean = list(example["clean_ids"])
            for b, (start, state) in enumerate(zip(example["noisy_starts"], example["noisy_blocks"])):
                wrong = [i for i in range(n) if state[i] != clean[start + i]]
                running = True  # every counted offset so far was right
                for i in range(wrong[0] if wrong else n, n):
                    index = b * n + i
                    if not batch["consistency_mask"][row, index] or labels[row, index] < 0:
                        running = False
                        continue
                    k = i - wrong[0]
                    target = labels[row, index]
                    row_logits = noisy_logits[row, index]
                    right = int(row_logits.argmax() == target)
                    if first_ranks is not None and k == 0:
                        first_ranks[(first + row, start)] = int((row_logits > row_logits[target]).sum())
                    running = running and bool(right)
                    hits[k] = hits.get(k, 0) + right
                    runs[k] = runs.get(k, 0) + int(running)
                    losses[k] = losses.get(k, 0.0) + float(torch.nn.functional.cross_entropy(row_logits, target))
                    counts[k] = counts.get(k, 0) + 1
                    if run_lengths is not None and running:
                        run_lengths[(first + row, start)] = k + 1
                if run_lengths is not None:
                    run_lengths.setdefault((first + row, start), 0)
    return [{"offset": k, "positions": counts[k], "accuracy": hits[k] / counts[k],
             "cross_entropy": losses[k] / counts[k], "run_accuracy": runs[k] / counts[k]} for k in sorted(counts)]


def forward_commits(run: int, max_guesses: int | None = None, rank: int = 0, alternatives: int = 0) -> int:
    """What a forward drafting from a state commits: `1 + min(run, max_guesses)`; with `alternatives` tree branches
    holding the first guess's next choices (each with a tail of its own), 2 where the first guess is wrong but its
    choice of rank `1..alternatives` is right."""
    if run == 0 and 0 < rank <= alternatives:
        return 2
    return 1 + (run if max_guesses is None else min(run, max_guesses))


def decoder_visits(run_lengths: dict, max_guesses: int | None = None, first_ranks: dict | None = None,
                   alternatives: int = 0) -> dict[int, list[int]]:
    """Per example, the starts a decoder drafts from when every forward drafts from the fresh state where the last one
    ended (fresh tails, fresh rows): along each answer, a forward at start `p` commits `forward_commits(...)` tokens
    and the next starts there. `run_lengths` maps `(example index, start)` to the state's run of right guesses
    (`accuracy_by_offset(run_lengths=...)`); a start it lacks counts as a run of 0. `first_ranks` (same keys, from
    `accuracy_by_offset`) and `alternatives` replay a tree with branches for the first guess's next choices."""
    starts = {}
    for index, start in run_lengths:
        starts.setdefault(index, []).append(start)
    visits = {}
    for index in sorted(starts):
        position, last, path = min(starts[index]), max(starts[index]), []
        while position <= last:
            path.append(position)
            rank = (first_ranks or {}).get((index, position), 0)
            position += forward_commits(run_lengths.get((index, position), 0), max_guesses, rank, alternatives)
        visits[index] = path
    return visits


def select_visited_states(model, examples, pad_token_id: int, eos_token_id, max_guesses: int,
                          max_states: int | None = None, seed: int = 0):
    """Keep of each state-layout example (`pack_states`) only the states `model`'s decoder visits (`decoder_visits`),
    at most `max_states`, drawn evenly. Training spreads over every position alike, but a forward starts where the last
    one failed, and there the first guess is wrong more often than on average: these are the states TPF depends on."""
    from .packing import draw_states

    run_lengths = {}
    with torch.no_grad():
        accuracy_by_offset(model, examples, pad_token_id, eos_token_id, run_lengths=run_lengths)
    visits = decoder_visits(run_lengths, max_guesses)

    def keep(example, index):
        chosen = set(visits.get(index, ()))
        states = [(s, b) for s, b in zip(example["noisy_starts"], example["noisy_blocks"]) if s in chosen]
        states = draw_states(states, max_states, seed, index)
        return {"noisy_starts": [s for s, _ in states], "noisy_blocks": [b for _, b in states]}

    kept = examples.map(keep, with_indices=True)
    logger.info("visited states: %d of %d", sum(map(len, kept["noisy_starts"])), sum(map(len, examples["noisy_starts"])))
    return kept.filter(lambda starts: len(starts) > 0, input_columns="noisy_starts")


def _eval_prompts(count: int) -> list[str]:
    """Unseen prompts for TPF: HumanEval's first problems (an evaluation set, never trained on)."""
    from ..data import humaneval_instruction, load_humaneval

    return [humaneval_instruction(p) for p in load_humaneval(count)]


def _load_base(model_args, device):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..loading import load_model

    if model_args.model_name_or_path is None:
        model, tokenizer = load_model(device=device)
    else:
        if not Path(model_args.model_name_or_path).exists() and "/" not in model_args.model_name_or_path:
            raise ValueError(f"--model_name_or_path {model_args.model_name_or_path!r}: no such folder or Hub id.")
        tokenizer = AutoTokenizer.from_pretrained(model_args.model_name_or_path)
        model = AutoModelForCausalLM.from_pretrained(model_args.model_name_or_path, dtype=torch.float32).to(device)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def _lora_scaling(config: dict) -> float:
    """PEFT's LoRA scaling of an adapter config: `alpha / r`, or `alpha / sqrt(r)` with rsLoRA."""
    r = config["r"]
    return config["lora_alpha"] / (r ** 0.5 if config.get("use_rslora") else r)


def _grow_rank(model, weights: dict, saved_config: dict) -> dict:
    """A smaller-rank adapter's weights in the model's larger LoRA shapes, computing the same function: its A rows
    fill the first ranks (the rest keep the model's fresh init), its B columns the first ranks rescaled by the ratio
    of the two scalings (the rest stay zero, so the new ranks add nothing until trained)."""
    from peft import get_peft_model_state_dict

    current = get_peft_model_state_dict(model)
    ratio = _lora_scaling(saved_config) / _lora_scaling(model.peft_config["default"].to_dict())
    grown = {}
    for key, value in weights.items():
        target = current.get(key)
        if target is None or target.shape == value.shape:
            grown[key] = value
        elif "lora_A" in key and target.shape[1] == value.shape[1] and target.shape[0] > value.shape[0]:
            grown[key] = target.detach().clone().to(value.dtype)
            grown[key][:value.shape[0]] = value
        elif "lora_B" in key and target.shape[0] == value.shape[0] and target.shape[1] > value.shape[1]:
            grown[key] = torch.zeros(target.shape, dtype=value.dtype, device=value.device)
            grown[key][:, :value.shape[1]] = value * ratio
        else:
            grown[key] = value  # a mismatch set_peft_model_state_dict reports
    return grown


def _load_adapter_weights(model, folder: Path, what: str, grow: bool = False) -> None:
    """Put a saved adapter's weights into the gated model's adapter (every weight replaced): a finished round's on
    resume (the same LoRA shapes), or `--init_adapter`'s at the start, whose rank may be smaller (`grow`,
    `_grow_rank`). `what` names the source in errors."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    weights = load_file(folder / "adapter_model.safetensors", device=str(model.device))
    if grow:
        weights = _grow_rank(model, weights, json.loads((folder / "adapter_config.json").read_text()))
    advice = ("does not fit the adapter of this run (pass its --lora_r and --lora_target_modules, see its "
              "adapter_config.json)")
    try:
        result = set_peft_model_state_dict(model, weights)
    except RuntimeError as error:  # a size mismatch: another rank
        raise ValueError(f"{what} {advice}: {error}") from None
    missing = [k for k in result.missing_keys if "lora_" in k]
    if missing or result.unexpected_keys:
        raise ValueError(f"{what} {advice}: {len(missing)} LoRA weights missing (e.g. {missing[:1]}), "
                         f"{len(result.unexpected_keys)} unexpected (e.g. {list(result.unexpected_keys)[:1]}).")


def _decode_as_trained(generation_config, script_args: JacobiTrainScriptArguments) -> None:
    """With a trained filler, the model decodes with it (and its carry and fresh rows) by default."""
    if script_args.draft_init == "prompt":
        return
    generation_config.draft_init = script_args.draft_init
    generation_config.draft_carry = script_args.draft_carry
    if script_args.fresh_rows:
        generation_config.fresh_rows = script_args.fresh_rows
    if script_args.fresh_tails:
        generation_config.fresh_tails = script_args.fresh_tails
    generation_config._from_model_config = False  # else loading drops the attributes


def _more_rounds(previous: dict, settings: dict) -> int | None:
    """The previous number of rounds when `settings` only asks for more of them, else None. Each round's prompts are
    `prompts[r * per_round:(r + 1) * per_round]`, so adding rounds keeps the finished ones only with a fixed
    --prompts_per_round."""
    old, new = previous.get("script", {}), settings["script"]
    fixed = new["prompts_per_round"] or new.get("overfit")
    if not isinstance(old.get("rounds"), int) or old["rounds"] >= new["rounds"] or not fixed:
        return None
    same = {**previous, "script": {**old, "rounds": new["rounds"]}} == settings
    return old["rounds"] if same else None


def check_model_arguments(script_args: JacobiTrainScriptArguments, model_args) -> None:
    """The checks that need the model arguments too (the dataclasses check their own fields)."""
    if script_args.filler_gated_adapter and not model_args.use_peft:
        raise ValueError("--filler_gated_adapter trains a LoRA adapter: pass --use_peft true (and --lora_r, "
                         "--lora_target_modules ...).")
    if script_args.init_adapter and script_args.filler_gated_adapter:  # trained on in place: the same shapes
        saved = json.loads((Path(script_args.init_adapter) / "adapter_config.json").read_text())
        targets = model_args.lora_target_modules
        targets = [targets] if isinstance(targets, str) else targets
        if not isinstance(saved.get("r"), int) or saved["r"] > model_args.lora_r or set(saved.get("target_modules") or ()) != set(targets or ()):
            raise ValueError(f"--init_adapter {script_args.init_adapter} does not fit the adapter of this run: it has "
                             f"r={saved.get('r')} on {sorted(saved.get('target_modules') or ())}, this run "
                             f"--lora_r {model_args.lora_r} on {sorted(targets or ())}. Pass its "
                             "--lora_target_modules and its --lora_r or a larger one (to grow it).")


def run_pipeline(script_args: JacobiTrainScriptArguments, training_args, model_args) -> dict:
    """Run (or resume) every round; returns the TPF measured after each round."""
    from peft import get_peft_model
    from transformers import set_seed
    from trl import get_peft_config

    from ..collection import CollectConfig, collect_trajectories, load_prompts
    from ..data import coding_prompts
    from ..filler_gate import gate_adapter_on_filler, is_filler_gated
    from .packing import pack_states
    from .trainer import JacobiForcingTrainer, copy_model

    check_model_arguments(script_args, model_args)  # before anything is written
    output_dir = Path(training_args.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    settings = {"script": asdict(script_args), "model": model_args.model_name_or_path,
                "use_peft": model_args.use_peft, "learning_rate": training_args.learning_rate,
                "ar_loss_weight": training_args.ar_loss_weight,
                "consistency_normalization": training_args.consistency_normalization,
                "consistency_target": training_args.consistency_target}
    if training_args.consistency_horizon is not None:  # only when set, so runs from before the option still resume
        settings["consistency_horizon"] = training_args.consistency_horizon
    if training_args.ar_target != "hard":
        settings["ar_target"] = training_args.ar_target
    settings["script"].pop("max_minutes")  # a longer or shorter time box may resume
    settings["script"].pop("export_rank")  # how the result is stored: a finished run can be exported (again)
    # runs from before these options resume
    for name, default in (("draft_init", "prompt"), ("draft_carry", "all"), ("fresh_rows", 0), ("fresh_tails", 0),
                          ("init_adapter", None), ("overfit", False),
                          ("filler_gated_adapter", False), ("state_selection", "even"), ("visit_guesses", 3)):
        if settings["script"][name] == default:
            settings["script"].pop(name)
    config_path = output_dir / "pipeline_config.json"
    if config_path.exists():
        previous, current = json.loads(config_path.read_text()), json.loads(json.dumps(settings))
        previous.get("script", {}).pop("export_rank", None)  # runs from before it left the settings
        grown = _more_rounds(previous, current)
        if previous != current and grown is None:
            raise ValueError(f"{output_dir} holds a run with other settings ({previous}); pass the same settings to "
                             f"resume it (or the same with a larger --rounds and a fixed --prompts_per_round, to add "
                             f"rounds) or use a new --output_dir (now: {settings}).")
        if grown:  # the finished rounds stay; the export of the old last round is kept beside the new one
            if (output_dir / "adapter").exists():
                kept = output_dir / f"adapter_round{grown - 1}"
                if kept.exists():
                    raise ValueError(f"Adding rounds would move {output_dir / 'adapter'} to {kept}, which exists: "
                                     "move one of them away first.")
                (output_dir / "adapter").rename(kept)
            config_path.write_text(json.dumps(settings, indent=1))
            logger.info("adding rounds %d-%d to the run in %s", grown, script_args.rounds - 1, output_dir)
        else:
            logger.info("resuming the run in %s", output_dir)
    else:
        config_path.write_text(json.dumps(settings, indent=1))

    device = training_args.device
    model, tokenizer = _load_base(model_args, device)
    if script_args.init_adapter and not script_args.filler_gated_adapter:  # the model the run starts from
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, script_args.init_adapter).merge_and_unload()
    _decode_as_trained(model.generation_config, script_args)  # every copy, and every saved round
    gated = script_args.filler_gated_adapter
    fast_dtype = resolve_dtype(script_args.collect_dtype, device)
    prompts = load_prompts(script_args.prompts) if script_args.prompts else coding_prompts(script_args.coding_prompts)
    if not prompts:
        raise ValueError("No training prompts.")
    per_round = script_args.prompts_per_round or len(prompts) // script_args.rounds
    if script_args.overfit:  # every round on all the prompts
        per_round = len(prompts)
    elif per_round * script_args.rounds > len(prompts) or per_round < 1:
        raise ValueError(f"{script_args.rounds} rounds of {per_round} distinct prompts need more than the "
                         f"{len(prompts)} given.")
    limit = getattr(model.config.get_text_config(), "max_position_embeddings", None)
    if limit is not None:  # refuse before any compute, naming the prompt, rather than fail mid-run
        from ..loading import chat_prompt

        for i, prompt in enumerate(prompts[: per_round * script_args.rounds]):  # --overfit: all of them
            length = len(tokenizer(chat_prompt(tokenizer, prompt)).input_ids) + script_args.max_new_tokens
            if length > limit:
                raise ValueError(f"Prompt {i} needs {length} positions with --max_new_tokens "
                                 f"{script_args.max_new_tokens}; the model has {limit}. Shorten or drop it.")
    # TPF on unseen prompts; the overfit diagnostic measures it on the trained prompts themselves
    held_out = prompts if script_args.overfit else _eval_prompts(script_args.eval_prompts)
    # Base answers for every round: a frozen copy of the base model (before any training changes `model`)
    anchored = script_args.answers == "base" and script_args.rounds > 1
    teacher = copy_model(model).to(fast_dtype).eval() if anchored else None
    # The soft AR target's reference is the base model in every round, not the model a round starts from
    soft_ar = training_args.ar_target == "soft"
    reference = copy_model(model).eval().requires_grad_(False) if soft_ar else None
    results = []
    for r in range(script_args.rounds):
        n = script_args.block_size(r)
        round_dir = output_dir / f"round_{r}"
        round_started = time.perf_counter()
        fast = copy_model(model).to(fast_dtype).eval()
        if r == 0 and not (round_dir / "tpf_base.json").exists() and held_out:
            round_dir.mkdir(parents=True, exist_ok=True)
            base = measure_tpf(fast, tokenizer, held_out, script_args.eval_block_size, script_args.eval_max_new_tokens)
            (round_dir / "tpf_base.json").write_text(json.dumps(base, indent=1))
        # 1. collect the current model's states on this round's prompts
        collect_config = CollectConfig(
            block_size=n, draft_init=script_args.draft_init, draft_carry=script_args.draft_carry,
            max_new_tokens=script_args.max_new_tokens, batch_size=script_args.collect_batch_size,
            states={"decoding": "decoding", "trajectory": "trajectory", "fresh": "answers"}[script_args.states],
            max_states=script_args.max_states if script_args.states == "decoding" else None,
            model_name=f"round {r} of {settings['model'] or 'SmolLM2-135M-Instruct'}",
        )
        first = 0 if script_args.overfit else r * per_round
        records = collect_trajectories(fast, tokenizer, prompts[first:first + per_round],
                                       round_dir / "data", collect_config,
                                       teacher=teacher if r > 0 else None)
        del fast
        if gated and not is_filler_gated(model):
            # One adapter, trained on through the rounds and never merged (merging would ungate it). Added after
            # round 0's collection, which the base model makes as in any run (the gated model's greedy output is the
            # base model's), so that collection can be shared
            set_seed(training_args.seed)  # the adapter's initial weights
            model = gate_adapter_on_filler(get_peft_model(model, get_peft_config(model_args)), script_args.draft_init)
            if script_args.init_adapter:
                init = script_args.init_adapter
                _load_adapter_weights(model, Path(init), f"--init_adapter {init}", grow=True)
        # 2. train on them (one pass over distinct prompts; resumes from the last checkpoint)
        final = round_dir / "train" / "model"
        trainer = None
        if not final.exists():
            # With a consistency horizon, states are cut to it: the same loss from ~H/n of the noisy tokens
            horizon = training_args.consistency_horizon
            filler_token_id = script_args.draft_init if isinstance(script_args.draft_init, int) else None
            state_length = horizon or n
            visited = script_args.state_selection == "visited"
            train_dataset = pack_states(records, n, eos_token_id=tokenizer.eos_token_id,
                                        max_states=None if visited else script_args.max_states,
                                        trim_loops=training_args.trim_loops, horizon=horizon,
                                        filler_token_id=filler_token_id)
            if visited:
                fast = copy_model(model).to(fast_dtype).eval()
                train_dataset = select_visited_states(fast, train_dataset, tokenizer.pad_token_id,
                                                      tokenizer.eos_token_id, script_args.visit_guesses,
                                                      script_args.max_states, seed=training_args.seed)
                del fast
            if not model_args.use_peft and not script_args.train_embeddings:
                # Only the weight matrices of the transformer layers train: embeddings, norms and biases stay
                for param in model.parameters():
                    param.requires_grad_(param.dim() == 2)
                model.get_input_embeddings().weight.requires_grad_(False)
                model.get_output_embeddings().weight.requires_grad_(False)
            args = copy.deepcopy(training_args)
            args.output_dir, args.block_size, args.mask_context = str(round_dir / "train"), state_length, "clean"
            timebox = TimeBox(script_args.max_minutes) if script_args.max_minutes else None
            trainer = JacobiForcingTrainer(
                model=model, args=args, train_dataset=train_dataset, processing_class=tokenizer,
                peft_config=None if gated else get_peft_config(model_args), callbacks=[timebox] if timebox else None,
                ref_model=reference,
            )
            if timebox is not None:
                trainer.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(trainer.create_optimizer(), timebox.scale)
            resume = last_complete_checkpoint(round_dir / "train")
            started = time.perf_counter()
            trainer.train(resume_from_checkpoint=resume or None)
            lengths = [len(p) + len(c) + len(b) * state_length for p, c, b in
                       zip(train_dataset["prompt_ids"], train_dataset["clean_ids"], train_dataset["noisy_starts"])]
            # the trainer's epoch count (fractional), so repeats count, with more epochs or with --max_steps
            seen = round(trainer.state.epoch * len(lengths))
            log = {"seconds": time.perf_counter() - started, "global_step": trainer.state.global_step,
                   "examples": len(train_dataset), "examples_seen": seen,
                   "tokens_seen": int(sum(lengths) * seen / len(lengths)), "log_history": trainer.state.log_history}
            with open(round_dir / "train" / "train_log.json", "a") as handle:
                handle.write(json.dumps(log) + "\n")
            model = trainer.model
            if model_args.use_peft and not gated:
                model = model.merge_and_unload()
            model.save_pretrained(final)
            if gated:  # the adapter folder decodes with the filler and the gate (load_model(adapter=...))
                model.get_base_model().generation_config.save_pretrained(final)
            tokenizer.save_pretrained(final)
            trainer.create_model_card(output_dir=str(final))
        elif gated:
            _load_adapter_weights(model, final, f"The saved adapter {final}")
        else:
            from transformers import AutoModelForCausalLM

            model = AutoModelForCausalLM.from_pretrained(final, dtype=torch.float32).to(device)
        # 3. measure TPF on held-out prompts
        tpf_path = round_dir / "tpf.json"
        if not tpf_path.exists() and held_out:
            fast = copy_model(model).to(fast_dtype).eval()
            measured = measure_tpf(fast, tokenizer, held_out, script_args.eval_block_size,
                                   script_args.eval_max_new_tokens)
            if n != script_args.eval_block_size:  # also at the round's own block size
                measured["at_round_block_size"] = measure_tpf(fast, tokenizer, held_out, n,
                                                              script_args.eval_max_new_tokens)
            base_path = output_dir / "round_0" / "tpf_base.json"
            if base_path.exists() and "answers" in (base := json.loads(base_path.read_text())):
                measured["base_token_agreement"] = teacher_forced_agreement(fast, tokenizer, held_out, base["answers"])
            measured |= {"round": r, "round_block_size": n, "seconds": time.perf_counter() - round_started}
            tpf_path.write_text(json.dumps(measured, indent=1))
            del fast
            if trainer is not None and not script_args.overfit:  # the card states what was measured (held out)
                trainer.args.measured_tpf = measured["tpf"]
                trainer.create_model_card(output_dir=str(final))
        del trainer
        results.append(json.loads(tpf_path.read_text()) if tpf_path.exists() else {})
        logger.info("round %d: TPF %s", r, results[-1].get("tpf"))
    last = output_dir / f"round_{script_args.rounds - 1}" / "train" / "model"
    shutil.copytree(last, output_dir / "model", dirs_exist_ok=True)
    summary = {"rounds": results}
    exported = output_dir / "adapter" / "tpf.json"
    if script_args.export_rank and (not exported.exists()
                                    or json.loads(exported.read_text()).get("rank") != script_args.export_rank):
        from peft import PeftModel

        from .export import export_lora_delta

        exported.unlink(missing_ok=True)  # the marker goes first: an export cut short is redone, never trusted
        base, _ = _load_base(model_args, device)
        errors = export_lora_delta(base, model, output_dir / "adapter", rank=script_args.export_rank,
                                   generation_config=model.generation_config)
        adapted = PeftModel.from_pretrained(base, output_dir / "adapter").merge_and_unload().to(fast_dtype).eval()
        adapted.generation_config = model.generation_config
        measured = measure_tpf(adapted, tokenizer, held_out, script_args.eval_block_size,
                               script_args.eval_max_new_tokens) if held_out else {}
        exported.write_text(json.dumps(measured | {"rank": script_args.export_rank, "svd_error": errors}, indent=1))
    if exported.exists():
        summary["adapter"] = json.loads(exported.read_text())
    (output_dir / "tpf.json").write_text(json.dumps(summary, indent=1))
    if training_args.push_to_hub:
        model.push_to_hub(training_args.hub_model_id or output_dir.name)
        tokenizer.push_to_hub(training_args.hub_model_id or output_dir.name)
    return summary
