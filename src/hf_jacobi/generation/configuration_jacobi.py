# Copyright 2026 The hf_jacobi authors. Apache-2.0.
"""`JacobiConfig`: the Jacobi decoding settings in one place, with their defaults and checks."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

from transformers import GenerationConfig

LOOKUP_MODES = ("row", "draft")
DRAFT_INITS = ("prompt", "repeat")
DRAFT_CARRIES = ("all", "clean")
#: The settings fresh tails cannot be combined with, each with its value when off.
TAILS_EXCLUDE = {"fresh_rows": 0, "num_blocks": 1, "pool_size": 0}
#: The settings a model's generation config may turn on by default (`fit_model_defaults`; the shipped adapter decodes
#: with fresh tails beside a lookup row), each off: what compares settings by name passes them, so that a setting
#: measures what its name says on any model.
MODEL_DEFAULTS_OFF = {"fresh_tails": 0, "lookup_ngram": 0}


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_draft_init(value, owner: str = "`draft_init`"):
    """`draft_init` as used: one of `DRAFT_INITS`, or a token id (an int; a string of digits, as command lines and
    JSON files give it, becomes one)."""
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if value in DRAFT_INITS or (_is_int(value) and value >= 0):
        return value
    raise ValueError(
        f"{owner} must be one of {DRAFT_INITS} or a token id (an int >= 0: that token at every undrafted position, "
        f"a fixed filler a model can be trained to read as 'not known yet'), got {value!r}."
    )


def check_draft_carry(carry, draft_init, owner: str = "`draft_carry`") -> None:
    """`draft_carry` is one of `DRAFT_CARRIES`; "clean" writes the filler back, so it needs a token-id filler."""
    if carry not in DRAFT_CARRIES:
        raise ValueError(f"{owner} must be one of {DRAFT_CARRIES}, got {carry!r}.")
    if carry == "clean" and not _is_int(draft_init):
        raise ValueError(
            f"{owner}='clean' replaces predictions by the filler token: it needs a token id as draft_init (e.g. a "
            f"rarely used special token), got draft_init={draft_init!r}."
        )


def check_fresh_rows(rows, carry, owner: str = "`fresh_rows`", clean: str = "draft_carry='clean'") -> None:
    """`fresh_rows` is an int >= 0; rows feed filler for the clean carry to pick up, so they need `clean` (how the
    caller spells draft_carry='clean')."""
    if not _is_int(rows) or rows < 0:
        raise ValueError(f"{owner} must be an int >= 0 (candidate rows with a filler tail; 0: off), got {rows!r}.")
    if rows and carry != "clean":
        raise ValueError(
            f"{owner}={rows} feeds filler behind each guess prefix for the clean carry to pick up: pass {clean} "
            f"(with a token-id draft_init), got draft_carry={carry!r}."
        )


def check_fresh_tails(config) -> None:
    """`fresh_tails` is an int >= 0. The tails are the fresh-tail rows packed into the draft's own sequence, so they
    need what the rows need (the clean carry of a token filler) and room for a filler behind each guess prefix, and
    they replace the other sources of guesses and rows."""
    tails = config.fresh_tails
    if not _is_int(tails) or tails < 0:
        raise ValueError(
            f"`fresh_tails` must be an int >= 0 (filler tails in the draft's sequence; 0: off), got {tails!r}."
        )
    if not tails:
        return
    if config.draft_carry != "clean":
        raise ValueError(
            f"`fresh_tails={tails}` feeds filler behind each guess prefix for the clean carry to pick up: pass "
            f"draft_carry='clean' (with a token-id draft_init), got draft_carry={config.draft_carry!r}."
        )
    clash = {name: getattr(config, name) for name, off in TAILS_EXCLUDE.items() if getattr(config, name) != off}
    if clash:
        raise ValueError(
            f"`fresh_tails={tails}` decodes one draft per prompt with its own tree of tails (beside context-lookup "
            f"rows at most); it cannot be combined with {', '.join(f'{k}={v!r}' for k, v in clash.items())}. Drop "
            "them, or use fresh_rows instead of fresh_tails."
        )
    if config.block_size != "auto" and config.block_size < tails * tails:
        raise ValueError(
            f"`fresh_tails={tails}` feeds {tails} draft tokens and behind each of them a tail long enough for the "
            f"{tails - 1} guesses the next draft verifies: it needs block_size >= {tails * tails}, got "
            f"{config.block_size}. Raise block_size or lower fresh_tails."
        )


def fit_model_defaults(values: dict, from_model: set) -> None:
    """Fit the tree settings a model saved in its `GenerationConfig` (the way it was trained to decode) to the settings
    passed to `generate`, in place: they are defaults, so where the caller's settings leave no room for them they give
    way instead of failing. Fresh tails shrink to what `block_size` holds (`T * T <= n`; off below 2) and are off with
    settings they cannot be combined with; context lookup is off with `block_size="auto"`. Settings passed to
    `generate` (or in a `JacobiConfig`) are checked as given."""
    block_size = values.get("block_size", JacobiConfig.block_size)
    tails = values.get("fresh_tails")
    if "fresh_tails" in from_model and _is_int(tails):
        clash = (block_size == "auto" or values.get("draft_carry") != "clean"
                 or any(values.get(name, off) != off for name, off in TAILS_EXCLUDE.items()))
        fits = min(tails, math.isqrt(block_size)) if _is_int(block_size) and block_size > 0 else tails
        values["fresh_tails"] = 0 if clash or fits < 2 else fits
    if "lookup_ngram" in from_model and block_size == "auto":
        values["lookup_ngram"] = 0
        for name in ("lookup_mode", "lookup_num_tokens"):
            if name in from_model:
                del values[name]


def check_auto_compatible(num_blocks, pool_size, lookup_ngram=0, fresh_rows=0, fresh_tails=0) -> None:
    """`block_size="auto"` models the cost of one block per sequence: refuse the options that add rows or blocks."""
    if num_blocks != 1 or pool_size != 0 or lookup_ngram != 0 or fresh_rows != 0 or fresh_tails != 0:
        raise ValueError(
            "`block_size='auto'` chooses the block size from forward timings of one block per sequence; it cannot "
            f"be combined with num_blocks={num_blocks!r}, pool_size={pool_size!r}, lookup_ngram={lookup_ngram!r}, "
            f"fresh_rows={fresh_rows!r} or fresh_tails={fresh_tails!r}. Pass an int block_size with them, or drop "
            "them with 'auto'."
        )


@dataclass
class JacobiConfig:
    r"""Settings of Jacobi decoding. Pass them to `generate` one by one (`block_size=32`), as
    `jacobi_config=JacobiConfig(...)`, or as attributes of the `GenerationConfig`; a kwarg wins over the config.

    Args:
        block_size (`int` or `"auto"`): tokens decoded in parallel per forward, `n`. `"auto"` picks `n` per forward
            from forward timings and the acceptance seen so far (`hf_jacobi.generation.auto`).
        draft_init (`str` or `int`): filler for draft positions without a prediction yet: `"prompt"` (tokens sampled
            from the prompt, the paper's choice), `"repeat"` (the last token), or a token id (that token everywhere: a
            fixed filler, so the states a model is trained on are the ones its decoder meets, e.g. a rarely used
            special token).
        draft_carry (`str`): what the next draft keeps of the predictions past the accepted prefix: `"all"` (the Jacobi
            iteration) or `"clean"` (with a token-id `draft_init` only: the predictions made after a wrong or
            unverified draft token become filler, so every carried prediction was made from exact tokens and filler).
        fresh_rows (`int`): with `draft_carry="clean"`, candidate rows that keep only the first `j` guesses
            (`j < fresh_rows`) and fill the rest: whatever prefix is accepted, the next draft's guesses come from a
            row whose filler starts right behind it, without a filler-only forward after a rejection (0: off; each row
            costs a block per forward).
        fresh_tails (`int`): with `draft_carry="clean"`, the fresh-tail rows packed into the draft's own sequence:
            each forward verifies the first `fresh_tails - 1` guesses and feeds, behind every prefix `[last token,
            g_1, ..., g_j]`, a tail of filler that sees only that prefix (a tree attention mask, one row, the same
            positions as a row of its own). Whatever prefix is accepted, the next guesses come from the tail behind
            it, so every forward verifies guesses made from exact tokens. `block_size` is the width of the forward:
            `fresh_tails` draft tokens and tails of `(block_size - fresh_tails) // fresh_tails` fillers, so it needs
            `block_size >= fresh_tails**2` (0: off; full-attention models that take `position_ids`). E.g. 4 tails at
            block size 16: a draft of 4 tokens and 4 tails of 3. With context lookup (`lookup_mode="draft"`) a
            lookup continuation lengthens the draft; the tails stay behind its first `fresh_tails` prefixes. With
            `lookup_mode="row"` the lookup row is as wide as the draft with its tails (`block_size`), verified beside it.
        draft_seed (`int`): seed of the filler sampler (speed only; greedy output never depends on it).
        num_blocks (`int`): blocks of `n` tokens in flight, `K` (1: plain Jacobi decoding; the paper's multi-block decoding).
        spawn_ratio (`float`): `r` in (0, 1]: a pseudo-active block is spawned once `ceil(r * n)` positions of the
            real-active block are settled (0.85 in the paper).
        pool_size (`int`): rejected n-grams kept per sequence for rejection recycling (0: off).
        lookup_ngram (`int`): context lookup: what followed the most recent earlier occurrence of the last
            `lookup_ngram` (down to 1) committed tokens in the prompt and output is also verified (0: off).
        lookup_mode (`str`): `"row"`: the lookup continuation is an extra candidate row of the same forward (best
            where extra rows cost little: GPUs); `"draft"`: it replaces the first tokens of the Jacobi draft, one row
            per sequence, and the block grows to hold it (best where every fed token costs: CPUs).
        lookup_num_tokens (`int`, *optional*): most lookup tokens per forward (default: up to the block). With
            `lookup_mode="draft"` a longer continuation lengthens the block up to `1 + lookup_num_tokens`.
    """

    block_size: int | str = 16
    draft_init: str | int = "prompt"
    draft_carry: str = "all"
    fresh_rows: int = 0
    fresh_tails: int = 0
    draft_seed: int = 0
    num_blocks: int = 1
    spawn_ratio: float = 0.85
    pool_size: int = 0
    lookup_ngram: int = 0
    lookup_mode: str = "row"
    lookup_num_tokens: int | None = None

    def __post_init__(self):
        if self.block_size == "auto":
            check_auto_compatible(self.num_blocks, self.pool_size, self.lookup_ngram, self.fresh_rows, self.fresh_tails)
        elif not _is_int(self.block_size) or self.block_size < 1:
            raise ValueError(
                f"`block_size` must be an int >= 1 (tokens decoded in parallel) or 'auto', got {self.block_size!r}."
            )
        self.draft_init = check_draft_init(self.draft_init)
        check_draft_carry(self.draft_carry, self.draft_init)
        check_fresh_rows(self.fresh_rows, self.draft_carry)
        check_fresh_tails(self)
        if not _is_int(self.draft_seed):
            raise ValueError(f"`draft_seed` must be an int (seed of the draft filler), got {self.draft_seed!r}.")
        if not _is_int(self.num_blocks) or self.num_blocks < 1:
            raise ValueError(
                f"`num_blocks` must be an int >= 1 (blocks in flight; 1 = plain Jacobi decoding), got "
                f"{self.num_blocks!r}."
            )
        ratio = self.spawn_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 < ratio <= 1:
            raise ValueError(
                "`spawn_ratio` must be a number in (0, 1] (share of the real-active block that must be settled "
                f"before a pseudo-active block is spawned; 0.85 in the paper), got {ratio!r}."
            )
        if not _is_int(self.pool_size) or self.pool_size < 0:
            raise ValueError(
                f"`pool_size` must be an int >= 0 (rejected n-grams kept per sequence; 0 turns recycling off), got "
                f"{self.pool_size!r}."
            )
        if not _is_int(self.lookup_ngram) or self.lookup_ngram < 0:
            raise ValueError(
                f"`lookup_ngram` must be an int >= 0 (n-gram size of context-lookup candidates; 0 turns them off), "
                f"got {self.lookup_ngram!r}."
            )
        if self.lookup_mode not in LOOKUP_MODES:
            raise ValueError(
                f"`lookup_mode` must be one of {LOOKUP_MODES} ('row': the lookup continuation is verified as an extra "
                f"candidate row; 'draft': it replaces the draft in the block itself), got {self.lookup_mode!r}."
            )
        tokens = self.lookup_num_tokens
        if tokens is not None and (not _is_int(tokens) or tokens < 1):
            raise ValueError(
                f"`lookup_num_tokens` must be an int >= 1 (most context-lookup tokens per forward) or None (up to the "
                f"block), got {tokens!r}."
            )
        if self.lookup_ngram == 0 and (self.lookup_mode != "row" or tokens is not None):
            raise ValueError(
                f"`lookup_mode={self.lookup_mode!r}` / `lookup_num_tokens={tokens!r}` configure context lookup, which "
                "is off: pass lookup_ngram >= 1 (e.g. 2) to turn it on, or drop them."
            )

    @classmethod
    def from_generation_config(
        cls, generation_config: GenerationConfig | None = None, jacobi_config: JacobiConfig | None = None, **kwargs
    ) -> JacobiConfig:
        """Resolve every setting: a non-None kwarg, else `jacobi_config`, else the `GenerationConfig` attribute of
        the same name, else the default. Fresh tails and lookup taken from the `GenerationConfig` fit the rest
        (`fit_model_defaults`)."""
        unknown = set(kwargs) - set(cls.names())
        if unknown:
            raise TypeError(f"Unknown Jacobi settings {sorted(unknown)}; the settings are {cls.names()}.")
        values, from_model = {}, set()
        for name in cls.names():
            value = kwargs.get(name)
            if value is None and jacobi_config is not None:
                value = getattr(jacobi_config, name)
            if value is None and generation_config is not None:
                value = getattr(generation_config, name, None)
                if value is not None:
                    from_model.add(name)
            if value is not None:
                values[name] = value
        fit_model_defaults(values, from_model)
        return cls(**values)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    def to_dict(self) -> dict:
        """The settings as `generate` kwargs."""
        return asdict(self)


def max_positions(config) -> int | None:
    """The most positions a model config allows (its text config for composite models), or None if it says none."""
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length"):
        value = getattr(config, name, None)
        if _is_int(value) and value > 0:
            return value
    return None


def validate_generation(model, generation_config: GenerationConfig, prompt_length: int) -> None:
    """Refuse every model or generate setting under which Jacobi decoding would not give the greedy output, saying
    what to do."""
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
        raise ValueError(
            "Jacobi decoding cannot be combined with prompt lookup decoding; use one of them (Jacobi's own context "
            "lookup is `lookup_ngram=`)."
        )
    if generation_config.output_attentions or generation_config.output_hidden_states:
        raise ValueError(
            "Jacobi decoding does not return attentions or hidden states (one forward covers several tokens). "
            "Set output_attentions=False and output_hidden_states=False."
        )
    if generation_config.use_cache is False:
        raise ValueError("Jacobi decoding reuses the KV cache of accepted tokens; pass use_cache=True.")
    if generation_config.max_new_tokens is not None and generation_config.max_new_tokens < 1:
        raise ValueError(f"`max_new_tokens` must be >= 1, got {generation_config.max_new_tokens}.")
    limit = max_positions(model.config)
    if limit is not None and prompt_length >= limit:
        raise ValueError(
            f"The prompt has {prompt_length} tokens but the model handles at most {limit} positions; "
            "shorten or truncate the prompt."
        )
    if limit is not None and generation_config.max_length > limit:
        raise ValueError(
            f"Prompt ({prompt_length} tokens) + new tokens would reach {generation_config.max_length} positions, past "
            f"the model's maximum of {limit}; lower max_new_tokens to at most {limit - prompt_length}."
        )


def cache_rolls_back(cache) -> bool:
    """Whether rejected tokens can be cropped from `cache` exactly. transformers >= 5.25 marks caches with recurrent
    (linear-attention, e.g. Mamba) layers croppable when intermediate states are recorded, which Jacobi decoding does
    not set up: those count as not rolling back."""
    layers = getattr(cache, "layers", None) or getattr(getattr(cache, "self_attention_cache", None), "layers", None) or []
    recurrent = any(hasattr(layer, "update_recurrent_state") for layer in layers)
    return bool(getattr(cache, "is_croppable", False)) and not recurrent
