# Copyright 2026 The hf_jacobi authors. Apache-2.0.
"""Jacobi decoding for any transformers causal LM, lossless under greedy decoding.

This file depends only on `torch` and `transformers`: it is copied verbatim to a Hub `custom_generate/generate.py`
by `hf_jacobi.export_custom_generate`, so `model.generate(custom_generate=<dir or repo>, trust_remote_code=True)` works
without hf_jacobi installed. Keep it self-contained.

Layout, after transformers' assisted decoding: draft sources propose tokens (`JacobiDraft`: the block;
`MultiBlockDraft`: the block plus pseudo-active blocks behind it; `RejectionPool`: recycled n-grams verified as extra
batch rows), and one routine (`jacobi_decode`) owns verification, acceptance (`accept_length`, the only implementation
of the rule), the choice among candidate rows and `cache.crop`.
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass

import torch
from transformers import GenerationConfig, GenerationMixin, StoppingCriteriaList, StopStringCriteria
from transformers.generation.utils import GenerateDecoderOnlyOutput

#: Jacobi settings read from `generate(...)` kwargs or, failing that, from attributes of the `GenerationConfig`.
JACOBI_DEFAULTS = {
    "block_size": 16,
    "draft_init": "prompt",
    "draft_seed": 0,
    "num_blocks": 1,
    "spawn_ratio": 0.85,
    "pool_size": 0,
    "lookup_ngram": 0,
    "lookup_mode": "row",
    "lookup_num_tokens": None,
}
LOOKUP_MODES = ("row", "draft")
DRAFT_INITS = ("prompt", "repeat")


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
            1 (the draft) + recycled candidates from the rejection pool.
        recycled_wins (`torch.LongTensor` of shape `(num_forwards,)`): sequences whose committed tokens came from a
            recycled candidate (it accepted strictly more than the draft) in each forward.
    """

    num_forwards: int | None = None
    accepted_tokens: torch.LongTensor | None = None
    tokens_per_forward: float | None = None
    draft_lengths: torch.LongTensor | None = None
    candidate_rows: torch.LongTensor | None = None
    recycled_wins: torch.LongTensor | None = None


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

    def get_candidates(self, last_tokens: torch.LongTensor, length: int, lookup=None) -> torch.LongTensor:
        """A block of `length` tokens: the last committed token, then carried predictions, then filler.

        Args:
            last_tokens (`torch.LongTensor` of shape `(batch,)`): last generated token (not in the cache yet).
            lookup (`list[list[int]]`, *optional*): per row, context-lookup tokens that replace the first draft tokens
                after the last committed one (`lookup_mode="draft"`).
        Returns:
            `torch.LongTensor` of shape `(batch, length)`.
        """
        guess = self.guess[:, : length - 1]
        n_fill = length - 1 - guess.shape[1]
        if n_fill > 0:
            last = guess[:, -1] if guess.shape[1] else last_tokens
            guess = torch.cat([guess, self.filler(n_fill, last)], dim=1)
        block = torch.cat([last_tokens[:, None], guess], dim=1)
        for row, tokens in enumerate(lookup or ()):
            tokens = tokens[: length - 1]
            if tokens:
                block[row, 1 : 1 + len(tokens)] = torch.tensor(tokens, dtype=block.dtype, device=block.device)
        return block

    def filler(self, n_fill: int, last_tokens: torch.LongTensor) -> torch.LongTensor:
        """`n_fill` initial-guess tokens per row, shape `(batch, n_fill)`."""
        if self.draft_init == "prompt":
            idx = torch.multinomial(self.prompt_weights, n_fill, replacement=True, generator=self.generator)
            return self.prompt_ids.gather(1, idx.to(self.prompt_ids.device))
        return last_tokens[:, None].expand(-1, n_fill)

    def update_candidate_strategy(self, predictions: torch.LongTensor, num_accepted: int) -> None:
        """Keep the predictions past the accepted prefix as the next draft (the Jacobi fixed-point iteration)."""
        self.guess = predictions[:, num_accepted:]


class MultiBlockDraft(JacobiDraft):
    r"""Multi-block drafting (spec §2, "MR" without the recycling part): up to `num_blocks` blocks of `n` tokens in
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

    def __init__(self, prompt_ids, prompt_mask, block_size: int, draft_init: str, seed: int, num_blocks: int = 1,
                 spawn_ratio: float = 0.85):
        super().__init__(prompt_ids, prompt_mask, block_size, draft_init, seed)
        self.num_blocks = num_blocks
        self.spawn_ratio = spawn_ratio
        self.spawn = False
        self.last_length = 0

    def draft_length(self, block_size: int) -> int:
        """Tokens to draft next for block size `n`.

        Spawning: one block more than the last draft. Otherwise: up to the end of the last draft (the bonus token and
        the carried predictions), so the tokens in flight stay. Always between `n` and `num_blocks * n`.
        """
        if self.num_blocks == 1:
            return block_size
        if self.spawn:
            length = max(block_size, self.last_length) + block_size
        else:
            length = max(block_size, 1 + self.guess.shape[1])
        return min(self.num_blocks * block_size, length)

    def update_candidate_strategy(self, predictions: torch.LongTensor, num_accepted: int, block=None,
                                  block_size: int | None = None, unfinished=None) -> None:
        """Carry the predictions past the accepted prefix and decide whether to spawn a pseudo-active block.

        Args:
            predictions (`torch.LongTensor` of shape `(batch, length)`): the model's tokens at the draft positions.
            num_accepted (`int`): tokens committed by this forward.
            block (`torch.LongTensor` of shape `(batch, length)`): the draft that was fed.
            block_size (`int`): `n` of this forward.
            unfinished (`torch.BoolTensor` of shape `(batch,)`): rows still generating; all rows must be confident.
        """
        super().update_candidate_strategy(predictions, num_accepted)
        if self.num_blocks == 1 or block is None:
            return
        self.last_length = block.shape[1]
        m = min(block_size, block.shape[1])
        settled = 1 + (block[:, 1:m] == predictions[:, : m - 1]).sum(-1)
        if unfinished is not None and unfinished.any():
            settled = settled[unfinished]
        self.spawn = int(settled.min()) >= math.ceil(self.spawn_ratio * block_size)


class RejectionPool:
    r"""Rejection recycling (spec §2): a pool of n-grams from rejected draft tails, verified as extra batch rows.

    After each forward, a row's draft is rejected at its first wrong position `a`; the tail from there,
    `[d_a, ..., d_m, g_m]`, extended while each draft token equals the model's prediction after the one before it
    (`d_{j+1} == g_j`), is a self-consistent n-gram of the model's own predictions that failed only because `d_a` was
    not the right token at that position. It is pooled, keyed by its first token `d_a` (at most `pool_size` n-grams
    per sequence, oldest dropped first). When a later last committed token equals the key, the candidate draft
    `[key, rest of the n-gram, draft tokens after it]` is verified in the same forward as an extra batch row; the loop
    keeps the row with the longest accepted prefix (ties go to the draft).

    Args:
        batch_size (`int`): sequences.
        pool_size (`int`): n-grams kept per sequence.
    """

    def __init__(self, batch_size: int, pool_size: int, lookup_ngram: int = 0, lookup_num_tokens: int | None = None):
        self.pool_size = pool_size
        self.lookup_ngram = lookup_ngram
        self.lookup_num_tokens = lookup_num_tokens
        self.pools: list[list[tuple[int, ...]]] = [[] for _ in range(batch_size)]

    @staticmethod
    def lookup(tokens: list[int], max_ngram: int, max_tokens: int | None = None) -> list[int]:
        """The tokens that followed the most recent earlier occurrence of the last `k` tokens (`k = max_ngram .. 1`)
        in `tokens` (prompt and output so far), as in prompt lookup decoding; `[]` when there is none.

        With `max_tokens`, at most that many; a continuation that runs into the end of `tokens` goes on as a copy of
        itself (the match overlaps what it predicts, as in LZ77), so periodic text is drafted past one period.
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

    @classmethod
    def lookup_rows(
        cls, context: torch.LongTensor, max_ngram: int, max_tokens: int, unfinished=None
    ) -> list[list[int]]:
        """`lookup` for every row of `context` (prompt and committed tokens), at most `max_tokens` tokens each.

        Rows outside the boolean mask `unfinished` (finished sequences, which only pad) get `[]`: a match of theirs
        would widen or lengthen the batch's shared block for nothing.
        """
        alive = [True] * context.shape[0] if unfinished is None else unfinished.tolist()
        return [cls.lookup(tokens, max_ngram, max_tokens) if keep else [] for tokens, keep in zip(context.tolist(), alive)]

    def get_candidates(self, block: torch.LongTensor, context: torch.LongTensor | None = None,
                       unfinished=None) -> torch.LongTensor | None:
        """Candidate drafts for every sequence: the draft first, then recycled n-grams whose key is `block[:, 0]`,
        then (with `lookup_ngram > 0`) the continuation of the context's last n-gram where it occurred before.

        Args:
            block (`torch.LongTensor` of shape `(batch, length)`): the draft of this forward.
            context (`torch.LongTensor` of shape `(batch, committed)`, *optional*): prompt and committed tokens, the
                last one being `block[:, 0]`; needed for the lookup candidates.
            unfinished (`torch.BoolTensor` of shape `(batch,)`, *optional*): sequences that get candidates; the
                others (finished) keep only their draft.

        Returns:
            `torch.LongTensor` of shape `(batch, rows, length)` with `rows - 1` candidates at most `pool_size`, row 0
            being the draft (sequences with fewer candidates repeat it), or `None` when no sequence has a candidate.
        """
        length = block.shape[1]
        drafts = block.tolist()
        if self.lookup_ngram > 0 and context is not None:
            cap = length - 1 if self.lookup_num_tokens is None else min(self.lookup_num_tokens, length - 1)
            lookups = self.lookup_rows(context, self.lookup_ngram, cap, unfinished)
        else:
            lookups = [[] for _ in drafts]
        alive = [True] * len(drafts) if unfinished is None else unfinished.tolist()
        candidates = []
        for draft, pool, found, keep in zip(drafts, self.pools, lookups, alive):
            ngrams = [ngram for ngram in reversed(pool) if ngram[0] == draft[0]] if keep else []  # most recent first
            if found:
                ngrams.append((draft[0], *found))
            rows, seen = [], {tuple(draft)}
            for ngram in ngrams:
                row = list(ngram[:length]) + draft[len(ngram) :]
                if tuple(row) not in seen:
                    seen.add(tuple(row))
                    rows.append(row)
            candidates.append(rows)
        num_rows = 1 + max(len(rows) for rows in candidates)
        if num_rows == 1:
            return None
        table = [[draft] + rows + [draft] * (num_rows - 1 - len(rows)) for draft, rows in zip(drafts, candidates)]
        return torch.tensor(table, dtype=block.dtype, device=block.device)

    def update_candidate_strategy(self, block: torch.LongTensor, predictions: torch.LongTensor,
                                  accepted: torch.LongTensor, rows=None) -> None:
        """Pool the rejected tail of each sequence's draft.

        Args:
            block, predictions (`torch.LongTensor` of shape `(batch, length)`): the drafts and the model's tokens.
            accepted (`torch.LongTensor` of shape `(batch,)`): each row's own accepted length.
            rows (`torch.BoolTensor` of shape `(batch,)`, *optional*): rows to update (the unfinished ones).
        """
        if self.pool_size == 0:
            return
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


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_auto_compatible(num_blocks, pool_size, lookup_ngram=0) -> None:
    """`block_size="auto"` models the cost of one block per sequence: refuse the options that add rows or blocks."""
    if num_blocks != 1 or pool_size != 0 or lookup_ngram != 0:
        raise ValueError(
            "`block_size='auto'` chooses the block size from forward timings of one block per sequence; it cannot "
            f"be combined with num_blocks={num_blocks!r}, pool_size={pool_size!r} or lookup_ngram={lookup_ngram!r}. "
            "Pass an int block_size with them, or drop them with 'auto'."
        )


def validate_jacobi_inputs(
    model,
    generation_config: GenerationConfig,
    block_size,
    draft_init,
    prompt_length: int,
    num_blocks=1,
    spawn_ratio=0.85,
    pool_size=0,
    block_size_policy=None,
    lookup_ngram=0,
    lookup_mode="row",
    lookup_num_tokens=None,
):
    """Refuse every setting under which Jacobi decoding would not give the greedy output, saying what to do."""
    if block_size == "auto":
        if block_size_policy is None:
            raise ValueError(
                "`block_size='auto'` is resolved by hf_jacobi (it times the model's forwards): `import hf_jacobi` and "
                "pass generation_mode='jacobi', or pass an int block_size to this custom_generate."
            )
        check_auto_compatible(num_blocks, pool_size, lookup_ngram)
    elif not _is_int(block_size) or block_size < 1:
        raise ValueError(
            f"`block_size` must be an int >= 1 (tokens decoded in parallel) or 'auto', got {block_size!r}."
        )
    if not _is_int(num_blocks) or num_blocks < 1:
        raise ValueError(
            f"`num_blocks` must be an int >= 1 (blocks in flight; 1 = plain Jacobi decoding), got {num_blocks!r}."
        )
    if isinstance(spawn_ratio, bool) or not isinstance(spawn_ratio, (int, float)) or not 0 < spawn_ratio <= 1:
        raise ValueError(
            "`spawn_ratio` must be a number in (0, 1] (share of the real-active block that must be settled before a "
            f"pseudo-active block is spawned; 0.85 in the paper), got {spawn_ratio!r}."
        )
    if not _is_int(pool_size) or pool_size < 0:
        raise ValueError(
            f"`pool_size` must be an int >= 0 (rejected n-grams kept per sequence; 0 turns recycling off), got "
            f"{pool_size!r}."
        )
    if not _is_int(lookup_ngram) or lookup_ngram < 0:
        raise ValueError(
            f"`lookup_ngram` must be an int >= 0 (n-gram size of context-lookup candidates; 0 turns them off), got "
            f"{lookup_ngram!r}."
        )
    if lookup_mode not in LOOKUP_MODES:
        raise ValueError(
            f"`lookup_mode` must be one of {LOOKUP_MODES} ('row': the lookup continuation is verified as an extra "
            f"candidate row; 'draft': it replaces the draft in the block itself), got {lookup_mode!r}."
        )
    if lookup_num_tokens is not None and (not _is_int(lookup_num_tokens) or lookup_num_tokens < 1):
        raise ValueError(
            f"`lookup_num_tokens` must be an int >= 1 (most context-lookup tokens per forward) or None (up to the "
            f"block), got {lookup_num_tokens!r}."
        )
    if lookup_ngram == 0 and (lookup_mode != "row" or lookup_num_tokens is not None):
        raise ValueError(
            f"`lookup_mode={lookup_mode!r}` / `lookup_num_tokens={lookup_num_tokens!r}` configure context lookup, which "
            "is off: pass lookup_ngram >= 1 (e.g. 2) to turn it on, or drop them."
        )
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
    block_size: int | str | None = None,
    draft_init: str | None = None,
    draft_seed: int | None = None,
    num_blocks: int | None = None,
    spawn_ratio: float | None = None,
    pool_size: int | None = None,
    lookup_ngram: int | None = None,
    lookup_mode: str | None = None,
    lookup_num_tokens: int | None = None,
    verify_fn=None,
    block_size_policy=None,
    **model_kwargs,
):
    r"""Jacobi decoding, called by `GenerationMixin.generate` as a `custom_generate` callable.

    Each iteration feeds a draft after the committed tokens, accepts the longest exact prefix (`accept_length`),
    commits those tokens' KV entries and crops the rest of the cache, and drafts the next block from the model's
    predictions. Under greedy decoding the output equals greedy decoding token for token; under sampling
    (`do_sample=True`, with any logits processors and warpers) it follows the same distribution as ordinary sampling
    (see `verify_block`).

    With batch > 1 every row commits the same number of tokens per forward (the smallest among unfinished rows), so
    the cache stays rectangular and sliding-window layers see exactly the positions greedy decoding would.

    Multi-block decoding with rejection recycling (spec §2) is `num_blocks > 1` (`MultiBlockDraft`) and
    `pool_size > 0` (`RejectionPool`). Recycled candidates are verified as extra batch rows of the same forward: the
    cache rows are repeated (`cache.batch_repeat_interleave`) before it and the row with the longest accepted prefix
    per sequence is kept (`cache.batch_select_indices`) after it. Under sampling the rows of one sequence share their
    random numbers (`select_tokens`), which keeps the choice of row unbiased.

    Args:
        input_ids (`torch.LongTensor` of shape `(batch, prompt_length)`): the prompt (left-padded for batches).
        logits_processor, stopping_criteria, generation_config: prepared by `generate`.
        jacobi_streamer (`BaseStreamer`, *optional*): receives the prompt, then the accepted tokens as accepted.
        block_size (`int`): tokens decoded in parallel per forward, `n` (default 16). `"auto"` needs a
            `block_size_policy` (hf_jacobi passes one, see `hf_jacobi.auto`).
        draft_init (`str`): filler for the draft, `"prompt"` or `"repeat"`.
        draft_seed (`int`): seed of the filler sampler.
        num_blocks (`int`): blocks of `n` tokens in flight, `K` (default 1: plain Jacobi decoding).
        spawn_ratio (`float`): `r` in (0, 1]: a pseudo-active block is spawned once `ceil(r * n)` positions of the
            real-active block are settled (default 0.85).
        pool_size (`int`): rejected n-grams kept per sequence for rejection recycling (default 0: off).
        lookup_ngram (`int`): also verify, as one more candidate row, what followed the most recent earlier occurrence
            of the last `lookup_ngram` (down to 1) committed tokens in the prompt and output (prompt lookup decoding's
            draft, here beside the Jacobi draft; default 0: off).
        lookup_mode (`str`): where the lookup continuation goes. `"row"` (default): an extra candidate row of the same
            forward, beside the Jacobi draft; best where extra rows cost little (GPUs). `"draft"`: it replaces the first
            tokens of the Jacobi draft itself, one row per sequence, and the block grows to hold it; best where every
            fed token costs (CPUs). Sequences without a match keep their Jacobi draft.
        lookup_num_tokens (`int`, *optional*): most lookup tokens per forward (like `prompt_lookup_num_tokens`);
            default: up to the block. With `lookup_mode="draft"` a longer continuation lengthens the block up to
            `1 + lookup_num_tokens`, so `block_size` is then the length used when nothing matches.
        verify_fn (`Callable`, *optional*): replaces `verify_block` (same signature and results), e.g. the fused
            kernel from `hf_jacobi.kernels.get_verify_fn()`. Sampled forwards with recycled candidate rows use
            `verify_block` itself, whose shared random numbers keep the choice of row unbiased.
        block_size_policy (*optional*): chooses `n` per forward: `next_block_size(remaining: int) -> int` before it
            and `observe(draft_length: int, num_accepted: int)` (tokens the forward commits per sequence) after it.
            Any choice is lossless; it only changes the speed.
        model_kwargs: `cache`, `attention_mask`, `position_ids`, ... prepared by `generate`.

    Returns:
        `torch.LongTensor` of shape `(batch, prompt_length + new_tokens)` or, with `return_dict_in_generate=True`,
        a `JacobiGenerateOutput`.
    """
    block_size = jacobi_setting("block_size", block_size, generation_config)
    draft_init = jacobi_setting("draft_init", draft_init, generation_config)
    draft_seed = jacobi_setting("draft_seed", draft_seed, generation_config)
    num_blocks = jacobi_setting("num_blocks", num_blocks, generation_config)
    spawn_ratio = jacobi_setting("spawn_ratio", spawn_ratio, generation_config)
    pool_size = jacobi_setting("pool_size", pool_size, generation_config)
    lookup_ngram = jacobi_setting("lookup_ngram", lookup_ngram, generation_config)
    lookup_mode = jacobi_setting("lookup_mode", lookup_mode, generation_config)
    lookup_num_tokens = jacobi_setting("lookup_num_tokens", lookup_num_tokens, generation_config)
    batch_size, prompt_length = input_ids.shape
    validate_jacobi_inputs(
        model, generation_config, block_size, draft_init, prompt_length, num_blocks, spawn_ratio, pool_size,
        block_size_policy, lookup_ngram, lookup_mode, lookup_num_tokens,
    )
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
    draft = MultiBlockDraft(
        input_ids, attention_mask, block_size, draft_init, draft_seed, num_blocks=num_blocks, spawn_ratio=spawn_ratio
    )
    lookup_rows = lookup_ngram if lookup_mode == "row" else 0
    lookup_in_draft = lookup_ngram if lookup_mode == "draft" else 0
    pool = RejectionPool(batch_size, pool_size, lookup_rows, lookup_num_tokens) if pool_size or lookup_rows else None
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

    accepted, draft_lengths, candidate_rows, recycled_wins = [], [], [], []
    while not done:
        cur_length = input_ids.shape[1]
        remaining = max_length - cur_length
        # Never draft past max_length: a draft of n tokens commits at most n new ones.
        n = block_size if block_size_policy is None else block_size_policy.next_block_size(remaining)
        n = min(n, remaining)
        length = min(draft.draft_length(n), remaining)
        found = None
        if lookup_in_draft:
            cap = length - 1 if lookup_num_tokens is None else lookup_num_tokens
            found = RejectionPool.lookup_rows(input_ids, lookup_in_draft, cap, unfinished)
            length = min(max(length, 1 + max(len(tokens) for tokens in found)), remaining)
        block = draft.get_candidates(input_ids[:, -1], length, lookup=found)
        candidates = pool.get_candidates(block, input_ids, unfinished) if pool is not None else None
        num_rows = 1 if candidates is None else candidates.shape[1]
        rows = block if candidates is None else candidates.reshape(batch_size * num_rows, length)

        if attention_mask is not None:
            block_mask = torch.cat([attention_mask, attention_mask.new_ones((batch_size, length - 1))], dim=-1)
            start = attention_mask.sum(-1, keepdim=True) - 1
        else:
            block_mask = None
            start = torch.full((batch_size, 1), cur_length - 1, device=input_ids.device)
        positions = start + torch.arange(length, device=input_ids.device)
        context = input_ids
        if num_rows > 1:
            # Verify the recycled candidates in the same forward, as extra rows sharing each sequence's cache.
            cache.batch_repeat_interleave(num_rows)
            positions = positions.repeat_interleave(num_rows, dim=0)
            block_mask = None if block_mask is None else block_mask.repeat_interleave(num_rows, dim=0)
            context = input_ids.repeat_interleave(num_rows, dim=0)
        forward_kwargs = {"position_ids": positions} if takes_position_ids else {}
        outputs = model(
            input_ids=rows, attention_mask=block_mask, cache=cache, use_cache=True, return_dict=True, **forward_kwargs
        )
        block_logits = outputs.logits.to(dtype=torch.float32)
        del outputs
        if len(logits_processor) > 0:
            # Position i is scored as if generated after the committed tokens and draft[1..i]. Processors see one row
            # per sequence, in batch order (some index the batch: padding lengths, prefix_allowed_tokens_fn), so
            # candidate rows are scored one candidate index at a time.
            context = torch.cat([context, rows[:, 1:]], dim=-1)
            block_scores = torch.empty_like(block_logits)
            for c in range(num_rows):
                group = slice(c, None, num_rows)
                block_scores[group] = torch.stack(
                    [logits_processor(context[group, : cur_length + i], block_logits[group, i]) for i in range(length)],
                    dim=1,
                )
        else:
            block_scores = block_logits
        if num_rows > 1 and do_sample:
            predictions, row_accept = verify_block(rows, block_scores, do_sample, group_size=num_rows)
        else:
            predictions, row_accept = verify(rows, block_scores, do_sample)

        if num_rows > 1:
            # Keep, per sequence, the row with the longest accepted prefix (the first one, i.e. the draft, on ties).
            first = torch.arange(batch_size, device=rows.device) * num_rows
            pool.update_candidate_strategy(block, predictions[first], row_accept[first], unfinished)
            best = choose_rows(row_accept, num_rows)
            recycled_wins.append(int((unfinished & (best > 0)).sum()))
            keep = first + best
            cache.batch_select_indices(keep)
            block, predictions, row_accept = rows[keep], predictions[keep], row_accept[keep]
            block_scores, block_logits = block_scores[keep], block_logits[keep]
        else:
            if pool is not None:
                pool.update_candidate_strategy(block, predictions, row_accept, unfinished)
            recycled_wins.append(0)
        # Rows share one commit length so the cache stays rectangular; finished rows do not hold the others back.
        num_accepted = int(row_accept[unfinished].min()) if unfinished.any() else length
        if block_size_policy is not None:
            block_size_policy.observe(length, num_accepted)
        still_running = unfinished
        for i in range(num_accepted):
            done = emit(predictions[:, i], block_scores[:, i], block_logits[:, i])
            if done:
                num_accepted = i + 1
                break
        if streamer is not None:
            streamer.put(input_ids[:, -num_accepted:].cpu())
        accepted.append(num_accepted)
        draft_lengths.append(length)
        candidate_rows.append(num_rows)
        # Keep the KV entries of the accepted draft tokens (draft[:, :num_accepted]), drop the rest.
        cache.crop(-(length - num_accepted))
        draft.update_candidate_strategy(predictions, num_accepted, block, n, still_running)

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
        draft_lengths=torch.tensor(draft_lengths, dtype=torch.long),
        candidate_rows=torch.tensor(candidate_rows, dtype=torch.long),
        recycled_wins=torch.tensor(recycled_wins, dtype=torch.long),
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
