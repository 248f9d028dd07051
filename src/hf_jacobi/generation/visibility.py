# Copyright 2026 The hf_jacobi authors. Apache-2.0.
"""The one visibility rule of Jacobi Forcing's block-structured attention (`visible`), shared by training
(`hf_jacobi.training.masks`: packed sequences, trajectory collection) and decoding (`tail_attention_mask`: the tree of
fresh tails fed behind a draft). It lives in `generation` so that decoding needs nothing else from the package.

Visibility (query -> keys), as the attention mask of arXiv 2512.14681; every row sees a causal chain of tokens, so its
logits equal those of a plain causal forward over exactly the tokens it sees:

- prompt: causal within the prompt;
- clean tokens: the prompt and the clean tokens before them (the noisy blocks between are skipped);
- a noisy block, noisy context: the prompt, the earlier noisy blocks, causal within itself;
- a noisy block, clean context: the prompt, the clean tokens before its start, causal within itself;
- padding: itself only (a row that sees nothing would make softmax NaN).
"""

from __future__ import annotations

import torch

PAD, PROMPT, NOISY, CLEAN = 0, 1, 2, 3


def visible(kind_q, block_q, start_q, idx_q, kind_k, block_k, start_k, idx_k, context_kind: int):
    """Whether query token `q` may attend to key token `k`; all arguments broadcast against each other.

    `kind_*` is one of PAD/PROMPT/NOISY/CLEAN, `block_*` the noisy block's id (the block index in the interleaved
    layout), `start_*` where a token sits along the clean continuation (a clean token: its index, or its block index
    in the interleaved layout; a noisy token: its block's start), `idx_*` the index in the packed sequence,
    `context_kind` the kind of the earlier tokens a noisy block sees (NOISY or CLEAN).
    """
    causal = idx_k <= idx_q
    main_q = (kind_q == PROMPT) | (kind_q == CLEAN)
    main_k = (kind_k == PROMPT) | (kind_k == CLEAN)
    # The prompt and the clean continuation form one causal sequence (the noisy blocks between are skipped)
    main = main_q & main_k & causal
    noisy_q = kind_q == NOISY
    own_block = noisy_q & (kind_k == NOISY) & (block_k == block_q) & causal
    sees_prompt = noisy_q & (kind_k == PROMPT)
    if context_kind == CLEAN:  # the clean tokens before the block's start
        sees_earlier = noisy_q & (kind_k == CLEAN) & (start_k < start_q)
    else:  # the earlier noisy blocks
        sees_earlier = noisy_q & (kind_k == NOISY) & (block_k < block_q)
    pad_self = (kind_q == PAD) & (idx_q == idx_k)
    return main | own_block | sees_prompt | sees_earlier | pad_self


def tail_attention_mask(key_padding, draft_len: int, tail_parents, dtype):
    """Additive 4D mask `(batch, 1, m + T, cache_len + m + T)` for a decoding forward that feeds a draft of `m`
    tokens and, behind it, `T` filler tokens in tails (`JacobiConfig.fresh_tails`), after a cache of `cache_len`.

    The same rule as training with `mask_context="clean"`: the draft is the clean sequence (causal, after the cache's
    real slots), and a tail is a noisy block that sees the cache, the draft up to its parent and itself, causally
    (consecutive tail tokens with the same parent form one tail). So each tail position's logits are those of a plain
    causal forward over `[context, draft[: parent + 1], filler...]`.

    Args:
        key_padding (`torch.Tensor` of shape `(batch, cache_len)`): 1 for real cache slots, 0 for padding.
        draft_len (`int`): `m`, the draft tokens fed first.
        tail_parents (`torch.LongTensor` of shape `(T,)`): the last draft index each tail token sees.
        dtype: the model's compute dtype (additive, so eager attention is right too).
    """
    batch, cache_len = key_padding.shape
    device = key_padding.device
    tail_parents = tail_parents.to(device)
    num_tail = tail_parents.shape[0]
    kind = torch.cat([torch.where(key_padding.bool(), CLEAN, PAD),
                      torch.full((batch, draft_len), CLEAN, device=device),
                      torch.full((batch, num_tail), NOISY, device=device)], dim=-1)
    # where a token sits along the clean sequence: its slot; a tail token: the first slot its tail does not see
    block = torch.cat([torch.full((cache_len + draft_len,), -1, device=device), tail_parents])
    where = torch.cat([torch.arange(cache_len + draft_len, device=device), cache_len + tail_parents + 1])
    idx = torch.arange(cache_len + draft_len + num_tail, device=device)
    q = slice(cache_len, None)
    seen = visible(kind[:, q, None], block[q, None], where[q, None], idx[q, None],
                   kind[:, None, :], block[None, :], where[None, :], idx[None, :], CLEAN)
    return additive_mask(seen, dtype)


def additive_mask(seen, dtype):
    """`(batch, q, k)` visibility as an additive `(batch, 1, q, k)` mask of `dtype` (0 / dtype min): right for eager
    attention too, which adds a bool mask to the scores."""
    return torch.zeros(seen.shape, dtype=dtype, device=seen.device).masked_fill(~seen, torch.finfo(dtype).min)[:, None]
