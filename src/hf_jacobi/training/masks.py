"""Block-structured attention masks for Jacobi Forcing from the one visibility rule (`generation.visibility.visible`,
shared with decoding's tree of fresh tails), for training sequences
(`jacobi_attention_mask`, `jacobi_block_mask` for FlexAttention) and for the draft forwards of trajectory collection
(`draft_attention_mask`).

Visibility (query -> keys), as the attention mask of arXiv 2512.14681; every row sees a causal chain of tokens, so its logits equal those
of a plain causal forward over exactly the tokens it sees:

- prompt: causal within the prompt;
- clean tokens: the prompt and the clean tokens before them (the noisy blocks between are skipped);
- a noisy block, `mask_context="noisy"` (default, interleaved layout): the prompt, the earlier noisy blocks, causal
  within itself;
- a noisy block, `mask_context="clean"`: the prompt, the clean tokens before its start, causal within itself;
- padding: itself only (a row that sees nothing would make softmax NaN).

The masks are built from per-token metadata (segment kind, block index, start along the clean continuation, index)
by broadcasting, and the same rule serves as the FlexAttention `mask_mod`.
"""

from __future__ import annotations

import torch

# PROMPT is re-exported for the collator
from ..generation.visibility import CLEAN, NOISY, PAD, PROMPT, additive_mask  # noqa: F401
from ..generation.visibility import visible as _visible

MASK_CONTEXTS = ("noisy", "clean")


def jacobi_attention_mask(
    kind: torch.Tensor, block: torch.Tensor, mask_context: str = "noisy", start: torch.Tensor | None = None
) -> torch.Tensor:
    """Dense boolean visibility mask, True = visible.

    Args:
        kind (`torch.LongTensor` of shape `[B, S]`): segment kind of each token (PAD/PROMPT/NOISY/CLEAN).
        block (`torch.LongTensor` of shape `[B, S]`): block index of each token, -1 for prompt and padding.
        mask_context (`str`): `"noisy"` or `"clean"`, the context of noisy blocks.
        start (`torch.LongTensor` of shape `[B, S]`, *optional*): position along the clean continuation (state
            layout); `None` means the interleaved layout, where the block index says it.

    Returns:
        `torch.BoolTensor` of shape `[B, 1, S, S]`.
    """
    start = block if start is None else start
    idx = torch.arange(kind.shape[1], device=kind.device)
    context_kind = NOISY if mask_context == "noisy" else CLEAN
    query = (kind[:, :, None], block[:, :, None], start[:, :, None], idx[None, :, None])  # [B, S, 1]
    key = (kind[:, None, :], block[:, None, :], start[:, None, :], idx[None, None, :])  # [B, 1, S]
    visible = _visible(*query, *key, context_kind)
    return visible[:, None]


def jacobi_block_mask(kind: torch.Tensor, block: torch.Tensor, mask_context: str = "noisy", device=None, start=None):
    """FlexAttention `BlockMask` with the same visibility as [`jacobi_attention_mask`].

    Args:
        kind, block, start (`torch.LongTensor` of shape `[B, S]`): as in [`jacobi_attention_mask`].
        device: where the block mask (and the metadata its `mask_mod` reads) lives; it must be the model's device.
    """
    from torch.nn.attention.flex_attention import create_block_mask

    device = kind.device if device is None else torch.device(device)
    start = block if start is None else start
    kind, block, start = kind.to(device), block.to(device), start.to(device)
    context_kind = NOISY if mask_context == "noisy" else CLEAN

    def mask_mod(b, h, q_idx, kv_idx):
        query = (kind[b, q_idx], block[b, q_idx], start[b, q_idx], q_idx)
        return _visible(*query, kind[b, kv_idx], block[b, kv_idx], start[b, kv_idx], kv_idx, context_kind)

    batch_size, seq_len = kind.shape
    return create_block_mask(mask_mod, batch_size, None, seq_len, seq_len, device=device)


def draft_attention_mask(model, attention_mask, prompt_width, block_size, num_blocks, start, positions_ctx,
                         positions_draft, dtype):
    """Additive 4D masks `(batch, 1, T*m, cache_len + T*m)` for a trajectory-collection forward that feeds offsets
    `start..n-1` of `T` draft blocks at once (`m = n - start`) after a cache of prompt + clean continuation.

    The same rule as training: a draft block is a noisy block whose context is the clean tokens before it
    (`mask_context="clean"`). Block `j`'s offsets below `start` are exact, so its context is the cache slots before
    `prompt_width + j*n - 1 + start`. Additive, so eager attention is right too; models with a sliding window get it
    applied on positions, hybrid models one mask per layer type.
    """
    batch, cache_len = attention_mask.shape
    m = block_size - start
    device = attention_mask.device
    block_of_query = torch.arange(num_blocks * m, device=device) // m
    limit = prompt_width + block_of_query * block_size - 1 + start
    slots = torch.arange(cache_len, device=device)
    kind_cache = torch.where(attention_mask.bool(), CLEAN, PAD)  # (batch, cache_len)
    kind = torch.cat([kind_cache, torch.full((batch, num_blocks * m), NOISY, device=device)], dim=-1)
    block = torch.cat([torch.full((cache_len,), -1, device=device), block_of_query])
    where = torch.cat([slots, limit])  # along the clean continuation: a slot, or the block's first fed slot
    idx = torch.arange(cache_len + num_blocks * m, device=device)
    q = slice(cache_len, None)
    visible = _visible(
        kind[:, q, None], block[q, None], where[q, None], idx[q, None],
        kind[:, None, :], block[None, :], where[None, :], idx[None, :], CLEAN,
    )

    window = getattr(model.config, "sliding_window", None)
    if not window:
        return additive_mask(visible, dtype)
    key_positions = torch.cat([positions_ctx, positions_draft], dim=-1)
    in_window = (positions_draft[:, :, None] - key_positions[:, None, :]) < window
    layer_types = getattr(model.config, "layer_types", None)
    if layer_types and len(set(layer_types)) > 1:
        return {"full_attention": additive_mask(visible, dtype),
                "sliding_attention": additive_mask(visible & in_window, dtype)}
    return additive_mask(visible & in_window, dtype)
