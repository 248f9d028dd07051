"""Noise schedule and packing: turn Jacobi trajectories into (noisy block, clean block) pairs.

A trajectory record, as written by trajectory collection, holds:

- `prompt_ids` (`list[int]`): the prompt.
- `trajectory` (`list[list[list[int]]]`): for each block `j` (the `n` positions after the prompt and the earlier
  blocks), the Jacobi iterates `s_j^0 .. s_j^m`, each `n` token ids. The last iterate is the fixed point, i.e. the
  clean block `c_j` (the greedy continuation).

Packing keeps one iterate per block as its noisy block `k_j`, chosen by a noise schedule (arXiv 2512.14681, progressive noise schedule), and the
fixed point as its clean block. Nothing here fixes `n`: a curriculum (n=16, then 32, then 64) packs each stage's
trajectories with its own block size, and records of another block size are refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from datasets import Dataset, Features, Value
from datasets import Sequence as SequenceFeature

NOISE_SCHEDULES = ("progressive", "random")

# Packing parameters travel with the packed dataset (in `Dataset.info.description`) so that the trainer can write
# the schedule that was actually used into the model card.
_PACKING_INFO_PREFIX = "hf_jacobi packing: "

PACKED_FEATURES = Features(
    {
        "prompt_ids": SequenceFeature(Value("int64")),
        "noisy_blocks": SequenceFeature(SequenceFeature(Value("int64"))),
        "clean_blocks": SequenceFeature(SequenceFeature(Value("int64"))),
        "noise_ratios": SequenceFeature(Value("float32")),
        "record_index": Value("int64"),
    }
)


def noise_ratio(draft: Sequence[int], fixed_point: Sequence[int]) -> float:
    """Fraction of the block that is not yet converged: `(n - first index where draft != fixed point) / n`.

    The fixed point itself has ratio 0; a draft that is wrong from its first token has ratio 1.
    """
    first = first_difference(draft, fixed_point)
    return 0.0 if first is None else (len(fixed_point) - first) / len(fixed_point)


def first_difference(draft: Sequence[int], reference: Sequence[int]) -> int | None:
    """Index of the first token where `draft` and `reference` differ (over their common length), or None."""
    return next((i for i, (a, b) in enumerate(zip(draft, reference)) if a != b), None)


def noise_schedule(window: int, min_ratio: float = 0.0, max_ratio: float = 1.0) -> np.ndarray:
    """Progressive schedule: `linspace(min_ratio, max_ratio, window)`; block `j` targets `schedule[j % window]`.

    Returns a float64 array of shape `[window]`.
    """
    if window < 1:
        raise ValueError(f"`window` must be >= 1, got {window}.")
    return np.linspace(min_ratio, max_ratio, window)


def select_iterate(ratios: Sequence[float], target: float) -> int:
    """Index of the iterate whose noise ratio is nearest to `target`.

    Ties go to the earliest iterate: Jacobi iterates converge left to right, so among equally near drafts the
    earliest is the one the model saw first during decoding.
    """
    distances = [abs(r - target) for r in ratios]
    return int(np.argmin(distances))  # argmin returns the first minimum


def _record_block_size(trajectory: Any) -> int | None:
    """Length of the first iterate of the first block, or None when the record has no such iterate."""
    try:
        return len(trajectory[0][-1])
    except (IndexError, TypeError):
        return None


def loop_start(
    tokens: Sequence[int], max_period: int = 64, min_repeats: int = 3, min_length: int = 32
) -> tuple[int, int] | None:
    """Where `tokens` falls into an exact repetition loop that runs to its end, as `(start, period)`, or None.

    A loop is a suffix that repeats a period of at most `max_period` tokens at least `min_repeats` times and spans at
    least `min_length` tokens. Greedy decoding of a small model often ends this way when it hits `max_new_tokens`;
    trained on as AR targets, such loops teach the model to loop more. The earliest start over all periods is
    returned.
    """
    length, best = len(tokens), None
    for period in range(1, min(max_period, length // min_repeats) + 1):
        i = length - period - 1
        while i >= 0 and tokens[i] == tokens[i + period]:
            i -= 1
        span = length - (i + 1)
        if span >= max(min_repeats * period, min_length) and (best is None or length - span < best[0]):
            best = (length - span, period)
    return best


def _missing_fields(record: Mapping[str, Any], fields: Sequence[str]) -> list[str]:
    """Fields of `fields` that `record` lacks or holds as null (a `datasets` row has every column, null where absent)."""
    return [name for name in fields if record.get(name) is None]


def _check_token_ids(ids: Any, where: str, field: str, vocab_size: int | None = None) -> None:
    """Raise, naming `where` and `field`, if `ids` is not a list of integer token ids in `[0, vocab_size)`."""
    if isinstance(ids, (str, bytes)) or not isinstance(ids, (Sequence, np.ndarray)):
        raise ValueError(f"{where}: '{field}' must be a list of token ids, got {type(ids).__name__}.")  # noqa: TRY004
    for position, token in enumerate(ids):
        if token is None:
            raise ValueError(f"{where}: '{field}' holds a null token id at position {position}.")
        if isinstance(token, (bool, np.bool_)) or not isinstance(token, (int, np.integer)):
            raise ValueError(  # noqa: TRY004  (bad data: a ValueError, like every other record error)
                f"{where}: '{field}' holds {token!r} ({type(token).__name__}) at position {position}; token ids are "
                "integers."
            )
        if token < 0 or (vocab_size is not None and token >= vocab_size):
            limit = f" (the vocabulary has {vocab_size} ids)" if vocab_size is not None else ""
            raise ValueError(f"{where}: '{field}' holds the out-of-range token id {token} at position {position}{limit}.")


def _validate_record(index: int, record: Mapping[str, Any], block_size: int) -> None:
    missing = _missing_fields(record, ("prompt_ids", "trajectory"))
    if missing:
        raise ValueError(
            f"Record {index}: missing field(s) {missing} (absent or null); a trajectory record needs 'prompt_ids' and "
            f"'trajectory' (it has {sorted(k for k, v in record.items() if v is not None)})."
        )
    prompt, trajectory = record["prompt_ids"], record["trajectory"]
    _check_token_ids(prompt, f"Record {index}", "prompt_ids")
    if len(prompt) == 0:
        raise ValueError(f"Record {index}: 'prompt_ids' is empty; Jacobi blocks continue a non-empty prompt.")
    if len(trajectory) == 0:
        raise ValueError(f"Record {index}: 'trajectory' is empty (no blocks).")
    if record.get("block_size") not in (None, block_size):  # trajectory collection records its block size
        raise ValueError(
            f"Record {index}: collected with block_size={record['block_size']}, expected {block_size}. "
            "Trajectories of another block size belong to another curriculum stage: pack them separately."
        )
    for j, iterates in enumerate(trajectory):
        if len(iterates) == 0:
            raise ValueError(f"Record {index}, block {j}: no Jacobi iterates (need at least the fixed point).")
        if iterates is None:
            raise ValueError(f"Record {index}, block {j}: null instead of its Jacobi iterates.")
        for t, draft in enumerate(iterates):
            _check_token_ids(draft, f"Record {index}, block {j}, iterate {t}", "trajectory")
            if len(draft) != block_size:
                raise ValueError(
                    f"Record {index}, block {j}, iterate {t}: has {len(draft)} tokens, expected block_size="
                    f"{block_size}. Trajectories collected at another block size belong to another curriculum "
                    "stage: pack them separately with their own block_size."
                )


def pack_trajectories(
    records: Dataset | Iterable[Mapping[str, Any]],
    block_size: int | None = None,
    strategy: str = "progressive",
    window: int = 16,
    min_ratio: float = 0.0,
    max_ratio: float = 1.0,
    seed: int = 0,
    max_blocks: int | None = None,
    eos_token_id: int | Sequence[int] | None = None,
    trim_loops: bool = False,
) -> Dataset:
    """Pick one noisy iterate per block and return a packed dataset ready for [`JacobiForcingCollator`].

    Args:
        records (`datasets.Dataset` or iterable of dicts):
            Trajectory records with `prompt_ids` and `trajectory` (see module docstring).
        block_size (`int`, *optional*):
            Expected block size `n`. When `None`, it is read from the first record and every other record must
            match it.
        strategy (`str`, *optional*, defaults to `"progressive"`):
            `"progressive"`: block `j` targets `linspace(min_ratio, max_ratio, window)[j % window]`. `"random"`: each
            block targets a ratio drawn uniformly from `[min_ratio, max_ratio]`, from an RNG seeded by
            `(seed, record index)` so the result does not depend on processing order.
        window (`int`, *optional*, defaults to `16`):
            Window size of the progressive schedule.
        min_ratio, max_ratio (`float`, *optional*, defaults to `0.0` and `1.0`):
            Range of target noise ratios.
        seed (`int`, *optional*, defaults to `0`):
            Seed of the `"random"` strategy.
        max_blocks (`int`, *optional*):
            Keep at most this many blocks per record (the first ones).
        eos_token_id (`int` or `list[int]`, *optional*):
            If given, blocks that start after the first EOS of the clean continuation are dropped: the collator
            would ignore them anyway, so they only cost compute.
        trim_loops (`bool`, *optional*, defaults to `False`):
            If True, a continuation without EOS that ends in an exact repetition loop (see [`loop_start`]) keeps
            only the blocks before the loop's second period; records left without a block are dropped. The base
            model's loops would otherwise be AR targets.

    Returns:
        `datasets.Dataset` with one row per record: `prompt_ids` (`list[int]`), `noisy_blocks` and `clean_blocks`
        (`list[list[int]]`, `T` blocks of `n` ids each), `noise_ratios` (`list[float]`, the ratio of each chosen
        noisy block) and `record_index` (`int`, the row of the source record, used in error messages).
    """
    if strategy not in NOISE_SCHEDULES:
        raise ValueError(f"Unknown noise strategy {strategy!r}; expected one of {NOISE_SCHEDULES}.")
    if not 0.0 <= min_ratio <= max_ratio <= 1.0:
        raise ValueError(f"Need 0 <= min_ratio <= max_ratio <= 1, got min_ratio={min_ratio}, max_ratio={max_ratio}.")
    if max_blocks is not None and max_blocks < 1:
        raise ValueError(f"`max_blocks` must be >= 1 or None, got {max_blocks}.")
    if block_size is not None and block_size < 1:
        raise ValueError(f"`block_size` must be >= 1, got {block_size}.")
    schedule = noise_schedule(window, min_ratio, max_ratio)
    eos_ids = set() if eos_token_id is None else {eos_token_id} if isinstance(eos_token_id, int) else set(eos_token_id)

    if not isinstance(records, Dataset):
        records = list(records)
        if not records:
            raise ValueError("No trajectory records to pack.")
    elif len(records) == 0:
        raise ValueError("No trajectory records to pack.")
    if block_size is None:
        block_size = _record_block_size(records[0]["trajectory"])
        if block_size is None or block_size == 0:
            raise ValueError("Record 0: cannot read the block size from an empty trajectory.")

    def pack_one(record: Mapping[str, Any], index: int) -> dict[str, Any]:
        _validate_record(index, record, block_size)
        trajectory = record["trajectory"]
        if max_blocks is not None:
            trajectory = trajectory[:max_blocks]
        ended = False
        if eos_ids:
            for j, iterates in enumerate(trajectory):
                if eos_ids.intersection(iterates[-1]):
                    trajectory, ended = trajectory[: j + 1], True
                    break
        if trim_loops and not ended:
            loop = loop_start([token for iterates in trajectory for token in iterates[-1]])
            if loop is not None:
                trajectory = trajectory[: (loop[0] + loop[1]) // block_size]
        if strategy == "progressive":
            targets = [schedule[j % window] for j in range(len(trajectory))]
        else:
            rng = np.random.default_rng([seed, index])
            targets = rng.uniform(min_ratio, max_ratio, size=len(trajectory)).tolist()
        noisy, clean, ratios = [], [], []
        for iterates, target in zip(trajectory, targets):
            fixed_point = list(iterates[-1])
            iterate_ratios = [noise_ratio(draft, fixed_point) for draft in iterates]
            chosen = select_iterate(iterate_ratios, target)
            noisy.append(list(iterates[chosen]))
            clean.append(fixed_point)
            ratios.append(iterate_ratios[chosen])
        return {
            "prompt_ids": list(record["prompt_ids"]),
            "noisy_blocks": noisy,
            "clean_blocks": clean,
            "noise_ratios": ratios,
            "record_index": index,
        }

    if isinstance(records, Dataset):
        packed = records.map(
            pack_one, with_indices=True, remove_columns=records.column_names, features=PACKED_FEATURES
        )
    else:
        packed = Dataset.from_list([pack_one(r, i) for i, r in enumerate(records)], features=PACKED_FEATURES)
    if trim_loops:
        packed = packed.filter(lambda blocks: len(blocks) > 0, input_columns="clean_blocks")
        if len(packed) == 0:
            raise ValueError("Every record is a repetition loop from its first block: nothing is left to train on.")
    packed.info.description = _PACKING_INFO_PREFIX + json.dumps(
        {
            "block_size": block_size,
            "strategy": strategy,
            "window": window if strategy == "progressive" else None,
            "min_ratio": min_ratio,
            "max_ratio": max_ratio,
            "seed": seed if strategy == "random" else None,
            "max_blocks": max_blocks,
            "trim_loops": trim_loops,
        }
    )
    return packed


def packing_info(dataset: Any) -> dict[str, Any] | None:
    """Packing parameters recorded by [`pack_trajectories`] on `dataset`, or None if it carries none."""
    description = getattr(getattr(dataset, "info", None), "description", None) or ""
    if not description.startswith(_PACKING_INFO_PREFIX):
        return None
    # `concatenate_datasets` joins the descriptions of its parts: read every recorded packing and merge them.
    decoder, text, infos = json.JSONDecoder(), description, []
    while text.startswith(_PACKING_INFO_PREFIX):
        info, end = decoder.raw_decode(text[len(_PACKING_INFO_PREFIX) :])
        infos.append(info)
        text = text[len(_PACKING_INFO_PREFIX) + end :].lstrip()
    merged = {}
    for key in dict.fromkeys(k for info in infos for k in info):
        values = list(dict.fromkeys(json.dumps(info.get(key)) for info in infos))
        merged[key] = json.loads(values[0]) if len(values) == 1 else " + ".join(json.loads(v) if isinstance(json.loads(v), str) else v for v in values)
    return merged


def _check_id_column(column: Any, depth: int, names: Sequence, field: str, vocab_size: int | None, ids: bool = True):
    """Arrow check of a column of `depth` nested lists of integers: no null list or value, integers only, and (for
    token ids) every id in `[0, vocab_size)`. Errors name the record (`names[row]`) and the field."""
    import pyarrow as pa
    import pyarrow.compute as pc

    values = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    rows = np.arange(len(values))
    for level in range(depth + 1):
        if values.null_count:
            row = int(rows[np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))[0]])
            what = "a null list" if level < depth else "a null value"
            raise ValueError(f"Record {names[row]}: '{field}' holds {what}.")
        if level == depth:
            break
        if not (pa.types.is_list(values.type) or pa.types.is_large_list(values.type)):
            raise ValueError(f"'{field}' must be nested lists of integers, got the Arrow type {column.type}.")
        rows = rows[pc.list_parent_indices(values).to_numpy(zero_copy_only=False)]
        values = pc.list_flatten(values)
    if not pa.types.is_integer(values.type):
        if not len(values):
            return
        raise ValueError(f"'{field}' must hold integers (token ids), got the Arrow type {values.type}.")
    numbers = values.to_numpy(zero_copy_only=False)
    bad = (numbers < 0) | (numbers >= vocab_size) if ids and vocab_size is not None else numbers < 0
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        if ids:
            limit = f" (the vocabulary has {vocab_size} ids)" if vocab_size is not None else ""
            problem = f"the out-of-range token id {int(numbers[first])}{limit}"
        else:
            problem = f"the negative value {int(numbers[first])}"
        raise ValueError(f"Record {names[int(rows[first])]}: '{field}' holds {problem}.")


def validate_packed_dataset(
    dataset: Dataset,
    block_size: int | None = None,
    max_positions: int | None = None,
    max_length: int | None = None,
    batch_size: int = 1024,
    vocab_size: int | None = None,
) -> int:
    """Check every packed record before training starts; return the block size.

    Reads list lengths and token ids as Arrow arrays (batched), so it is cheap even for large datasets. Errors name
    the record and the field: null lists or ids, non-integer or negative ids, and (given `vocab_size`) ids the
    model's embedding does not have, which would otherwise fail deep inside the forward.

    Args:
        dataset (`datasets.Dataset`): output of [`pack_trajectories`] (or the same columns).
        block_size (`int`, *optional*): expected `n`; inferred from the first block when `None`.
        max_positions (`int`, *optional*): the model's `max_position_embeddings`; position ids run up to
            `P + T * n - 1`.
        max_length (`int`, *optional*): limit on the packed length `P + 2 * T * n`.
        vocab_size (`int`, *optional*): the number of rows of the model's input embedding.
    """
    import pyarrow.compute as pc

    if "noisy_starts" in dataset.column_names:
        return _validate_state_dataset(dataset, block_size, max_positions, max_length, batch_size, vocab_size)
    missing = {"prompt_ids", "noisy_blocks", "clean_blocks"} - set(dataset.column_names)
    if missing:
        raise ValueError(
            f"The dataset lacks the packed columns {sorted(missing)}. Pack trajectory records with "
            "`pack_trajectories` first (or pass them to the trainer, which packs them)."
        )
    has_record_index = "record_index" in dataset.column_names
    columns = ["prompt_ids", "noisy_blocks", "clean_blocks"] + (["record_index"] if has_record_index else [])
    offset = 0
    for table in dataset.select_columns(columns).with_format("arrow").iter(batch_size=batch_size):
        rows = table.num_rows
        names = table.column("record_index").to_pylist() if has_record_index else range(offset, offset + rows)
        for col, depth in (("prompt_ids", 1), ("noisy_blocks", 2), ("clean_blocks", 2)):
            _check_id_column(table.column(col), depth, names, col, vocab_size)
        prompt_len = pc.list_value_length(table.column("prompt_ids")).to_numpy(zero_copy_only=False)
        num_blocks = {}
        for col in ("noisy_blocks", "clean_blocks"):
            blocks = table.column(col).combine_chunks()
            num_blocks[col] = pc.list_value_length(blocks).to_numpy(zero_copy_only=False)
            inner = pc.list_flatten(blocks)
            lengths = pc.list_value_length(inner).to_numpy(zero_copy_only=False)
            parents = pc.list_parent_indices(blocks).to_numpy(zero_copy_only=False)
            if block_size is None and len(lengths):
                block_size = int(lengths[0])
            bad = np.flatnonzero(lengths != block_size)
            if len(bad):
                row = int(parents[bad[0]])
                raise ValueError(
                    f"Record {names[row]}: a block in '{col}' has {int(lengths[bad[0]])} tokens but the block size "
                    f"is {block_size}. Data packed at another block size (another curriculum stage) needs a "
                    "matching `block_size` in the config."
                )
        for row in range(rows):
            t_noisy, t_clean = int(num_blocks["noisy_blocks"][row]), int(num_blocks["clean_blocks"][row])
            if t_noisy != t_clean or t_noisy == 0:
                raise ValueError(
                    f"Record {names[row]}: needs the same, non-zero number of noisy and clean blocks, got "
                    f"{t_noisy} and {t_clean}."
                )
            if prompt_len[row] == 0:
                raise ValueError(f"Record {names[row]}: 'prompt_ids' is empty.")
            positions = int(prompt_len[row]) + t_clean * block_size
            if max_positions is not None and positions > max_positions:
                raise ValueError(
                    f"Record {names[row]}: prompt ({int(prompt_len[row])}) + {t_clean} blocks of {block_size} needs "
                    f"{positions} positions but the model has max_position_embeddings={max_positions}. Use a "
                    "shorter prompt or fewer blocks (`max_blocks` in `pack_trajectories`)."
                )
            length = int(prompt_len[row]) + 2 * t_clean * block_size
            if max_length is not None and length > max_length:
                raise ValueError(
                    f"Record {names[row]}: packed length {length} exceeds max_length={max_length}; packed sequences "
                    "are never truncated (that would cut a noisy/clean pair). Raise `max_length` or use fewer blocks."
                )
        offset += rows
    if block_size is None:
        raise ValueError("The dataset has no blocks.")
    return block_size


def _validate_state_dataset(
    dataset: Dataset, block_size, max_positions, max_length, batch_size: int = 1024, vocab_size: int | None = None
) -> int:
    """[`validate_packed_dataset`] for the state layout (`prompt_ids`, `clean_ids`, `noisy_starts`, `noisy_blocks`)."""
    missing = {"prompt_ids", "clean_ids", "noisy_starts", "noisy_blocks"} - set(dataset.column_names)
    if missing:
        raise ValueError(f"State records lack the columns {sorted(missing)}.")
    names = dataset["record_index"] if "record_index" in dataset.column_names else range(len(dataset))
    fields = (("prompt_ids", 1, True), ("clean_ids", 1, True), ("noisy_starts", 1, False), ("noisy_blocks", 2, True))
    offset = 0
    for table in dataset.select_columns([f[0] for f in fields]).with_format("arrow").iter(batch_size=batch_size):
        for col, depth, ids in fields:
            _check_id_column(table.column(col), depth, names[offset : offset + table.num_rows], col, vocab_size, ids)
        offset += table.num_rows
    columns = dataset.select_columns(["prompt_ids", "clean_ids", "noisy_starts", "noisy_blocks"])
    for name, row in zip(names, columns):
        P, C, starts, states = len(row["prompt_ids"]), len(row["clean_ids"]), row["noisy_starts"], row["noisy_blocks"]
        if P == 0 or C == 0 or not states or len(starts) != len(states):
            raise ValueError(
                f"Record {name}: needs a non-empty prompt and continuation and as many noisy_starts as noisy_blocks "
                f"(non-zero), got {P}, {C}, {len(starts)}, {len(states)}."
            )
        block_size = block_size or len(states[0])
        for b, (start, state) in enumerate(zip(starts, states)):
            if len(state) != block_size:
                raise ValueError(
                    f"Record {name}: noisy block {b} has {len(state)} tokens but the block size is {block_size}."
                )
            if not 0 <= start <= C - block_size:
                raise ValueError(f"Record {name}: noisy block {b} starts at {start}, outside the {C} clean tokens.")
        if max_positions is not None and P + C > max_positions:
            raise ValueError(f"Record {name}: {P + C} positions exceed max_position_embeddings={max_positions}.")
        if max_length is not None and P + C + len(states) * block_size > max_length:
            raise ValueError(f"Record {name}: packed length exceeds max_length={max_length} (never truncated).")
    if block_size is None:
        raise ValueError("The dataset has no noisy blocks.")
    return block_size


STATE_FEATURES = Features(
    {
        "prompt_ids": SequenceFeature(Value("int64")),
        "clean_ids": SequenceFeature(Value("int64")),
        "noisy_starts": SequenceFeature(Value("int64")),
        "noisy_blocks": SequenceFeature(SequenceFeature(Value("int64"))),
        "record_index": Value("int64"),
    }
)


def draw_states(states: list, max_states: int | None, seed: int, index: int) -> list:
    """At most `max_states` of a record's states, drawn without replacement and kept in order (seeded per record)."""
    if max_states is None or len(states) <= max_states:
        return states
    keep = np.random.default_rng([seed, index]).choice(len(states), max_states, replace=False)
    return [states[i] for i in sorted(keep)]


def pack_states(
    records: Dataset | Iterable[Mapping[str, Any]],
    block_size: int,
    eos_token_id: int | Sequence[int] | None = None,
    max_states: int | None = None,
    seed: int = 0,
    trim_loops: bool = False,
    horizon: int | None = None,
    filler_token_id: int | None = None,
) -> Dataset:
    """Records in the state layout (`prompt_ids`, `clean_ids`, `noisy_starts`, `noisy_blocks`) for the collator.

    Two sources are accepted:

    - On-policy decoding states (`hf_jacobi.collection.decoding_states`, already in this layout): kept, at most
      `max_states` per record.
    - Jacobi trajectories (`trajectory`: blocks x iterates): *every* iterate of every block but the fixed point
      becomes a state at its block's start, including the all-filler first iterate every decoded block starts from
      (a schedule that keeps one iterate per block never shows most of them); at most `max_states`, drawn evenly.

    The clean continuation ends at its first EOS (tokens after it are padding). With `trim_loops`, a continuation
    without EOS that ends in an exact repetition loop (see [`loop_start`]) is cut before the loop's second period,
    with the states past the cut: as AR targets, and as states that are trivially predictable, loops teach looping.

    With `horizon=H`, each state is cut to the `H` tokens from its first wrong token on, starting there (block size
    `H` for the collator): the tokens before it equal the clean ones the cut state sees instead, and the tokens after
    the horizon only feed positions the loss does not count, so the loss is the one of the full states with
    `consistency_horizon=H`, from about `H/n` of their tokens. States whose first wrong token lies within `H` of their
    end, and duplicates (the same tokens at the same start), are dropped; `max_states` applies to the cut states.

    With `filler_token_id`, the decoder's filler is that fixed token (`draft_init=<token id>`), so the state every
    fresh block starts from is known without decoding: `[c_p, filler, ..., filler]`. It is added at every start `p`
    of the continuation (before the cut and `max_states`), so the first forward of a block is trained wherever the
    previous block ends, also where the decoder of an earlier model never started one.
    """
    eos_ids = set() if eos_token_id is None else {eos_token_id} if isinstance(eos_token_id, int) else set(eos_token_id)
    if max_states is not None and max_states < 1:
        raise ValueError(f"`max_states` must be >= 1 or None, got {max_states}.")
    if horizon is not None and (isinstance(horizon, bool) or not isinstance(horizon, int) or not 1 <= horizon <= block_size):
        raise ValueError(f"`horizon` must be an integer in [1, block_size={block_size}] or None, got {horizon!r}.")
    if filler_token_id is not None and (isinstance(filler_token_id, bool) or not isinstance(filler_token_id, int)
                                        or filler_token_id < 0):
        raise ValueError(f"`filler_token_id` must be a token id (int >= 0) or None, got {filler_token_id!r}.")

    def cut(states: list, clean: list) -> list:
        """The `horizon` tokens of each state from its first wrong token on, once per (start, tokens)."""
        kept, seen = [], set()
        for start, state in states:
            first = first_difference(state, clean[start:])  # not None: equal states are already dropped
            piece = (start + first, tuple(state[first : first + horizon]))
            if len(piece[1]) == horizon and piece not in seen:
                seen.add(piece)
                kept.append((piece[0], list(piece[1])))
        return kept

    def pack_one(record: Mapping[str, Any], index: int) -> dict[str, Any]:
        if record.get("trajectory") is not None:
            _validate_record(index, record, block_size)
            clean = [t for iterates in record["trajectory"] for t in iterates[-1]]
            states = [(j * block_size, list(it)) for j, iterates in enumerate(record["trajectory"]) for it in iterates[:-1]]
        elif record.get("noisy_starts") is not None:
            missing = _missing_fields(record, ("prompt_ids", "clean_ids", "noisy_blocks"))
            if missing:
                raise ValueError(
                    f"Record {index}: missing field(s) {missing} (absent or null); a state record needs 'prompt_ids', "
                    "'clean_ids', 'noisy_starts' and 'noisy_blocks'."
                )
            _check_token_ids(record["prompt_ids"], f"Record {index}", "prompt_ids")
            _check_token_ids(record["clean_ids"], f"Record {index}", "clean_ids")
            for b, (start, state) in enumerate(zip(record["noisy_starts"], record["noisy_blocks"])):
                if start is None or state is None:
                    raise ValueError(f"Record {index}: noisy state {b} has a null start or block.")
                _check_token_ids(state, f"Record {index}, noisy block {b}", "noisy_blocks")
            clean = list(record["clean_ids"])
            states = list(zip(record["noisy_starts"], record["noisy_blocks"]))
        else:
            present = sorted(k for k, v in record.items() if v is not None)
            raise ValueError(
                f"Record {index}: missing field 'trajectory' or 'noisy_starts' (absent or null); a record needs a "
                f"'trajectory' or the state fields 'noisy_starts'/'noisy_blocks' (it has {present})."
            )
        end = next((i + 1 for i, t in enumerate(clean) if t in eos_ids), None)
        if end is None and trim_loops:
            loop = loop_start(clean)
            end = len(clean) if loop is None else loop[0] + loop[1]
        clean = clean[: end or len(clean)]
        if filler_token_id is not None:
            states = states + [(s, [clean[s]] + [filler_token_id] * (block_size - 1))
                               for s in range(len(clean) - block_size + 1)]
        states = [(s, b) for s, b in states if s + block_size <= len(clean) and list(b) != clean[s : s + block_size]]
        if horizon is not None:
            states = cut(states, clean)
        states = draw_states(states, max_states, seed, index)
        return {"prompt_ids": list(record["prompt_ids"]), "clean_ids": clean, "noisy_starts": [s for s, _ in states],
                "noisy_blocks": [list(b) for _, b in states], "record_index": index}

    if isinstance(records, Dataset):
        packed = records.map(pack_one, with_indices=True, remove_columns=records.column_names, features=STATE_FEATURES)
    else:
        packed = Dataset.from_list([pack_one(r, i) for i, r in enumerate(records)], features=STATE_FEATURES)
    packed = packed.filter(lambda starts: len(starts) > 0, input_columns="noisy_starts")  # also fully trimmed ones
    if len(packed) == 0:
        raise ValueError("No record has a noisy state to train on (every draft already equals the clean tokens).")
    packed.info.description = _PACKING_INFO_PREFIX + json.dumps(
        {"block_size": block_size, "strategy": "states", "max_states": max_states,
         "min_ratio": None, "max_ratio": None, "window": None, "trim_loops": trim_loops, "horizon": horizon,
         "filler_token_id": filler_token_id}
    )
    return packed
