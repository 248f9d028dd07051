import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402

# Tiny models run far faster on one thread (and do not fight other processes); the SmolLM2 tests take all cores.
torch.set_num_threads(1)

VOCAB = 96
# Tiny random decoder-only models, one per family (no download). Mistral and Gemma2 get a sliding window smaller
# than prompt + generation so the sliding-window cache rollback is exercised.
COMMON = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
FAMILIES = {
    "llama": (transformers.LlamaConfig, dict(num_key_value_heads=2)),
    "qwen2": (transformers.Qwen2Config, dict(num_key_value_heads=2)),
    "qwen3": (transformers.Qwen3Config, dict(num_key_value_heads=2, head_dim=8)),
    "mistral": (transformers.MistralConfig, dict(num_key_value_heads=2, sliding_window=6)),
    "gemma2": (
        transformers.Gemma2Config,
        dict(num_key_value_heads=2, head_dim=8, sliding_window=5, layer_types=["sliding_attention", "full_attention"]),
    ),
    "gemma3": (
        transformers.Gemma3TextConfig,
        dict(num_key_value_heads=2, head_dim=8, sliding_window=4, layer_types=["sliding_attention", "full_attention"]),
    ),
    "phi3": (transformers.Phi3Config, dict(num_key_value_heads=2)),
    "gpt2": (transformers.GPT2Config, dict(n_embd=32, n_layer=2, n_head=4, n_positions=256)),
    "gpt_neox": (transformers.GPTNeoXConfig, dict()),
}


def make_tiny_model(family: str, seed: int = 0, attn_implementation: str | None = None):
    config_class, extra = FAMILIES[family]
    kwargs = dict(COMMON, **extra)
    if family == "gpt2":
        kwargs = {k: v for k, v in kwargs.items() if k not in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")}
    config = config_class(**kwargs, bos_token_id=1, eos_token_id=2, pad_token_id=0)
    if attn_implementation is None:
        attn_implementation = "eager" if family == "gemma2" else "sdpa"  # gemma2 has no sdpa path
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation=attn_implementation).eval()
    # Larger output weights make logits well separated, so argmax ties (which may break either way) cannot occur.
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(8.0)
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    return model


@pytest.fixture(scope="session")
def tiny_model_factory():
    cache = {}

    def get(family):
        if family not in cache:
            cache[family] = make_tiny_model(family)
        return cache[family]

    return get


def padded_batch(batch_size: int, lengths, seed: int = 1):
    """Left-padded random prompts with the given real lengths."""
    generator = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.randint(3, VOCAB, (batch_size, width), generator=generator)
    mask = torch.ones_like(ids)
    for row, length in enumerate(lengths):
        mask[row, : width - length] = 0
        ids[row, : width - length] = 0
    return ids, mask
