# Copyright 2026 The hf_jacobi authors. Apache-2.0.
"""Jacobi decoding for any transformers causal LM, lossless under greedy decoding.

This file depends only on `torch` and `transformers`: it is copied verbatim to a Hub `custom_generate/generate.py`
by `hf_jacobi.export_custom_generate`, so `model.generate(custom_generate=<dir or repo>, trust_remote_code=True)` works
without hf_jacobi installed. Keep it self-contained.

Layout, after transformers' assisted decoding: a draft source (`JacobiDraft`) proposes the block, and one routine
(`jacobi_decode`) owns verification, acceptance (`accept_length`, the only implementation of the rule) and `cache.crop`.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
from transformers import GenerationConfig, GenerationMixin, StoppingCriteriaList, StopStringCriteria
from transformers.generation.utils import GenerateDecoderOnlyOutput

#: Jacobi settings read from `generate(...)` kwargs or, failing that, from attributes of the `GenerationConfig`.
JACOBI_DEFAULTS = {"block_size": 16, "draft_init": "prompt", "draft_seed": 0}
DRAFT_INITS = ("prompt", "repeat")


@dataclass
class JacobiGenerateOutput(GenerateDecoderOnlyOutput):
    """`GenerateDecoderOnlyOutput` plus Jacobi statistics.

    Args:
        num_forwards (`int`): decoding forwards, prefill excluded.
        accepted_tokens (`torch.LongTensor` of shape `(num_forwards,)`): tokens committed by each forward.
        tokens_per_forward (`float`): tokens produced by the decoding forwards / `num_forwards` (TPF).
    """

    num_forwards: int | None = None
    accepted_tokens: torch.LongTensor | None = None
    tokens_per_forward: float | None = None


def accept_length(draft: torch.LongTensor, predictions: torch.LongTensor) -> torch.LongTensor:
    """The Jacobi acceptance rule: how many leading draft tokens are exact.

    `draft[:, 0]` is known to be correct; `draft[:, i + 1]` is exact when it equals `predictions[:, i]`, the model's
    prediction after an exact prefix. Every accepted token was produced from an exact prefix, so its KV entries are
    exact too.

    Args:
        draft (`torch.LongTensor` of shape `(batch, n)`): tokens fed to the model.
        predictions (`torch.LongTensor` of shape `(batch, n)`): `argmax` of the (processed) logits at each position.

    Returns:
        `torch.LongTensor` of shape `(batch,)`, values in `[1, n]`.
    """
    matches = (draft[:, 1:] == predictions[:, :-1]).long()
    return 1 + matches.cumprod(dim=-1).sum(dim=-1)


def select_tokens(scores: torch.FloatTensor, do_sample: bool) -> torch.LongTensor:
    """The model's token at every position: argmax, or a sample of the processed distribution.

    Args:
        scores (`torch.FloatTensor` of shape `(..., vocab)`): processed logits.
    """
    if not do_sample:
        return scores.argmax(-1)
    probs = torch.softmax(scores, dim=-1)
    return torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1).reshape(probs.shape[:-1])


def verify_block(block: torch.LongTensor, scores: torch.FloatTensor, do_sample: bool = False):
    """One Jacobi verification: the model's token at every block position and how many draft tokens are exact.

    Under sampling a draft token is kept only when the token sampled before it equals it: it is accepted with
    probability p(d), and on rejection the emitted token is a sample of p restricted to tokens other than d. That is
    the speculative-sampling rule for a deterministic draft, so every emitted token follows the model's own sampling
    distribution given the exact prefix.

    Args:
        block (`torch.LongTensor` of shape `(batch, n)`): the draft fed to the model.
        scores (`torch.FloatTensor` of shape `(batch, n, vocab)`): processed logits at the block positions.

    Returns:
        `(predictions, accepted)`: `(batch, n)` tokens and `(batch,)` accepted lengths in `[1, n]`.
    """
    predictions = select_tokens(scores, do_sample)
    return predictions, accept_length(block, predictions)


class JacobiDraft:
    """Draft source for Jacobi decoding: the model's own predictions from the last forward, then filler tokens.

    Filler (`draft_init`): `"prompt"` samples tokens uniformly from the row's prompt (the reference's choice),
    `"repeat"` repeats the last known token. Sampling uses its own seeded generator so runs are reproducible; under
    greedy decoding the output never depends on the draft, only the speed does.
    """

    def __init__(self, prompt_ids, prompt_mask, block_size: int, draft_init: str, seed: int):
        self.block_size = block_size
        self.draft_init = draft_init
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self.prompt_ids = prompt_ids
        # Sampling weights over prompt positions; padding is never drawn.
        weights = torch.ones_like(prompt_ids, dtype=torch.float) if prompt_mask is None else prompt_mask.float()
        self.prompt_weights = weights.cpu()
        self.guess = prompt_ids.new_empty((prompt_ids.shape[0], 0))

    def get_candidates(self, last_tokens: torch.LongTensor, length: int) -> torch.LongTensor:
        """A block of `length` tokens: the last committed token, then carried predictions, then filler.

        Args:
            last_tokens (`torch.LongTensor` of shape `(batch,)`): last generated token (not in the cache yet).
        Returns:
            `torch.LongTensor` of shape `(batch, length)`.
        """
        guess = self.guess[:, : length - 1]
        n_fill = length - 1 - guess.shape[1]
        if n_fill > 0:
            last = guess[:, -1] if guess.shape[1] else last_tokens
            guess = torch.cat([guess, self.filler(n_fill, last)], dim=1)
        return torch.cat([last_tokens[:, None], guess], dim=1)

    def filler(self, n_fill: int, last_tokens: torch.LongTensor) -> torch.LongTensor:
        """`n_fill` initial-guess tokens per row, shape `(batch, n_fill)`."""
        if self.draft_init == "prompt":
            idx = torch.multinomial(self.prompt_weights, n_fill, replacement=True, generator=self.generator)
            return self.prompt_ids.gather(1, idx.to(self.prompt_ids.device))
        return last_tokens[:, None].expand(-1, n_fill)

    def update_candidate_strategy(self, predictions: torch.LongTensor, num_accepted: int) -> None:
        """Keep the predictions past the accepted prefix as the next draft (the Jacobi fixed-point iteration)."""
        self.guess = predictions[:, num_accepted:]


def jacobi_setting(name: str, value, generation_config: GenerationConfig):
    """A Jacobi setting from the generate kwarg, else the GenerationConfig attribute, else the default."""
    if value is None:
        value = getattr(generation_config, name, None)
    return JACOBI_DEFAULTS[name] if value is None else value


def _max_positions(config) -> int | None:
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def validate_jacobi_inputs(model, generation_config: GenerationConfig, block_size, draft_init, prompt_length: int):
    """Refuse every setting under which Jacobi decoding would not give the greedy output, saying what to do."""
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"`block_size` must be an int >= 1 (tokens decoded in parallel), got {block_size!r}.")
    if draft_init not in DRAFT_INITS:
        raise ValueError(f"`draft_init` must be one of {DRAFT_INITS}, got {draft_init!r}.")
    if model.config.is_encoder_decoder:
        raise ValueError(
            "Jacobi decoding supports decoder-only causal LMs; this model is encoder-decoder. "
            "Drop `generation_mode='jacobi'` to use its usual decoding."
        )
    if generation_config.num_beams is not None and generation_config.num_beams > 1:
        raise ValueError(
            f"Jacobi decoding is greedy and cannot run beam search (num_beams={generation_config.num_beams}). "
            "Set num_beams=1 or drop `generation_mode='jacobi'`."
        )
    if generation_config.prompt_lookup_num_tokens is not None:
        raise ValueError("Jacobi decoding cannot be combined with prompt lookup decoding; use one of them.")
    if generation_config.output_attentions or generation_config.output_hidden_states:
        raise ValueError(
            "Jacobi decoding does not return attentions or hidden states (one forward covers several tokens). "
            "Set output_attentions=False and output_hidden_states=False."
        )
    if generation_config.use_cache is False:
        raise ValueError("Jacobi decoding reuses the KV cache of accepted tokens; pass use_cache=True.")
    if generation_config.max_new_tokens is not None and generation_config.max_new_tokens < 1:
        raise ValueError(f"`max_new_tokens` must be >= 1, got {generation_config.max_new_tokens}.")
    max_positions = _max_positions(model.config)
    if max_positions is not None and prompt_length >= max_positions:
        raise ValueError(
            f"The prompt has {prompt_length} tokens but the model handles at most {max_positions} positions; "
            "shorten or truncate the prompt."
        )
    if max_positions is not None and generation_config.max_length > max_positions:
        raise ValueError(
            f"Prompt ({prompt_length} tokens) + new tokens would reach {generation_config.max_length} positions, past "
            f"the model's maximum of {max_positions}; lower max_new_tokens to at most {max_positions - prompt_length}."
        )


def jacobi_decode(
    model,
    input_ids: torch.LongTensor,
    logits_processor,
    stopping_criteria,
    generation_config: GenerationConfig,
    synced_gpus: bool = False,
    jacobi_streamer=None,
    block_size: int | None = None,
    draft_init: str | None = None,
    draft_seed: int | None = None,
    verify_fn=None,
    **model_kwargs,
):
    r"""Jacobi decoding, called by `GenerationMixin.generate` as a `custom_generate` callable.

    Each iteration feeds a block of `block_size` draft tokens after the committed ones, accepts the longest exact
    prefix (`accept_length`), commits those tokens' KV entries and crops the rest of the cache, and drafts the next
    block from the model's predictions. Under greedy decoding the output equals greedy decoding token for token; under
    sampling (`do_sample=True`, with any logits processors and warpers) it follows the same distribution as ordinary
    sampling (see `verify_block`).

    With batch > 1 every row commits the same number of tokens per forward (the smallest among unfinished rows), so
    the cache stays rectangular and sliding-window layers see exactly the positions greedy decoding would.

    Args:
        input_ids (`torch.LongTensor` of shape `(batch, prompt_length)`): the prompt (left-padded for batches).
        logits_processor, stopping_criteria, generation_config: prepared by `generate`.
        jacobi_streamer (`BaseStreamer`, *optional*): receives the prompt, then the accepted tokens as accepted.
        block_size (`int`): tokens decoded in parallel per forward (default 16).
        draft_init (`str`): filler for the draft, `"prompt"` or `"repeat"`.
        draft_seed (`int`): seed of the filler sampler.
        verify_fn (`Callable`, *optional*): replaces `verify_block` (same signature and results), e.g. the fused
            kernel from `hf_jacobi.kernels.get_verify_fn()`.
        model_kwargs: `cache`, `attention_mask`, `position_ids`, ... prepared by `generate`.

    Returns:
        `torch.LongTensor` of shape `(batch, prompt_length + new_tokens)` or, with `return_dict_in_generate=True`,
        a `JacobiGenerateOutput`.
    """
    block_size = jacobi_setting("block_size", block_size, generation_config)
    draft_init = jacobi_setting("draft_init", draft_init, generation_config)
    draft_seed = jacobi_setting("draft_seed", draft_seed, generation_config)
    batch_size, prompt_length = input_ids.shape
    validate_jacobi_inputs(model, generation_config, block_size, draft_init, prompt_length)
    if synced_gpus:
        raise ValueError("Jacobi decoding does not support synced_gpus (DeepSpeed ZeRO-3 / FSDP generation).")
    cache = model_kwargs.get("cache")
    if cache is None:
        raise ValueError(
            f"{type(model).__name__} did not provide a KV cache; Jacobi decoding needs one to reuse accepted tokens."
        )

    streamer = jacobi_streamer
    if streamer is not None:
        streamer.put(input_ids.cpu())
    max_length = generation_config.max_length
    do_sample = bool(generation_config.do_sample)
    return_dict = generation_config.return_dict_in_generate
    scores = () if (return_dict and generation_config.output_scores) else None
    raw_logits = () if (return_dict and generation_config.output_logits) else None
    pad_token_id = generation_config._pad_token_tensor
    has_eos_stopping_criteria = any(hasattr(criteria, "eos_token_id") for criteria in stopping_criteria)
    if has_eos_stopping_criteria and pad_token_id is None:
        raise ValueError("Set `pad_token_id` (finished rows are filled with it).")
    attention_mask = model_kwargs.get("attention_mask")
    takes_position_ids = "position_ids" in inspect.signature(model.forward).parameters
    unfinished = torch.ones(batch_size, dtype=torch.bool, device=input_ids.device)
    draft = JacobiDraft(input_ids, attention_mask, block_size, draft_init, draft_seed)
    verify = verify_block if verify_fn is None else verify_fn

    # Prefill: the prompt, as ordinary generation does.
    prefill_kwargs = {k: v for k, v in model_kwargs.items() if k not in ("use_cache",)}
    outputs = model(input_ids=input_ids, use_cache=True, return_dict=True, **prefill_kwargs)
    cache = outputs.cache if getattr(outputs, "cache", None) is not None else cache
    if not cache.is_croppable:
        raise ValueError(
            f"The cache of {type(model).__name__} ({type(cache).__name__}) cannot be rolled back exactly (recurrent "
            "or fixed-size layers), so rejected draft tokens could not be discarded. Use a DynamicCache "
            "(cache_implementation=None) or a model with attention layers only."
        )
    # Sliding-window layers must keep states past the window until `crop` says which ones are accepted.
    cache.activate_past_recording()
    logits = outputs.logits[:, -1:].to(dtype=torch.float32)
    del outputs

    def emit(tokens, step_scores, step_logits):
        """Append one column of tokens, apply EOS padding and stopping criteria; returns whether all rows stopped."""
        nonlocal input_ids, unfinished, scores, raw_logits, attention_mask
        if has_eos_stopping_criteria:
            tokens = torch.where(unfinished, tokens, pad_token_id)
        input_ids = torch.cat([input_ids, tokens[:, None]], dim=-1)
        if attention_mask is not None:
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones((batch_size, 1))], dim=-1)
        if scores is not None:
            scores += (step_scores,)
        if raw_logits is not None:
            raw_logits += (step_logits,)
        unfinished = unfinished & ~stopping_criteria(input_ids, step_scores)
        return not unfinished.any()

    first_scores = logits_processor(input_ids, logits[:, 0])
    done = emit(select_tokens(first_scores, do_sample), first_scores, logits[:, 0])
    if streamer is not None:
        streamer.put(input_ids[:, -1:].cpu())

    accepted = []
    while not done:
        cur_length = input_ids.shape[1]
        # Never draft past max_length: a block of n tokens commits at most n new ones.
        n = min(block_size, max_length - cur_length)
        block = draft.get_candidates(input_ids[:, -1], n)
        if attention_mask is not None:
            block_mask = torch.cat([attention_mask, attention_mask.new_ones((batch_size, n - 1))], dim=-1)
            start = attention_mask.sum(-1, keepdim=True) - 1
        else:
            block_mask = None
            start = torch.full((batch_size, 1), cur_length - 1, device=input_ids.device)
        forward_kwargs = {"position_ids": start + torch.arange(n, device=input_ids.device)} if takes_position_ids else {}
        outputs = model(
            input_ids=block, attention_mask=block_mask, cache=cache, use_cache=True, return_dict=True, **forward_kwargs
        )
        block_logits = outputs.logits.to(dtype=torch.float32)
        del outputs
        if len(logits_processor) > 0:
            # Position i is scored as if generated after the committed tokens and draft[1..i].
            context = torch.cat([input_ids, block[:, 1:]], dim=-1)
            block_scores = torch.stack(
                [logits_processor(context[:, : cur_length + i], block_logits[:, i]) for i in range(n)], dim=1
            )
        else:
            block_scores = block_logits
        predictions, row_accept = verify(block, block_scores, do_sample)

        # Rows share one commit length so the cache stays rectangular; finished rows do not hold the others back.
        num_accepted = int(row_accept[unfinished].min()) if unfinished.any() else n
        for i in range(num_accepted):
            done = emit(predictions[:, i], block_scores[:, i], block_logits[:, i])
            if done:
                num_accepted = i + 1
                break
        if streamer is not None:
            streamer.put(input_ids[:, -num_accepted:].cpu())
        accepted.append(num_accepted)
        # Keep the KV entries of the accepted draft tokens (draft[:, :num_accepted]), drop the rest.
        cache.crop(-(n - num_accepted))
        draft.update_candidate_strategy(predictions, num_accepted)

    if streamer is not None:
        streamer.end()
    if not return_dict:
        return input_ids
    num_forwards = len(accepted)
    return JacobiGenerateOutput(
        sequences=input_ids,
        scores=scores,
        logits=raw_logits,
        cache=cache,
        num_forwards=num_forwards,
        accepted_tokens=torch.tensor(accepted, dtype=torch.long),
        tokens_per_forward=(sum(accepted) / num_forwards) if num_forwards else None,
    )


def route_to_jacobi(arguments: dict, model) -> dict:
    """Rewrite `generate` arguments so that `generate` runs `jacobi_decode` with everything it needs.

    `generate` withholds two things from a `custom_generate` callable: the streamer (it only receives the prompt) and
    the tokenizer (so `stop_strings` would fail). The streamer is passed under its own name and stop strings are turned
    into a `StopStringCriteria` here.
    """
    arguments = dict(arguments)
    arguments.pop("generation_mode", None)
    arguments["jacobi_streamer"] = arguments.pop("streamer", None)
    tokenizer = arguments.pop("tokenizer", None)
    config = arguments.get("generation_config") or model.generation_config
    stop_strings = arguments.get("stop_strings") or getattr(config, "stop_strings", None)
    if stop_strings:
        if tokenizer is None:
            raise ValueError("`stop_strings` needs the model's tokenizer: pass `tokenizer=` to generate.")
        criteria = StoppingCriteriaList(arguments.get("stopping_criteria") or [])
        criteria.append(StopStringCriteria(tokenizer=tokenizer, stop_strings=stop_strings))
        arguments["stopping_criteria"], arguments["stop_strings"] = criteria, None
    arguments["custom_generate"] = jacobi_decode
    return arguments


def generate(model, *args, **kwargs):
    """Entry point of the Hub `custom_generate` layout: runs `generate` with Jacobi decoding as the decoding loop.

    `generate` hands a loaded `custom_generate/generate.py` its raw arguments; this forwards them to the standard
    `generate`, which prepares config, processors, stopping criteria and cache, then calls `jacobi_decode`.
    """
    return GenerationMixin.generate(model, *args, **route_to_jacobi(kwargs, model))
