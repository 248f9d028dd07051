"""JacobiForcingCollator on handcrafted examples: layout, targets, consistency mask, padding, errors."""


import pytest
import torch
from testing_utils import tiny_tokenizer

from hf_jacobi.training import JacobiForcingCollator

# prompt [10, 11, 12], n = 2, T = 2; k_0 differs from c_0 from offset 1, k_1 from offset 0
EXAMPLE = {"prompt_ids": [10, 11, 12], "noisy_blocks": [[20, 30], [31, 32]], "clean_blocks": [[20, 21], [22, 23]]}
X = -100


def visible_keys(mask, row):
    return mask[0, 0, row].nonzero().flatten().tolist()


def test_layout_targets_and_indices():
    batch = JacobiForcingCollator(pad_token_id=0)([EXAMPLE])
    #                                  prompt      k_0     c_0     k_1     c_1
    assert batch["input_ids"].tolist() == [[10, 11, 12, 20, 30, 20, 21, 31, 32, 22, 23]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 4, 3, 4, 5, 6, 5, 6]]
    # Along prompt + c_0 + c_1, with the bridges prompt -> c_0 (index 2) and c_0 -> c_1 (index 6)
    assert batch["shift_labels"].tolist() == [[11, 12, 20, X, X, 21, 22, X, X, 23, X]]
    assert batch["noisy_index"].tolist() == [[3, 4, 7, 8]]
    assert batch["clean_index"].tolist() == [[5, 6, 9, 10]]
    assert batch["consistency_mask"].tolist() == [[False, True, True, True]]
    assert batch["num_blocks"].tolist() == [2]


def test_visibility_rules():
    noisy_ctx = JacobiForcingCollator(pad_token_id=0)([EXAMPLE])["attention_mask"]
    clean_ctx = JacobiForcingCollator(pad_token_id=0, mask_context="clean")([EXAMPLE])["attention_mask"]
    for mask in (noisy_ctx, clean_ctx):
        assert visible_keys(mask, 1) == [0, 1]  # prompt: causal
        assert visible_keys(mask, 4) == [0, 1, 2, 3, 4]  # k_0: prompt + causal in k_0
        assert visible_keys(mask, 10) == [0, 1, 2, 5, 6, 9, 10]  # c_1: prompt + c_0 + causal in c_1
    assert visible_keys(noisy_ctx, 8) == [0, 1, 2, 3, 4, 7, 8]  # k_1 sees k_0
    assert visible_keys(clean_ctx, 8) == [0, 1, 2, 5, 6, 7, 8]  # k_1 sees c_0


def test_eos_ends_the_clean_continuation():
    # EOS = 21 is c_0[1]: it is still a target, nothing after it counts
    batch = JacobiForcingCollator(pad_token_id=0, eos_token_id=21, train_on_prompt=False)([EXAMPLE])
    assert batch["shift_labels"].tolist() == [[X, X, 20, X, X, 21, X, X, X, X, X]]
    # Consistency counts offsets before the EOS only: c_0[0]'s offset, which k_0 does not differ at
    assert batch["consistency_mask"].tolist() == [[False, False, False, False]]
    batch = JacobiForcingCollator(pad_token_id=0, eos_token_id=[99, 23])([EXAMPLE])
    assert batch["consistency_mask"].tolist() == [[False, True, True, False]]


def test_padding_and_mask_formats():
    short = {"prompt_ids": [5], "noisy_blocks": [[7, 8]], "clean_blocks": [[6, 8]]}
    sdpa = JacobiForcingCollator(pad_token_id=0)([EXAMPLE, short])
    assert sdpa["input_ids"][1].tolist() == [5, 7, 8, 6, 8] + [0] * 6
    assert sdpa["shift_labels"][1, 5:].eq(X).all()
    assert sdpa["consistency_mask"][1].tolist() == [True, True, False, False]
    assert sdpa["num_blocks"].tolist() == [2, 1]
    mask = sdpa["attention_mask"]
    assert mask.shape == (2, 1, 11, 11) and mask.dtype == torch.bool
    for row in range(5, 11):  # a padding row sees only itself, and no real row sees padding
        assert visible_keys(mask[1:], row) == [row]
        assert not mask[1, 0, :5, row].any()
    eager = JacobiForcingCollator(pad_token_id=0, attn_implementation="eager", mask_dtype=torch.bfloat16)(
        [EXAMPLE, short]
    )["attention_mask"]
    assert eager.dtype == torch.bfloat16
    assert torch.equal(eager == 0, mask)
    assert (eager[~mask] == torch.finfo(torch.bfloat16).min).all()


def test_pad_token_from_tokenizer_or_clear_error():
    tokenizer = tiny_tokenizer()
    assert JacobiForcingCollator(tokenizer=tokenizer).pad_token_id == tokenizer.pad_token_id
    assert JacobiForcingCollator(tokenizer=tokenizer).eos_token_id == tokenizer.eos_token_id
    tokenizer.pad_token = None
    with pytest.raises(ValueError, match=r"tokenizer.pad_token = tokenizer.eos_token"):
        JacobiForcingCollator(tokenizer=tokenizer)


def test_errors_name_the_example_and_record():
    bad = dict(EXAMPLE, noisy_blocks=[[20, 30, 1], [31, 32]], record_index=17)
    with pytest.raises(ValueError, match=r"Example 1 of the batch \(record 17\).*block 0 of 'noisy_blocks'"):
        JacobiForcingCollator(pad_token_id=0)([EXAMPLE, bad])
    with pytest.raises(ValueError, match=r"Example 0.*block_size=4"):
        JacobiForcingCollator(pad_token_id=0, block_size=4)([EXAMPLE])
    with pytest.raises(ValueError, match=r"Example 0.*7 positions.*max_position_embeddings=6"):
        JacobiForcingCollator(pad_token_id=0, max_positions=6)([EXAMPLE])
    with pytest.raises(ValueError, match=r"Example 0.*packed length 11 exceeds max_length=10"):
        JacobiForcingCollator(pad_token_id=0, max_length=10)([EXAMPLE])
    with pytest.raises(ValueError, match=r"same, non-zero number"):
        JacobiForcingCollator(pad_token_id=0)([dict(EXAMPLE, noisy_blocks=[[20, 30]])])
    with pytest.raises(ValueError, match=r"Example 0.*pack_trajectories"):
        JacobiForcingCollator(pad_token_id=0)([{"prompt_ids": [1], "trajectory": [[[1, 2]]]}])
    # a missing (or null) field is named as missing, not listed among those present
    with pytest.raises(ValueError, match=r"noisy_blocks missing"):
        JacobiForcingCollator(pad_token_id=0)([dict(EXAMPLE, noisy_blocks=None)])
    with pytest.raises(ValueError, match=r"flash"):
        JacobiForcingCollator(pad_token_id=0, attn_implementation="flash_attention_2")


def test_state_layout_targets_and_indices():
    # prompt [10, 11], clean continuation [20, 21, 22, 23], two states of n = 2 at starts 1 and 2
    example = {"prompt_ids": [10, 11], "clean_ids": [20, 21, 22, 23], "noisy_starts": [1, 2],
               "noisy_blocks": [[21, 30], [31, 32]]}
    batch = JacobiForcingCollator(pad_token_id=0, eos_token_id=None)([example])
    #                                     prompt  clean            s_0     s_1
    assert batch["input_ids"].tolist() == [[10, 11, 20, 21, 22, 23, 21, 30, 31, 32]]
    assert batch["position_ids"].tolist() == [[0, 1, 2, 3, 4, 5, 3, 4, 4, 5]]
    assert batch["shift_labels"].tolist() == [[11, 20, 21, 22, 23, X, X, X, X, X]]
    assert batch["noisy_index"].tolist() == [[6, 7, 8, 9]]
    assert batch["clean_index"].tolist() == [[3, 4, 4, 5]]
    # s_0 agrees with the clean token at its first offset; s_1 differs from its first
    assert batch["consistency_mask"].tolist() == [[False, True, True, True]]
    mask = batch["attention_mask"]
    assert visible_keys(mask, 7) == [0, 1, 2, 6, 7]  # s_0: prompt, clean[:1], itself causally
    assert visible_keys(mask, 9) == [0, 1, 2, 3, 8, 9]  # s_1: prompt, clean[:2], itself
    assert visible_keys(mask, 5) == [0, 1, 2, 3, 4, 5]  # clean: causal over prompt + continuation


@pytest.mark.parametrize("change, message", [
    (dict(noisy_starts=[3]), "must lie within"),
    (dict(noisy_starts=[0, 1]), "as many 'noisy_starts'"),
    (dict(clean_ids=[]), "non-empty"),
])
def test_state_layout_errors(change, message):
    example = {"prompt_ids": [10], "clean_ids": [20, 21, 22, 23], "noisy_starts": [0], "noisy_blocks": [[1, 2]]}
    with pytest.raises(ValueError, match=message):
        JacobiForcingCollator(pad_token_id=0)([example | change])


def test_consistency_horizon_counts_the_first_positions_after_the_first_error():
    # n = 4: block 0 first differs at offset 1, block 1 at offset 0; both layouts
    example = {"prompt_ids": [10, 11], "noisy_blocks": [[20, 9, 9, 9], [9, 9, 9, 9]],
               "clean_blocks": [[20, 21, 22, 23], [24, 25, 26, 27]]}
    full = JacobiForcingCollator(pad_token_id=0)([example])["consistency_mask"]
    assert full.tolist() == [[False, True, True, True] + [True] * 4]
    two = JacobiForcingCollator(pad_token_id=0, consistency_horizon=2)([example])["consistency_mask"]
    assert two.tolist() == [[False, True, True, False, True, True, False, False]]
    states = {"prompt_ids": [10, 11], "clean_ids": [20, 21, 22, 23, 24], "noisy_starts": [0, 1],
              "noisy_blocks": [[20, 9, 9, 9], [9, 9, 9, 9]]}
    one = JacobiForcingCollator(pad_token_id=0, consistency_horizon=1)([states])["consistency_mask"]
    assert one.tolist() == [[False, True, False, False, True, False, False, False]]
    with pytest.raises(ValueError, match="`consistency_horizon` must be a positive integer or None, got 0"):
        JacobiForcingCollator(pad_token_id=0, consistency_horizon=0)
