# Copyright 2026 The hf_jacobi authors. Apache-2.0.
"""jacobi-verify: the per-iteration verification step of Jacobi decoding as one fused Triton kernel.

    from kernels import get_kernel
    jacobi_verify = get_kernel("<namespace>/jacobi-verify", version=1)
    out = jacobi_verify.verify(draft, logits, num_candidates=1, fill_value=0)
    out.predictions, out.accepted, out.best, out.next_draft

`verify_reference` is the same function in plain torch; `verify` runs the Triton kernel where it can (CUDA tensors, or
any tensors under `TRITON_INTERPRET=1`) and the reference otherwise, so its results never depend on the path.
`verify_block(block, scores, do_sample)` has the signature of `hf_jacobi.verify_block`.
"""

from __future__ import annotations

import torch

from ._reference import VerifyOutput, accept_length, select_tokens, verify_reference
from ._triton import SUPPORTED_DTYPES, interpreter_enabled, triton, verify_triton

__all__ = [
    "VerifyOutput",
    "accept_length",
    "triton_available",
    "verify",
    "verify_block",
    "verify_reference",
    "verify_triton",
]


def triton_available(logits: torch.Tensor) -> bool:
    """Whether `verify` runs the Triton kernel for these logits."""
    if triton is None or logits.dtype not in SUPPORTED_DTYPES:
        return False
    return logits.is_cuda or interpreter_enabled()


def verify(draft: torch.Tensor, logits: torch.Tensor, num_candidates: int = 1, fill_value: int = 0) -> VerifyOutput:
    """Jacobi verification: argmax, accepted prefixes, best candidate per sequence and next draft.

    Args:
        draft (`torch.LongTensor` of shape `(batch * num_candidates, n)`): blocks fed to the model, rows grouped by
            sequence (`row = b * num_candidates + c`).
        logits (`torch.Tensor` of shape `(batch * num_candidates, n, vocab)`): (processed) logits at the block
            positions; float32, float16 or bfloat16 for the kernel.
        num_candidates (`int`): candidate rows per sequence.
        fill_value (`int`): filler of `next_draft` past the best row's predictions.

    Returns:
        `VerifyOutput(predictions, accepted, best, next_draft)`, see `verify_reference`.
    """
    if triton_available(logits):
        return verify_triton(draft, logits, num_candidates, fill_value)
    return verify_reference(draft, logits, num_candidates, fill_value)


def verify_block(block: torch.Tensor, scores: torch.Tensor, do_sample: bool = False):
    """Drop-in for `hf_jacobi.verify_block`: `(predictions (batch, n), accepted (batch,))`.

    Greedy verification runs `verify`; sampling runs the torch implementation (softmax + multinomial).
    """
    if do_sample:
        predictions = select_tokens(scores, do_sample=True)
        return predictions, accept_length(block, predictions)
    out = verify(block, scores)
    return out.predictions, out.accepted
