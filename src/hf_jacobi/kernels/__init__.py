# Copyright 2026 The hf_jacobi authors. Apache-2.0.
"""Fused decoding kernels through the Hub `kernels` library, with an exact fallback.

Two opt-in pieces, both of which fall back to the plain torch code with one log line instead of failing:

- `get_verify_fn()`: the per-iteration Jacobi verification (argmax over the vocabulary + acceptance rule) as one fused
  Triton kernel, loaded with the `kernels` library from the `jacobi-verify` kernel package (`kernels/jacobi_verify/` in
  this repository). `model.generate(..., generation_mode="jacobi", use_kernels=True)` uses it. The kernel returns
  exactly the tokens of `hf_jacobi.verify_block`, which stays the reference and the fallback. hf_jacobi trusts no Hub
  kernel repository by itself: the user opts in with `HF_JACOBI_TRUSTED_KERNELS=<repo_id>` (or
  `get_verify_fn(trust_remote_code=[repo_id])`), which lets that repository's code run; `HF_JACOBI_VERIFY_KERNEL=<dir>`
  and `LOCAL_KERNELS="<repo_id>=<dir>"` import and run the code of a local folder instead.
- `kernelize_for_decoding(model)`: `kernels.kernelize(model, mode=Mode.INFERENCE)` with Hub kernels for the model's
  hub-kernel-enabled layers (RMSNorm, SiLU). Those kernels change the model's floating-point results slightly, so
  greedy output is exact with respect to the kernelized model, not necessarily the original one.
"""

from __future__ import annotations

from .layers import default_layer_mapping, kernelize_for_decoding
from .verify import (
    DEFAULT_VERIFY_REPO,
    DEFAULT_VERIFY_VERSION,
    TRUSTED_KERNELS_ENV,
    VERIFY_KERNEL_ENV,
    UntrustedKernelError,
    get_verify_fn,
    load_verify_kernel,
)

__all__ = [
    "DEFAULT_VERIFY_REPO",
    "DEFAULT_VERIFY_VERSION",
    "TRUSTED_KERNELS_ENV",
    "VERIFY_KERNEL_ENV",
    "UntrustedKernelError",
    "default_layer_mapping",
    "get_verify_fn",
    "kernelize_for_decoding",
    "load_verify_kernel",
]
