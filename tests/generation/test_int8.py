"""Weight-only int8 (`hf_jacobi.quantization`): every position's logits are independent of the forward's width, so
Jacobi decoding of the quantized model returns exactly the tokens of its own greedy decoding."""

import copy

import pytest
import torch
from testing_utils import FAMILIES, generation_inputs, padded_batch

import hf_jacobi  # noqa: F401  (enables generation_mode="jacobi")
from hf_jacobi.quantization import Int8Linear, is_int8, quantize_int8

# gpt2's projections are transformers' Conv1D, not nn.Linear: only its lm_head would be int8
INT8_FAMILIES = [f for f in FAMILIES if f != "gpt2"]


@pytest.fixture(scope="module")
def int8_models():
    from testing_utils import make_tiny_model

    cache = {}

    def get(family):
        if family not in cache:
            fp32 = make_tiny_model(family)
            cache[family] = (fp32, quantize_int8(copy.deepcopy(fp32)))
        return cache[family]

    return get


@pytest.mark.parametrize("family", INT8_FAMILIES)
def test_logits_do_not_depend_on_the_forward_width(int8_models, family):
    """Bitwise: a block of 6 tokens fed at once gives each position the logits of feeding it alone after the others,
    with and without padding. (float32 with sdpa does not give this: its differences are ~1e-6, below argmax ties.)"""
    _, model = int8_models(family)
    ids, mask = padded_batch(2, [9, 6])
    block = torch.randint(4, 60, (2, 6), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        prefix = model(input_ids=ids, attention_mask=mask, use_cache=True)
        full_mask = torch.cat([mask, mask.new_ones(2, 6)], -1)
        wide = model(input_ids=block, attention_mask=full_mask, cache=prefix.cache).logits
        cache = model(input_ids=ids, attention_mask=mask, use_cache=True).cache
        narrow = [model(input_ids=block[:, i:i + 1], attention_mask=full_mask[:, :ids.shape[1] + i + 1],
                        cache=cache).logits for i in range(6)]
    torch.testing.assert_close(wide, torch.cat(narrow, 1), rtol=0, atol=0)


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("family", INT8_FAMILIES)
def test_int8_jacobi_equals_int8_greedy(int8_models, family, batch):
    fp32, model = int8_models(family)
    inputs = generation_inputs(batch)
    reference = model.generate(**inputs, do_sample=False, max_new_tokens=21)
    for settings in (dict(block_size=8), dict(block_size=3), dict(block_size=4, num_blocks=3, pool_size=4,
                                                                  spawn_ratio=0.1),
                     dict(block_size=2, lookup_ngram=2, lookup_mode="draft", lookup_num_tokens=6)):
        out = model.generate(**inputs, do_sample=False, max_new_tokens=21, generation_mode="jacobi", **settings)
        torch.testing.assert_close(out, reference, rtol=0, atol=0, msg=f"{family} {settings}")
    # it is a close copy of the float32 model, not the same one
    with torch.no_grad():
        a, b = fp32(input_ids=inputs["input_ids"]).logits, model(input_ids=inputs["input_ids"]).logits
    assert (a - b).abs().max() < 0.1 * a.abs().max()


def test_wide_heads_need_row_exact_attention():
    """head_dim 64 (SmolLM2's). With sdpa instead, a position's logits depend on the forward's width at 2 of these 20
    contexts (up to 4e-3; torch 2.13 on the dev CPU) and at a 256-token context on SmolLM2 by 0.25; with
    row_exact attention at none."""
    import transformers

    config = transformers.LlamaConfig(vocab_size=64, hidden_size=128, intermediate_size=128, num_hidden_layers=2,
                                      num_attention_heads=2, num_key_value_heads=1)
    torch.manual_seed(0)
    model = quantize_int8(transformers.AutoModelForCausalLM.from_config(config).eval())
    generator = torch.Generator().manual_seed(0)
    for context in range(20, 200, 9):
        ids, block = torch.randint(4, 60, (1, context), generator=generator), torch.randint(4, 60, (1, 16),
                                                                                             generator=generator)
        with torch.no_grad():
            wide = model(input_ids=block, cache=model(input_ids=ids, use_cache=True).cache).logits
            cache = model(input_ids=ids, use_cache=True).cache
            narrow = torch.cat([model(input_ids=block[:, i:i + 1], cache=cache).logits for i in range(16)], 1)
        torch.testing.assert_close(wide, narrow, rtol=0, atol=0, msg=f"context {context}")


def test_int8_linear_and_refusals():
    torch.manual_seed(0)
    linear = torch.nn.Linear(32, 48)
    q = Int8Linear(linear)
    x = torch.randn(5, 7, 32)
    assert q.weight.dtype == torch.int8 and q(x).shape == (5, 7, 48) and q(x).dtype == torch.float32
    torch.testing.assert_close(q(x), linear(x), atol=0.05, rtol=0.05)
    from testing_utils import make_tiny_model

    with pytest.raises(ValueError, match="float32 model on the CPU"):
        quantize_int8(make_tiny_model("llama").to(torch.bfloat16))
    model = quantize_int8(make_tiny_model("llama"))
    assert is_int8(model) and not is_int8(make_tiny_model("llama"))
    assert model.config._attn_implementation == "row_exact"
