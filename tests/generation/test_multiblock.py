"""Multi-block decoding and rejection recycling (arXiv 2512.14681): lossless, effective where they should be, unbiased under
sampling, and clear about bad input. The family-wide greedy identity lives in test_decoding_equivalence.py."""

from collections import Counter

import pytest
import torch
import transformers
from testing_utils import make_tiny_model, markov_model, padded_batch

import hf_jacobi  # noqa: F401
from hf_jacobi import generation
from hf_jacobi.generation import candidates as sources

PROMPT = torch.tensor([[9, 10, 11, 12, 13, 14, 15, 6]])
CYCLE = (3, 4, 5, 6, 7)


@pytest.fixture(scope="module")
def constant_model():
    """Always predicts token 5, whatever the context: every carried prediction is right after one iteration."""
    return markov_model([5] * 16)


@pytest.fixture(scope="module")
def cyclic_model():
    """Next token = successor in the cycle 3 -> 4 -> 5 -> 6 -> 7 -> 3 (others go to 3): Jacobi iteration advances one
    position per forward, so only recycled n-grams can beat TPF 1."""
    return markov_model([CYCLE[(CYCLE.index(x) + 1) % len(CYCLE)] if x in CYCLE else 3 for x in range(16)])


def jacobi_run(model, input_ids, **kwargs):
    kwargs = dict(dict(do_sample=False, max_new_tokens=60, generation_mode="jacobi", return_dict_in_generate=True),
                  **kwargs)
    return model.generate(input_ids, **kwargs)


def test_constructed_models_are_what_they_claim(constant_model, cyclic_model):
    out = constant_model.generate(PROMPT, do_sample=False, max_new_tokens=6)
    assert out[0, PROMPT.shape[1]:].tolist() == [5] * 6
    out = cyclic_model.generate(PROMPT, do_sample=False, max_new_tokens=7)
    assert out[0, PROMPT.shape[1]:].tolist() == [7, 3, 4, 5, 6, 7, 3]  # the prompt ends with 6


def test_more_blocks_in_flight_raise_tokens_per_forward(constant_model):
    reference = constant_model.generate(PROMPT, do_sample=False, max_new_tokens=60)
    tpf = {}
    for num_blocks in (1, 2, 3):
        out = jacobi_run(constant_model, PROMPT, block_size=4, num_blocks=num_blocks)
        torch.testing.assert_close(out.sequences, reference, rtol=0, atol=0)
        assert out.draft_lengths.max() == 4 * num_blocks  # pseudo-active blocks were spawned, never more than K
        assert out.accepted_tokens.max() <= 4 * num_blocks
        tpf[num_blocks] = out.tokens_per_forward
    # K=1 alternates a full block (4) with a filler-only block (1); pseudo-active blocks carry their predictions.
    assert tpf[1] < 2.6 and 4.0 < tpf[2] < tpf[3], tpf


def test_spawn_ratio_one_waits_for_a_fully_settled_block(constant_model):
    out = jacobi_run(constant_model, PROMPT, block_size=4, num_blocks=2, spawn_ratio=1.0, max_new_tokens=30)
    lengths, accepted = out.draft_lengths.tolist(), out.accepted_tokens.tolist()
    for i in range(1, len(lengths)):
        if lengths[i] > lengths[i - 1]:  # a spawn follows a forward whose real-active block was entirely settled
            assert accepted[i - 1] >= 4


def test_multi_block_batch_with_padding(constant_model, cyclic_model):
    ids, mask = padded_batch(3, [8, 3, 6], seed=4)
    ids = ids % 16
    for model in (constant_model, cyclic_model):
        reference = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=40)
        out = jacobi_run(model, ids, attention_mask=mask, block_size=3, num_blocks=3, pool_size=4, max_new_tokens=40)
        torch.testing.assert_close(out.sequences, reference, rtol=0, atol=0)


def test_rejection_recycling_triggers_and_helps(cyclic_model):
    reference = cyclic_model.generate(PROMPT, do_sample=False, max_new_tokens=60)
    plain = jacobi_run(cyclic_model, PROMPT, block_size=4)
    recycled = jacobi_run(cyclic_model, PROMPT, block_size=4, pool_size=4)
    for out in (plain, recycled):
        torch.testing.assert_close(out.sequences, reference, rtol=0, atol=0)
    assert plain.tokens_per_forward == 1.0 and plain.candidate_rows.max() == 1
    assert recycled.recycled_wins.sum() > 5
    assert recycled.candidate_rows.max() <= 1 + 4
    assert recycled.tokens_per_forward > 1.5, recycled.tokens_per_forward
    # a forward with a winning candidate row committed more than the draft alone ever does here
    assert recycled.accepted_tokens[recycled.recycled_wins > 0].min() >= 2


def test_recycling_with_batch_and_padding(cyclic_model):
    ids, mask = padded_batch(3, [8, 4, 6], seed=0)
    ids = ids % 16
    reference = cyclic_model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=50)
    out = jacobi_run(cyclic_model, ids, attention_mask=mask, block_size=3, pool_size=4, max_new_tokens=50)
    torch.testing.assert_close(out.sequences, reference, rtol=0, atol=0)
    assert out.recycled_wins.sum() > 5
    assert out.tokens_per_forward > 1.1  # every row must accept more for the batch to commit more
    assert out.cache.get_seq_length() == out.sequences.shape[1] - 1
    assert out.cache.layers[0].keys.shape[0] == 3  # candidate rows were folded back into one row per sequence


def test_recycling_with_eos_and_scores(cyclic_model):
    reference = cyclic_model.generate(PROMPT, do_sample=False, max_new_tokens=40, eos_token_id=7,
                                      return_dict_in_generate=True, output_scores=True)
    out = jacobi_run(cyclic_model, PROMPT, block_size=4, pool_size=4, num_blocks=2, max_new_tokens=40,
                     eos_token_id=7, output_scores=True)
    torch.testing.assert_close(out.sequences, reference.sequences, rtol=0, atol=0)
    torch.testing.assert_close(torch.stack(out.scores), torch.stack(reference.scores))


@pytest.mark.parametrize("family", ["llama", "phi3"])
def test_recycling_with_prefix_dependent_logits_processors(family):
    """Candidate rows are scored with their own prefixes, and processors that index the batch (the repetition
    penalty skips each row's padding; prefix_allowed_tokens_fn gets the batch index) see one row per sequence."""
    model = make_tiny_model(family)
    ids, mask = padded_batch(3, [8, 4, 6])
    free = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=30)
    eos = int(free[0, ids.shape[1] + 2])

    def allowed(batch_id, prefix):  # row-dependent constraint
        return list(range(3 + batch_id, 90, 1 + batch_id))

    for kwargs in (
        dict(repetition_penalty=1.3),
        dict(no_repeat_ngram_size=3),
        dict(min_new_tokens=12, eos_token_id=eos),
        dict(prefix_allowed_tokens_fn=allowed),
    ):
        reference = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=30, **kwargs)
        out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=30,
                             generation_mode="jacobi", block_size=4, num_blocks=2, spawn_ratio=0.1, pool_size=4,
                             return_dict_in_generate=True, **kwargs)
        torch.testing.assert_close(out.sequences, reference, rtol=0, atol=0, msg=str(kwargs))
        assert out.recycled_wins.sum() > 0  # candidate rows were scored and chosen


def _step(candidates, context=None, unfinished=None, block_size=None, max_length=100):
    candidates = torch.tensor(candidates)
    if candidates.dim() == 2:
        candidates = candidates[:, None]
    batch = candidates.shape[0]
    context = candidates[:, 0, :1] if context is None else torch.tensor(context)
    unfinished = torch.ones(batch, dtype=torch.bool) if unfinished is None else torch.tensor(unfinished)
    return sources.DraftStep(context, unfinished, block_size or candidates.shape[-1], max_length, candidates)


def _verified(block, predictions, num_accepted=1):
    block, predictions = torch.tensor(block)[:, None], torch.tensor(predictions)[:, None]
    accepted = generation.accept_length(block[:, 0], predictions[:, 0])[:, None]
    chosen = torch.zeros(block.shape[0], dtype=torch.long)
    return generation.Verification(block, predictions, accepted, chosen, num_accepted)


def test_clean_carry_unit():
    """`carry="clean"` keeps a prediction only if every draft token up to it was accepted or filler (9)."""
    draft = sources.JacobiDraft(torch.tensor([[3, 4]]), None, 6, 9, 0, carry="clean")
    # row 0: accepted 2 ([1, 2]); 5 is a wrong guess, so the predictions from it on are dropped
    # row 1: accepted 3 (one more than the shared commit), then only filler fed: the predictions after it were made from exact tokens and filler
    block = [[1, 2, 5, 9, 9, 9], [1, 2, 3, 9, 9, 9]]
    verification = _verified(block, [[2, 3, 6, 7, 8, 0], [2, 3, 4, 5, 6, 7]], num_accepted=2)
    assert verification.accepted[:, 0].tolist() == [2, 3]
    draft.update_candidate_strategy(_step(block), verification)
    assert draft.guess.tolist() == [[9, 9, 9, 9], [4, 5, 6, 7]]
    jacobi = sources.JacobiDraft(torch.tensor([[3, 4]]), None, 6, 9, 0)  # the default carries every prediction
    jacobi.update_candidate_strategy(_step(block), verification)
    assert jacobi.guess.tolist() == [[6, 7, 8, 0], [4, 5, 6, 7]]


def test_fresh_tail_rows_unit():
    """`FreshTailRows` adds `[last, g_1..g_j, filler...]` for `j < num_rows` (not for finished sequences, no duplicate
    of the draft); the clean carry then takes its predictions from the row whose filler starts where the accepted
    prefix ends, also when the draft row accepted as much and was kept."""
    rows = sources.FreshTailRows(filler=9, num_rows=3)
    candidates = rows.get_candidates(_step([[1, 2, 3, 4], [5, 9, 9, 9]], unfinished=[True, True]))
    assert candidates.tolist() == [
        [[1, 2, 3, 4], [1, 9, 9, 9], [1, 2, 9, 9], [1, 2, 3, 9]],
        [[5, 9, 9, 9], [5, 9, 9, 9], [5, 9, 9, 9], [5, 9, 9, 9]],  # an all-filler draft: nothing to add (padding rows)
    ]
    assert rows.get_candidates(_step([[1, 2, 3]], unfinished=[False])).tolist() == [[[1, 2, 3]]]
    # one sequence; the right tokens are 1, 2, 7, ...: every row with the guess 2 accepts 2 tokens, the draft is kept
    block = torch.tensor([[[1, 2, 3, 4], [1, 9, 9, 9], [1, 2, 9, 9], [1, 2, 3, 9]]])
    predictions = torch.tensor([[[2, 7, 0, 0], [2, 5, 6, 8], [2, 7, 4, 5], [2, 7, 1, 1]]])
    accepted = generation.accept_length(block[0], predictions[0])[None]
    assert accepted.tolist() == [[2, 1, 2, 2]]
    verification = generation.Verification(block, predictions, accepted, torch.tensor([0]), num_accepted=2)
    draft = sources.JacobiDraft(torch.tensor([[3, 4]]), None, 4, 9, 0, carry="clean")
    draft.update_candidate_strategy(_step(block.tolist()), verification)
    assert draft.guess.tolist() == [[4, 5]]  # row 2's predictions past the prefix, made from 1, 2 and filler
    # without the extra rows the draft's predictions after the wrong guess 3 are dropped
    single = _verified(block[:, 0].tolist(), predictions[:, 0].tolist(), 2)
    draft.update_candidate_strategy(_step(block[:, 0].tolist()), single)
    assert draft.guess.tolist() == [[9, 9]]


def test_rejection_recycling_unit():
    pool = sources.RejectionRecycling(batch_size=2, pool_size=2)
    block = [[1, 2, 8, 9, 4], [5, 6, 7, 8, 9]]
    verification = _verified(block, [[2, 3, 9, 4, 0], [6, 7, 8, 9, 1]], num_accepted=2)
    assert verification.accepted[:, 0].tolist() == [2, 5]
    pool.update_candidate_strategy(_step(block), verification)
    # row 0 rejected at index 2 (8 != 3); the tail 8, 9, 4 is self-consistent (9 after 8, 4 after 9), then 0
    assert pool.pools == [[(8, 9, 4, 0)], []]  # row 1 was fully accepted: nothing rejected
    unchanged = _step([[3, 1, 1, 1], [8, 1, 1, 1]])
    assert pool.get_candidates(unchanged) is unchanged.candidates  # keys are per sequence: no new row
    candidates = pool.get_candidates(_step([[8, 1, 1], [5, 5, 5]]))
    assert candidates.tolist() == [[[8, 1, 1], [8, 9, 4]], [[5, 5, 5], [5, 5, 5]]]
    candidates = pool.get_candidates(_step([[8, 1, 1, 1, 1, 1]]))
    assert candidates.tolist() == [[[8, 1, 1, 1, 1, 1], [8, 9, 4, 0, 1, 1]]]
    # a finished sequence gets no recycled row
    finished = _step([[8, 1, 1], [5, 5, 5]], unfinished=[False, True])
    assert pool.get_candidates(finished) is finished.candidates
    # at most pool_size n-grams per sequence, oldest dropped first; a repeated n-gram is refreshed, not duplicated
    for tail in ([3, 3], [4, 4], [3, 3]):
        block = [[0] + tail, [0, 0, 0]]  # row 0 rejected at index 1: the n-gram (tail[0], 1)
        pool.update_candidate_strategy(_step(block), _verified(block, [[1, 1, 0], [0, 0, 0]]))
    assert pool.pools[0] == [(4, 1), (3, 1)]


def test_context_lookup_unit():
    lookup = generation.prompt_lookup
    assert lookup([1, 2, 3, 4, 1, 2], 2) == [3, 4, 1, 2]  # the bigram (1, 2) occurred at the start
    assert lookup([5, 1, 7, 9, 1], 2) == [7, 9, 1]  # no earlier (9, 1): falls back to the unigram 1
    assert lookup([1, 8, 1, 9, 1], 1) == [9, 1]  # the most recent earlier occurrence wins
    assert lookup([1, 2, 3], 3) == [] and lookup([4], 2) == []
    assert lookup([7, 1, 2, 1, 2], 2, max_tokens=5) == [1, 2, 1, 2, 1]  # overlapping match: continued periodically
    assert lookup([1, 2, 3, 4, 1, 2], 2, max_tokens=1) == [3]
    rows = sources.ContextLookupRows(max_ngram=2)
    context = [[3, 4, 5, 6, 3, 4], [9, 9, 8, 7, 6, 5]]
    candidates = rows.get_candidates(_step([[4, 0, 0], [5, 1, 2]], context))
    # row 0: after the earlier (3, 4) came 5, 6; row 1: 5 never occurred before, so it keeps only its draft
    assert candidates.tolist() == [[[4, 0, 0], [4, 5, 6]], [[5, 1, 2], [5, 1, 2]]]
    # a finished sequence (row 0 here) gets no candidates, so it does not widen the batch's forward
    finished = _step([[4, 0, 0], [5, 1, 2]], context, unfinished=[False, True])
    assert rows.get_candidates(finished).shape[1] == 1
    # recycled rows come first, the lookup row after them; duplicates are dropped, missing rows repeat the draft
    pool = sources.RejectionRecycling(batch_size=2, pool_size=2)
    pool.pools = [[(4, 5, 6)], [(5, 7)]]
    step = _step([[4, 0, 0], [5, 1, 2]], context)
    step.candidates = pool.get_candidates(step)
    assert rows.get_candidates(step).tolist() == [[[4, 0, 0], [4, 5, 6]], [[5, 1, 2], [5, 7, 2]]]


def test_toy_source_plugs_into_the_loop(cyclic_model):
    """A user-defined draft source (here an oracle that knows the model's cycle) needs no change to the loop: passed as
    `candidate_sources=[...]`, it adds rows that are verified, chosen and told what was accepted."""

    class CycleOracle(sources.CandidateSource):
        def __init__(self):
            self.updates = 0

        def get_candidates(self, step):
            last = step.candidates[:, 0, 0].tolist()
            rows = [[[CYCLE[(CYCLE.index(t) + i) % len(CYCLE)] if t in CYCLE else t for i in range(step.length)]]
                    for t in last]
            return sources.add_rows(step.candidates, rows)

        def update_candidate_strategy(self, step, verification):
            self.updates += 1

    oracle = CycleOracle()
    reference = cyclic_model.generate(PROMPT, do_sample=False, max_new_tokens=40)
    out = jacobi_run(cyclic_model, PROMPT, block_size=5, max_new_tokens=40, candidate_sources=[oracle])
    torch.testing.assert_close(out.sequences, reference, rtol=0, atol=0)
    assert oracle.updates == out.num_forwards and out.candidate_rows.max() == 2
    assert out.tokens_per_forward > 4.0, out.tokens_per_forward  # the oracle's row wins every forward


def test_context_lookup_is_lossless_and_helps_on_repeats(cyclic_model):
    reference = cyclic_model.generate(PROMPT, do_sample=False, max_new_tokens=60)
    out = jacobi_run(cyclic_model, PROMPT, block_size=6, lookup_ngram=2)
    torch.testing.assert_close(out.sequences, reference, rtol=0, atol=0)
    assert out.candidate_rows.max() == 2 and out.recycled_wins.sum() > 5
    assert out.tokens_per_forward > 3.0, out.tokens_per_forward  # the cycle repeats: lookup drafts whole blocks
    ids, mask = padded_batch(3, [8, 3, 6], seed=2)
    ids = ids % 16
    reference = cyclic_model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=40)
    out = jacobi_run(cyclic_model, ids, attention_mask=mask, block_size=4, pool_size=2, lookup_ngram=3,
                     num_blocks=2, max_new_tokens=40)
    torch.testing.assert_close(out.sequences, reference, rtol=0, atol=0)


def test_context_lookup_in_the_draft(cyclic_model):
    """`lookup_mode="draft"`: the continuation replaces the Jacobi draft in one row and lengthens the block to fit."""
    draft = sources.JacobiDraft(torch.tensor([[3, 4, 5], [6, 7, 8]]), None, 4, "repeat", 0)
    lookup = sources.ContextLookupDraft(max_ngram=2, num_tokens=4)
    step = _step([[5], [8]], context=[[1, 2, 5, 1, 2, 5], [4, 5, 6, 7, 9, 8]], block_size=5)
    step.candidates = lookup.get_candidates(step)
    assert step.candidates.tolist() == [[[5, 1, 2, 5, 1]], [[8, -1, -1, -1, -1]]]  # row 1: no match
    step.candidates = draft.get_candidates(step)
    assert step.candidates.tolist() == [[[5, 1, 2, 5, 1]], [[8, 8, 8, 8, 8]]]  # the Jacobi block fills the rest
    context = torch.tensor([[1, 2, 3, 1, 2], [4, 5, 6, 7, 8]])
    assert sources.lookup_rows(context, 2, 2) == [[3, 1], []]
    assert sources.lookup_rows(context, 2, 2, torch.tensor([False, True])) == [[], []]  # finished: none

    reference = cyclic_model.generate(PROMPT, do_sample=False, max_new_tokens=60)
    out = jacobi_run(cyclic_model, PROMPT, block_size=2, lookup_ngram=2, lookup_mode="draft", lookup_num_tokens=9)
    torch.testing.assert_close(out.sequences, reference, rtol=0, atol=0)
    assert out.candidate_rows.max() == 1  # no extra rows
    assert out.draft_lengths.max() == 10  # the block grew to 1 + lookup_num_tokens once the cycle repeated
    assert out.tokens_per_forward > 5.0, out.tokens_per_forward  # vs 1.0 without lookup on this model
    # without lookup_num_tokens the continuation fills the block but does not lengthen it
    out = jacobi_run(cyclic_model, PROMPT, block_size=4, lookup_ngram=2, lookup_mode="draft")
    torch.testing.assert_close(out.sequences, reference, rtol=0, atol=0)
    assert out.draft_lengths.max() == 4 and out.tokens_per_forward > 3.0


def test_multi_block_draft_lengths():
    draft = sources.MultiBlockDraft(torch.tensor([[3, 4, 5]]), None, 4, "repeat", 0, num_blocks=3, spawn_ratio=0.5)
    assert draft.draft_length(4) == 4

    def update(block, predictions, num_accepted):
        draft.update_candidate_strategy(_step(block, block_size=4), _verified(block, predictions, num_accepted))

    update([[1, 2, 3, 9]], [[2, 3, 4, 5]], 3)  # 3 of 4 settled >= ceil(0.5 * 4)
    assert draft.spawn and draft.draft_length(4) == 8
    update([[5, 9, 9, 9, 9, 9, 9, 9]], [[1] * 8], 1)  # not confident: keep what is in flight
    assert not draft.spawn and draft.draft_length(4) == 8  # bonus + 7 carried predictions
    update([[1] * 8], [[1] * 8], 6)
    assert draft.spawn and draft.draft_length(4) == 12  # capped at num_blocks * n


def test_choose_rows_prefers_the_draft_on_ties():
    accepted = torch.tensor([2, 2, 1, 1, 3, 3, 4, 1, 4])
    assert generation.choose_rows(accepted, 3).tolist() == [0, 1, 0]


def _coupled_choice_counts(group_size, trials=30000, seed=0):
    """Emitted (Y0, Y1) over many trials of one verification with 3 candidate rows on a first-order Markov chain,
    Y1 drawn afresh (as the next forward would) when the chosen row accepted only one token."""
    generator = torch.Generator().manual_seed(11)
    table = torch.softmax(2.0 * torch.randn(4, 4, generator=generator), dim=-1)  # p(next | current)
    drafts = torch.tensor([[0, 1, 2], [0, 2, 1], [0, 3, 3]])
    rows = drafts.repeat(trials, 1)
    scores = table[rows].log()  # a row's position i is scored after its own token i
    torch.manual_seed(seed)
    predictions, accepted = generation.verify_block(rows, scores, do_sample=True, group_size=group_size)
    keep = torch.arange(trials) * 3 + generation.choose_rows(accepted, 3)
    y0, y1 = predictions[keep, 0], predictions[keep, 1]
    fresh = torch.multinomial(table[y0], 1)[:, 0]
    y1 = torch.where(accepted[keep] >= 2, y1, fresh)
    counts = Counter(zip(y0.tolist(), y1.tolist()))
    expected = {(a, b): trials * float(table[0, a] * table[a, b]) for a in range(4) for b in range(4)}
    return counts, expected


def _chi_square(counts, expected):
    stat = sum((counts[k] - e) ** 2 / e for k, e in expected.items())
    df = len(expected) - 1
    critical = df * (1 - 2 / (9 * df) + 3.09 * (2 / (9 * df)) ** 0.5) ** 3  # 0.1% level, Wilson-Hilferty
    return stat, critical


def test_choice_among_sampled_candidate_rows_is_unbiased():
    """Rows of one sequence share random numbers, so keeping the longest accepted row reveals more of one sampled
    continuation instead of picking the luckiest one. Control: independent random numbers per row are biased."""
    stat, critical = _chi_square(*_coupled_choice_counts(group_size=3))
    assert stat < critical, (stat, critical)
    stat, critical = _chi_square(*_coupled_choice_counts(group_size=1))
    assert stat > critical, (stat, critical)


def test_shared_random_numbers_keep_each_row_exact():
    scores = torch.tensor([[0.0, 1.0, 2.0], [0.0, 1.0, 2.0], [2.0, 0.0, -1.0]]).repeat(4000, 1)[:, None, :]
    torch.manual_seed(0)
    tokens = generation.select_tokens(scores, True, group_size=3).view(-1, 3)
    assert torch.equal(tokens[:, 0], tokens[:, 1])  # equal distributions in a group: equal tokens
    for column in (0, 2):
        frequencies = torch.bincount(tokens[:, column], minlength=3).double() / tokens.shape[0]
        torch.testing.assert_close(frequencies, torch.softmax(scores[column, 0].double(), -1), atol=0.03, rtol=0)


def test_sampling_with_blocks_and_recycling_end_to_end():
    """A small-vocabulary model sampled with K=2 and recycling: the (3rd, 4th) tokens follow ordinary sampling.

    A smoke test of the plumbing (recycled rows win and nothing is grossly off); it has little power against the
    subtle bias of an uncoupled row choice, which `test_choice_among_sampled_candidate_rows_is_unbiased` detects."""
    config = transformers.LlamaConfig(vocab_size=6, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                      num_attention_heads=4, num_key_value_heads=2)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(5.0)
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    # Two rows per call: with many rows the shared commit length (the minimum over rows) would almost always be 1.
    prompt = torch.tensor([[1, 3, 2, 4, 5, 1]]).repeat(2, 1)

    def pairs(seed, **kwargs):
        torch.manual_seed(seed)
        counts, wins = Counter(), 0
        for _ in range(300):
            out = model.generate(prompt, do_sample=True, temperature=1.2, max_new_tokens=6,
                                 return_dict_in_generate=True, **kwargs)
            counts.update(map(tuple, out.sequences[:, -3:-1].tolist()))
            wins += int(getattr(out, "recycled_wins", torch.zeros(1)).sum())
        return counts, wins

    reference, _ = pairs(0)
    counts, wins = pairs(1, generation_mode="jacobi", block_size=2, num_blocks=2, spawn_ratio=0.5, pool_size=4)
    assert wins > 0
    cells = set(reference) | set(counts)
    stat = sum((reference[k] - counts[k]) ** 2 / (reference[k] + counts[k]) for k in cells)
    df = len(cells) - 1
    critical = df * (1 - 2 / (9 * df) + 3.09 * (2 / (9 * df)) ** 0.5) ** 3
    assert stat < critical, (stat, critical)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(num_blocks=0), "num_blocks"),
        (dict(num_blocks=1.5), "num_blocks"),
        (dict(num_blocks=True), "num_blocks"),
        (dict(spawn_ratio=0), "spawn_ratio"),
        (dict(spawn_ratio=1.2), "spawn_ratio"),
        (dict(spawn_ratio="high"), "spawn_ratio"),
        (dict(pool_size=-1), "pool_size"),
        (dict(pool_size=2.0), "pool_size"),
        (dict(lookup_ngram=-1), "lookup_ngram"),
        (dict(lookup_ngram="2"), "lookup_ngram"),
        (dict(block_size="auto", lookup_ngram=2), "lookup_ngram=2"),
        (dict(lookup_ngram=2, lookup_mode="tree"), "lookup_mode"),
        (dict(lookup_ngram=2, lookup_num_tokens=0), "lookup_num_tokens"),
        (dict(lookup_mode="draft"), "lookup_ngram >= 1"),
        (dict(lookup_num_tokens=5), "lookup_ngram >= 1"),
    ],
)
def test_bad_input_clear_errors(kwargs, message):
    model = make_tiny_model("llama")
    ids, _ = padded_batch(1, [6])
    with pytest.raises(ValueError, match=message):
        model.generate(ids, generation_mode="jacobi", max_new_tokens=4, do_sample=False, **kwargs)
