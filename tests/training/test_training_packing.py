"""Noise schedule and packing of Jacobi trajectories."""


import pytest
from datasets import Dataset
from testing_utils import random_trajectory_records

from hf_jacobi.training import loop_start, noise_ratio, pack_trajectories, packing_info, validate_packed_dataset


def block(fixed):
    """Iterates of one n=4 block, with noise ratios 1.0, 0.75, 0.25, 0.0."""
    a, b, c, d = fixed
    return [[99, 99, 99, 99], [a, 99, 99, 99], [a, b, c, 99], [a, b, c, d]]


def record(num_blocks=6):
    trajectory = [block([10 * j + 1, 10 * j + 2, 10 * j + 3, 10 * j + 4]) for j in range(num_blocks)]
    return {"prompt_ids": [5, 6], "trajectory": trajectory}


def test_noise_ratio():
    fixed = [1, 2, 3, 4]
    assert [noise_ratio(d, fixed) for d in block(fixed)] == [1.0, 0.75, 0.25, 0.0]


def test_progressive_schedule_picks_nearest_iterates():
    packed = pack_trajectories([record()], block_size=4, window=4)  # schedule 0, 1/3, 2/3, 1
    row = packed[0]
    assert row["prompt_ids"] == [5, 6]
    # targets per block: 0, 1/3, 2/3, 1, 0, 1/3 -> iterates 3, 2, 1, 0, 3, 2
    expected = [3, 2, 1, 0, 3, 2]
    assert row["noisy_blocks"] == [record()["trajectory"][j][t] for j, t in enumerate(expected)]
    assert row["clean_blocks"] == [record()["trajectory"][j][-1] for j in range(6)]
    assert row["noise_ratios"] == pytest.approx([0.0, 0.25, 0.75, 1.0, 0.0, 0.25])
    assert row["record_index"] == 0
    info = packing_info(packed)
    assert info["strategy"] == "progressive" and info["window"] == 4 and info["block_size"] == 4


def test_ties_go_to_the_earliest_iterate():
    # window 3: schedule 0, 0.5, 1; target 0.5 is as near to 0.75 (iterate 1) as to 0.25 (iterate 2)
    packed = pack_trajectories([record(2)], block_size=4, window=3)
    assert packed[0]["noise_ratios"] == pytest.approx([0.0, 0.75])


def test_random_strategy_is_reproducible():
    records = random_trajectory_records(4, block_size=8, num_blocks=6)
    first = pack_trajectories(records, strategy="random", seed=3)
    again = pack_trajectories(Dataset.from_list(records), strategy="random", seed=3)  # Dataset input, same result
    other = pack_trajectories(records, strategy="random", seed=4)
    assert first.to_list() == again.to_list()
    assert first["noise_ratios"] != other["noise_ratios"]
    assert packing_info(first)["strategy"] == "random"


def test_range_max_blocks_and_eos():
    packed = pack_trajectories([record()], window=2, min_ratio=0.7, max_ratio=0.8, max_blocks=3)
    assert packed[0]["noise_ratios"] == pytest.approx([0.75, 0.75, 0.75])
    # EOS = 22 is in block 2's fixed point: later blocks are dropped
    packed = pack_trajectories([record()], eos_token_id=22)
    assert len(packed[0]["clean_blocks"]) == 3


def test_loop_start_finds_exact_loops_at_the_end():
    assert loop_start(list(range(40)) + [7, 8, 9] * 12) == (40, 3)
    # the loop reaches back as far as the period holds: 8, 9 before the first full [7, 8, 9] belong to it
    assert loop_start([1, 2, 8, 9] + [7, 8, 9] * 12) == (2, 3)
    assert loop_start([5] * 40) == (0, 1)
    assert loop_start(list(range(100))) is None
    assert loop_start(list(range(40)) + [7, 8, 9] * 3) is None  # too short to call a loop (min_length=32)
    assert loop_start(list(range(40)) + [7, 8, 9] * 12 + [1]) is None  # a loop that was left is not trimmed


def loop_record(num_blocks=6, loop_from_block=2, eos=None):
    """n=4 blocks: distinct tokens, then the period [7, 8] from block `loop_from_block` on."""
    tokens = [100 + i for i in range(4 * loop_from_block)] + [7, 8] * (2 * (num_blocks - loop_from_block))
    if eos is not None:
        tokens[-1] = eos
    trajectory = [block(tokens[4 * j : 4 * j + 4]) for j in range(num_blocks)]
    return {"prompt_ids": [5, 6], "trajectory": trajectory}


def test_trim_loops():
    records = [loop_record(10, 2), loop_record(10, 0), record(6)]
    packed = pack_trajectories(records, window=2, trim_loops=True)
    # the loop starts at token 8 with period 2: blocks 0-1 are kept (token 10 would be the 2nd period's end);
    # a record that loops from its first token has no block left and is dropped; a loop-free record is untouched
    assert [len(b) for b in packed["clean_blocks"]] == [2, 6]
    assert packed["record_index"] == [0, 2]
    assert packing_info(packed)["trim_loops"] is True
    assert [len(b) for b in pack_trajectories(records, window=2)["clean_blocks"]] == [10, 10, 6]  # off by default
    # a continuation that ends with EOS is not a loop at the token limit: kept whole
    ended = pack_trajectories([loop_record(10, 2, eos=2)], window=2, eos_token_id=2, trim_loops=True)
    assert len(ended[0]["clean_blocks"]) == 10
    with pytest.raises(ValueError, match="repetition loop from its first block"):
        pack_trajectories([loop_record(10, 0)], trim_loops=True)


def test_bad_records_name_the_record():
    bad_iterate = record()
    bad_iterate["trajectory"][2][1] = [1, 2, 3]
    with pytest.raises(ValueError, match=r"Record 1, block 2, iterate 1: has 3 tokens, expected block_size=4"):
        pack_trajectories([record(), bad_iterate])
    with pytest.raises(ValueError, match=r"Record 0, block 0, iterate 0: has 4 tokens, expected block_size=8.*stage"):
        pack_trajectories([record()], block_size=8)
    with pytest.raises(ValueError, match=r"Record 1: 'trajectory' is empty"):
        pack_trajectories([record(), {"prompt_ids": [1], "trajectory": []}])
    with pytest.raises(ValueError, match=r"Record 1, block 0: no Jacobi iterates"):
        pack_trajectories([record(), {"prompt_ids": [1], "trajectory": [[]]}])
    with pytest.raises(ValueError, match=r"Record 0: 'prompt_ids' is empty"):
        pack_trajectories([{"prompt_ids": [], "trajectory": record()["trajectory"]}])
    with pytest.raises(ValueError, match=r"Record 0: collected with block_size=8, expected 4"):
        pack_trajectories([dict(record(), block_size=8)], block_size=4)
    with pytest.raises(ValueError, match=r"Unknown noise strategy"):
        pack_trajectories([record()], strategy="linear")


def test_validate_packed_dataset():
    packed = pack_trajectories(random_trajectory_records(3, block_size=4, num_blocks=2))
    assert validate_packed_dataset(packed) == 4
    with pytest.raises(ValueError, match=r"Record 0: a block in 'noisy_blocks' has 4 tokens but the block size is 8"):
        validate_packed_dataset(packed, block_size=8)
    # record 2 has the longest prompt (5) -> 5 + 2 * 4 = 13 positions
    with pytest.raises(ValueError, match=r"Record 2: prompt \(5\) \+ 2 blocks of 4 needs 13 positions"):
        validate_packed_dataset(packed, max_positions=12)
    with pytest.raises(ValueError, match=r"Record 1: packed length 20 exceeds max_length=19"):
        validate_packed_dataset(packed, max_length=19)
    with pytest.raises(ValueError, match=r"pack_trajectories"):
        validate_packed_dataset(Dataset.from_list(random_trajectory_records(1, 4)))


def test_pack_states_from_trajectories_and_decoding_records():
    from hf_jacobi.training import pack_states

    # trajectory records: every iterate but the fixed point becomes a state at its block's start
    trajectory = [[[9, 9], [5, 9], [5, 6]], [[9, 9], [7, 8]]]
    packed = pack_states([{"prompt_ids": [1], "trajectory": trajectory}], block_size=2)
    assert packed[0]["clean_ids"] == [5, 6, 7, 8]
    assert packed[0]["noisy_starts"] == [0, 0, 2] and packed[0]["noisy_blocks"] == [[9, 9], [5, 9], [9, 9]]
    # decoding records: kept, cut at EOS (3), states past it dropped, at most max_states
    record = {"prompt_ids": [1], "clean_ids": [5, 6, 3, 0], "noisy_starts": [0, 1, 2], "noisy_blocks": [[5, 9], [6, 9], [3, 9]]}
    packed = pack_states([record], block_size=2, eos_token_id=3)
    assert packed[0]["clean_ids"] == [5, 6, 3] and packed[0]["noisy_starts"] == [0, 1]
    assert len(pack_states([record], block_size=2, eos_token_id=3, max_states=1)[0]["noisy_starts"]) == 1


def test_pack_states_adds_the_fresh_block_state_of_a_fixed_filler():
    """`filler_token_id`: `[c_p, filler, ...]`, the state a block starts from, at every start p; a state equal to the
    clean tokens is no state; the horizon cut and `max_states` apply after."""
    from hf_jacobi.training import pack_states

    record = {"prompt_ids": [1], "clean_ids": [5, 6, 3, 0], "noisy_starts": [0, 1], "noisy_blocks": [[5, 9], [6, 9]]}
    packed = pack_states([record], block_size=2, eos_token_id=3, filler_token_id=8)[0]
    assert list(zip(packed["noisy_starts"], packed["noisy_blocks"])) == [(0, [5, 9]), (1, [6, 9]), (0, [5, 8]), (1, [6, 8])]
    cut = pack_states([record], block_size=2, eos_token_id=3, filler_token_id=8, horizon=1)[0]
    assert list(zip(cut["noisy_starts"], cut["noisy_blocks"])) == [(1, [9]), (2, [9]), (1, [8]), (2, [8])]
    assert len(pack_states([record], block_size=2, eos_token_id=3, filler_token_id=8, max_states=3)[0]["noisy_starts"]) == 3
    # the filler equals the clean next token at start 0: that state is already right, only start 1 is added
    same = pack_states([{**record, "clean_ids": [5, 8, 3]}], block_size=2, eos_token_id=3, filler_token_id=8)[0]
    assert list(zip(same["noisy_starts"], same["noisy_blocks"])) == [(0, [5, 9]), (1, [6, 9]), (1, [8, 8])]
    with pytest.raises(ValueError, match="filler_token_id"):
        pack_states([record], block_size=2, filler_token_id=-1)


def test_pack_states_trims_loops():
    from hf_jacobi.training import pack_states

    looping = [5, 6, 7] + [4] * 40  # an exact 1-token loop to the token limit, no EOS
    record = {"prompt_ids": [1], "clean_ids": looping, "noisy_starts": [0, 2, 30], "noisy_blocks": [[5, 9], [7, 9], [4, 9]]}
    kept = pack_states([record], block_size=2, eos_token_id=3)[0]
    trimmed = pack_states([record], block_size=2, eos_token_id=3, trim_loops=True)[0]
    assert len(kept["clean_ids"]) == 43 and kept["noisy_starts"] == [0, 2, 30]
    assert trimmed["clean_ids"] == [5, 6, 7, 4] and trimmed["noisy_starts"] == [0, 2]


def test_missing_fields_are_reported_as_missing():
    from hf_jacobi.training import pack_states

    # a `datasets` row holds every column, null where a record lacks it: the message must not list it as present
    rows = Dataset.from_list([record(), {"trajectory": record()["trajectory"]}])
    with pytest.raises(ValueError, match=r"Record 1: missing field\(s\) \['prompt_ids'\].*has \['trajectory'\]"):
        pack_trajectories(rows)
    with pytest.raises(ValueError, match=r"Record 0: missing field\(s\) \['trajectory'\]"):
        pack_trajectories([{"prompt_ids": [1], "trajectory": None}], block_size=4)
    with pytest.raises(ValueError, match=r"Record 0: missing field 'trajectory' or 'noisy_starts'.*has \['prompt_ids'\]"):
        pack_states([{"prompt_ids": [1], "trajectory": None}], block_size=2)
    with pytest.raises(ValueError, match=r"Record 0: missing field\(s\) \['clean_ids'\]"):
        pack_states([{"prompt_ids": [1], "noisy_starts": [0], "noisy_blocks": [[5, 9]]}], block_size=2)


@pytest.mark.parametrize("where, value, message", [
    ("prompt", -1, r"Record 1: 'prompt_ids' holds the out-of-range token id -1 at position 1"),
    ("prompt", None, r"Record 1: 'prompt_ids' holds a null token id at position 1"),
    ("iterate", 2.5, r"Record 1, block 3, iterate 2: 'trajectory' holds 2.5 \(float\) at position 1"),
    ("iterate", None, r"Record 1, block 3, iterate 2: 'trajectory' holds a null token id"),
    ("iterate", -7, r"Record 1, block 3, iterate 2: 'trajectory' holds the out-of-range token id -7"),
])
def test_bad_token_ids_name_the_record_and_field(where, value, message):
    bad = record()
    if where == "prompt":
        bad["prompt_ids"][1] = value
    else:
        bad["trajectory"][3][2][1] = value
    with pytest.raises(ValueError, match=message):
        pack_trajectories([record(), bad])


def test_validate_packed_dataset_checks_token_ids():
    from hf_jacobi.training import pack_states

    packed = pack_trajectories(random_trajectory_records(3, block_size=4, num_blocks=2))
    rows = packed.to_list()
    largest = max(max(max(b) for b in r["clean_blocks"] + r["noisy_blocks"]) for r in rows)
    assert validate_packed_dataset(packed, vocab_size=largest + 1) == 4
    with pytest.raises(ValueError, match=rf"Record \d: '\w+_blocks' holds the out-of-range token id {largest} "
                                         rf"\(the vocabulary has {largest} ids\)"):
        validate_packed_dataset(packed, vocab_size=largest)
    for field, change, message in [
        ("prompt_ids", lambda r: r["prompt_ids"].__setitem__(0, -3), r"Record 2: 'prompt_ids' holds the out-of-range token id -3"),
        ("clean_blocks", lambda r: r["clean_blocks"][1].__setitem__(2, None), r"Record 2: 'clean_blocks' holds a null value"),
        ("noisy_blocks", lambda r: r["noisy_blocks"].__setitem__(0, None), r"Record 2: 'noisy_blocks' holds a null list"),
        ("prompt_ids", lambda r: r.__setitem__("prompt_ids", None), r"Record 2: 'prompt_ids' holds a null list"),
    ]:
        broken = [dict(r, **{field: [list(b) if isinstance(b, list) else b for b in r[field]]}) for r in rows]
        change(broken[2])
        with pytest.raises(ValueError, match=message):
            validate_packed_dataset(Dataset.from_list(broken), batch_size=2)  # the bad record is in the 2nd batch
    # the state layout too
    states = pack_states([{"prompt_ids": [1], "clean_ids": [5, 6, 7], "noisy_starts": [0], "noisy_blocks": [[5, 9]]}],
                         block_size=2).to_list()
    assert validate_packed_dataset(Dataset.from_list(states), vocab_size=10) == 2
    with pytest.raises(ValueError, match=r"Record 0: 'noisy_blocks' holds the out-of-range token id 9 \(the vocabulary"):
        validate_packed_dataset(Dataset.from_list(states), vocab_size=9)
    states[0]["noisy_starts"] = [None]
    with pytest.raises(ValueError, match=r"Record 0: 'noisy_starts' holds a null value"):
        validate_packed_dataset(Dataset.from_list(states))


def test_pack_states_horizon_cuts_states_without_changing_the_losses():
    """States cut to the horizon (`pack_states(horizon=H)`) give the AR and consistency losses of the full states with
    `consistency_horizon=H`, soft and hard: the counted positions see the same tokens at the same positions."""
    import torch
    from testing_utils import tiny_model

    from hf_jacobi.training import JacobiForcingCollator, ar_loss, consistency_loss, pack_states
    from hf_jacobi.training.losses import hard_consistency_loss

    g = torch.Generator().manual_seed(0)
    n, horizon = 6, 3
    clean = torch.randint(5, 60, (40,), generator=g).tolist()
    starts, blocks = [], []
    for start in (0, 3, 7, 7, 20, 33):
        first = int(torch.randint(1, n, (1,), generator=g))  # the decoder's first draft token is always right
        state = clean[start : start + n]
        state[first:] = torch.randint(5, 60, (n - first,), generator=g).tolist()
        state[first] = clean[start + first] + 1  # first wrong token
        starts.append(start)
        blocks.append(state)
    record = {"prompt_ids": [1, 2, 3], "clean_ids": clean, "noisy_starts": starts, "noisy_blocks": blocks}
    full = pack_states([record], block_size=n)[0]
    cut = pack_states([record], block_size=n, horizon=horizon)[0]
    assert all(len(b) == horizon for b in cut["noisy_blocks"])
    firsts = [next(i for i in range(n) if b[i] != clean[s + i]) for s, b in zip(starts, blocks)]
    expected = {(s + f, tuple(b[f : f + horizon])) for s, b, f in zip(starts, blocks, firsts) if f + horizon <= n}
    assert set(zip(cut["noisy_starts"], map(tuple, cut["noisy_blocks"]))) == expected

    # the full states keep only those that the cut keeps, so the two count the same positions
    kept = [(s, b) for s, b, f in zip(starts, blocks, firsts) if f + horizon <= n]
    full = pack_states([record | {"noisy_starts": [s for s, _ in kept], "noisy_blocks": [b for _, b in kept]}], n)[0]
    model = tiny_model().eval()
    losses = []
    for example, block_size, h in ((full, n, horizon), (cut, horizon, None)):
        batch = JacobiForcingCollator(pad_token_id=0, block_size=block_size, consistency_horizon=h)([example])
        with torch.no_grad():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                           position_ids=batch["position_ids"]).logits
        rows = torch.arange(1)[:, None]
        noisy, teacher = logits[rows, batch["noisy_index"]], logits[rows, batch["clean_index"]]
        labels = batch["shift_labels"][rows, batch["clean_index"]]
        mask = batch["consistency_mask"]
        losses.append([ar_loss(logits, batch["shift_labels"]), consistency_loss(noisy, teacher, mask),
                       hard_consistency_loss(noisy, labels, mask), mask.sum()])
    assert int(losses[0][3]) == int(losses[1][3]) > 0
    for a, b in zip(losses[0][:3], losses[1][:3]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
