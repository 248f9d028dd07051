"""Collect the model's own Jacobi trajectories for Jacobi Forcing training (arXiv 2512.14681: training on the model's own Jacobi trajectories), resumably.

Two phases per batch of prompts:

1. The fixed points: greedy continuation by Jacobi decoding (`hf_jacobi.generation`) (the decoding loop itself; its output
   is the greedy one), cut into blocks `c_0 .. c_{T-1}` of `block_size` tokens.
2. The trajectories: the Jacobi iteration of every block, all blocks of all rows at once. The prompt and the clean
   blocks are prefilled into a cache once; each iteration feeds every block's draft (after the last token of its
   context) in one forward whose 4D mask lets block `j` see only the prompt, `c_{<j}` and itself, crops the drafts
   from the cache again, and takes the predictions as the next drafts, until every block reached its fixed point.
   The reference decodes one block at a time; here one forward serves all `T` blocks.

Records are appended to `trajectories.jsonl` one batch (chunk) at a time; a resumed run keeps complete chunks and
redoes the rest with the same chunk composition and seeds, so it yields the records an uninterrupted run would. A lock
file keeps a second run out of the folder, and a resume checks the settings, the prompts and the model's weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .generation import JacobiDraft
from .generation.candidates import DraftStep
from .generation.configuration_jacobi import check_draft_carry, check_draft_init, max_positions
from .generation.generate import generate as jacobi_generate
from .generation.verification import Verification, accept_length
from .loading import chat_prompt
from .training.masks import draft_attention_mask

RECORDS_FILE = "trajectories.jsonl"
CONFIG_FILE = "collect_config.json"
LOCK_FILE = ".collect.lock"

logger = logging.getLogger(__name__)


@dataclass
class CollectConfig:
    """Settings of a collection run; a resumed run must use the same ones."""

    block_size: int = 16
    max_new_tokens: int = 256
    batch_size: int = 4
    draft_init: str | int = "prompt"  # "prompt", "repeat" or a token id (see JacobiConfig)
    draft_carry: str = "all"  # "all" or "clean" (see JacobiConfig)
    seed: int = 0
    generate_block_size: int | None = None  # block size of phase 1 (default: block_size)
    model_name: str = ""
    # "trajectory": every block's Jacobi iterates (the paper's trajectories). "decoding": the drafts the sliding-block decoder
    # itself feeds (on-policy states, written in the state layout); at most `max_states` per prompt, drawn evenly.
    # "answers": only the greedy answers, in the state layout with no states (a fixed filler's fresh-block states are
    # added by `pack_states(filler_token_id=...)`): plain batched `generate`, no Jacobi decoding.
    states: str = "trajectory"
    max_states: int | None = None

    def __post_init__(self):
        for name in ("block_size", "max_new_tokens", "batch_size", "generate_block_size", "max_states"):
            value = getattr(self, name)
            optional = name in ("generate_block_size", "max_states")
            if optional and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"CollectConfig.{name} must be a positive integer{' or None' if optional else ''}, got {value!r}."
                )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"CollectConfig.seed must be an integer, got {self.seed!r}.")  # noqa: TRY004
        self.draft_init = check_draft_init(self.draft_init, "CollectConfig.draft_init")
        check_draft_carry(self.draft_carry, self.draft_init, "CollectConfig.draft_carry")
        if self.states not in ("trajectory", "decoding", "answers"):
            raise ValueError(
                f"CollectConfig.states must be 'trajectory', 'decoding' or 'answers', got {self.states!r}."
            )


def load_prompts(source) -> list[str]:
    """Prompts from a `datasets.Dataset`, a dataset folder (`save_to_disk`), a `.jsonl` file or a list of strings.

    Rows need a `prompt` (text) or `messages` (chat, the last user turn is used) field.
    """
    import datasets

    if isinstance(source, (list, tuple)) and all(isinstance(p, str) for p in source):
        return list(source)
    if isinstance(source, (str, Path)):
        path = Path(source)
        if path.is_dir():
            source = datasets.load_from_disk(str(path))
        elif path.suffix in (".jsonl", ".json"):
            source = datasets.load_dataset("json", data_files=str(path), split="train")
        else:
            raise ValueError(f"{path}: expected a dataset folder (save_to_disk) or a .jsonl file with a 'prompt' field.")
    if isinstance(source, datasets.DatasetDict):
        source = source["train"]
    prompts = []
    for i, row in enumerate(source):
        if row.get("prompt"):
            prompts.append(row["prompt"])
        elif row.get("messages"):
            prompts.append([m for m in row["messages"] if m["role"] == "user"][-1]["content"])
        else:
            raise ValueError(f"prompt record {i} has neither a non-empty 'prompt' nor 'messages' field.")
    return prompts


@torch.no_grad()
def jacobi_trajectories(model, sequences, attention_mask, prompt_width, block_size, num_blocks, draft, eos_token_id):
    """Phase 2 for one batch: every block's Jacobi iterates, from the initial draft to the fixed point.

    Each iteration feeds only the offsets from the shortest exact prefix among unconverged blocks on: the exact part
    of every draft equals the clean tokens already in the cache, so it need not be recomputed (about half the work
    for a base model, whose prefixes grow by about one token per iteration).

    Args:
        sequences (`torch.LongTensor` of shape `(batch, prompt_width + num_blocks * block_size)`): left-padded prompts
            followed by their greedy continuation (`generate` output, padded after EOS).
        attention_mask (`torch.LongTensor`, same shape): 1 on real tokens.
        draft (`JacobiDraft`): source of the initial guesses.

    Returns:
        For each row, a list over blocks of lists of iterates (each a list of `block_size` ids); the last iterate is
        the fixed point. Blocks after the row's EOS are left out.
    """
    from transformers import DynamicCache

    batch = sequences.shape[0]
    n, T = block_size, num_blocks
    device = sequences.device
    clean = sequences[:, prompt_width:].reshape(batch, T, n)
    # Valid targets: up to and including the first EOS; later tokens are padding.
    gen = sequences[:, prompt_width:]
    if eos_token_id is not None:
        is_eos = torch.isin(gen, torch.tensor(eos_token_id, device=device)).long()
    else:
        is_eos = torch.zeros_like(gen)
    valid = ((is_eos.cumsum(-1) - is_eos) == 0).reshape(batch, T, n)
    block_used = valid[:, :, 0]

    positions_all = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    # A plain cache (no sliding-window layers) so every context slot stays addressable by the masks.
    cache = DynamicCache()
    model(input_ids=sequences, attention_mask=attention_mask, position_ids=positions_all, cache=cache, use_cache=True)
    context_tokens = sequences[:, prompt_width - 1 : prompt_width - 1 + T * n : n]  # (batch, T): token before c_j
    positions_fed = positions_all[:, prompt_width - 1 : prompt_width - 1 + T * n : n, None] + torch.arange(n, device=device)
    dtype = model.dtype if model.dtype.is_floating_point else torch.float32

    current = draft.filler(T * n, sequences[:, -1]).reshape(batch, T, n)
    iterates = [current]
    for _ in range(n):
        right = (current == clean) | ~valid
        done = right.all(-1)
        if done.all():
            break
        start = int(right.long().cumprod(-1).sum(-1)[~done].min())  # shortest exact prefix still iterating
        fed = torch.cat([context_tokens[:, :, None], current[:, :, :-1]], dim=-1)[:, :, start:]
        positions = positions_fed[:, :, start:].reshape(batch, -1)
        masks = draft_attention_mask(model, attention_mask, prompt_width, n, T, start, positions_all, positions, dtype)
        out = model(input_ids=fed.reshape(batch, -1), attention_mask=masks, position_ids=positions, cache=cache,
                    use_cache=True)
        cache.crop(-fed[0].numel())
        predictions = torch.cat([clean[:, :, :start], out.logits.argmax(-1).reshape(batch, T, n - start)], dim=-1)
        current = torch.where(done[:, :, None], current, predictions)  # converged blocks stay put
        iterates.append(current)
        del out
    result = []
    for r in range(batch):
        blocks = []
        for j in range(T):
            if not block_used[r, j]:
                break
            steps = []
            for it in iterates:
                tokens = it[r, j].tolist()
                if not steps or steps[-1] != tokens:
                    steps.append(tokens)
            fixed = clean[r, j].tolist()
            # Past EOS the fixed point holds padding; the loss ignores those positions.
            if steps[-1] != fixed:
                steps.append(fixed)
            blocks.append(steps)
        result.append(blocks)
    return result


@torch.no_grad()
def decoding_states(model, tokenizer, batch, config: CollectConfig, seed: int) -> list[dict]:
    """On-policy states: decode the batch with Jacobi decoding and record, per row, every draft the decoder fed.

    The output is the greedy continuation (the clean tokens); each forward's input is a draft of `n` tokens starting
    at the last committed token, exactly the state the model meets when it decodes, so training on them covers what
    decoding visits (sliding blocks, the decoder's own filler and iterates). Returns per row `clean_ids`,
    `noisy_starts` (offset along the continuation) and `noisy_blocks`; drafts equal to the clean tokens (nothing to
    learn) and drafts past the continuation's end are left out.
    """
    n = config.block_size
    fed = []

    def record(module, args, kwargs):
        ids, positions = kwargs.get("input_ids"), kwargs.get("position_ids")
        if ids is not None and positions is not None and ids.shape[1] == n and kwargs.get("cache") is not None:
            fed.append((positions.cpu(), ids.cpu()))

    handle = model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        sequences = jacobi_generate(
            model, **batch, do_sample=False, max_new_tokens=config.max_new_tokens, block_size=n,
            draft_init=config.draft_init, draft_carry=config.draft_carry, draft_seed=seed,
            pad_token_id=tokenizer.pad_token_id,
        )
    finally:
        handle.remove()
    width = batch["input_ids"].shape[1]
    prompt_lengths = batch["attention_mask"].sum(-1).tolist()
    eos = _eos_set(model)
    generator = torch.Generator().manual_seed(seed)
    return [_record_states(_cut_at_eos(sequences[r, width:].tolist(), eos), fed, prompt_lengths[r], r, n,
                           config.max_states, generator) for r in range(sequences.shape[0])]


def _eos_set(model) -> set:
    eos = model.generation_config.eos_token_id
    return set([eos] if isinstance(eos, int) else eos or [])


def _record_states(clean: list[int], fed, prompt_length: int, row: int, n: int, max_states, generator) -> dict:
    """One row's state record: the drafts of `n` tokens fed along `clean` (unique, not equal to the clean tokens)."""
    states = {}
    for positions, ids in fed:
        start = int(positions[row, 0]) - prompt_length
        block = ids[row].tolist()
        if 0 <= start <= len(clean) - n and block != clean[start : start + n]:
            states.setdefault((start, tuple(block)), block)
    keys = list(states)
    if max_states is not None and len(keys) > max_states:
        keep = torch.randperm(len(keys), generator=generator)[:max_states].sort().values.tolist()
        keys = [keys[i] for i in keep]
    return {"clean_ids": clean, "noisy_starts": [k[0] for k in keys], "noisy_blocks": [states[k] for k in keys]}


def _greedy_answers(model, tokenizer, batch, max_new_tokens: int) -> list[list[int]]:
    """`model`'s greedy answers to `batch` (plain `generate`), each cut after its first EOS."""
    sequences = model.generate(**batch, do_sample=False, max_new_tokens=max_new_tokens,
                               pad_token_id=tokenizer.pad_token_id)
    eos = _eos_set(model)
    return [_cut_at_eos(answer, eos) for answer in sequences[:, batch["input_ids"].shape[1]:].tolist()]


def _cut_at_eos(tokens: list[int], eos: set) -> list[int]:
    return tokens[: next((i + 1 for i, t in enumerate(tokens) if t in eos), len(tokens))]


@torch.no_grad()
def forced_decoding_states(model, batch, answers: list[list[int]], config: CollectConfig, seed: int) -> list[dict]:
    """The drafts `model`'s Jacobi decoder would feed if its greedy continuation were `answers` (e.g. a frozen teacher's).

    The decoding loop of `jacobi_decode`, with the greedy continuation replaced by the given one: the same draft
    source (`JacobiDraft`: carried predictions, then filler), the same acceptance rule against the answer
    (`accept_length`), the same shared commit length across rows. The carried predictions are `model`'s own argmax,
    so the states are on-policy for `model` while the clean targets stay fixed. Given `model`'s own greedy answers it
    feeds exactly what `decoding_states` records. Returns per row `clean_ids` (the answer), `noisy_starts`,
    `noisy_blocks`.
    """
    from transformers import DynamicCache

    n = config.block_size
    input_ids, prompt_mask = batch["input_ids"], batch["attention_mask"]
    batch_size, device = input_ids.shape[0], input_ids.device
    longest = max(len(a) for a in answers)
    # -1 never equals a token: positions past an answer's end accept nothing
    target = torch.full((batch_size, longest + n), -1, dtype=torch.long, device=device)
    for r, answer in enumerate(answers):
        target[r, : len(answer)] = torch.tensor(answer, dtype=torch.long)
    lengths = torch.tensor([len(a) for a in answers], device=device)
    draft = JacobiDraft(input_ids, prompt_mask, n, config.draft_init, seed, config.draft_carry)
    cache = DynamicCache()
    model(input_ids=input_ids, attention_mask=prompt_mask, position_ids=(prompt_mask.long().cumsum(-1) - 1).clamp(min=0),
          cache=cache, use_cache=True)
    committed, fed = 1, []  # the prefill's token is the answer's first
    mask = torch.cat([prompt_mask, prompt_mask.new_ones((batch_size, 1))], dim=-1)
    while committed < longest and committed < config.max_new_tokens:
        length = min(n, config.max_new_tokens - committed)
        context = torch.cat([input_ids, target[:, :committed].clamp(min=0)], dim=-1)  # finished rows: token 0
        unfinished = lengths > committed
        step = DraftStep(context, unfinished, length, length, context[:, -1:, None])
        block = draft.get_candidates(step)[:, 0]
        positions = mask.sum(-1, keepdim=True) - 1 + torch.arange(length, device=device)
        if length == n:  # shorter last blocks are not states of an n-token decoder
            fed.append((positions.cpu(), block.cpu()))
        full_mask = torch.cat([mask, mask.new_ones((batch_size, length - 1))], dim=-1)
        logits = model(input_ids=block, attention_mask=full_mask, position_ids=positions, cache=cache,
                       use_cache=True).logits
        predictions = logits.argmax(-1)
        accepted = accept_length(block, target[:, committed : committed + length])
        num_accepted = int(accepted[unfinished].min())
        cache.crop(-(length - num_accepted))
        mask = torch.cat([mask, mask.new_ones((batch_size, num_accepted))], dim=-1)
        committed += num_accepted
        draft.update_candidate_strategy(step, Verification(block[:, None], predictions[:, None], accepted[:, None],
                                                           accepted.new_zeros(batch_size), num_accepted))
    prompt_lengths = prompt_mask.sum(-1).tolist()
    generator = torch.Generator().manual_seed(seed)
    return [_record_states(list(answer), fed, prompt_lengths[r], r, n, config.max_states, generator)
            for r, answer in enumerate(answers)]


@torch.no_grad()
def _chunk_trajectories(model, tokenizer, batch, config: CollectConfig, first_index: int, eos) -> list:
    """Both phases for one batch: the greedy continuation, padded to whole blocks, then every block's iterates."""
    n = config.block_size
    sequences = jacobi_generate(
        model, **batch, do_sample=False, max_new_tokens=-(-config.max_new_tokens // n) * n,
        block_size=config.generate_block_size or n, pad_token_id=tokenizer.pad_token_id,
    )
    # Whole blocks: pad the continuation (rows past their EOS are padding already) to a multiple of n.
    width = batch["input_ids"].shape[1]
    blocks_here = -(-(sequences.shape[1] - width) // n)
    sequences = torch.nn.functional.pad(sequences, (0, width + blocks_here * n - sequences.shape[1]),
                                        value=tokenizer.pad_token_id)
    attention_mask = torch.cat([batch["attention_mask"], torch.ones_like(sequences[:, width:])], dim=-1)
    draft = JacobiDraft(batch["input_ids"], batch["attention_mask"], n, config.draft_init, config.seed + first_index)
    return jacobi_trajectories(model, sequences, attention_mask, width, n, blocks_here, draft, eos)


def _write_atomic(path: Path, data: str | bytes) -> None:
    """Replace `path` by `data` at once: a temporary file in the same folder, fsynced, then `os.replace`.

    A kill at any moment leaves either the old or the new content, never a torn or empty file.
    """
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data.encode() if isinstance(data, str) else data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    """Make a rename in `folder` durable (where the platform allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _read_config(path: Path) -> dict:
    """The stored settings; a torn or foreign file raises an error naming it and what to do."""
    try:
        stored = json.loads(path.read_text())
        problem = None if isinstance(stored, dict) else f"holds a {type(stored).__name__}, not the settings"
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        problem = str(error)
    if problem is not None:
        raise ValueError(
            f"{path} is not a valid settings file ({problem}); a run was probably killed while writing it. Delete it "
            f"to resume with the current settings (the records in {RECORDS_FILE} are kept and checked against the "
            "prompts again), or use a new output_dir."
        )
    return stored


def _prompts_hash(prompts: list) -> str:
    return hashlib.sha256(json.dumps(prompts, ensure_ascii=False, default=str).encode()).hexdigest()


def model_fingerprint(model, samples: int = 32) -> str:
    """A short hash of the model's weights: every parameter's name, shape and dtype, the parameter count, and
    `samples` values taken evenly from every parameter.

    Cheap (a few values per tensor) yet it tells apart models that share a name: an adapter merged in or applied on
    top, another checkpoint, another dtype. Parameters whose values cannot be read (meta device) count by shape only.
    """
    digest, total = hashlib.sha256(), 0
    for name, param in model.named_parameters():
        total += param.numel()
        digest.update(f"{name}:{tuple(param.shape)}:{param.dtype};".encode())
        try:
            flat = param.detach().reshape(-1)
            count = min(samples, flat.numel())
            if count:
                index = torch.arange(count, device=flat.device) * (flat.numel() - 1) // max(count - 1, 1)
                digest.update(flat[index].float().cpu().numpy().tobytes())
        except Exception as error:  # noqa: BLE001  (sharded, offloaded or exotic storage: its shape still counts)
            logger.debug("model_fingerprint: values of %s not read (%s)", name, error)
    digest.update(str(total).encode())
    return digest.hexdigest()[:20]


def _check_prompt_lengths(model, tokenizer, texts: list[str], config: CollectConfig) -> None:
    """Refuse, before anything is written, prompts that cannot fit the model's positions with the new tokens.

    A too-long prompt would otherwise stop the run at its chunk, at every resume. All of them are named at once.
    """
    limit = max_positions(model.config)
    if limit is None or not texts:
        return
    n = config.block_size
    # Trajectories continue to whole blocks (see `_chunk_trajectories`); decoding states to max_new_tokens.
    new = -(-config.max_new_tokens // n) * n if config.states == "trajectory" else config.max_new_tokens
    rounded = f" (rounded up to whole blocks of {n}: {new})" if new != config.max_new_tokens else ""
    if new >= limit:
        raise ValueError(
            f"max_new_tokens={config.max_new_tokens}{rounded} leaves no room for a prompt in the model's {limit} "
            "positions; lower max_new_tokens. Nothing was collected or written."
        )
    lengths = [len(ids) for ids in tokenizer(texts)["input_ids"]]
    long = [(i, length) for i, length in enumerate(lengths) if length + new > limit]
    if long:
        shown = ", ".join(f"{i} ({length})" for i, length in long[:20])
        more = f", and {len(long) - 20} more" if len(long) > 20 else ""
        raise ValueError(
            f"{len(long)} prompt(s) are too long: with max_new_tokens={config.max_new_tokens}{rounded} a prompt may "
            f"have at most {limit - new} tokens (after the chat template) to fit the model's {limit} positions. "
            f"Too long, prompt index (tokens): {shown}{more}. Drop or shorten them, or lower max_new_tokens; nothing "
            "was collected or written."
        )


_IDENTITY = {"prompts_sha256": "the prompts", "model_fingerprint": "the model weights"}
_NOT_COMPARED = ("seconds", "prompts_done", "model_name_or_path")  # run statistics and information only


def _check_settings(config_path: Path, settings: dict) -> None:
    """Resume only a collection of the same settings, prompts and model weights; write the settings if new."""
    if not config_path.exists():
        _write_atomic(config_path, json.dumps(settings, indent=1))
        return
    stored = _read_config(config_path)
    previous = {k: v for k, v in stored.items() if k not in _NOT_COMPARED}
    previous = asdict(CollectConfig()) | {"num_prompts": None} | previous  # settings added later: defaults
    current = {k: v for k, v in settings.items() if k not in _NOT_COMPARED}
    unknown = [key for key in _IDENTITY if key not in previous]
    previous |= {key: current[key] for key in unknown}
    differ = [key for key in dict.fromkeys([*previous, *current]) if previous.get(key) != current.get(key)]
    if differ:
        details = []
        for key in differ:
            if key in _IDENTITY:
                there = f", model {stored['model_name_or_path']!r}" if key == "model_fingerprint" and stored.get(
                    "model_name_or_path") else ""
                details.append(f"{_IDENTITY[key]} differ (fingerprint {previous[key]}{there} there, {current[key]} now)")
            else:
                details.append(f"{key}: {previous.get(key)!r} there, {current.get(key)!r} now")
        raise ValueError(
            f"{config_path.parent} holds a collection made with other settings: {'; '.join(details)}. Records of "
            "other prompts, another model or other settings cannot be mixed: use a new output_dir (or delete this "
            "one to start over), or rerun with what it was made with to resume it."
        )
    if unknown:
        warnings.warn(
            f"{config_path} predates the prompt and model checks: cannot tell whether "
            f"{' and '.join(_IDENTITY[key] for key in unknown)} are those of the earlier run. Resuming; each kept "
            "record's prompt is still compared, and the current fingerprints are recorded for later resumes.",
            stacklevel=3,
        )
        _write_atomic(config_path, json.dumps(stored | {key: current[key] for key in unknown}, indent=1))


def _scan_records(path: Path, batch_size: int, total: int) -> tuple[dict[int, dict], dict[int, bytes], dict]:
    """Records of complete chunks from a previous run (a chunk cut short by an interruption is redone).

    Every complete, valid line is kept wherever it is; only torn (unparseable) lines are dropped. Returns the records
    by prompt index, their lines, and counts: `torn` lines, `torn_inside` (torn lines before the last one, which a
    crash does not explain), and `dropped` (every line not kept, or a last line without its newline: the file needs
    a rewrite before appending).
    """
    counts = {"torn": 0, "torn_inside": 0, "dropped": 0}
    if not path.exists():
        return {}, {}, counts
    records, lines, by_chunk, seen, last_torn = {}, {}, {}, 0, False
    with open(path, "rb") as handle:
        for raw in handle:
            seen += 1
            try:
                record = json.loads(raw)
                index, chunk = record["prompt_index"], record["chunk"]
                valid = isinstance(index, int) and 0 <= index < total and isinstance(chunk, int)
            except (ValueError, TypeError, KeyError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                valid = False
            last_torn = not valid
            if not valid:
                counts["torn"] += 1
                continue
            if not raw.endswith(b"\n"):  # complete, but the newline was lost
                raw += b"\n"
                counts["dropped"] += 1
            records[index], lines[index] = record, raw
            by_chunk.setdefault(chunk, set()).add(index)
    done = {}
    for chunk, indices in by_chunk.items():
        expected = range(chunk * batch_size, min((chunk + 1) * batch_size, total))
        if indices == set(expected) and all(records[i]["chunk"] == chunk for i in indices):
            done.update({i: records[i] for i in indices})
    counts["torn_inside"] = counts["torn"] - last_torn
    counts["dropped"] += seen - len(done)
    return done, {i: lines[i] for i in done}, counts


def _read_done(path: Path, batch_size: int, total: int) -> dict[int, dict]:
    return _scan_records(path, batch_size, total)[0]


def _append(path: Path, lines: list[str]) -> None:
    """Append one chunk's records: each flushed as it is written, the chunk fsynced at the end."""
    with open(path, "a") as handle:
        for line in lines:
            handle.write(line)
            handle.flush()
        os.fsync(handle.fileno())


class _FolderLock:
    """One collection per folder: `LOCK_FILE`, created exclusively, holds the owner's pid and host.

    A lock whose pid is dead on this host is stale (a killed run) and taken over with a warning; a live or unknown
    holder (another host) is an error naming it. The lock is removed on exit, errors included.
    """

    def __init__(self, folder: Path):
        self.path = folder / LOCK_FILE
        self.owner = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}

    def __enter__(self):
        for attempt in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = self._holder()
                if attempt == 0 and self._stale(holder) and self._take_over(holder):
                    continue
                raise RuntimeError(self._held_message(holder)) from None
            with os.fdopen(fd, "w") as handle:
                handle.write(json.dumps(self.owner))
                handle.flush()
                os.fsync(handle.fileno())
            return self
        raise RuntimeError(self._held_message(self._holder()))

    def __exit__(self, *exc):
        if self._holder() == self.owner:
            self.path.unlink(missing_ok=True)
        return False

    def _holder(self):
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None

    def _stale(self, holder) -> bool:
        if not isinstance(holder, dict) or holder.get("host") != self.owner["host"] or os.name == "nt":
            return False  # another host's (or an unreadable) lock cannot be checked; on Windows os.kill terminates
        pid = holder.get("pid")
        if not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:  # alive but not ours (PermissionError), or unknown
            return False
        return False

    def _take_over(self, holder) -> bool:
        """Move the stale lock aside, atomically, and make sure the one moved is the stale one."""
        aside = self.path.with_name(f"{LOCK_FILE}.stale-{os.getpid()}")
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:
            return True  # someone else removed it: try to create ours
        try:
            moved = json.loads(aside.read_text())
        except (OSError, ValueError):
            moved = None
        if moved != holder:  # a live run's fresh lock: put it back
            try:
                os.link(aside, self.path)
            except OSError:
                pass
            aside.unlink(missing_ok=True)
            return False
        aside.unlink(missing_ok=True)
        warnings.warn(
            f"{self.path}: took over a stale lock of pid {holder['pid']} on this host, which is no longer running "
            "(a killed collection).",
            stacklevel=4,
        )
        return True

    def _held_message(self, holder) -> str:
        who = (f"pid {holder.get('pid')} on host {holder.get('host')!r}" if isinstance(holder, dict)
               else "an unknown process (the lock file is unreadable)")
        return (
            f"{self.path.parent} is in use by another collection ({who}): two runs on one folder would write "
            f"duplicate records. Wait for it to finish or stop it; if no collection is running there (e.g. it was "
            f"killed on another host), delete {self.path} and rerun."
        )


def collect_trajectories(
    model,
    tokenizer,
    prompts,
    output_dir: str | Path,
    config: CollectConfig | None = None,
    max_chunks: int | None = None,
    progress: bool = True,
    teacher=None,
):
    """Collect Jacobi trajectories for every prompt into `output_dir`, resuming a previous run there.

    Args:
        prompts: anything `load_prompts` takes.
        max_chunks: stop after this many new chunks (for time-boxed runs; rerun to continue).
        teacher (`PreTrainedModel`, *optional*): with `config.states="decoding"` or `"answers"`, the clean
            continuations are this model's greedy answers (e.g. the base model, to anchor the targets across on-policy
            rounds); with "decoding" the states are those `model`'s decoder would feed along them
            (`forced_decoding_states`).

    Returns:
        `datasets.Dataset` with `prompt_index`, `prompt`, `prompt_ids`, `block_size`, and `trajectory` (blocks x
        iterates x tokens, last iterate = fixed point) or, with `config.states="decoding"`, `clean_ids`,
        `noisy_starts`, `noisy_blocks` (see `decoding_states`; empty with "answers"); also saved to
        `output_dir/dataset`.

    Safety of the folder:

    - A resume must use the same settings, the same prompts (a hash of their texts) and the same model weights (a
      fingerprint of sampled parameter values, see `model_fingerprint`: an adapter changes it, a model name does not);
      anything else raises, naming what differs. Folders made before these were stored resume with a warning.
    - One run at a time: `LOCK_FILE` in the folder holds the running collection's pid and host; a second run raises.
      A lock left by a killed run on this host is taken over; one from another host must be deleted by hand.
    - Settings and rewrites of the records are atomic (temporary file, fsync, rename); a torn line anywhere in the
      records loses only itself (its chunk is collected again).
    - Prompts too long for the model's positions with `max_new_tokens` raise one error naming them all (index and
      length) before anything is written: skipping them silently would change the data set.
    """
    import datasets

    config = config or CollectConfig()
    prompts = load_prompts(prompts)
    output_dir = Path(output_dir)
    if tokenizer.pad_token_id is None:
        raise ValueError("The tokenizer has no pad token; set tokenizer.pad_token = tokenizer.eos_token.")
    tokenizer.padding_side = "left"
    texts = [chat_prompt(tokenizer, p) for p in prompts]
    _check_prompt_lengths(model, tokenizer, texts, config)  # before anything is written
    settings = asdict(config) | {
        "num_prompts": len(prompts), "prompts_sha256": _prompts_hash(prompts), "model_fingerprint": model_fingerprint(model),
    }
    if teacher is not None:
        if config.states == "trajectory":
            raise ValueError("A teacher gives the answers of decoding states or plain answers: pass "
                             "CollectConfig(states='decoding') or CollectConfig(states='answers').")
        settings["teacher_fingerprint"] = model_fingerprint(teacher)
    output_dir.mkdir(parents=True, exist_ok=True)
    with _FolderLock(output_dir):
        return _collect(model, tokenizer, prompts, texts, output_dir, config, settings, max_chunks, progress, datasets,
                        teacher)


def _collect(model, tokenizer, prompts, texts, output_dir, config, settings, max_chunks, progress, datasets, teacher):
    """`collect_trajectories` once the folder is locked."""
    config_path = output_dir / CONFIG_FILE
    name_or_path = getattr(model.config, "_name_or_path", "") or config.model_name
    _check_settings(config_path, settings | ({"model_name_or_path": name_or_path} if name_or_path else {}))
    n = config.block_size
    records_path = output_dir / RECORDS_FILE
    done, lines, counts = _scan_records(records_path, config.batch_size, len(prompts))
    for index, record in done.items():  # also guards folders made before the prompt hash was stored
        if record.get("prompt") != prompts[index] or record.get("block_size") != n:
            raise ValueError(
                f"{records_path}: the record of prompt {index} was collected for another prompt or block size "
                f"({record.get('block_size')}); use a new output_dir for these prompts."
            )
    if counts["torn_inside"]:
        warnings.warn(
            f"{records_path}: {counts['torn']} torn line(s) dropped ({counts['torn_inside']} before the end of the "
            "file); every complete record was kept and the chunks of the torn ones are collected again.",
            stacklevel=3,
        )
    elif counts["torn"]:
        logger.info("%s: dropped the torn last line of an interrupted run", records_path)
    if counts["dropped"]:  # rewrite without torn lines or partial chunks, atomically
        _write_atomic(records_path, b"".join(lines[i] for i in sorted(lines)))
    chunks = [list(range(s, min(s + config.batch_size, len(prompts)))) for s in range(0, len(prompts), config.batch_size)]
    todo = [(chunk_id, c) for chunk_id, c in enumerate(chunks) if not all(i in done for i in c)]
    started, new_chunks, new_tokens = time.perf_counter(), 0, 0
    eos = model.generation_config.eos_token_id
    bar = tqdm(total=len(prompts), initial=len(done), desc="collect", unit="prompt", disable=not progress)
    try:
        for chunk_id, chunk in todo:
            if max_chunks is not None and new_chunks >= max_chunks:
                break
            batch = tokenizer([texts[i] for i in chunk], return_tensors="pt", padding=True).to(model.device)
            if config.states == "answers":
                answers = _greedy_answers(teacher or model, tokenizer, batch, config.max_new_tokens)
                fields = [{"clean_ids": a, "noisy_starts": [], "noisy_blocks": []} for a in answers]
            elif config.states == "decoding" and teacher is not None:
                answers = _greedy_answers(teacher, tokenizer, batch, config.max_new_tokens)
                fields = forced_decoding_states(model, batch, answers, config, config.seed + chunk[0])
            elif config.states == "decoding":
                fields = decoding_states(model, tokenizer, batch, config, config.seed + chunk[0])
            else:
                fields = [{"trajectory": t} for t in _chunk_trajectories(model, tokenizer, batch, config, chunk[0], eos)]
            new_tokens += sum(len(f["trajectory"]) * n if "trajectory" in f else len(f["clean_ids"]) for f in fields)
            lines = []
            for row, index in enumerate(chunk):
                prompt_ids = batch["input_ids"][row][batch["attention_mask"][row].bool()].tolist()
                lines.append(json.dumps({
                    "prompt_index": index, "chunk": chunk_id, "prompt": prompts[index], "prompt_ids": prompt_ids,
                    "block_size": n, **fields[row],
                }) + "\n")
            _append(records_path, lines)
            new_chunks += 1
            bar.update(len(chunk))
            bar.set_postfix(tokens=new_tokens, tokens_per_s=f"{new_tokens / (time.perf_counter() - started):.1f}")
    finally:  # wall time is kept across interrupted and resumed runs
        bar.close()
        stats = _read_config(config_path)
        stats["seconds"] = stats.get("seconds", 0.0) + time.perf_counter() - started
        stats["prompts_done"] = len(_read_done(records_path, config.batch_size, len(prompts)))
        _write_atomic(config_path, json.dumps(stats, indent=1))
    done = _read_done(records_path, config.batch_size, len(prompts))
    rows = [done[i] for i in sorted(done)]
    dataset = datasets.Dataset.from_list([{k: v for k, v in r.items() if k != "chunk"} for r in rows]) if rows else None
    if dataset is not None and len(rows) == len(prompts):
        dataset.save_to_disk(str(output_dir / "dataset"))
    return dataset
