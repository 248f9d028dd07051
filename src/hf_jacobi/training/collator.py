"""Collator for Jacobi Forcing: one packed sequence per example, with its block-structured attention mask.

Per example, the packed sequence is `[prompt | k_0 | c_0 | k_1 | c_1 | ... | k_{T-1} | c_{T-1}]` (arXiv 2512.14681, the packed training sequence):
`k_j` is the noisy block and `c_j` the clean block (fixed point) at block `j`. Both use the positions
`P + j*n .. P + j*n + n-1`, so one forward gives the clean (teacher) and noisy (student) logits of every block.

Visibility (which token sees which) is the rule of `masks.py`, shared with trajectory collection.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from transformers import PreTrainedTokenizerBase
from transformers.data.data_collator import DataCollatorMixin

from .masks import CLEAN, MASK_CONTEXTS, NOISY, PAD, PROMPT, jacobi_attention_mask, jacobi_block_mask

IGNORE_INDEX = -100
ATTN_IMPLEMENTATIONS = ("sdpa", "eager", "flex_attention")


def _as_id_list(ids: Any) -> list[int]:
    if isinstance(ids, torch.Tensor):
        return ids.tolist()
    return [int(i) for i in ids]


@dataclass
class JacobiForcingCollator(DataCollatorMixin):
    """Collate packed Jacobi Forcing examples into one padded batch with a 4D (or Flex) attention mask.

    Each example holds `prompt_ids` (`list[int]`), `noisy_blocks` and `clean_blocks` (`list[list[int]]`, `T` blocks
    of `n` ids), as produced by [`pack_trajectories`]; other keys (`noise_ratios`, `record_index`, ...) are ignored
    except `record_index`, which error messages name.

    Args:
        tokenizer (`PreTrainedTokenizerBase`, *optional*):
            Source of `pad_token_id` and `eos_token_id` when those are not given.
        pad_token_id (`int`, *optional*):
            Id used to right-pad `input_ids`. Required (here or through `tokenizer`).
        eos_token_id (`int` or `list[int]`, *optional*):
            End of sequence: clean tokens after the first EOS of the clean continuation are padding, so they are
            neither AR targets nor consistency targets. `None` disables this.
        block_size (`int`, *optional*):
            Block size `n`. `None` reads it from each batch (all blocks of a batch must agree).
        mask_context (`str`, *optional*, defaults to `"noisy"`):
            What earlier context a noisy block sees: the earlier noisy blocks (`"noisy"`, the default of the upstream implementation, hao-ai-lab/JacobiForcing, and
            what multi-block decoding needs) or the earlier clean blocks (`"clean"`).
        attn_implementation (`str`, *optional*, defaults to `"sdpa"`):
            Mask format. `"sdpa"`: boolean, True = visible. `"eager"`: additive float (0 / dtype min), because eager
            attention adds the mask to the scores, so a boolean mask would be silently wrong. `"flex_attention"`: a
            FlexAttention `BlockMask`.
        mask_dtype (`torch.dtype`, *optional*, defaults to `torch.float32`):
            Dtype of the additive eager mask; use the model's dtype.
        device (`str` or `torch.device`, *optional*, defaults to `"cpu"`):
            Device of the Flex `BlockMask` (must be the model's device; keep DataLoader workers at 0 for CUDA).
        train_on_prompt (`bool`, *optional*, defaults to `True`):
            Whether the AR loss also predicts the prompt tokens, as in the upstream recipe (hao-ai-lab/JacobiForcing). The prediction of the
            first clean token from the prompt's last token is always a target.
        consistency_horizon (`int`, *optional*):
            Count only the first `consistency_horizon` noisy positions from a block's first wrong token. The next
            forward accepts a carried prediction only if every one before it was right, so positions far past the
            first error rarely matter, and predicting many tokens ahead of it is what a model cannot learn on unseen
            text. `None` counts them all (the reference).
        max_length (`int`, *optional*):
            Limit on the packed length `P + 2*T*n`. Longer examples raise (never truncated).
        max_positions (`int`, *optional*):
            The model's `max_position_embeddings`. Examples whose positions `P + T*n` exceed it raise.

    Returns (from `__call__`), with `S` the longest packed length and `L = max(T) * n`:
        - `input_ids` (`LongTensor [B, S]`), right-padded with `pad_token_id`.
        - `position_ids` (`LongTensor [B, S]`): prompt `0..P-1`; `k_j` and `c_j` both `P+j*n .. P+j*n+n-1`; pads 0.
        - `attention_mask`: `BoolTensor [B, 1, S, S]` (sdpa), `FloatTensor [B, 1, S, S]` (eager) or `BlockMask`.
        - `shift_labels` (`LongTensor [B, S]`): AR target of the logits at each position, already shifted (the
          transformers `shift_labels` convention): along the clean sequence `prompt + c_0 + c_1 + ...`, so the last
          prompt token predicts `c_0[0]` and the last token of `c_{j-1}` predicts `c_j[0]`. -100 elsewhere.
        - `noisy_index`, `clean_index` (`LongTensor [B, L]`): packed position of offset `i` of `k_j` (resp. `c_j`)
          at `j*n + i`; 0 past the example's blocks.
        - `consistency_mask` (`BoolTensor [B, L]`): which noisy positions the consistency loss counts: offsets from
          the first index where `k_j` and `c_j` differ (at most `consistency_horizon` of them), and before the first
          EOS of the clean continuation.
        - `num_blocks` (`LongTensor [B]`): `T` per example.
    """

    tokenizer: PreTrainedTokenizerBase | None = None
    pad_token_id: int | None = None
    eos_token_id: int | Sequence[int] | None = None
    block_size: int | None = None
    mask_context: str = "noisy"
    attn_implementation: str = "sdpa"
    mask_dtype: torch.dtype = torch.float32
    device: str | torch.device = "cpu"
    train_on_prompt: bool = True
    consistency_horizon: int | None = None
    max_length: int | None = None
    max_positions: int | None = None
    return_tensors: str = "pt"

    def __post_init__(self):
        if self.pad_token_id is None and self.tokenizer is not None:
            self.pad_token_id = self.tokenizer.pad_token_id
        if self.pad_token_id is None:
            raise ValueError(
                "JacobiForcingCollator needs a padding token id. The tokenizer has no pad token: set "
                "`tokenizer.pad_token = tokenizer.eos_token` or pass `pad_token_id=...`."
            )
        if self.eos_token_id is None and self.tokenizer is not None:
            self.eos_token_id = self.tokenizer.eos_token_id
        if self.mask_context not in MASK_CONTEXTS:
            raise ValueError(f"`mask_context` must be one of {MASK_CONTEXTS}, got {self.mask_context!r}.")
        if self.attn_implementation not in ATTN_IMPLEMENTATIONS:
            raise ValueError(
                f"`attn_implementation` must be one of {ATTN_IMPLEMENTATIONS}, got {self.attn_implementation!r}. "
                "Other kernels (e.g. flash attention) cannot take an arbitrary 4D mask."
            )
        horizon = self.consistency_horizon
        if horizon is not None and (isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1):
            raise ValueError(f"`consistency_horizon` must be a positive integer or None, got {horizon!r}.")
        if self.return_tensors != "pt":
            raise ValueError("JacobiForcingCollator only returns PyTorch tensors (`return_tensors='pt'`).")

    def _eos_ids(self) -> list[int]:
        if self.eos_token_id is None:
            return []
        return [self.eos_token_id] if isinstance(self.eos_token_id, int) else list(self.eos_token_id)

    def _first_eos(self, clean: torch.Tensor) -> int:
        """Index of the first EOS in the clean continuation (its length when there is none): later tokens are padding."""
        eos_ids = self._eos_ids()
        hits = torch.isin(clean, torch.tensor(eos_ids)).nonzero() if eos_ids else torch.empty(0)
        return int(hits[0]) if len(hits) else len(clean)

    def _counted(self, offsets: torch.Tensor, first_diff: torch.Tensor) -> torch.Tensor:
        """`[blocks, n]`: the offsets from each block's first wrong token on, at most `consistency_horizon` of them."""
        after = offsets[None, :] - first_diff[:, None]
        counted = after >= 0
        if self.consistency_horizon is not None:
            counted &= after < self.consistency_horizon
        return counted

    def _layout(self, i: int, example: dict[str, Any], block_size: int | None) -> dict[str, torch.Tensor]:
        """Packed tensors of one example (all 1D, length `S_i = P + 2*T*n`, or `T*n` for the block indices)."""
        name = f"Example {i} of the batch" + (
            f" (record {example['record_index']})" if example.get("record_index") is not None else ""
        )
        missing = [field for field in ("prompt_ids", "noisy_blocks") if example.get(field) is None]
        if example.get("clean_blocks") is None and example.get("clean_ids") is None:
            missing.append("clean_blocks (or clean_ids)")
        if missing:
            raise ValueError(
                f"{name}: packed field(s) {', '.join(missing)} missing. Pack trajectory records with "
                "`pack_trajectories` (or decoding-state records with `pack_states`) first."
            )
        if example.get("noisy_starts") is not None:
            return self._state_layout(name, example, block_size)
        prompt = torch.tensor(_as_id_list(example["prompt_ids"]), dtype=torch.long)
        noisy_blocks, clean_blocks = example["noisy_blocks"], example["clean_blocks"]
        if len(prompt) == 0:
            raise ValueError(f"{name}: 'prompt_ids' is empty.")
        if len(noisy_blocks) != len(clean_blocks) or len(clean_blocks) == 0:
            raise ValueError(
                f"{name}: needs the same, non-zero number of noisy and clean blocks, got {len(noisy_blocks)} and "
                f"{len(clean_blocks)}."
            )
        n = block_size if block_size is not None else len(clean_blocks[0])
        for field, blocks in (("noisy_blocks", noisy_blocks), ("clean_blocks", clean_blocks)):
            for j, blk in enumerate(blocks):
                if len(blk) != n:
                    raise ValueError(
                        f"{name}: block {j} of '{field}' has {len(blk)} tokens, expected block_size={n}. Data of "
                        "another block size (another curriculum stage) needs its own block_size."
                    )
        noisy = torch.tensor([_as_id_list(b) for b in noisy_blocks], dtype=torch.long)  # [T, n]
        clean = torch.tensor([_as_id_list(b) for b in clean_blocks], dtype=torch.long)  # [T, n]
        P, T = len(prompt), len(clean)
        if self.max_positions is not None and P + T * n > self.max_positions:
            raise ValueError(
                f"{name}: prompt ({P}) + {T} blocks of {n} needs {P + T * n} positions, more than the model's "
                f"max_position_embeddings={self.max_positions}."
            )
        if self.max_length is not None and P + 2 * T * n > self.max_length:
            raise ValueError(
                f"{name}: packed length {P + 2 * T * n} exceeds max_length={self.max_length} (packed sequences are "
                "never truncated)."
            )

        offsets = torch.arange(n)
        blocks = torch.arange(T)
        block_ids = blocks[:, None].expand(T, n)  # [T, n]
        block_pos = P + blocks[:, None] * n + offsets  # [T, n] shared positions of k_j and c_j
        noisy_index = P + 2 * blocks[:, None] * n + offsets  # [T, n] packed index of k_j[i]
        clean_index = noisy_index + n

        def interleave(a, b):  # [T, n], [T, n] -> [2*T*n] as k_0 c_0 k_1 c_1 ...
            return torch.stack([a, b], dim=1).reshape(-1)

        input_ids = torch.cat([prompt, interleave(noisy, clean)])
        kind = torch.cat([torch.full((P,), PROMPT), interleave(torch.full((T, n), NOISY), torch.full((T, n), CLEAN))])
        block = torch.cat([torch.full((P,), -1), interleave(block_ids, block_ids)])
        position_ids = torch.cat([torch.arange(P), interleave(block_pos, block_pos)])

        # First EOS in the clean continuation: tokens after it are padding
        clean_flat = clean.reshape(-1)  # [T*n]
        first_eos = self._first_eos(clean_flat)
        g = torch.arange(T * n)  # index along the clean continuation

        # AR targets along prompt + c_0 + c_1 ..., pre-shifted
        shift_labels = torch.full_like(input_ids, IGNORE_INDEX)
        if self.train_on_prompt:
            shift_labels[: P - 1] = prompt[1:]
        shift_labels[P - 1] = clean_flat[0]
        has_target = g[:-1] < first_eos  # logits at clean token g predict g+1, up to and including the EOS
        shift_labels[clean_index.reshape(-1)[:-1][has_target]] = clean_flat[1:][has_target]

        # Consistency: offsets from the first difference between k_j and c_j, and before the first EOS
        differs = noisy != clean  # [T, n]
        first_diff = torch.where(differs.any(dim=1), differs.int().argmax(dim=1), n)  # [T]
        counted = self._counted(offsets, first_diff).reshape(-1) & (g < first_eos)

        return {
            "input_ids": input_ids,
            "position_ids": position_ids,
            "kind": kind,
            "block": block,
            "start": block,
            "shift_labels": shift_labels,
            "noisy_index": noisy_index.reshape(-1),
            "clean_index": clean_index.reshape(-1),
            "consistency_mask": counted,
        }

    def _state_layout(self, name: str, example: dict[str, Any], block_size: int | None) -> dict[str, torch.Tensor]:
        """State layout `[prompt | clean continuation | s_0 | s_1 | ...]`: any number of noisy states, each a draft of
        `n` tokens that starts at `noisy_starts[b]` along the continuation, as the decoder meets it (any iterate of any
        block, or a sliding block at any offset). State `b` sees the prompt, the clean tokens before its start, and
        itself causally, at the positions of the clean tokens it stands for; its teacher is the clean logits there.
        The clean continuation appears once, however many states are trained on it.
        """
        prompt = torch.tensor(_as_id_list(example["prompt_ids"]), dtype=torch.long)
        clean = torch.tensor(_as_id_list(example["clean_ids"]), dtype=torch.long)
        starts = _as_id_list(example["noisy_starts"])
        states = example["noisy_blocks"]
        P, C, B = len(prompt), len(clean), len(states)
        if P == 0 or C == 0:
            raise ValueError(f"{name}: 'prompt_ids' and 'clean_ids' must be non-empty.")
        if B == 0 or len(starts) != B:
            raise ValueError(f"{name}: needs as many 'noisy_starts' as 'noisy_blocks' (non-zero), got {len(starts)} and {B}.")
        n = block_size if block_size is not None else len(states[0])
        for b, (state, s) in enumerate(zip(states, starts)):
            if len(state) != n:
                raise ValueError(f"{name}: noisy block {b} has {len(state)} tokens, expected block_size={n}.")
            if not 0 <= s <= C - n:
                raise ValueError(
                    f"{name}: noisy block {b} starts at {s}; a block of {n} must lie within the {C} clean tokens."
                )
        if self.max_positions is not None and P + C > self.max_positions:
            raise ValueError(f"{name}: prompt ({P}) + continuation ({C}) exceeds max_position_embeddings={self.max_positions}.")
        if self.max_length is not None and P + C + B * n > self.max_length:
            raise ValueError(f"{name}: packed length {P + C + B * n} exceeds max_length={self.max_length} (never truncated).")
        noisy = torch.tensor([_as_id_list(x) for x in states], dtype=torch.long)  # [B, n]
        start = torch.tensor(starts, dtype=torch.long)  # [B]
        offsets = torch.arange(n)
        along = start[:, None] + offsets  # [B, n] index along the continuation

        input_ids = torch.cat([prompt, clean, noisy.reshape(-1)])
        kind = torch.cat([torch.full((P,), PROMPT), torch.full((C,), CLEAN), torch.full((B * n,), NOISY)])
        block = torch.cat([torch.full((P + C,), -1), torch.arange(B).repeat_interleave(n)])
        start_of = torch.cat([torch.full((P,), -1), torch.arange(C), start.repeat_interleave(n)])
        position_ids = torch.cat([torch.arange(P + C), (P + along).reshape(-1)])

        first_eos = self._first_eos(clean)
        shift_labels = torch.full_like(input_ids, IGNORE_INDEX)
        if self.train_on_prompt:
            shift_labels[: P - 1] = prompt[1:]
        shift_labels[P - 1] = clean[0]
        g = torch.arange(C - 1)
        has_target = g < first_eos
        shift_labels[P + g[has_target]] = clean[1:][has_target]

        differs = noisy != clean[along]
        first_diff = torch.where(differs.any(dim=1), differs.int().argmax(dim=1), n)
        counted = self._counted(offsets, first_diff) & (along < first_eos)
        return {
            "input_ids": input_ids,
            "position_ids": position_ids,
            "kind": kind,
            "block": block,
            "start": start_of,
            "shift_labels": shift_labels,
            "noisy_index": (P + C + torch.arange(B * n)),
            "clean_index": (P + along).reshape(-1),
            "consistency_mask": counted.reshape(-1),
        }

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        layouts = [self._layout(i, ex, self.block_size) for i, ex in enumerate(examples)]
        block_sizes = {len(ex["noisy_blocks"][0]) for ex in examples}
        if len(block_sizes) > 1:
            raise ValueError(f"Examples of one batch have different block sizes {sorted(block_sizes)}.")

        def pad(key: str, value) -> torch.Tensor:
            tensors = [layout[key] for layout in layouts]
            out = torch.full((len(tensors), max(len(t) for t in tensors)), value, dtype=tensors[0].dtype)
            for row, t in enumerate(tensors):
                out[row, : len(t)] = t
            return out

        kind = pad("kind", PAD)
        block = pad("block", -1)
        start = pad("start", -1)
        # The state layout is defined with clean context (the decoder's committed tokens are clean)
        context = "clean" if any(ex.get("noisy_starts") is not None for ex in examples) else self.mask_context
        if self.attn_implementation == "flex_attention":
            attention_mask = jacobi_block_mask(kind, block, context, device=self.device, start=start)
        else:
            visible = jacobi_attention_mask(kind, block, context, start=start)
            if self.attn_implementation == "eager":
                attention_mask = torch.zeros(visible.shape, dtype=self.mask_dtype).masked_fill(
                    ~visible, torch.finfo(self.mask_dtype).min
                )
            else:
                attention_mask = visible
        return {
            "input_ids": pad("input_ids", self.pad_token_id),
            "attention_mask": attention_mask,
            "position_ids": pad("position_ids", 0),
            "shift_labels": pad("shift_labels", IGNORE_INDEX),
            "noisy_index": pad("noisy_index", 0),
            "clean_index": pad("clean_index", 0),
            "consistency_mask": pad("consistency_mask", False),
            "num_blocks": torch.tensor([len(ex["noisy_blocks"]) for ex in examples], dtype=torch.long),
        }
