"""Tiny models, tokenizer and Jacobi data shared by the training tests (no downloads)."""

import copy

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    GPTNeoXConfig,
    LlamaConfig,
    Phi3Config,
    PreTrainedTokenizerFast,
    Qwen2Config,
)

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


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models run ~100x faster on one thread than on two contended ones; import this into a test module."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


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
