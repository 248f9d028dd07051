"""A LoRA adapter that acts only where the input token is the decoder's filler: a draft-only Jacobi Forcing fine-tune.

Jacobi Forcing fine-tunes the model that verifies its own drafts, so the greedy output that decoding reproduces is the
fine-tuned model's, and a fine-tune moves it (near-ties flip: pass@1 drops). With a fixed filler token
(`draft_init=<token id>`) the positions that guess ahead are exactly the ones whose input is the filler. Gating the
adapter to those positions splits the two roles inside one forward:

- a position holding a real token computes with the base weights; under the causal mask it sees only earlier
  positions, and every accepted token follows accepted real tokens (a filler position is never accepted unless the
  model emits the filler itself). So every accepted token, its KV cache entry and the logits that verify the next
  draft token are the base model's, exactly: the greedy output is the base model's, token for token in float32,
  whatever the adapter learned;
- a filler position computes with the adapter, over the real tokens before it and the filler positions of its own
  block: that is where the guesses come from, and all that the consistency loss trains.

The filler must be a token the model never emits as text (SmolLM2: `<empty_output>`, id 16): a real token equal to the
filler would be computed with the adapter. Merging the adapter (`merge_and_unload`) removes the gate.

At inference (no autograd, eval mode) PEFT's LoRA path is switched off for the forward and each layer adds
`scaling * B(A(x)) * mask` to its base output in place: fewer operations per layer (a decoding forward feeds a few
tokens, so its cost is the count of operations, not their size; 5-8% of a forward with filler on the 2-core CPU), and
real positions keep the base layer's output untouched.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

GATE_ATTRIBUTE = "_jacobi_filler_gate"


class FillerGate:
    """The filler token and the mask of the current forward, shared by the model's LoRA layers (a plain attribute of
    each hooked module, so `copy.deepcopy` of the model gives the copy its own gate)."""

    def __init__(self, filler_token_id: int):
        self.filler_token_id = filler_token_id
        self.mask: torch.Tensor | None = None
        self.layers: list = []  # the gated LoRA layers
        self.skipping = False  # PEFT's LoRA path is switched off for this forward (no filler, or the lean path)
        self.lean = False  # this forward adds the adapter in `_add_at_filler` instead of PEFT's LoRA path
        self.lean_ok = False  # every gated layer is a LoRA Linear, which the lean path knows how to compute


def _set_mask(module, args, kwargs):
    input_ids = kwargs.get("input_ids", args[0] if args else None)
    if input_ids is None:
        raise ValueError("A filler-gated adapter decides per position from `input_ids`; it cannot run on "
                         "`inputs_embeds`. Pass token ids.")
    gate = getattr(module, GATE_ATTRIBUTE)
    gate.mask = (input_ids == gate.filler_token_id)[..., None]  # [B, S, 1]
    # No filler (a prefill, plain greedy decoding): the adapter would add zeros, so it is skipped altogether and the
    # forward costs what the base model's does. Left alone where the adapters are off already (`disable_adapter()`).
    if gate.layers[0].disable_adapters:
        return
    has_filler = bool(gate.mask.any())
    lean = (has_filler and gate.lean_ok and not torch.is_grad_enabled() and not module.training
            and not any(layer.merged for layer in gate.layers))
    gate.lean = lean  # inference: each layer adds the masked adapter itself (`_add_at_filler`)
    if lean or not has_filler:
        for layer in gate.layers:
            layer._disable_adapters = True
        gate.skipping = True


def _restore(module, args, kwargs, output):
    gate = getattr(module, GATE_ATTRIBUTE)
    if gate.skipping:
        for layer in gate.layers:
            layer._disable_adapters = False
        gate.skipping = False
    gate.lean = False


def _add_at_filler(layer, args, output):
    """The lean inference path: `output` is the base layer's; add `scaling * B(A(x))` in place at the filler rows."""
    gate = getattr(layer, GATE_ATTRIBUTE)
    if not gate.lean:
        return None
    x = args[0]
    mask = gate.mask.reshape(*output.shape[:-1], 1).to(output.dtype)
    for name in layer.active_adapters:
        if name not in layer.lora_A:
            continue
        lora_a, lora_b = layer.lora_A[name], layer.lora_B[name]
        delta = F.linear(F.linear(x.to(lora_a.weight.dtype), lora_a.weight), lora_b.weight, lora_b.bias)
        output = output.addcmul_(delta.to(output.dtype), mask, value=layer.scaling[name])
    return output


def _apply_mask(module, args, output):
    mask = getattr(module, GATE_ATTRIBUTE).mask
    return output * mask.reshape(*output.shape[:-1], 1).to(output.dtype)


def gate_adapter_on_filler(model, filler_token_id: int):
    """Make the LoRA adapters of `model` (a `peft.PeftModel`) act only at positions whose input token is
    `filler_token_id`, and record it in the generation config (`filler_gated_adapter`), which the saved adapter
    carries. Idempotent; returns `model`.
    """
    from peft.tuners.lora import Linear as LoraLinear
    from peft.tuners.lora import LoraLayer

    if isinstance(filler_token_id, bool) or not isinstance(filler_token_id, int) or filler_token_id < 0:
        raise ValueError(f"The filler must be a token id (draft_init=<int>), got {filler_token_id!r}.")
    layers = [module for module in model.modules() if isinstance(module, LoraLayer)]
    if not layers:
        raise ValueError("The model has no LoRA layers to gate: pass a PeftModel (peft.get_peft_model or "
                         "PeftModel.from_pretrained) with a LoRA adapter.")
    if any(any(layer.use_dora.values()) for layer in layers):
        raise ValueError("A filler-gated adapter must be plain LoRA: DoRA rescales the base weights at every position.")
    if any(layer.merged for layer in layers):
        raise ValueError("The adapter is merged into the base weights, where no gate can reach it: unmerge it first.")
    root = model.get_base_model() if hasattr(model, "get_base_model") else model
    gate = getattr(root, GATE_ATTRIBUTE, None)
    if gate is None:
        gate = FillerGate(filler_token_id)
        setattr(root, GATE_ATTRIBUTE, gate)
        root.register_forward_pre_hook(_set_mask, with_kwargs=True)
        root.register_forward_hook(_restore, with_kwargs=True, always_call=True)
    gate.filler_token_id = filler_token_id
    gate.layers = layers
    gate.lean_ok = all(type(layer) is LoraLinear and not layer.lora_variant for layer in layers)
    for layer in layers:
        if getattr(layer, GATE_ATTRIBUTE, None) is None:
            layer.register_forward_hook(_add_at_filler)
        setattr(layer, GATE_ATTRIBUTE, gate)
        for lora_b in layer.lora_B.values():
            if getattr(lora_b, GATE_ATTRIBUTE, None) is None:
                lora_b.register_forward_hook(_apply_mask)
            setattr(lora_b, GATE_ATTRIBUTE, gate)
    root.generation_config.draft_init = filler_token_id
    root.generation_config.filler_gated_adapter = True
    return model


def gated_filler(model) -> int | None:
    """The filler token a filler-gated `model` gates its adapter on; None for a model without the gate."""
    root = model.get_base_model() if hasattr(model, "get_base_model") else model
    gate = getattr(root, GATE_ATTRIBUTE, None)
    return None if gate is None else gate.filler_token_id


def is_filler_gated(model) -> bool:
    return gated_filler(model) is not None
