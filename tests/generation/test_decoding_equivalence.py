"""The spine: Jacobi decoding returns exactly the tokens of `generate(do_sample=False)` on every family."""

import pytest
import torch
from testing_utils import FAMILIES, generation_inputs, padded_batch

import hf_jacobi  # noqa: F401  (enables generation_mode="jacobi")

BLOCK_SIZES = [1, 2, 3, 8, 32]
MAX_NEW_TOKENS = 21  # not a multiple of any block size > 1


def _greedy(model, inputs, **kwargs):
    return model.generate(**inputs, do_sample=False, max_new_tokens=MAX_NEW_TOKENS, **kwargs)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_greedy_identity(tiny_model_factory, family, batch):
    model = tiny_model_factory(family)
    inputs = generation_inputs(batch)
    reference = _greedy(model, inputs)
    assert reference.shape[1] == inputs["input_ids"].shape[1] + MAX_NEW_TOKENS
    for block_size in BLOCK_SIZES:
        out = _greedy(model, inputs, generation_mode="jacobi", block_size=block_size, return_dict_in_generate=True)
        torch.testing.assert_close(out.sequences, reference, rtol=0, atol=0, msg=f"{family} block_size={block_size}")
        # every decoding forward commits between 1 and block_size tokens, and they add up to the output
        assert out.accepted_tokens.min() >= 1 and out.accepted_tokens.max() <= block_size
        assert int(out.accepted_tokens.sum()) == MAX_NEW_TOKENS - 1


@pytest.mark.parametrize("family", list(FAMILIES))
def test_greedy_identity_fixed_filler(tiny_model_factory, family):
    """A fixed filler token (`draft_init=<token id>`, what a model trained on that filler decodes with) changes only
    the drafts: the output stays greedy's, also given as a string of digits (command lines, JSON), with the clean
    carry (predictions made after a wrong draft token become filler), and with fresh-tail rows beside the draft."""
    model = tiny_model_factory(family)
    inputs = generation_inputs(3)
    reference = _greedy(model, inputs)
    for block_size, filler in ((3, 5), (8, "0"), (32, 7)):
        for carry, rows in (("all", 0), ("clean", 0), ("clean", 3)):
            out = _greedy(model, inputs, generation_mode="jacobi", block_size=block_size, draft_init=filler,
                          draft_carry=carry, fresh_rows=rows)
            torch.testing.assert_close(out, reference, rtol=0, atol=0, msg=f"{family} n={block_size} {carry} {rows}")


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_greedy_identity_with_eos_inside_block(tiny_model_factory, family, batch):
    """EOS picked from the reference continuation so it lands inside a block; nothing after it is emitted."""
    model = tiny_model_factory(family)
    inputs = generation_inputs(batch)
    free_run = _greedy(model, inputs)
    prompt_length = inputs["input_ids"].shape[1]
    eos = int(free_run[0, prompt_length + 5])
    second_eos = int(free_run[-1, prompt_length + 11])
    for eos_token_id in (eos, [second_eos, eos]):
        reference = _greedy(model, inputs, eos_token_id=eos_token_id)
        # row 0 stops at its EOS (a batch stops early only once every row has)
        assert torch.isin(reference[0, prompt_length:], torch.tensor(eos_token_id)).any()
        assert batch > 1 or reference.shape[1] < prompt_length + MAX_NEW_TOKENS
        for block_size in BLOCK_SIZES:
            out = _greedy(model, inputs, generation_mode="jacobi", block_size=block_size, eos_token_id=eos_token_id)
            torch.testing.assert_close(out, reference, rtol=0, atol=0, msg=f"{family} block_size={block_size}")


# Multi-block decoding, rejection recycling and context lookup (as extra rows or in the draft): (block_size,
# num_blocks, pool_size, spawn_ratio, lookup_ngram, lookup_mode, lookup_num_tokens). A spawn ratio of 0.1 spawns
# pseudo-active blocks at every forward even on these untrained models, so their paths are always exercised.
MULTIBLOCK = [(3, 2, 0, 0.1, 0, "row", None), (4, 3, 4, 0.1, 0, "row", None), (2, 3, 4, 0.85, 0, "row", None),
              (5, 1, 4, 0.85, 0, "row", None), (5, 1, 0, 0.85, 2, "row", None), (4, 2, 4, 0.1, 3, "row", None),
              (2, 1, 0, 0.85, 2, "draft", 6), (3, 2, 4, 0.1, 2, "draft", None)]


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_greedy_identity_multiblock_and_recycling(tiny_model_factory, family, batch):
    model = tiny_model_factory(family)
    inputs = generation_inputs(batch)
    reference = _greedy(model, inputs)
    for block_size, num_blocks, pool_size, spawn_ratio, lookup_ngram, lookup_mode, lookup_num_tokens in MULTIBLOCK:
        settings = dict(block_size=block_size, num_blocks=num_blocks, pool_size=pool_size, spawn_ratio=spawn_ratio,
                        lookup_ngram=lookup_ngram, lookup_mode=lookup_mode, lookup_num_tokens=lookup_num_tokens)
        out = _greedy(model, inputs, generation_mode="jacobi", return_dict_in_generate=True, **settings)
        torch.testing.assert_close(out.sequences, reference, rtol=0, atol=0, msg=f"{family} {settings}")
        assert int(out.accepted_tokens.sum()) == MAX_NEW_TOKENS - 1
        assert out.draft_lengths.max() <= max(block_size * num_blocks, 1 + (lookup_num_tokens or 0))
        rows = 1 + pool_size + (lookup_ngram > 0 and lookup_mode == "row")
        assert out.candidate_rows.max() <= rows
        if lookup_ngram and not pool_size:
            assert out.candidate_rows.max() == rows  # lookup rows were verified (random prompts repeat single tokens)
        if lookup_num_tokens:
            assert out.draft_lengths.max() > block_size * num_blocks  # lookup continuations lengthened the block
        if spawn_ratio < 0.2:
            assert out.draft_lengths.max() > block_size  # pseudo-active blocks were in flight
    # EOS inside a block (rows stop at different forwards)
    prompt_length = inputs["input_ids"].shape[1]
    eos = int(reference[0, prompt_length + 5])
    eos_reference = _greedy(model, inputs, eos_token_id=eos)
    out = _greedy(model, inputs, generation_mode="jacobi", eos_token_id=eos, block_size=4, num_blocks=3, pool_size=4,
                  spawn_ratio=0.1)
    torch.testing.assert_close(out, eos_reference, rtol=0, atol=0)


@pytest.mark.parametrize("family", ["llama", "mistral", "gemma2", "gpt2"])
@pytest.mark.parametrize("draft_init", ["prompt", "repeat", 3])
@pytest.mark.parametrize("multiblock", [{}, dict(num_blocks=3, pool_size=4, spawn_ratio=0.1)], ids=["K1", "K3pool4"])
def test_long_generation_past_sliding_window(tiny_model_factory, family, draft_init, multiblock):
    """Many crops across the sliding-window boundary must leave the cache exactly as greedy decoding has it."""
    model = tiny_model_factory(family)
    ids, mask = padded_batch(2, [12, 4], seed=3)
    reference = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=60)
    for block_size in (4, 7, 16):
        out = model.generate(
            input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=60,
            generation_mode="jacobi", block_size=block_size, draft_init=draft_init, **multiblock,
        )
        torch.testing.assert_close(out, reference, rtol=0, atol=0)
