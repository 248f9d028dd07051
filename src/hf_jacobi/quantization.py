"""Weight-only int8 with exact verification: the fixed cost of a forward halved on CPUs, Jacobi still lossless.

A 1-token forward of a small model on a CPU is bound by streaming the weights (SmolLM2-135M: 540 MB in float32), so
smaller weights are what cut its fixed cost. Torch's dynamic int8 quantization does, but scales each forward's
activations by their own range: a position's logits then depend on the other tokens of the forward, and Jacobi
decoding no longer returns the tokens of greedy decoding. Here only the weights are int8 (one scale per output row);
every position's output is computed on its own, in an order that does not depend on how many tokens the forward has:

- [`Int8Linear`] runs `torch._weight_int8pack_mm` (bfloat16 activations, float32 accumulation, one dot product per
  output element, the same for any number of rows), and returns float32;
- everything else stays float32, and attention runs [`row_exact_attention`]: each query row attends to exactly the
  keys up to its own position, as the 1-token forward of greedy decoding does, so its softmax and value sums add the
  same numbers in the same order.

Jacobi decoding of the quantized model is then token-identical to greedy decoding of the quantized model (tested
across families, like float32). The quantized model is another model than the float32 one: its answers can differ,
and its quality is measured (pass@1), not assumed.
"""

from __future__ import annotations

import torch
from torch import nn

ATTN_IMPLEMENTATION = "row_exact"


class Int8Linear(nn.Module):
    """`nn.Linear` with int8 weights and one float scale per output row; inputs and outputs keep their dtype."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1).clamp(min=torch.finfo(torch.float32).tiny) / 127
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight", torch.round(weight / scale[:, None]).clamp(-127, 127).to(torch.int8))
        self.register_buffer("scale", scale.to(torch.bfloat16))
        self.bias = None if linear.bias is None else nn.Parameter(linear.bias.detach().float(), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).to(torch.bfloat16).contiguous()
        out = torch._weight_int8pack_mm(rows, self.weight, self.scale).to(x.dtype)
        out = out.reshape(*x.shape[:-1], self.out_features)
        return out if self.bias is None else out + self.bias.to(x.dtype)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def row_exact_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, softcap=None,
                        **kwargs):
    """Attention in which query row `i` of a forward of `q` tokens over `k` keys uses keys `[0, k - q + i]` only (its
    causal frontier, then the mask), so it computes exactly what a forward of that one token computes.

    `query` is `(batch, heads, q, head_dim)`, `key`/`value` `(batch, kv_heads, k, head_dim)`; `attention_mask` is
    None (causal) or boolean `(batch, 1, q, >= k)`, True where attended. Returns `(batch, q, heads, head_dim)`."""
    if kwargs.get("s_aux") is not None or kwargs.get("sinks") is not None:
        raise NotImplementedError("row_exact attention does not support attention sinks; use float32 weights.")
    batch, heads, q_len, head_dim = query.shape
    kv_heads, k_len = key.shape[1], key.shape[2]
    group = heads // kv_heads
    scaling = head_dim**-0.5 if scaling is None else scaling
    # (batch, kv_heads, group, head_dim) per row: the same matmul shapes in a wide forward and a 1-token one
    query = query.reshape(batch, kv_heads, group, q_len, head_dim)
    rows = []
    for i in range(q_len):
        n = k_len - q_len + i + 1
        scores = torch.matmul(query[:, :, :, i], key[:, :, :n].transpose(-1, -2)) * scaling
        if softcap is not None:
            scores = torch.tanh(scores / softcap) * softcap
        if attention_mask is not None:
            visible = attention_mask[:, :, i, :n]
            if visible.dtype != torch.bool:
                visible = visible == 0
            # a finite minimum, not -inf: padding rows that see nothing stay finite (their outputs are never used)
            scores = scores.masked_fill(~visible[:, :, None], torch.finfo(scores.dtype).min)
        weights = torch.softmax(scores.float(), dim=-1).to(value.dtype)
        rows.append(torch.matmul(weights, value[:, :, :n]))  # (batch, kv_heads, group, head_dim)
    out = torch.stack(rows, dim=3).reshape(batch, heads, q_len, head_dim)
    return out.transpose(1, 2).contiguous(), None


def _register() -> None:
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(ATTN_IMPLEMENTATION, row_exact_attention)
    AttentionMaskInterface.register(ATTN_IMPLEMENTATION, sdpa_mask)  # boolean masks, None when plainly causal


def quantize_int8(model: nn.Module) -> nn.Module:
    """Replaces (in place) every `nn.Linear` whose input size is a multiple of 16 (the kernel's vector width) by an
    [`Int8Linear`], and selects [`row_exact_attention`]. Returns the model, for chaining.

    The model must be float32 on the CPU: its other layers stay float32, which is what keeps every position's result
    independent of the forward's width."""
    if not hasattr(torch, "_weight_int8pack_mm"):
        raise RuntimeError("This torch has no `_weight_int8pack_mm`; int8 weights need torch >= 2.4.")
    params = list(model.parameters())
    if any(p.dtype != torch.float32 for p in params) or any(p.device.type != "cpu" for p in params):
        raise ValueError("quantize_int8 needs a float32 model on the CPU (load it with dtype=float32, device cpu).")
    _register()
    replaced = 0
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if type(child) is nn.Linear and child.in_features % 16 == 0:
                setattr(parent, name, Int8Linear(child))
                replaced += 1
    if not replaced:
        raise ValueError("No nn.Linear with an input size that is a multiple of 16: nothing to quantize.")
    model.set_attn_implementation(ATTN_IMPLEMENTATION)
    model.config.hf_jacobi_int8_linears = replaced  # part of the calibration key: the costs differ from float32's
    return model


def is_int8(model: nn.Module) -> bool:
    """Whether `quantize_int8` was applied to `model`."""
    return any(isinstance(m, Int8Linear) for m in model.modules())
