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


def test_exported_adapter_decodes_as_trained(tmp_path):
    """The trained filler and carry travel in the adapter folder, and `load_model` applies them, as for a saved model;
    `generate` then uses them unless a call says otherwise."""
    from testing_utils import tiny_tokenizer
    from transformers import GenerationConfig

    from hf_jacobi.generation import JacobiConfig
    from hf_jacobi.loading import load_model

    base, tuned = tiny_model("llama"), tiny_model("llama")
    base.save_pretrained(tmp_path / "base")
    tiny_tokenizer().save_pretrained(tmp_path / "base")
    trained = GenerationConfig(draft_init=5, draft_carry="clean", fresh_rows=2, eos_token_id=2)
    trained._from_model_config = False
    export_lora_delta(base, tuned, tmp_path / "adapter", rank=4, dtype=torch.float32, generation_config=trained)
    model, _ = load_model(model=str(tmp_path / "base"), adapter=tmp_path / "adapter")
    settings = JacobiConfig.from_generation_config(model.generation_config, block_size=8)
    assert (settings.draft_init, settings.draft_carry, settings.fresh_rows, settings.block_size) == (5, "clean", 2, 8)
    plain, _ = load_model(model=str(tmp_path / "base"))
    assert JacobiConfig.from_generation_config(plain.generation_config).draft_init == "prompt"
