"""Jacobi sampling keeps the model's sampling distribution: a two-sample chi-square test against ordinary sampling,
with a deliberately broken acceptance rule as the control that the test can fail."""

from collections import Counter

import pytest
import torch
import transformers

import hf_jacobi  # noqa: F401
from hf_jacobi.generation import verification

N = 2000
PROMPT = torch.tensor([[5, 7, 3, 8, 1, 2]])


@pytest.fixture(scope="module")
def small_vocab_model():
    config = transformers.LlamaConfig(vocab_size=12, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(6.0)  # peaked enough that drafts are often accepted
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    return model


def sample_pairs(model, seed, **kwargs):
    """Counts of the (3rd, 4th) generated tokens over N seeded single-row runs."""
    torch.manual_seed(seed)
    counts, accepted = Counter(), Counter()
    for _ in range(N):
        out = model.generate(PROMPT, do_sample=True, temperature=1.3, top_k=8, max_new_tokens=5,
                             return_dict_in_generate=True, **kwargs)
        counts[tuple(out.sequences[0, PROMPT.shape[1] + 2 : PROMPT.shape[1] + 4].tolist())] += 1
        accepted.update(getattr(out, "accepted_tokens", torch.tensor([])).tolist())
    return counts, accepted


def chi_square(a: Counter, b: Counter) -> tuple[float, float]:
    """Two-sample chi-square statistic (equal sample sizes) and its 0.1% critical value (Wilson-Hilferty)."""
    cells = [k for k in set(a) | set(b)]
    stat = sum((a[k] - b[k]) ** 2 / (a[k] + b[k]) for k in cells)
    df = len(cells) - 1
    z = 3.09
    critical = df * (1 - 2 / (9 * df) + z * (2 / (9 * df)) ** 0.5) ** 3
    return stat, critical


def test_sampling_matches_ordinary_sampling(small_vocab_model, monkeypatch):
    torch.set_num_threads(1)
    reference, _ = sample_pairs(small_vocab_model, seed=0)
    jacobi_counts, accepted = sample_pairs(small_vocab_model, seed=1, generation_mode="jacobi", block_size=4)
    assert sum(v for k, v in accepted.items() if k > 1) > 100  # the acceptance path is exercised
    stat, critical = chi_square(reference, jacobi_counts)
    assert stat < critical, (stat, critical)

    # Control: accepting every draft token unverified must be detected.
    monkeypatch.setattr(verification, "accept_length", lambda draft, predictions: torch.full(
        (draft.shape[0],), draft.shape[1], dtype=torch.long))
    broken, _ = sample_pairs(small_vocab_model, seed=1, generation_mode="jacobi", block_size=4)
    stat, critical = chi_square(reference, broken)
    assert stat > critical, (stat, critical)


def test_sampling_with_lookup_in_the_draft(small_vocab_model):
    """Context-lookup drafts depend only on committed tokens (deterministic drafts), so the same rule keeps sampling
    exact when they replace the Jacobi draft and lengthen the block."""
    torch.set_num_threads(1)
    reference, _ = sample_pairs(small_vocab_model, seed=0)
    counts, accepted = sample_pairs(small_vocab_model, seed=1, generation_mode="jacobi", block_size=1, lookup_ngram=1,
                                    lookup_mode="draft", lookup_num_tokens=3)
    assert sum(v for k, v in accepted.items() if k > 1) > 100  # lookup tokens were accepted (block_size=1 alone: none)
    stat, critical = chi_square(reference, counts)
    assert stat < critical, (stat, critical)


def test_seeded_sampling_is_reproducible(small_vocab_model):
    runs = []
    for _ in range(2):
        torch.manual_seed(123)
        runs.append(small_vocab_model.generate(PROMPT.repeat(3, 1), do_sample=True, max_new_tokens=12,
                                               generation_mode="jacobi", block_size=5))
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)
