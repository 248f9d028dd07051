"""Collect the model's own Jacobi trajectories for Jacobi Forcing training (spec §3.1), resumably.

Two phases per batch of prompts:

1. The fixed points: greedy continuation by `generate(generation_mode="jacobi")` (the decoding loop itself; its output
   is the greedy one), cut into blocks `c_0 .. c_{T-1}` of `block_size` tokens.
2. The trajectories: the Jacobi iteration of every block, all blocks of all rows at once. The prompt and the clean
   blocks are prefilled into a cache once; each iteration feeds every block's draft (after the last token of its
   context) in one forward whose 4D mask lets block `j` see only the prompt, `c_{<j}` and itself, crops the drafts
   from the cache again, and takes the predictions as the next drafts, until every block reached its fixed point.
   The reference decodes one block at a time; here one forward serves all `T` blocks.

Records are appended to `trajectories.jsonl` one batch (chunk) per write; a resumed run keeps complete chunks and
redoes the rest with the same chunk composition and seeds, so it yields the records an uninterrupted run would.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .demo import chat_prompt
from .jacobi import JacobiDraft

RECORDS_FILE = "trajectories.jsonl"
CONFIG_FILE = "collect_config.json"


@dataclass
class CollectConfig:
    """Settings of a collection run; a resumed run must use the same ones."""

    block_size: int = 16
    max_new_tokens: int = 256
    batch_size: int = 4
    draft_init: str = "prompt"
    seed: int = 0
    generate_block_size: int | None = None  # block size of phase 1 (default: block_size)
    model_name: str = ""
    # "trajectory": every block's Jacobi iterates (paper §3). "decoding": the drafts the sliding-block decoder
    # itself feeds (on-policy states, written in the state layout); at most `max_states` per prompt, drawn evenly.
    states: str = "trajectory"
    max_states: int | None = None

    def __post_init__(self):
        for name in ("block_size", "max_new_tokens", "batch_size"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ValueError(f"CollectConfig.{name} must be a positive integer, got {getattr(self, name)!r}.")
        if self.draft_init not in ("prompt", "repeat"):
            raise ValueError(f"CollectConfig.draft_init must be 'prompt' or 'repeat', got {self.draft_init!r}.")
        if self.states not in ("trajectory", "decoding"):
            raise ValueError(f"CollectConfig.states must be 'trajectory' or 'decoding', got {self.states!r}.")
        if self.max_states is not None and self.max_states < 1:
            raise ValueError(f"CollectConfig.max_states must be >= 1 or None, got {self.max_states}.")


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


def _block_masks(model, attention_mask, prompt_width, block_size, num_blocks, start, positions_ctx, positions_draft, dtype):
    """Additive 4D masks `(batch, 1, T*m, cache_len + T*m)` for a draft forward of offsets `start..n-1` of every block
    (`m = n - start`); additive so that eager attention is right too.

    Offsets below `start` of every block are exact, so their keys are the cached clean ones: the query at offset `i`
    of block `j` sees the cached real tokens before slot `prompt_width + j*n - 1 + start` and its own block's fed
    tokens up to itself. Models with a sliding window get the window applied on positions; hybrid models get one mask
    per layer type.
    """
    batch, cache_len = attention_mask.shape
    m = block_size - start
    device = attention_mask.device
    block_of_query = torch.arange(num_blocks * m, device=device) // m
    offset = torch.arange(num_blocks * m, device=device) % m
    limit = prompt_width + block_of_query * block_size - 1 + start  # cache slots < limit are context
    see_cache = (torch.arange(cache_len, device=device)[None, :] < limit[:, None])[None] & attention_mask[:, None, :].bool()
    same_block = block_of_query[:, None] == block_of_query[None, :]
    see_draft = (same_block & (offset[None, :] <= offset[:, None]))[None].expand(batch, -1, -1)
    visible = torch.cat([see_cache, see_draft], dim=-1)

    def additive(mask):
        return torch.zeros(mask.shape, dtype=dtype, device=device).masked_fill(~mask, torch.finfo(dtype).min)[:, None]

    window = getattr(model.config, "sliding_window", None)
    if not window:
        return additive(visible)
    key_positions = torch.cat([positions_ctx, positions_draft], dim=-1)
    in_window = (positions_draft[:, :, None] - key_positions[:, None, :]) < window
    layer_types = getattr(model.config, "layer_types", None)
    if layer_types and len(set(layer_types)) > 1:
        return {"full_attention": additive(visible), "sliding_attention": additive(visible & in_window)}
    return additive(visible & in_window)


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
        masks = _block_masks(model, attention_mask, prompt_width, n, T, start, positions_all, positions, dtype)
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
        sequences = model.generate(
            **batch, do_sample=False, max_new_tokens=config.max_new_tokens, generation_mode="jacobi", block_size=n,
            draft_init=config.draft_init, draft_seed=seed, pad_token_id=tokenizer.pad_token_id,
        )
    finally:
        handle.remove()
    width = batch["input_ids"].shape[1]
    prompt_lengths = batch["attention_mask"].sum(-1).tolist()
    eos = model.generation_config.eos_token_id
    eos = set([eos] if isinstance(eos, int) else eos or [])
    rows = []
    generator = torch.Generator().manual_seed(seed)
    for r in range(sequences.shape[0]):
        clean = sequences[r, width:].tolist()
        end = next((i + 1 for i, t in enumerate(clean) if t in eos), len(clean))
        clean = clean[:end]
        states = {}
        for positions, ids in fed:
            start = int(positions[r, 0]) - prompt_lengths[r]
            block = ids[r].tolist()
            if 0 <= start <= len(clean) - n and block != clean[start : start + n]:
                states.setdefault((start, tuple(block)), block)
        keys = list(states)
        if config.max_states is not None and len(keys) > config.max_states:
            keep = torch.randperm(len(keys), generator=generator)[: config.max_states].sort().values.tolist()
            keys = [keys[i] for i in keep]
        rows.append({"clean_ids": clean, "noisy_starts": [k[0] for k in keys], "noisy_blocks": [states[k] for k in keys]})
    return rows


@torch.no_grad()
def _chunk_trajectories(model, tokenizer, batch, config: CollectConfig, first_index: int, eos) -> list:
    """Both phases for one batch: the greedy continuation, padded to whole blocks, then every block's iterates."""
    n = config.block_size
    sequences = model.generate(
        **batch, do_sample=False, max_new_tokens=-(-config.max_new_tokens // n) * n, generation_mode="jacobi",
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


def _read_done(path: Path, batch_size: int, total: int) -> dict[int, dict]:
    """Records of complete chunks from a previous run; a chunk cut short by an interruption is redone."""
    if not path.exists():
        return {}
    records, by_chunk = {}, {}
    with open(path) as handle:
        for line in handle:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                break  # a torn last write
            records[record["prompt_index"]] = record
            by_chunk.setdefault(record["chunk"], []).append(record["prompt_index"])
    done = {}
    for chunk, indices in by_chunk.items():
        expected = min(batch_size, total - chunk * batch_size)
        if len(set(indices)) == expected:
            done.update({i: records[i] for i in indices})
    return done


def _append(path: Path, lines: list[str]) -> None:
    with open(path, "a") as handle:
        handle.write("".join(lines))  # one write per chunk
        handle.flush()
        os.fsync(handle.fileno())


def collect_trajectories(
    model,
    tokenizer,
    prompts,
    output_dir: str | Path,
    config: CollectConfig | None = None,
    max_chunks: int | None = None,
    progress: bool = True,
):
    """Collect Jacobi trajectories for every prompt into `output_dir`, resuming a previous run there.

    Args:
        prompts: anything `load_prompts` takes.
        max_chunks: stop after this many new chunks (for time-boxed runs; rerun to continue).

    Returns:
        `datasets.Dataset` with `prompt_index`, `prompt`, `prompt_ids`, `block_size`, and `trajectory` (blocks x
        iterates x tokens, last iterate = fixed point) or, with `config.states="decoding"`, `clean_ids`,
        `noisy_starts`, `noisy_blocks` (see `decoding_states`); also saved to `output_dir/dataset`.
    """
    import datasets

    import hf_jacobi  # noqa: F401  (generation_mode="jacobi")

    config = config or CollectConfig()
    prompts = load_prompts(prompts)
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    config_path = output_dir / CONFIG_FILE
    settings = asdict(config) | {"num_prompts": len(prompts)}
    if config_path.exists():
        previous = json.loads(config_path.read_text())
        previous.pop("seconds", None)
        previous.pop("prompts_done", None)
        previous = asdict(CollectConfig()) | {"num_prompts": None} | previous  # settings added later: defaults
        if previous != settings:
            raise ValueError(
                f"{output_dir} holds a collection made with other settings ({previous}); use a new output_dir or the "
                f"same settings to resume (now: {settings})."
            )
    else:
        config_path.write_text(json.dumps(settings, indent=1))
    if tokenizer.pad_token_id is None:
        raise ValueError("The tokenizer has no pad token; set tokenizer.pad_token = tokenizer.eos_token.")
    tokenizer.padding_side = "left"
    n = config.block_size
    records_path = output_dir / RECORDS_FILE
    done = _read_done(records_path, config.batch_size, len(prompts))
    if records_path.exists():  # rewrite without torn or partial chunks
        with open(records_path, "w") as handle:
            handle.writelines(json.dumps(done[i]) + "\n" for i in sorted(done))
    chunks = [list(range(s, min(s + config.batch_size, len(prompts)))) for s in range(0, len(prompts), config.batch_size)]
    todo = [c for c in chunks if not all(i in done for i in c)]
    started, new_chunks = time.perf_counter(), 0
    eos = model.generation_config.eos_token_id
    try:
        for chunk_id, chunk in tqdm([(chunks.index(c), c) for c in todo], desc="collect", disable=not progress):
            if max_chunks is not None and new_chunks >= max_chunks:
                break
            texts = [chat_prompt(tokenizer, prompts[i]) for i in chunk]
            batch = tokenizer(texts, return_tensors="pt", padding=True).to(model.device)
            if config.states == "decoding":
                fields = decoding_states(model, tokenizer, batch, config, config.seed + chunk[0])
            else:
                fields = [{"trajectory": t} for t in _chunk_trajectories(model, tokenizer, batch, config, chunk[0], eos)]
            lines = []
            for row, index in enumerate(chunk):
                prompt_ids = batch["input_ids"][row][batch["attention_mask"][row].bool()].tolist()
                lines.append(json.dumps({
                    "prompt_index": index, "chunk": chunk_id, "prompt": prompts[index], "prompt_ids": prompt_ids,
                    "block_size": n, **fields[row],
                }) + "\n")
            _append(records_path, lines)
            new_chunks += 1
    finally:  # wall time is kept across interrupted and resumed runs
        stats = json.loads(config_path.read_text())
        stats["seconds"] = stats.get("seconds", 0.0) + time.perf_counter() - started
        stats["prompts_done"] = len(_read_done(records_path, config.batch_size, len(prompts)))
        config_path.write_text(json.dumps(stats, indent=1))
    done = _read_done(records_path, config.batch_size, len(prompts))
    rows = [done[i] for i in sorted(done)]
    dataset = datasets.Dataset.from_list([{k: v for k, v in r.items() if k != "chunk"} for r in rows]) if rows else None
    if dataset is not None and len(rows) == len(prompts):
        dataset.save_to_disk(str(output_dir / "dataset"))
    return dataset
