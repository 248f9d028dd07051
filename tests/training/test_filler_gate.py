"""A filler-gated LoRA adapter: the base model's logits at real tokens (so its greedy output, also under Jacobi
decoding), the adapter's at filler positions; gated copies stay independent; bad use is refused."""

import copy

import pytest
import torch
from peft import LoraConfig, get_peft_model
from testing_utils import FAMILIES, generation_inputs, make_tiny_model

import hf_jacobi  # noqa: F401  (generation_mode="jacobi")
from hf_jacobi.filler_gate import gate_adapter_on_filler, is_filler_gated

FILLER = 95  # the last id of FAMILY_VOCAB: the prompts never hold it
# One family per layout of the attention and MLP projections
GATED_FAMILIES = [family for family in ("llama", "qwen2", "phi3", "gpt_neox") if family in FAMILIES]


def adapted(family: str):
    """A tiny model with a random (far from zero) LoRA adapter on every projection."""
    base = make_tiny_model(family)
    torch.manual_seed(1)
    config = LoraConfig(r=8, lora_alpha=32, target_modules="all-linear", init_lora_weights=False)
    return base, get_peft_model(copy.deepcopy(base), config).eval()


@pytest.mark.parametrize("family", GATED_FAMILIES)
def test_gated_adapter_keeps_base_greedy(family):
    base, model = adapted(family)
    inputs = generation_inputs(3)
    settings = dict(do_sample=False, max_new_tokens=24)
    expected = base.generate(**inputs, **settings)
    assert FILLER not in expected
    # The adapter alone changes the answer, so the gate is what keeps it
    assert not torch.equal(model.generate(**inputs, **settings), expected)
    gate_adapter_on_filler(model, FILLER)
    assert torch.equal(model.generate(**inputs, **settings), expected)
    for carry in ("clean", "all"):
        out = model.generate(**inputs, **settings, generation_mode="jacobi", block_size=6, draft_carry=carry)
        assert torch.equal(out, expected), carry


def test_adapter_acts_only_at_filler_positions():
    base, model = adapted("llama")
    gate_adapter_on_filler(model, FILLER)
    ids = torch.tensor([[5, 9, 17, FILLER, FILLER, 33, FILLER]])
    with torch.no_grad():
        gated, plain = model(input_ids=ids).logits, base(input_ids=ids).logits
    real = ids[0] != FILLER
    real[5] = False  # a real token after a filler sees the adapter's keys and values: never accepted, so free
    assert torch.equal(gated[0, real], plain[0, real])
    assert not torch.allclose(gated[0, 3], plain[0, 3])
    assert model.generation_config.draft_init == FILLER and model.generation_config.filler_gated_adapter


def test_copies_have_their_own_gate():
    base, model = adapted("llama")
    gate_adapter_on_filler(model, FILLER)
    clone = copy.deepcopy(model).to(torch.float64)
    ids = torch.tensor([[5, FILLER, 9]])
    with torch.no_grad():
        model(input_ids=torch.tensor([[FILLER, FILLER]]))  # another shape in the original: the copy must not see it
        gated = clone(input_ids=ids).logits
        assert torch.allclose(gated[0, 0], base.to(torch.float64)(input_ids=ids).logits[0, 0])
    assert is_filler_gated(clone) and gate_adapter_on_filler(clone, FILLER) is clone  # idempotent


def test_bad_use_is_refused():
    base, model = adapted("llama")
    with pytest.raises(ValueError, match="no LoRA layers"):
        gate_adapter_on_filler(base, FILLER)
    with pytest.raises(ValueError, match="token id"):
        gate_adapter_on_filler(model, "prompt")
    gate_adapter_on_filler(model, FILLER)
    with pytest.raises(ValueError, match="inputs_embeds"):
        model(inputs_embeds=torch.zeros(1, 3, 32))


def test_forward_without_filler_skips_the_adapter():
    """A forward with no filler runs the base layers only (same logits, no LoRA work), and leaves the adapters on;
    `disable_adapter()` still switches them off for a forward with filler."""
    base, model = adapted("llama")
    gate_adapter_on_filler(model, FILLER)
    calls = []
    layer = next(m for m in model.modules() if hasattr(m, "lora_B"))
    layer.lora_B["default"].register_forward_hook(lambda *a: calls.append(1))
    ids, filled = torch.tensor([[5, 9, 17]]), torch.tensor([[5, FILLER, 17]])
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, base(input_ids=ids).logits) and not calls
        assert not layer.disable_adapters
        gated = model(input_ids=filled).logits  # the lean path: PEFT's LoRA modules are not called
        assert not calls and not torch.equal(gated, base(input_ids=filled).logits)
        with model.disable_adapter():
            assert torch.equal(model(input_ids=filled).logits, base(input_ids=filled).logits)
            assert layer.disable_adapters
        assert not layer.disable_adapters


@pytest.mark.parametrize("family", GATED_FAMILIES)
def test_lean_inference_path_matches_the_training_path(family):
    """At inference the adapter is added to the filler rows only (`_add_at_filler`); with autograd on, PEFT's own
    LoRA path runs under the mask. Both give the same logits, and real positions before a filler are the base
    model's, bit for bit."""
    base, model = adapted(family)
    gate_adapter_on_filler(model, FILLER)
    ids = torch.tensor([[5, 9, 17, FILLER, FILLER, 33, FILLER], [7, 7, FILLER, 2, 3, 4, 5]])
    layer = next(m for m in model.modules() if hasattr(m, "lora_B"))
    calls = []
    layer.lora_B["default"].register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        lean, plain = model(input_ids=ids).logits, base(input_ids=ids).logits
    assert not calls
    with torch.enable_grad():
        trained = model(input_ids=ids).logits.detach()
    assert calls
    torch.testing.assert_close(lean, trained, rtol=1e-5, atol=1e-5)
    assert torch.equal(lean[0, :3], plain[0, :3]) and torch.equal(lean[1, :2], plain[1, :2])
    assert not torch.allclose(lean[0, 3], plain[0, 3])
    assert not layer.disable_adapters
