# Copyright 2026 The hf_jacobi authors. Apache-2.0.
"""Pure-torch reference of the Jacobi verification step; the Triton kernel must return exactly the same tensors."""

from __future__ import annotations

from typing import NamedTuple

import torch


class VerifyOutput(NamedTuple):
    """Result of one verification step.

    Attributes:
        predictions (`torch.LongTensor` of shape `(rows, n)`): argmax of the logits at every block position (the first
            maximal index on ties, as `torch.argmax`).
        accepted (`torch.LongTensor` of shape `(rows,)`): accepted prefix length of every row, in `[1, n]`:
            `1 + #` leading `i` with `draft[:, i + 1] == predictions[:, i]`.
        best (`torch.LongTensor` of shape `(batch,)`): per sequence, the candidate with the longest accepted prefix
            (lowest candidate index on ties), in `[0, num_candidates)`.
        next_draft (`torch.LongTensor` of shape `(batch, n)`): the best row's predictions after its accepted prefix,
            `predictions[best_row, accepted:]`, left-aligned and padded with `fill_value`.
    """

    predictions: torch.Tensor
    accepted: torch.Tensor
    best: torch.Tensor
    next_draft: torch.Tensor


def check_inputs(draft: torch.Tensor, logits: torch.Tensor, num_candidates: int) -> tuple[int, int, int]:
    """Validate shapes; returns `(batch, num_candidates, n)`."""
    if draft.dim() != 2 or logits.dim() != 3 or logits.shape[:2] != draft.shape:
        raise ValueError(
            f"Expected draft (rows, n) and logits (rows, n, vocab), got {tuple(draft.shape)} and {tuple(logits.shape)}."
        )
    rows, n = draft.shape
    if n < 1 or logits.shape[-1] < 1:
        raise ValueError("The block and the vocabulary must not be empty.")
    if num_candidates < 1 or rows % num_candidates:
        raise ValueError(f"rows ({rows}) must be a multiple of num_candidates ({num_candidates}).")
    return rows // num_candidates, num_candidates, n


def accept_length(draft: torch.Tensor, predictions: torch.Tensor) -> torch.Tensor:
    """The Jacobi acceptance rule (same as `hf_jacobi.accept_length`)."""
    matches = (draft[:, 1:] == predictions[:, :-1]).long()
    return 1 + matches.cumprod(dim=-1).sum(dim=-1)


def verify_reference(
    draft: torch.Tensor, logits: torch.Tensor, num_candidates: int = 1, fill_value: int = 0
) -> VerifyOutput:
    """Jacobi verification in plain torch: argmax, accepted prefixes, best candidate per sequence, next draft.

    Args:
        draft (`torch.LongTensor` of shape `(batch * num_candidates, n)`): the blocks fed to the model; rows are
            grouped by sequence, `row = b * num_candidates + c`.
        logits (`torch.Tensor` of shape `(batch * num_candidates, n, vocab)`): (processed) logits at the block
            positions.
        num_candidates (`int`): candidate rows per sequence.
        fill_value (`int`): filler for the positions of `next_draft` past the best row's predictions.
    """
    batch, num_candidates, n = check_inputs(draft, logits, num_candidates)
    predictions = logits.argmax(dim=-1)
    accepted = accept_length(draft, predictions)
    # torch.argmax returns the first maximal index, so ties go to the lowest candidate.
    best = accepted.view(batch, num_candidates).argmax(dim=-1)
    best_rows = torch.arange(batch, device=draft.device) * num_candidates + best
    best_predictions, best_accepted = predictions[best_rows], accepted[best_rows]
    source = best_accepted[:, None] + torch.arange(n, device=draft.device)
    shifted = best_predictions.gather(1, source.clamp(max=n - 1))
    next_draft = torch.where(source < n, shifted, torch.full_like(shifted, fill_value))
    return VerifyOutput(predictions, accepted, best, next_draft)


def select_tokens(scores: torch.Tensor, do_sample: bool) -> torch.Tensor:
    """argmax, or a sample of the processed distribution (as hf_jacobi selects tokens)."""
    if not do_sample:
        return scores.argmax(-1)
    probs = torch.softmax(scores, dim=-1)
    return torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1).reshape(probs.shape[:-1])
