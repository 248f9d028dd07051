# Copyright 2026 The hf_jacobi authors. Apache-2.0.
"""Fused decoding kernels through the Hub `kernels` library, with an exact fallback.

Two opt-in pieces, both of which fall back to the plain torch code with one log line instead of failing:

- `get_verify_fn()`: the per-iteration Jacobi verification (argmax over the vocabulary + acceptance rule) as one fused
  Triton kernel, loaded with `kernels.get_kernel` from the `jacobi-verify` kernel package (`kernels/jacobi_verify/` in
  this repository). `model.generate(..., generation_mode="jacobi", use_kernels=True)` uses it. The kernel returns
  exactly the tokens of `hf_jacobi.jacobi.verify_block`, which stays the reference and the fallback.
- `kernelize_for_decoding(model)`: `kernels.kernelize(model, mode=Mode.INFERENCE)` with Hub kernels for the model's
  hub-kernel-enabled layers (RMSNorm, SiLU). Those kernels change the model's floating-point results slightly, so
  greedy output is exact with respect to the kernelized model, not necessarily the original one.
"""

from __future__ import annotations

from .layers import default_layer_mapping, kernelize_for_decoding
from .verify import (
    DEFAULT_VERIFY_REPO,
    DEFAULT_VERIFY_VERSION,
    VERIFY_KERNEL_ENV,
    get_verify_fn,
    load_verify_kernel,
)

__all__ = [
    "DEFAULT_VERIFY_REPO",
    "DEFAULT_VERIFY_VERSION",
    "VERIFY_KERNEL_ENV",
    "default_layer_mapping",
    "get_verify_fn",
    "kernelize_for_decoding",
    "load_verify_kernel",
]
