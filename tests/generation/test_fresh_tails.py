"""Fresh tails (`fresh_tails`): the fresh-tail rows packed into the draft's own sequence under a tree mask. Greedy
output unchanged, each tail's logits those of a plain forward over what it sees, and the carry takes the tail behind
the accepted prefix."""

import pytest
import torch
from testing_utils import generation_inputs, make_tiny_model, markov_model, padded_batch
from transformers import GenerationConfig

import hf_jacobi  # noqa: F401  (enables generation_mode="jacobi")
from hf_jacobi.generation import JacobiConfig
from hf_jacobi.generation.candidates import DraftStep, JacobiDraft
from hf_jacobi.generation.decoding import _with_tails
from hf_jacobi.generation.verification import Verification

FULL_ATTENTION = ["llama", "qwen2", "qwen3", "phi3", "gpt2", "gpt_neox"]
FILLER = 5
MAX_NEW_TOKENS = 21


def _greedy(model, inputs, **kwargs):
    return model.generate(**inputs, do_sample=False, max_new_tokens=MAX_NEW_TOKENS, **kwargs)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("family", FULL_ATTENTION)
def test_greedy_identity_with_fresh_tails(tiny_model_factory, family, batch):
    model = tiny_model_factory(family)
    inputs = generation_inputs(batch)
    reference = _greedy(model, inputs)
    for block_size, tails in ((16, 4), (9, 3), (4, 2), (3, 1), (32, 5)):
        out = _greedy(model, inputs, generation_mode="jacobi", block_size=block_size, draft_init=FILLER,
                      draft_carry="clean", fresh_tails=tails, return_dict_in_generate=True)
        torch.testing.assert_close(out.sequences, reference, rtol=0, atol=0, msg=f"{family} n={block_size} t={tails}")
        assert int(out.accepted_tokens.sum()) == MAX_NEW_TOKENS - 1
        assert out.accepted_tokens.max() <= tails and out.draft_lengths.max() <= block_size
    # with context lookup in the draft: a continuation lengthens the draft, the tails stay behind its first prefixes
    for block_size, tails, tokens in ((16, 4, 7), (4, 2, None)):
        out = _greedy(model, inputs, generation_mode="jacobi", block_size=block_size, draft_init=FILLER,
                      draft_carry="clean", fresh_tails=tails, lookup_ngram=2, lookup_mode="draft",
                      lookup_num_tokens=tokens, return_dict_in_generate=True)
        torch.testing.assert_close(out.sequences, reference, rtol=0, atol=0, msg=f"{family} n={block_size} lookup")
        longest = max(tails, 1 + (tokens or block_size - 1))
        assert out.draft_lengths.max() <= longest + block_size - tails
        if tokens:
            assert out.draft_lengths.max() > block_size  # lookup continuations were fed (random prompts repeat tokens)
    # with context-lookup rows: the draft row holds its tails inside the rows' shared width (longer answers, so that
    # the random models' output repeats and lookup finds matches)
    long_reference = model.generate(**inputs, do_sample=False, max_new_tokens=64)
    for block_size, tails, tokens in ((16, 4, 7), (9, 3, None), (4, 2, None)):
        out = model.generate(**inputs, do_sample=False, max_new_tokens=64, generation_mode="jacobi",
                             block_size=block_size, draft_init=FILLER, draft_carry="clean", fresh_tails=tails,
                             lookup_ngram=1, lookup_mode="row", lookup_num_tokens=tokens, return_dict_in_generate=True)
        torch.testing.assert_close(out.sequences, long_reference, rtol=0, atol=0, msg=f"{family} n={block_size} rows")
        assert int(out.accepted_tokens.sum()) == 63
        assert out.draft_lengths.max() <= block_size and out.candidate_rows.max() > 1
    # EOS inside a draft: nothing after it
    prompt_length = inputs["input_ids"].shape[1]
    eos = int(reference[0, prompt_length + 5])
    eos_reference = _greedy(model, inputs, eos_token_id=eos)
    out = _greedy(model, inputs, generation_mode="jacobi", eos_token_id=eos, block_size=16, draft_init=FILLER,
                  draft_carry="clean", fresh_tails=4)
    torch.testing.assert_close(out, eos_reference, rtol=0, atol=0)


@pytest.mark.parametrize("family", ["llama", "gpt2", "gpt_neox", "phi3"])
def test_each_tail_sees_exactly_its_prefix(tiny_model_factory, family):
    """Logits of every tail token fed behind a draft after a left-padded cache == a plain causal forward over the
    prompt, the draft up to the tail's parent and the tail's fillers (same positions)."""
    model = tiny_model_factory(family)
    ids, mask = padded_batch(2, [9, 5], seed=4)
    draft = torch.tensor([[11, 12, 13, 14], [21, 22, 23, 24]])
    parents = torch.tensor([0, 0, 0, 1, 1, 2, 3, 3])
    with torch.no_grad():
        prefill_positions = (mask[:, :-1].cumsum(-1) - 1).clamp(min=0)  # as generate numbers left-padded prompts
        prefill = model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=prefill_positions,
                        use_cache=True)
        # the draft starts with the last prompt token, which is not in the cache yet
        rows = torch.cat([ids[:, -1:], draft[:, 1:]], dim=1)
        start = mask.sum(-1, keepdim=True) - 1
        positions = start + torch.arange(rows.shape[1])
        fed, fed_positions, tree = _with_tails(model, rows, positions, mask, parents, FILLER, ids.shape[1])
        logits = model(input_ids=fed, attention_mask=tree, position_ids=fed_positions,
                       cache=prefill.cache, use_cache=True).logits
        for b in range(2):
            real = ids[b, mask[b].bool()]
            for j in range(rows.shape[1]):
                length = int((parents == j).sum())
                plain = torch.cat([real, rows[b, 1 : j + 1], torch.full((length,), FILLER)])[None]
                expected = model(input_ids=plain).logits[0, -length:]
                at = rows.shape[1] + torch.nonzero(parents == j)[:, 0]
                torch.testing.assert_close(logits[b, at], expected, rtol=1e-4, atol=1e-4, msg=f"{family} row {b} tail {j}")
            # the draft itself: the plain causal forward over prompt + draft
            plain = torch.cat([real, rows[b, 1:]])[None]
            torch.testing.assert_close(logits[b, : rows.shape[1]], model(input_ids=plain).logits[0, -rows.shape[1] :],
                                       rtol=1e-4, atol=1e-4)


def test_the_carry_takes_the_tail_behind_the_accepted_prefix():
    draft = JacobiDraft(torch.tensor([[7, 8]]), None, block_size=9, draft_init=FILLER, carry="clean", tails=3)
    step = DraftStep(torch.tensor([[7, 8, 9]]), torch.tensor([True]), 9, 100, torch.tensor([[[9]]]))
    candidates = draft.get_candidates(step)
    assert candidates.tolist() == [[[9, FILLER, FILLER]]]
    assert step.tail_parents.tolist() == [0, 0, 1, 1, 2, 2]  # 3 tails of (9 - 3) // 3 = 2 fillers
    tail_predictions = torch.tensor([[40, 41, 50, 51, 60, 61]])
    for accepted, guess in ((1, [40, 41]), (2, [50, 51]), (3, [60, 61])):
        verification = Verification(candidates, candidates, torch.tensor([[accepted]]), torch.tensor([0]),
                                    num_accepted=accepted, tail_predictions=tail_predictions)
        draft.update_candidate_strategy(step, verification)
        assert draft.guess.tolist() == [guess]


def test_no_tail_saw_what_a_lookup_row_committed_past_the_draft():
    """When a lookup row commits more than the draft accepted, the next draft is all filler (no clean guesses)."""
    draft = JacobiDraft(torch.tensor([[7, 8]]), None, block_size=9, draft_init=FILLER, carry="clean", tails=3)
    step = DraftStep(torch.tensor([[7, 8, 9]]), torch.tensor([True]), 9, 100, torch.tensor([[[9]]]))
    candidates = draft.get_candidates(step)
    tail_predictions = torch.tensor([[40, 41, 50, 51, 60, 61]])
    for draft_accepted, guess in ((1, [FILLER, FILLER]), (3, [60, 61])):
        verification = Verification(candidates, candidates, torch.tensor([[draft_accepted, 3]]), torch.tensor([1]),
                                    num_accepted=3, tail_predictions=tail_predictions)
        draft.update_candidate_strategy(step, verification)
        assert draft.guess.tolist() == [guess]


def test_lookup_rows_beside_tails_commit_past_the_draft():
    """A cycle 6 -> 7 -> 8 -> 9 -> 6 that the filler never guesses (it predicts 5): the tails' guesses always fail,
    the lookup row (the cycle seen in the prompt) is right across its whole width, so forwards commit more than the
    draft could (`fresh_tails` tokens)."""
    next_token = [5] * 16
    next_token[6:10] = [7, 8, 9, 6]
    model = markov_model(next_token)
    ids = torch.tensor([[1, 6, 7, 8, 9, 6]])
    reference = model.generate(input_ids=ids, do_sample=False, max_new_tokens=40)
    out = model.generate(input_ids=ids, do_sample=False, max_new_tokens=40, generation_mode="jacobi", block_size=16,
                         draft_init=3, draft_carry="clean", fresh_tails=4, lookup_ngram=2, lookup_mode="row",
                         return_dict_in_generate=True)
    torch.testing.assert_close(out.sequences, reference, rtol=0, atol=0)
    # 39 tokens after the prefill's: 16, 16, and the last 7 in one forward too (near max_length the lookup row keeps
    # the draft's width with its tails and verifies what is left, instead of the tails alone committing 1 a forward)
    assert out.accepted_tokens.tolist() == [16, 16, 7] and out.recycled_wins.sum() > 0


def test_tails_accept_every_right_guess():
    """A model whose filler predictions are always right (every token is followed by 5, the filler's prediction too)
    accepts all `fresh_tails` draft tokens in every forward but the first (which has no guesses yet)."""
    model = markov_model([5] * 16)
    ids = torch.tensor([[1, 7, 8, 9]])
    reference = model.generate(input_ids=ids, do_sample=False, max_new_tokens=40)
    for block_size, tails in ((16, 4), (9, 3)):
        out = model.generate(input_ids=ids, do_sample=False, max_new_tokens=40, generation_mode="jacobi",
                             block_size=block_size, draft_init=3, draft_carry="clean", fresh_tails=tails,
                             return_dict_in_generate=True)
        torch.testing.assert_close(out.sequences, reference, rtol=0, atol=0)
        accepted = out.accepted_tokens.tolist()
        assert accepted[0] == 1 and set(accepted[1:-1]) == {tails}, accepted


@pytest.mark.parametrize("family", ["mistral", "gemma2", "gemma3"])
def test_sliding_window_models_are_refused(tiny_model_factory, family):
    model = tiny_model_factory(family)
    with pytest.raises(ValueError, match="sliding-window.*fresh_rows"):
        _greedy(model, generation_inputs(1), generation_mode="jacobi", block_size=16, draft_init=FILLER,
                draft_carry="clean", fresh_tails=4)


@pytest.mark.parametrize(
    "settings, match",
    [
        ({"draft_init": 3, "fresh_tails": 2}, "pass draft_carry='clean'"),
        ({"draft_init": 3, "draft_carry": "clean", "fresh_tails": -1}, "fresh_tails"),
        ({"draft_init": 3, "draft_carry": "clean", "fresh_tails": 4, "block_size": 15}, "block_size >= 16"),
        ({"draft_init": 3, "draft_carry": "clean", "fresh_tails": 2, "fresh_rows": 2}, "fresh_rows=2"),
        ({"draft_init": 3, "draft_carry": "clean", "fresh_tails": 2, "num_blocks": 2}, "num_blocks=2"),
        ({"draft_init": 3, "draft_carry": "clean", "fresh_tails": 2, "pool_size": 2}, "pool_size=2"),
        ({"draft_init": 3, "draft_carry": "clean", "fresh_tails": 2, "block_size": "auto"}, "fresh_tails=2"),
    ],
)
def test_bad_fresh_tails_settings(settings, match):
    with pytest.raises(ValueError, match=match):
        JacobiConfig(**settings)


def test_saved_tails_and_lookup_give_way_to_the_callers_settings():
    """Tails and lookup saved in a model's GenerationConfig (how it was trained to decode) are defaults: they shrink
    to the block size asked for, or turn off beside settings they cannot be combined with; passed to `generate` they
    are still refused when they do not fit."""
    saved = GenerationConfig(draft_init=FILLER, draft_carry="clean", fresh_tails=4, lookup_ngram=2)
    for settings, tails, lookup in (({}, 4, 2), ({"block_size": 8}, 2, 2), ({"block_size": 3}, 0, 2),
                                    ({"block_size": "auto"}, 0, 0), ({"num_blocks": 2}, 0, 2),
                                    ({"fresh_rows": 3}, 0, 2), ({"draft_carry": "all"}, 0, 2)):
        config = JacobiConfig.from_generation_config(saved, **settings)
        assert (config.fresh_tails, config.lookup_ngram) == (tails, lookup), settings
    with pytest.raises(ValueError, match="block_size >= 16"):
        JacobiConfig.from_generation_config(saved, fresh_tails=4, block_size=8)
    model = make_tiny_model("llama")
    inputs = generation_inputs(3)
    reference = _greedy(model, inputs)
    model.generation_config.update(**saved.to_diff_dict())
    out = _greedy(model, inputs, generation_mode="jacobi", block_size=8, return_dict_in_generate=True)
    torch.testing.assert_close(out.sequences, reference, rtol=0, atol=0)
    assert out.draft_lengths.max() <= 8  # two tails (2 draft tokens, 2 tails of 3) in the 8 positions asked for


def test_no_tails_no_change():
    """`fresh_tails=0` is the clean carry as before: same forwards, same acceptance."""
    model = make_tiny_model("llama")
    inputs = generation_inputs(3)
    settings = {"generation_mode": "jacobi", "block_size": 8, "draft_init": FILLER, "draft_carry": "clean",
                    "return_dict_in_generate": True}
    a, b = _greedy(model, inputs, **settings), _greedy(model, inputs, fresh_tails=0, **settings)
    assert torch.equal(a.sequences, b.sequences) and a.accepted_tokens.tolist() == b.accepted_tokens.tolist()


def test_sampling_with_fresh_tails():
    """Under sampling the tails' guesses are drafts like any other (argmax of the tail logits) and the verification
    samples every committed token (its distribution is tested in test_sampling.py): the loop runs to the length."""
    model = make_tiny_model("llama")
    inputs = generation_inputs(1)
    settings = {"do_sample": True, "max_new_tokens": MAX_NEW_TOKENS, "generation_mode": "jacobi", "block_size": 9,
                "draft_init": FILLER, "draft_carry": "clean", "return_dict_in_generate": True}
    torch.manual_seed(0)
    out = model.generate(**inputs, fresh_tails=3, **settings)
    assert out.sequences.shape[1] == inputs["input_ids"].shape[1] + MAX_NEW_TOKENS
    assert int(out.accepted_tokens.sum()) == MAX_NEW_TOKENS - 1


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_logits_processors_see_only_the_draft(tiny_model_factory, family):
    """Processors score the verified draft positions with their own prefixes; the tails are not scored."""
    model = tiny_model_factory(family)
    inputs = generation_inputs(3)
    kwargs = {"repetition_penalty": 1.3, "min_new_tokens": 5}
    reference = _greedy(model, inputs, **kwargs)
    out = _greedy(model, inputs, generation_mode="jacobi", block_size=16, draft_init=FILLER, draft_carry="clean",
                  fresh_tails=4, **kwargs)
    torch.testing.assert_close(out, reference, rtol=0, atol=0)
    out = _greedy(model, inputs, generation_mode="jacobi", block_size=16, draft_init=FILLER, draft_carry="clean",
                  fresh_tails=4, lookup_ngram=1, **kwargs)  # beside lookup rows
    torch.testing.assert_close(out, reference, rtol=0, atol=0)
