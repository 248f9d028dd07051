"""Ship a full fine-tune small: its weight change as a low-rank LoRA adapter (truncated SVD of each delta).

A full fine-tune of a 135M model is ~270 MB in fp16; the change it makes to each linear layer is close to low rank,
so a rank-`r` truncated SVD of `W_tuned - W_base` stored as LoRA factors (`B = U sqrt(S)`, `A = sqrt(S) V^T`,
`lora_alpha = r` so the scale is 1) loads with plain `PeftModel.from_pretrained` and is a fraction of the size.
Measure the exported adapter (TPF, pass@1) rather than assuming the truncation is harmless.
"""

from __future__ import annotations

from pathlib import Path

import torch

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@torch.no_grad()
def export_lora_delta(base_model, tuned_model, output_dir: str | Path, rank: int = 64,
                      target_modules=TARGETS, dtype=torch.float16, generation_config=None) -> dict:
    """Write `tuned - base` of every targeted linear layer as a rank-`rank` LoRA adapter into `output_dir`, with
    `generation_config` beside it when given (`hf_jacobi.loading.load_model` applies it, so that the adapter decodes
    with the filler and carry it was trained with, as a saved model does).

    Other parameters (embeddings, norms) must be unchanged by the fine-tune: they are not exported, and an error
    says which one differs. Returns the relative Frobenius error of the truncation, per module kind (mean).
    """
    from peft import LoraConfig
    from safetensors.torch import save_file

    base, tuned = dict(base_model.named_parameters()), dict(tuned_model.named_parameters())
    if base.keys() != tuned.keys():
        raise ValueError("The base and tuned models have different parameters: not the same architecture.")
    tensors, errors = {}, {}
    for name, weight in tuned.items():
        module = name.rsplit(".", 2)[-2] if name.endswith(".weight") else None
        delta = (weight.float() - base[name].float().to(weight.device)).cpu()
        if module not in target_modules:
            if delta.abs().max() > 0:
                raise ValueError(f"{name} changed in the fine-tune but is not a LoRA target; train with it frozen.")
            continue
        u, s, vh = torch.linalg.svd(delta, full_matrices=False)
        root = s[:rank].sqrt()
        k = len(root)  # a layer narrower than `rank` is exact at its own rank; zero-pad to the adapter's shape
        a = delta.new_zeros(rank, delta.shape[1])
        b = delta.new_zeros(delta.shape[0], rank)
        a[:k], b[:, :k] = root[:, None] * vh[:rank], u[:, :rank] * root[None, :]
        prefix = "base_model.model." + name[: -len(".weight")]
        tensors[f"{prefix}.lora_A.weight"] = a.to(dtype).contiguous()
        tensors[f"{prefix}.lora_B.weight"] = b.to(dtype).contiguous()
        kept = (s[:rank] ** 2).sum() / (s**2).sum().clamp(min=1e-30)
        errors.setdefault(module, []).append(float((1 - kept).clamp(min=0).sqrt()))
    output_dir = Path(output_dir)
    config = LoraConfig(r=rank, lora_alpha=rank, lora_dropout=0.0, target_modules=list(target_modules),
                        base_model_name_or_path=base_model.config._name_or_path)
    config.save_pretrained(output_dir)
    save_file(tensors, output_dir / "adapter_model.safetensors")
    if generation_config is not None:
        generation_config.save_pretrained(output_dir)
    return {module: sum(v) / len(v) for module, v in errors.items()}
