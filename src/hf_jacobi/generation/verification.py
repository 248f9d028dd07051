# Copyright 2026 The hf_jacobi authors. Apache-2.0.
"""Verification: the model's token at every draft position, how many draft tokens are exact, and which candidate row
each sequence keeps. `accept_length` is the only implementation of the acceptance rule in the package; the decoding
loop, the fused kernel's reference and trajectory collection all call it."""

from __future__ import annotations

from dataclasses import dataclass

import torch


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


def select_tokens(scores: torch.FloatTensor, do_sample: bool, group_size: int = 1) -> torch.LongTensor:
    """The model's token at every position: argmax, or a sample of the processed distribution.

    With `group_size > 1` (sampling only) the rows come in groups of `group_size` consecutive rows that share their
    random numbers: every row still gets an exact sample of its own distribution (an exponential race, `argmax(p / E)`
    with `E ~ Exp(1)` per token), and rows of a group whose distributions are equal get the same token. Candidate rows
    of one sequence see the same exact prefix up to where their drafts differ, so they all reveal prefixes of one and
    the same sampled continuation, and keeping the longest one reveals more of it without biasing it.

    Args:
        scores (`torch.FloatTensor` of shape `(rows, ..., vocab)`): processed logits.
        group_size (`int`): rows per group of shared randomness; `rows` must be a multiple of it.
    """
    if not do_sample:
        return scores.argmax(-1)
    probs = torch.softmax(scores, dim=-1)
    if group_size == 1:
        return torch.multinomial(probs.reshape(-1, probs.shape[-1]), 1).reshape(probs.shape[:-1])
    grouped = probs.reshape(-1, group_size, *probs.shape[1:])
    race = torch.empty((grouped.shape[0], 1, *grouped.shape[2:]), device=probs.device, dtype=probs.dtype)
    return (grouped / race.exponential_()).argmax(-1).reshape(probs.shape[:-1])


def verify_block(block: torch.LongTensor, scores: torch.FloatTensor, do_sample: bool = False, group_size: int = 1):
    """One Jacobi verification: the model's token at every block position and how many draft tokens are exact.

    Under sampling a draft token is kept only when the token sampled before it equals it: it is accepted with
    probability p(d), and on rejection the emitted token is a sample of p restricted to tokens other than d. That is
    the speculative-sampling rule for a deterministic draft, so every emitted token follows the model's own sampling
    distribution given the exact prefix.

    Args:
        block (`torch.LongTensor` of shape `(rows, n)`): the drafts fed to the model.
        scores (`torch.FloatTensor` of shape `(rows, n, vocab)`): processed logits at the block positions.
        group_size (`int`): candidate rows per sequence that share random numbers under sampling (`select_tokens`).

    Returns:
        `(predictions, accepted)`: `(rows, n)` tokens and `(rows,)` accepted lengths in `[1, n]`.
    """
    predictions = select_tokens(scores, do_sample, group_size)
    return predictions, accept_length(block, predictions)


def choose_rows(accepted: torch.LongTensor, num_rows: int) -> torch.LongTensor:
    """Per sequence, the candidate row with the longest accepted prefix; ties go to the first row (the draft).

    Args:
        accepted (`torch.LongTensor` of shape `(batch * num_rows,)`): accepted lengths, `num_rows` rows per sequence.

    Returns:
        `torch.LongTensor` of shape `(batch,)`: the chosen row of each sequence, in `[0, num_rows)`.
    """
    return accepted.view(-1, num_rows).argmax(-1)  # argmax returns the first of equal maxima


@dataclass
class Verification:
    """What one forward established, per sequence and candidate row.

    Args:
        candidates (`torch.LongTensor` of shape `(batch, rows, length)`): the drafts that were fed.
        predictions (`torch.LongTensor` of shape `(batch, rows, length)`): the model's token at every position.
        accepted (`torch.LongTensor` of shape `(batch, rows)`): each row's accepted length, in `[1, length]`.
        chosen (`torch.LongTensor` of shape `(batch,)`): the row each sequence keeps (longest prefix, draft on ties).
        num_accepted (`int`): tokens committed by every sequence (the loop sets it: the smallest among unfinished
            sequences, so the cache stays rectangular).
        tail_predictions (`torch.LongTensor` of shape `(batch, T)`, *optional*): the model's greedy tokens at the
            filler tails fed behind the draft (`DraftStep.tail_parents`): guesses for the next draft, never committed.
    """

    candidates: torch.LongTensor
    predictions: torch.LongTensor
    accepted: torch.LongTensor
    chosen: torch.LongTensor
    num_accepted: int = 0
    tail_predictions: torch.LongTensor | None = None

    @property
    def kept_rows(self) -> torch.LongTensor:
        """Flat row index (into `batch * rows`) of each sequence's chosen row."""
        batch, rows = self.accepted.shape
        return torch.arange(batch, device=self.chosen.device) * rows + self.chosen

    @property
    def block(self) -> torch.LongTensor:
        """The chosen draft of each sequence, `(batch, length)`."""
        return self.candidates.gather(1, self._index()).squeeze(1)

    @property
    def tokens(self) -> torch.LongTensor:
        """The model's tokens along each sequence's chosen row, `(batch, length)`."""
        return self.predictions.gather(1, self._index()).squeeze(1)

    @property
    def row_accepted(self) -> torch.LongTensor:
        """Accepted length of each sequence's chosen row, `(batch,)`."""
        return self.accepted.gather(1, self.chosen[:, None]).squeeze(1)

    def _index(self):
        return self.chosen[:, None, None].expand(-1, 1, self.candidates.shape[-1])


def verify_candidates(candidates: torch.LongTensor, scores: torch.FloatTensor, do_sample: bool,
                      verify_fn=None) -> Verification:
    """Verify every candidate row of every sequence in one go and choose a row per sequence.

    This is the one place where predictions, acceptance and the row choice are computed, for the torch path and the
    fused-kernel path alike (`verify_fn`, same signature and results as `verify_block`). Sampled forwards with several
    candidate rows use `verify_block` itself: its shared random numbers keep the choice of row unbiased.

    Args:
        candidates (`torch.LongTensor` of shape `(batch, rows, length)`): the drafts fed to the model.
        scores (`torch.FloatTensor` of shape `(batch * rows, length, vocab)`): processed logits.
    """
    batch, num_rows, length = candidates.shape
    rows = candidates.reshape(batch * num_rows, length)
    if num_rows > 1 and do_sample:
        predictions, accepted = verify_block(rows, scores, do_sample, group_size=num_rows)
    else:
        predictions, accepted = (verify_fn or verify_block)(rows, scores, do_sample)
    chosen = choose_rows(accepted, num_rows)
    return Verification(candidates, predictions.view(batch, num_rows, length), accepted.view(batch, num_rows), chosen)
