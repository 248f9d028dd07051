# Copyright 2026 The hf_jacobi authors. Apache-2.0.
"""Entry point of the Hub `custom_generate` layout, and the argument routing shared with `import hf_jacobi`.

`hf_jacobi.export_custom_generate(path)` copies this package's modules (this one as `generate.py`) into
`path/custom_generate/`; transformers fetches the relative imports with it, so
`model.generate(custom_generate=path, trust_remote_code=True, block_size=16)` runs Jacobi decoding without hf_jacobi.
Only `torch` and `transformers` may be imported here and in the modules this one imports.
"""

from __future__ import annotations

from transformers import GenerationMixin, StoppingCriteriaList, StopStringCriteria

from .configuration_jacobi import JacobiConfig
from .decoding import jacobi_decode


def route_to_jacobi(arguments: dict, model) -> dict:
    """Rewrite `generate` arguments so that `generate` runs `jacobi_decode` with everything it needs.

    `generate` withholds two things from a `custom_generate` callable: the streamer (it only receives the prompt) and
    the tokenizer (so `stop_strings` would fail). The streamer is passed under its own name and stop strings are turned
    into a `StopStringCriteria` here. The settings are checked now, before any calibration or prefill, and
    `block_size="auto"` gets its policy (`auto.AutoBlockSize`, which times the model once per device).
    """
    arguments = dict(arguments)
    arguments.pop("generation_mode", None)
    arguments["jacobi_streamer"] = arguments.pop("streamer", None)
    tokenizer = arguments.pop("tokenizer", None)
    config = arguments.get("generation_config") or model.generation_config
    stop_strings = arguments.get("stop_strings") or getattr(config, "stop_strings", None)
    if stop_strings:
        if tokenizer is None:
            raise ValueError("`stop_strings` needs the model's tokenizer: pass `tokenizer=` to generate.")
        criteria = StoppingCriteriaList(arguments.get("stopping_criteria") or [])
        criteria.append(StopStringCriteria(tokenizer=tokenizer, stop_strings=stop_strings))
        arguments["stopping_criteria"], arguments["stop_strings"] = criteria, None
    settings = {name: arguments.pop(name) for name in JacobiConfig.names() if name in arguments}
    jacobi_config = JacobiConfig.from_generation_config(config, arguments.get("jacobi_config"), **settings)
    arguments["jacobi_config"] = jacobi_config
    if jacobi_config.block_size == "auto" and arguments.get("block_size_policy") is None:
        from .auto import AutoBlockSize  # calibrates once per model and device, then reads the cache

        arguments["block_size_policy"] = AutoBlockSize.for_model(model)
    arguments["custom_generate"] = jacobi_decode
    return arguments


def generate(model, *args, **kwargs):
    """Run `generate` with Jacobi decoding as the decoding loop.

    `generate` hands a loaded `custom_generate/generate.py` its raw arguments; this forwards them to the standard
    `generate`, which prepares config, processors, stopping criteria and cache, then calls `jacobi_decode`.
    """
    return GenerationMixin.generate(model, *args, **route_to_jacobi(kwargs, model))
