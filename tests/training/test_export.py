"""A full fine-tune exported as a LoRA adapter: exact at full rank, loads with PEFT, refuses changed embeddings."""

import pytest
import torch
from peft import PeftModel
from testing_utils import tiny_model

from hf_jacobi.training.export import export_lora_delta


def test_full_rank_export_reproduces_the_fine_tune(tmp_path):
    base, tuned = tiny_model("llama"), tiny_model("llama")
    with torch.no_grad():
        for name, param in tuned.named_parameters():
            if "proj" in name:
                param.add_(0.05 * torch.randn_like(param))
    errors = export_lora_delta(base, tuned, tmp_path, rank=64, dtype=torch.float32)
    assert max(errors.values()) < 1e-3
    merged = PeftModel.from_pretrained(tiny_model("llama"), tmp_path).merge_and_unload()
    ids = torch.tensor([[5, 9, 17, 33, 60]])
    torch.testing.assert_close(merged(ids).logits, tuned(ids).logits, atol=1e-4, rtol=1e-4)
    low = export_lora_delta(base, tuned, tmp_path / "low", rank=2, dtype=torch.float32)
    assert min(low.values()) > 0.1  # a random delta is not low rank: the error is reported, not hidden


def test_changed_embedding_is_refused(tmp_path):
    base, tuned = tiny_model("llama"), tiny_model("llama")
    with torch.no_grad():
        tuned.model.embed_tokens.weight.add_(1.0)
    with pytest.raises(ValueError, match="embed_tokens"):
        export_lora_delta(base, tuned, tmp_path)
