# Copyright 2026 The hf_jacobi authors. Apache-2.0.
"""Draft sources for Jacobi decoding, after transformers' `CandidateGenerator`.

Every source implements the same two methods. Before a forward, `get_candidates(step)` returns the candidate drafts
`(batch, rows, length)`, given those of the sources before it (`step.candidates`); after it,
`update_candidate_strategy(step, verification)` learns what was accepted. Sources never touch the cache or decide
acceptance: the loop (`decoding.jacobi_decode`) owns both, so any source is lossless by construction.

Row 0 of every sequence is *the draft*: the Jacobi block, which the loop keeps on ties. Further rows are alternative
candidates verified in the same forward (fresh tails, recycled n-grams, context lookup). Positions equal to
`UNDRAFTED` have not been filled yet; the Jacobi block source fills them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .verification import Verification

#: Marks draft positions no source has filled yet.
UNDRAFTED = -1


@dataclass
class DraftStep:
    """What the draft sources see for one forward.

    Args:
        input_ids (`torch.LongTensor` of shape `(batch, committed)`): prompt and committed tokens; the last one is
            not in the cache yet and starts every draft.
        unfinished (`torch.BoolTensor` of shape `(batch,)`): sequences still generating.
        block_size (`int`): `n` of this forward (fixed, or chosen by `block_size="auto"`).
        max_length (`int`): most draft tokens this forward may feed (a draft of `m` tokens commits at most `m`).
        candidates (`torch.LongTensor` of shape `(batch, rows, length)`): the candidates so far; before the first
            source, `(batch, 1, 1)`: the last committed token.
        tail_parents (`torch.LongTensor` of shape `(T,)`, *optional*): filler tokens to feed behind the draft in its
            own sequence, each seeing the draft up to the given index (`JacobiConfig.fresh_tails`); they are not
            verified, only their predictions are kept (`Verification.tail_predictions`).
    """

    input_ids: torch.LongTensor
    unfinished: torch.BoolTensor
    block_size: int
    max_length: int
    candidates: torch.LongTensor
    tail_parents: torch.LongTensor | None = None

    @property
    def length(self) -> int:
        return self.candidates.shape[-1]


class CandidateSource:
    """Base class of the draft sources. Subclasses override one or both methods."""

    def get_candidates(self, step: DraftStep) -> torch.LongTensor:
        """The candidates `(batch, rows, length)` after this source: `step.candidates`, extended or with rows added."""
        return step.candidates

    def update_candidate_strategy(self, step: DraftStep, verification: Verification) -> None:
        """Learn from the forward that verified `step.candidates` (`verification.num_accepted` tokens committed)."""


def resize(candidates: torch.LongTensor, length: int) -> torch.LongTensor:
    """`candidates` cut or padded with `UNDRAFTED` to `length` positions."""
    if length <= candidates.shape[-1]:
        return candidates[..., :length]
    pad = candidates.new_full((*candidates.shape[:-1], length - candidates.shape[-1]), UNDRAFTED)
    return torch.cat([candidates, pad], dim=-1)


def add_rows(candidates: torch.LongTensor, new_rows: list[list[list[int]]]) -> torch.LongTensor:
    """Append candidate rows per sequence, skipping duplicates; sequences with fewer rows repeat their draft.

    Args:
        candidates (`torch.LongTensor` of shape `(batch, rows, length)`): row 0 is the draft; rows equal to it pad.
        new_rows (`list[list[list[int]]]`): per sequence, rows of `length` tokens to add, best first.
    """
    table = []
    for rows, extra in zip(candidates.tolist(), new_rows):
        draft, kept = rows[0], []
        seen = {tuple(draft)}
        for row in rows[1:] + extra:
            if tuple(row) not in seen:
                seen.add(tuple(row))
                kept.append(row)
        table.append([draft, *kept])
    num_rows = max(len(rows) for rows in table)
    if num_rows == candidates.shape[1]:
        return candidates
    table = [rows + [rows[0]] * (num_rows - len(rows)) for rows in table]
    return torch.tensor(table, dtype=candidates.dtype, device=candidates.device)


def prompt_lookup(tokens: list[int], max_ngram: int, max_tokens: int | None = None) -> list[int]:
    """The tokens that followed the most recent earlier occurrence of the last `k` tokens (`k = max_ngram .. 1`) in
    `tokens` (prompt and output so far), as in prompt lookup decoding; `[]` when there is none.

    With `max_tokens`, at most that many; a continuation that runs into the end of `tokens` goes on as a copy of itself
    (the match overlaps what it predicts, as in LZ77), so periodic text is drafted past one period.
    """
    for k in range(min(max_ngram, len(tokens) - 1), 0, -1):
        suffix = tokens[-k:]
        for start in range(len(tokens) - k - 1, -1, -1):
            if tokens[start : start + k] == suffix:
                found = tokens[start + k :]
                if max_tokens is not None:
                    found = (found * math.ceil(max_tokens / len(found)))[:max_tokens]
                return found
    return []


def lookup_rows(context: torch.LongTensor, max_ngram: int, max_tokens: int, unfinished=None) -> list[list[int]]:
    """`prompt_lookup` for every row of `context` (prompt and committed tokens), at most `max_tokens` tokens each.

    Rows outside the boolean mask `unfinished` (finished sequences, which only pad) get `[]`: a match of theirs would
    widen or lengthen the batch's shared block for nothing.
    """
    alive = [True] * context.shape[0] if unfinished is None else unfinished.tolist()
    return [prompt_lookup(tokens, max_ngram, max_tokens) if keep else [] for tokens, keep in zip(context.tolist(), alive)]


class JacobiDraft(CandidateSource):
    """The Jacobi block: the model's own predictions from the last forward, then filler tokens.

    Filler (`draft_init`): `"prompt"` samples tokens uniformly from the row's prompt (the paper's choice), `"repeat"`
    repeats the last known token, a token id puts that token everywhere. Sampling uses its own seeded generator so
    runs are reproducible; under greedy decoding the output never depends on the draft, only the speed does. It fills
    every `UNDRAFTED` position of the draft row, up to `block_size` tokens (or what an earlier source asked for).
    """

    def __init__(self, prompt_ids, prompt_mask, block_size: int, draft_init: str | int = "prompt", seed: int = 0,
                 carry: str = "all", tails: int = 0):
        self.block_size = block_size
        self.draft_init = draft_init
        self.carry = carry
        self.tails = tails
        self.generator = torch.Generator(device="cpu").manual_seed(seed)
        self.prompt_ids = prompt_ids
        # Sampling weights over prompt positions; padding is never drawn, except in a row that is all padding.
        weights = torch.ones_like(prompt_ids, dtype=torch.float) if prompt_mask is None else prompt_mask.float()
        weights[weights.sum(-1) == 0] = 1.0
        self.prompt_weights = weights.cpu()
        self.guess = prompt_ids.new_empty((prompt_ids.shape[0], 0))

    def draft_length(self, block_size: int) -> int:
        """Tokens to draft for block size `n` (with tails: `tails` of them, the rest of the `n` feeds the tails)."""
        return self.tails or block_size

    def get_candidates(self, step: DraftStep) -> torch.LongTensor:
        length = min(max(step.length, self.draft_length(step.block_size)), step.max_length)
        if self.tails:
            step.tail_parents = self.tail_parents(length, step.max_length)
        candidates = resize(step.candidates, length)
        last_tokens = candidates[:, 0, 0]
        guess = self.guess[:, : length - 1]
        n_fill = length - 1 - guess.shape[1]
        if n_fill > 0:
            last = guess[:, -1] if guess.shape[1] else last_tokens
            guess = torch.cat([guess, self.filler(n_fill, last)], dim=1)
        block = torch.cat([last_tokens[:, None], guess], dim=1)
        draft = candidates[:, 0]
        candidates[:, 0] = torch.where(draft == UNDRAFTED, block, draft)
        return candidates

    def tail_parents(self, length: int, max_length: int) -> torch.LongTensor:
        """Behind each draft prefix `[0..j]` (`j < tails`), a tail of `(n - tails) // tails` fillers at positions
        `j + 1, ...`: the state `[c, g_1..g_j, filler...]` a fresh block starts from after `j` accepted guesses. Near
        `max_length` tails stop at the last position generation can reach."""
        size = (self.block_size - self.tails) // self.tails
        parents = [j for j in range(min(length, self.tails)) for _ in range(max(0, min(size, max_length - j)))]
        return torch.tensor(parents, dtype=torch.long)

    def filler(self, n_fill: int, last_tokens: torch.LongTensor) -> torch.LongTensor:
        """`n_fill` initial-guess tokens per row, shape `(batch, n_fill)`."""
        if self.draft_init == "prompt" and self.prompt_ids.shape[1] > 0:
            idx = torch.multinomial(self.prompt_weights, n_fill, replacement=True, generator=self.generator)
            return self.prompt_ids.gather(1, idx.to(self.prompt_ids.device))
        if isinstance(self.draft_init, int):
            return last_tokens.new_full((last_tokens.shape[0], n_fill), self.draft_init)
        return last_tokens[:, None].expand(-1, n_fill)

    def update_candidate_strategy(self, step: DraftStep, verification: Verification) -> None:
        """Keep the predictions past the accepted prefix as the next draft (the Jacobi fixed-point iteration).

        With `carry="clean"` (a token-id filler only), a prediction made after a draft token that was neither
        accepted nor filler (a wrong or unverified guess) is dropped for the filler: the next draft then holds only
        predictions made from exact tokens and filler, the states `pack_states(filler_token_id=...)` trains. Every
        row that accepted the committed tokens fed them alike, so the predictions are carried from the one with the
        most clean predictions past them (the kept row on ties): with `FreshTailRows`, the row whose filler starts
        where the accepted prefix ends.
        """
        start = verification.num_accepted
        if self.tails:
            # the tail behind the accepted prefix: predictions made from exact tokens and filler only; where another
            # row (context lookup) committed past what the draft accepted, no tail saw the committed tokens
            behind = (step.tail_parents == start - 1).to(verification.tail_predictions.device)
            saw = verification.accepted[:, 0] >= start
            self.guess = verification.tail_predictions[:, behind].masked_fill(~saw[:, None], self.draft_init)
            return
        if self.carry != "clean":
            self.guess = verification.tokens[:, start:]
            return
        fed, accepted = verification.candidates, verification.accepted  # (batch, rows, length), (batch, rows)
        position = torch.arange(fed.shape[-1], device=fed.device)
        guessed = (fed != self.draft_init) & (position >= accepted[..., None])
        clean = (guessed.cumsum(-1) == 0)[..., start:]
        rows = torch.arange(fed.shape[1], device=fed.device)
        score = 2 * clean.sum(-1) + (rows == verification.chosen[:, None])
        best = score.masked_fill(accepted < start, -1).argmax(-1)
        # finished sequences (fewer accepted than the shared commit) keep their own row
        best = torch.where(accepted.gather(1, best[:, None])[:, 0] >= start, best, verification.chosen)
        batch = torch.arange(fed.shape[0], device=fed.device)
        guess = verification.predictions[batch, best, start:]
        self.guess = guess.masked_fill(~clean[batch, best], self.draft_init)


class MultiBlockDraft(JacobiDraft):
    r"""Multi-block drafting (arXiv 2512.14681, multi-block decoding, without the recycling part): up to `num_blocks` blocks of `n` tokens in
    flight, adapted to the sliding-block loop.

    Mapping to the paper's scheme:

    - The *real-active block* is the first `n` draft tokens, `[last committed token, carried predictions...]`: the
      block whose prefix is verified against the committed context, exactly as with `num_blocks=1`.
    - *Pseudo-active blocks* are further tokens appended behind it, drafted on top of its unverified tail (filler at
      first). A block of `n` tokens is spawned only once the real-active block is confident: in the last forward at
      least `ceil(spawn_ratio * n)` of its `n` positions were settled, i.e. the draft token equalled the model's
      prediction from the position before (accepted tokens, and unverified tokens that reproduced themselves: fixed
      points of the Jacobi iteration). With every position accepted this is the paper's "the real-active block has
      accepted `ceil(r*n)` tokens"; with a stable unverified tail it spawns before the tail is verified. Spawning
      makes the next draft one block longer than the last one, so confident forwards grow the draft one block at a
      time up to `num_blocks` blocks.
    - Pseudo-active tokens are iterated like the rest of the draft: the model's predictions at their positions are
      carried as their next draft. Without a spawn they stay in flight, the draft ending where the last one ended,
      while the committed prefix moves into them; that is the paper's "when the real-active block completes, the next
      block becomes real-active": its first tokens are now in the first `n` draft positions and re-verified there.
      The draft shrinks back to `n` tokens once the committed prefix has passed them.
    - Losslessness needs no extra argument: the whole draft is one sequence verified by `accept_length`, so a
      pseudo-active token is committed only when it equals the prediction made from an exact prefix.

    The draft length is at least `n` and at most `num_blocks * n`; with `num_blocks=1` this is `JacobiDraft`.
    """

    def __init__(self, prompt_ids, prompt_mask, block_size: int, draft_init: str | int = "prompt", seed: int = 0,
                 num_blocks: int = 1, spawn_ratio: float = 0.85, carry: str = "all", tails: int = 0):
        super().__init__(prompt_ids, prompt_mask, block_size, draft_init, seed, carry, tails)
        self.num_blocks = num_blocks
        self.spawn_ratio = spawn_ratio
        self.spawn = False
        self.last_length = 0

    def draft_length(self, block_size: int) -> int:
        """Spawning: one block more than the last draft. Otherwise: up to the end of the last draft (the bonus token
        and the carried predictions), so the tokens in flight stay. Always between `n` and `num_blocks * n`."""
        if self.num_blocks == 1:
            return super().draft_length(block_size)
        if self.spawn:
            length = max(block_size, self.last_length) + block_size
        else:
            length = max(block_size, 1 + self.guess.shape[1])
        return min(self.num_blocks * block_size, length)

    def update_candidate_strategy(self, step: DraftStep, verification: Verification) -> None:
        """Carry the predictions past the accepted prefix and decide whether to spawn a pseudo-active block: every
        unfinished sequence must be confident."""
        super().update_candidate_strategy(step, verification)
        if self.num_blocks == 1:
            return
        block, predictions, n = verification.block, verification.tokens, step.block_size
        self.last_length = block.shape[1]
        m = min(n, block.shape[1])
        settled = 1 + (block[:, 1:m] == predictions[:, : m - 1]).sum(-1)
        if step.unfinished.any():
            settled = settled[step.unfinished]
        self.spawn = int(settled.min()) >= math.ceil(self.spawn_ratio * n)


class FreshTailRows(CandidateSource):
    """Rows that verify only the first `j` guesses of the draft (`j = 0 .. num_rows - 1`) and feed the filler after
    them: `[last token, g_1, ..., g_j, filler, ...]`. Whatever prefix of the guesses is right, one row's filler starts
    right behind it, so its predictions there are made from exact tokens and filler: the fresh-block state that
    `--states fresh` trains. The clean carry takes them (`JacobiDraft`), and the next forward verifies new guesses
    instead of spending a filler-only forward after each rejection. Costs `num_rows` more rows per forward."""

    def __init__(self, filler: int, num_rows: int):
        self.filler = filler
        self.num_rows = num_rows

    def get_candidates(self, step: DraftStep) -> torch.LongTensor:
        drafts, length = step.candidates[:, 0].tolist(), step.length
        rows = [[draft[: 1 + j] + [self.filler] * (length - 1 - j) for j in range(min(self.num_rows, length - 1))]
                if keep else [] for draft, keep in zip(drafts, step.unfinished.tolist())]
        return add_rows(step.candidates, rows)  # rows equal to the draft (e.g. an all-filler draft) are skipped


class ContextLookupDraft(CandidateSource):
    """Context lookup in the draft (`lookup_mode="draft"`): what followed the last `max_ngram` (down to 1) committed
    tokens where they occurred before replaces the first draft tokens, and the block grows to hold up to `num_tokens`
    of it (default: up to `block_size - 1`). One row per sequence, no cache copies: the setting for CPUs, where every
    fed token and every extra row costs. Sequences without a match keep their Jacobi draft."""

    def __init__(self, max_ngram: int, num_tokens: int | None = None):
        self.max_ngram = max_ngram
        self.num_tokens = num_tokens

    def get_candidates(self, step: DraftStep) -> torch.LongTensor:
        cap = step.block_size - 1 if self.num_tokens is None else self.num_tokens
        found = lookup_rows(step.input_ids, self.max_ngram, cap, step.unfinished)
        length = min(max(step.length, 1 + max(len(tokens) for tokens in found)), step.max_length)
        candidates = resize(step.candidates, length)
        for row, tokens in enumerate(found):
            tokens = tokens[: length - 1]
            if tokens:
                candidates[row, 0, 1 : 1 + len(tokens)] = torch.tensor(tokens, dtype=candidates.dtype, device=candidates.device)
        return candidates


class ContextLookupRows(CandidateSource):
    """Context lookup as one more candidate row (`lookup_mode="row"`): prompt lookup decoding's draft, verified beside
    the Jacobi draft in the same forward; best where extra rows cost little (GPUs)."""

    def __init__(self, max_ngram: int, num_tokens: int | None = None):
        self.max_ngram = max_ngram
        self.num_tokens = num_tokens

    def get_candidates(self, step: DraftStep) -> torch.LongTensor:
        # With fresh tails the rows share the draft row's width, its draft and its tails: the tail positions stay
        # UNDRAFTED in row 0 (fed as the filler, never accepted) and the lookup row verifies a continuation that long.
        num_tails = 0 if step.tail_parents is None else len(step.tail_parents)
        length = step.length + num_tails
        # Near max_length the draft with its tails is wider than what is left to generate: the row keeps that width
        # (its last positions hold filler, never accepted) and verifies only what can still be committed.
        reach = min(length, step.max_length)
        cap = reach - 1 if self.num_tokens is None else min(self.num_tokens, reach - 1)
        found = lookup_rows(step.input_ids, self.max_ngram, cap, step.unfinished)
        candidates = resize(step.candidates, length)
        drafts = candidates[:, 0].tolist()
        rows = [[[draft[0], *tokens] + draft[1 + len(tokens) :]] if tokens else [] for draft, tokens in zip(drafts, found)]
        candidates = add_rows(candidates, rows)
        return step.candidates if num_tails and candidates.shape[1] == 1 else candidates


class RejectionRecycling(CandidateSource):
    r"""Rejection recycling (arXiv 2512.14681, multi-block decoding with rejection recycling): a pool of n-grams from rejected draft tails, verified as extra batch rows.

    After each forward, a sequence's draft is rejected at its first wrong position `a`; the tail from there,
    `[d_a, ..., d_m, g_m]`, extended while each draft token equals the model's prediction after the one before it
    (`d_{j+1} == g_j`), is a self-consistent n-gram of the model's own predictions that failed only because `d_a` was
    not the right token at that position. It is pooled, keyed by its first token `d_a` (at most `pool_size` n-grams
    per sequence, oldest dropped first). When a later last committed token equals the key, the candidate draft
    `[key, rest of the n-gram, draft tokens after it]` is verified in the same forward as an extra batch row; the loop
    keeps the row with the longest accepted prefix (ties go to the draft).
    """

    def __init__(self, batch_size: int, pool_size: int):
        self.pool_size = pool_size
        self.pools: list[list[tuple[int, ...]]] = [[] for _ in range(batch_size)]

    def get_candidates(self, step: DraftStep) -> torch.LongTensor:
        length = step.length
        rows = []
        for draft, pool, keep in zip(step.candidates[:, 0].tolist(), self.pools, step.unfinished.tolist()):
            ngrams = [ngram for ngram in reversed(pool) if ngram[0] == draft[0]] if keep else []  # most recent first
            rows.append([list(ngram[:length]) + draft[len(ngram) :] for ngram in ngrams])
        return add_rows(step.candidates, rows)

    def update_candidate_strategy(self, step: DraftStep, verification: Verification) -> None:
        """Pool the rejected tail of each unfinished sequence's draft (row 0)."""
        self.pool_rejected(verification.candidates[:, 0], verification.predictions[:, 0],
                           verification.accepted[:, 0], step.unfinished)

    def pool_rejected(self, block, predictions, accepted, rows=None) -> None:
        """Args: `block`, `predictions` `(batch, length)`: drafts and the model's tokens; `accepted` `(batch,)`: each
        draft's accepted length; `rows` `(batch,)` bool, optional: the sequences to update."""
        length = block.shape[1]
        keep = [True] * block.shape[0] if rows is None else rows.tolist()
        # matches[j]: d_{j+1} == g_j, the draft token after position j is the model's prediction from position j.
        matches = (block[:, 1:] == predictions[:, :-1]).tolist()
        rows_data = zip(keep, block.tolist(), predictions.tolist(), accepted.tolist(), matches, self.pools)
        for update, draft, preds, a, row_matches, pool in rows_data:
            if not update or a >= length:
                continue
            m = a
            while m < length - 1 and row_matches[m]:
                m += 1
            ngram = tuple(draft[a : m + 1]) + (preds[m],)
            if ngram in pool:
                pool.remove(ngram)
            pool.append(ngram)
            if len(pool) > self.pool_size:
                del pool[0]


def build_candidate_sources(config, input_ids: torch.LongTensor, attention_mask=None) -> list[CandidateSource]:
    """The draft sources for `config` (a `JacobiConfig`), in the order they draft: lookup in the draft, the Jacobi
    block, fresh-tail rows, recycled rows, lookup rows. Like transformers' `_get_candidate_generator`."""
    sources: list[CandidateSource] = []
    if config.lookup_ngram and config.lookup_mode == "draft":
        sources.append(ContextLookupDraft(config.lookup_ngram, config.lookup_num_tokens))
    sources.append(
        MultiBlockDraft(input_ids, attention_mask, config.block_size, config.draft_init, config.draft_seed,
                        num_blocks=config.num_blocks, spawn_ratio=config.spawn_ratio, carry=config.draft_carry,
                        tails=config.fresh_tails)
    )
    if config.fresh_rows:
        sources.append(FreshTailRows(config.draft_init, config.fresh_rows))
    if config.pool_size:
        sources.append(RejectionRecycling(input_ids.shape[0], config.pool_size))
    if config.lookup_ngram and config.lookup_mode == "row":
        sources.append(ContextLookupRows(config.lookup_ngram, config.lookup_num_tokens))
    return sources
