# Copyright 2026 The hf_jacobi authors. Apache-2.0.
"""The Jacobi decoding loop (`jacobi_decode`), called by `GenerationMixin.generate` as a `custom_generate` callable.

Laid out like transformers' `_assisted_decoding`: draft sources (`candidates.py`) propose, the loop verifies
(`verification.py`), commits, crops the cache and tells the sources what was accepted.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from transformers import GenerationConfig
from transformers.generation.utils import GenerateDecoderOnlyOutput

from .candidates import UNDRAFTED, CandidateSource, DraftStep, build_candidate_sources
from .configuration_jacobi import JacobiConfig, cache_rolls_back, validate_generation
from .verification import select_tokens, verify_candidates
from .visibility import tail_attention_mask


@dataclass
class JacobiGenerateOutput(GenerateDecoderOnlyOutput):
    """`GenerateDecoderOnlyOutput` plus Jacobi statistics.

    Args:
        num_forwards (`int`): decoding forwards, prefill excluded.
        accepted_tokens (`torch.LongTensor` of shape `(num_forwards,)`): tokens committed by each forward.
        tokens_per_forward (`float`): tokens produced by the decoding forwards / `num_forwards` (TPF).
        draft_lengths (`torch.LongTensor` of shape `(num_forwards,)`): draft tokens fed per sequence by each forward
            (the block size, plus the pseudo-active blocks in flight when `num_blocks > 1`).
        candidate_rows (`torch.LongTensor` of shape `(num_forwards,)`): rows verified per sequence by each forward:
            1 (the draft) + alternative candidates (recycled n-grams, context lookup).
        recycled_wins (`torch.LongTensor` of shape `(num_forwards,)`): sequences whose committed tokens came from an
            alternative candidate row (it accepted strictly more than the draft) in each forward.
    """

    num_forwards: int | None = None
    accepted_tokens: torch.LongTensor | None = None
    tokens_per_forward: float | None = None
    draft_lengths: torch.LongTensor | None = None
    candidate_rows: torch.LongTensor | None = None
    recycled_wins: torch.LongTensor | None = None


class _Output:
    """The sequences as they grow: tokens, attention mask, finished rows, and the optional scores and logits."""

    def __init__(self, input_ids, attention_mask, generation_config, stopping_criteria):
        self.input_ids = input_ids
        self.attention_mask = attention_mask
        self.stopping_criteria = stopping_criteria
        self.unfinished = torch.ones(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        return_dict = generation_config.return_dict_in_generate
        self.scores = () if (return_dict and generation_config.output_scores) else None
        self.logits = () if (return_dict and generation_config.output_logits) else None
        self.pad_token_id = generation_config._pad_token_tensor
        self.pad_finished = any(hasattr(criteria, "eos_token_id") for criteria in stopping_criteria)
        if self.pad_finished and self.pad_token_id is None:
            raise ValueError("Set `pad_token_id` (finished rows are filled with it).")

    def append(self, tokens, step_scores, step_logits) -> bool:
        """Append one column of tokens, pad finished rows, apply the stopping criteria; True once all rows stopped."""
        if self.pad_finished:
            tokens = torch.where(self.unfinished, tokens, self.pad_token_id)
        self.input_ids = torch.cat([self.input_ids, tokens[:, None]], dim=-1)
        if self.attention_mask is not None:
            self.attention_mask = torch.cat([self.attention_mask, self.attention_mask.new_ones((len(tokens), 1))], -1)
        if self.scores is not None:
            self.scores += (step_scores,)
        if self.logits is not None:
            self.logits += (step_logits,)
        self.unfinished = self.unfinished & ~self.stopping_criteria(self.input_ids, step_scores)
        return not self.unfinished.any()


def _process_scores(logits_processor, context, rows, block_logits, num_rows):
    """Position `i` of a row is scored as if generated after the committed tokens and `row[1..i]`. Processors see one
    row per sequence, in batch order (some index the batch: padding lengths, `prefix_allowed_tokens_fn`), so candidate
    rows are scored one candidate index at a time."""
    if len(logits_processor) == 0:
        return block_logits
    committed = context.shape[1]
    context = torch.cat([context.repeat_interleave(num_rows, dim=0), rows[:, 1:]], dim=-1)
    scores = torch.empty_like(block_logits)
    for c in range(num_rows):
        group = slice(c, None, num_rows)
        scores[group] = torch.stack(
            [logits_processor(context[group, : committed + i], block_logits[group, i]) for i in range(rows.shape[1])],
            dim=1,
        )
    return scores


def _require_rollback(model, cache) -> None:
    if not cache_rolls_back(cache):
        raise ValueError(
            f"The cache of {type(model).__name__} ({type(cache).__name__}) cannot be rolled back exactly (recurrent "
            "or fixed-size layers), so rejected draft tokens could not be discarded. Use a DynamicCache "
            "(cache_implementation=None) or a model with attention layers only."
        )


def _require_tree_attention(model, takes_position_ids: bool) -> None:
    """Tails need explicit positions and a 4D mask that every attention layer reads as is (no sliding window)."""
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    layer_types = getattr(config, "layer_types", None)
    if layer_types:
        sliding = any(t != "full_attention" for t in layer_types)
    else:
        sliding = bool(getattr(config, "sliding_window", None))
    if not takes_position_ids or sliding:
        why = ("does not take position_ids" if not takes_position_ids
               else "has sliding-window or other non-full attention layers")
        raise ValueError(
            f"`fresh_tails` feeds a tree of tails under a custom 4D attention mask, but {type(model).__name__} {why}. "
            "Use fresh_rows (the same tails as extra batch rows) with this model, or set fresh_tails=0."
        )


def _with_tails(model, rows, positions, attention_mask, tail_parents, filler: int, committed: int):
    """The draft rows with the filler tails appended, their positions (a tail behind draft index `j` goes on from
    position `j + 1`) and the tree mask (`visibility.tail_attention_mask`) over the cache and everything fed."""
    batch, length = rows.shape
    parents = tail_parents.to(rows.device)  # non-decreasing: one tail after the other
    index = torch.arange(len(parents), device=rows.device)
    tail_index = index - torch.searchsorted(parents, parents)  # index within its tail
    tail_positions = positions[:, :1] + parents + 1 + tail_index
    rows = torch.cat([rows, rows.new_full((batch, len(parents)), filler)], dim=-1)
    positions = torch.cat([positions, tail_positions], dim=-1)
    padding = attention_mask[:, : committed - 1] if attention_mask is not None else rows.new_ones((batch, committed - 1))
    dtype = model.get_input_embeddings().weight.dtype
    return rows, positions, tail_attention_mask(padding, length, parents, dtype)


def _rows_with_tails(model, rows, positions, attention_mask, tail_parents, filler: int, committed: int, num_rows: int):
    """Tails beside other candidate rows (`lookup_mode="row"`): rows share one width, so the draft row (row 0 of each
    sequence) is its draft followed by its tails, held as `UNDRAFTED` in the candidates (fed as the filler, never
    accepted: a draft row accepts at most its draft). Row 0 gets the tree positions and mask of `_with_tails`, the
    other rows plain causal ones, all in one 4D mask."""
    length = rows.shape[1]
    draft_len = length - len(tail_parents)
    draft_rows = slice(0, None, num_rows)
    tree_ids, tree_positions, tree_mask = _with_tails(model, rows[draft_rows, :draft_len],
                                                      positions[draft_rows, :draft_len], attention_mask,
                                                      tail_parents, filler, committed)
    batch = tree_ids.shape[0]
    padding = rows.new_ones((batch, committed - 1)) if attention_mask is None else attention_mask[:, : committed - 1]
    plain = tail_attention_mask(padding, length, tail_parents[:0], tree_mask.dtype)  # causal over cache and row
    fed_ids = rows.masked_fill(rows == UNDRAFTED, filler)
    fed_ids[draft_rows] = tree_ids
    positions = positions.clone()
    positions[draft_rows] = tree_positions
    mask = plain.repeat_interleave(num_rows, dim=0)
    mask[draft_rows] = tree_mask
    return fed_ids, positions, mask


def jacobi_decode(
    model,
    input_ids: torch.LongTensor,
    logits_processor,
    stopping_criteria,
    generation_config: GenerationConfig,
    synced_gpus: bool = False,
    jacobi_config: JacobiConfig | None = None,
    jacobi_streamer=None,
    verify_fn=None,
    block_size_policy=None,
    candidate_sources: list[CandidateSource] | None = None,
    block_size: int | str | None = None,
    draft_init: str | int | None = None,
    draft_carry: str | None = None,
    fresh_rows: int | None = None,
    fresh_tails: int | None = None,
    draft_seed: int | None = None,
    num_blocks: int | None = None,
    spawn_ratio: float | None = None,
    pool_size: int | None = None,
    lookup_ngram: int | None = None,
    lookup_mode: str | None = None,
    lookup_num_tokens: int | None = None,
    **model_kwargs,
):
    r"""Jacobi decoding: each forward feeds draft tokens after the committed ones, accepts the longest exact prefix
    (`accept_length`), keeps those tokens' KV entries, crops the rest, and drafts the next block from the predictions.
    Under greedy decoding the output equals greedy decoding token for token; under sampling it follows the same
    distribution as ordinary sampling (see `verify_block`).

    With batch > 1 every row commits the same number of tokens per forward (the smallest among unfinished rows), so the
    cache stays rectangular and sliding-window layers see exactly the positions greedy decoding would. Alternative
    candidate rows are verified as extra batch rows of the same forward: the cache rows are repeated before it and the
    chosen row per sequence is kept after it.

    Args:
        input_ids (`torch.LongTensor` of shape `(batch, prompt_length)`): the prompt (left-padded for batches).
        logits_processor, stopping_criteria, generation_config: prepared by `generate`.
        jacobi_config (`JacobiConfig`, *optional*): the Jacobi settings; the individual settings (`block_size`, ...)
            override it, and the `GenerationConfig` attributes of the same names fill what neither sets.
        jacobi_streamer (`BaseStreamer`, *optional*): receives the prompt, then the accepted tokens as accepted.
        verify_fn (`Callable`, *optional*): replaces `verify_block` (same signature and results), e.g. the fused
            kernel from `hf_jacobi.kernels.get_verify_fn()`.
        block_size_policy (*optional*): chooses `n` per forward: `next_block_size(remaining) -> int` before it and
            `observe(draft_length, num_accepted)` after it (`hf_jacobi.generation.auto.AutoBlockSize`). Needed for
            `block_size="auto"`; any choice is lossless.
        candidate_sources (`list[CandidateSource]`, *optional*): more draft sources, called after the built-in ones
            (see `candidates.CandidateSource`); new instances for every call, as they keep per-sequence state.
        model_kwargs: `cache`, `attention_mask`, `position_ids`, ... prepared by `generate`.

    Returns:
        `torch.LongTensor` of shape `(batch, prompt_length + new_tokens)` or, with `return_dict_in_generate=True`,
        a `JacobiGenerateOutput`.
    """
    settings = {"block_size": block_size, "draft_init": draft_init, "draft_carry": draft_carry,
                "fresh_rows": fresh_rows, "fresh_tails": fresh_tails, "draft_seed": draft_seed, "num_blocks": num_blocks,
                "spawn_ratio": spawn_ratio, "pool_size": pool_size, "lookup_ngram": lookup_ngram,
                "lookup_mode": lookup_mode, "lookup_num_tokens": lookup_num_tokens}
    config = JacobiConfig.from_generation_config(generation_config, jacobi_config, **settings)
    if config.block_size == "auto" and block_size_policy is None:
        raise ValueError(
            "`block_size='auto'` needs a block-size policy that times the model's forwards: `import hf_jacobi` and pass "
            "generation_mode='jacobi', or pass an int block_size to this custom_generate."
        )
    batch_size, prompt_length = input_ids.shape
    validate_generation(model, generation_config, prompt_length)
    if synced_gpus:
        raise ValueError("Jacobi decoding does not support synced_gpus (DeepSpeed ZeRO-3 / FSDP generation).")
    if model_kwargs.get("cache") is None:
        raise ValueError(
            f"{type(model).__name__} did not provide a KV cache; Jacobi decoding needs one to reuse accepted tokens."
        )
    streamer = jacobi_streamer
    if streamer is not None:
        streamer.put(input_ids.cpu())
    do_sample = bool(generation_config.do_sample)
    out = _Output(input_ids, model_kwargs.get("attention_mask"), generation_config, stopping_criteria)
    sources = build_candidate_sources(config, input_ids, out.attention_mask) + list(candidate_sources or ())
    takes_position_ids = "position_ids" in inspect.signature(model.forward).parameters
    if config.fresh_tails:
        _require_tree_attention(model, takes_position_ids)
    device = input_ids.device

    # Prefill: the prompt, as ordinary generation does; its last logits give the first token. The cache is checked
    # before it too: a recurrent layer that transformers calls croppable fails in the first block forward otherwise.
    _require_rollback(model, model_kwargs["cache"])
    prefill_kwargs = {k: v for k, v in model_kwargs.items() if k != "use_cache"}
    outputs = model(input_ids=input_ids, use_cache=True, return_dict=True, **prefill_kwargs)
    cache = outputs.cache if getattr(outputs, "cache", None) is not None else model_kwargs["cache"]
    _require_rollback(model, cache)
    cache.activate_past_recording()  # sliding-window layers keep states past the window until `crop`
    logits = outputs.logits[:, -1].to(dtype=torch.float32)
    del outputs
    first_scores = logits_processor(out.input_ids, logits)
    done = out.append(select_tokens(first_scores, do_sample), first_scores, logits)
    if streamer is not None:
        streamer.put(out.input_ids[:, -1:].cpu())

    accepted, draft_lengths, candidate_rows, recycled_wins = [], [], [], []
    while not done:
        # 1. Fetch candidates: the draft (row 0) and alternative rows, never past max_length.
        committed = out.input_ids.shape[1]
        remaining = generation_config.max_length - committed
        n = config.block_size if block_size_policy is None else block_size_policy.next_block_size(remaining)
        step = DraftStep(out.input_ids, out.unfinished, min(n, remaining), remaining, out.input_ids[:, -1:, None])
        for source in sources:
            step.candidates = source.get_candidates(step)
        _, num_rows, length = step.candidates.shape
        rows = step.candidates.reshape(batch_size * num_rows, length)

        # 2. Prepare inputs: positions after the committed tokens; candidate rows share their sequence's cache.
        if out.attention_mask is not None:
            mask = torch.cat([out.attention_mask, out.attention_mask.new_ones((batch_size, length - 1))], dim=-1)
            start = out.attention_mask.sum(-1, keepdim=True) - 1
        else:
            mask, start = None, torch.full((batch_size, 1), committed - 1, device=device)
        # no fed token sits past the last position generation reaches (only filler behind a lookup row's last
        # committable token can: near max_length the rows keep the width of the draft with its tails)
        positions = start + torch.arange(length, device=device).clamp(max=remaining)
        if num_rows > 1:
            cache.batch_repeat_interleave(num_rows)
            positions = positions.repeat_interleave(num_rows, dim=0)
            mask = None if mask is None else mask.repeat_interleave(num_rows, dim=0)
        fed_ids, tails = rows, step.tail_parents
        if tails is not None and not len(tails):  # near max_length no tail fits
            tails = None
        if tails is not None and num_rows == 1:  # filler tails behind the draft, one row
            fed_ids, positions, mask = _with_tails(model, rows, positions, out.attention_mask, tails,
                                                   config.draft_init, committed)
        elif tails is not None:  # the draft row holds its tails inside the rows' shared width
            fed_ids, positions, mask = _rows_with_tails(model, rows, positions, out.attention_mask, tails,
                                                        config.draft_init, committed, num_rows)
        fed = fed_ids.shape[1]

        # 3. Forward, and score every position with its own prefix.
        forward_kwargs = {"position_ids": positions} if takes_position_ids else {}
        outputs = model(input_ids=fed_ids, attention_mask=mask, cache=cache, use_cache=True, return_dict=True,
                        **forward_kwargs)
        block_logits = outputs.logits.to(dtype=torch.float32)
        del outputs
        # the tails' guesses (any choice is lossless): behind the draft, or at the end of the draft row
        if num_rows > 1 and tails is not None:
            tail_predictions = block_logits[::num_rows, length - len(tails):].argmax(-1)
        else:
            tail_predictions = block_logits[:, length:].argmax(-1)
        block_logits = block_logits[:, :length]
        block_scores = _process_scores(logits_processor, out.input_ids, fed_ids[:, :length], block_logits, num_rows)

        # 4. Verify: the model's tokens, accepted lengths, and the row each sequence keeps.
        verification = verify_candidates(step.candidates, block_scores, do_sample, verify_fn)
        verification.tail_predictions = tail_predictions
        if num_rows > 1:
            keep = verification.kept_rows
            cache.batch_select_indices(keep)
            block_scores, block_logits = block_scores[keep], block_logits[keep]
        # Rows share one commit length so the cache stays rectangular; finished rows do not hold the others back.
        row_accept = verification.row_accepted
        num_accepted = int(row_accept[out.unfinished].min()) if out.unfinished.any() else length

        # 5. Commit the accepted tokens (stopping criteria per token) and stream them.
        tokens = verification.tokens
        for i in range(num_accepted):
            if out.append(tokens[:, i], block_scores[:, i], block_logits[:, i]):
                done, num_accepted = True, i + 1
                break
        if streamer is not None:
            streamer.put(out.input_ids[:, -num_accepted:].cpu())

        # 6. Crop the cache to the accepted draft tokens, and tell the sources and the policy what happened.
        cache.crop(-(fed - num_accepted))
        verification.num_accepted = num_accepted
        for source in sources:
            source.update_candidate_strategy(step, verification)
        if block_size_policy is not None:
            block_size_policy.observe(length, num_accepted)
        accepted.append(num_accepted)
        draft_lengths.append(fed)
        candidate_rows.append(num_rows)
        recycled_wins.append(int((step.unfinished & (verification.chosen > 0)).sum()))

    if streamer is not None:
        streamer.end()
    if not generation_config.return_dict_in_generate:
        return out.input_ids
    num_forwards = len(accepted)
    return JacobiGenerateOutput(
        sequences=out.input_ids,
        scores=out.scores,
        logits=out.logits,
        cache=cache,
        num_forwards=num_forwards,
        accepted_tokens=torch.tensor(accepted, dtype=torch.long),
        tokens_per_forward=(sum(accepted) / num_forwards) if num_forwards else None,
        draft_lengths=torch.tensor(draft_lengths, dtype=torch.long),
        candidate_rows=torch.tensor(candidate_rows, dtype=torch.long),
        recycled_wins=torch.tensor(recycled_wins, dtype=torch.long),
    )
