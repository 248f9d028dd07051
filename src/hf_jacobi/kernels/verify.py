# Copyright 2026 The hf_jacobi authors. Apache-2.0.
"""Choosing the Jacobi verification step: the fused `jacobi-verify` kernel on GPUs, else `jacobi.verify_block`."""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import torch
from huggingface_hub import constants

from .. import jacobi

logger = logging.getLogger("hf_jacobi")

#: Hub kernel repository of the `kernels/jacobi_verify` package, and its API version (branch `v1`).
DEFAULT_VERIFY_REPO = "hf-jacobi/jacobi-verify"
DEFAULT_VERIFY_VERSION = 1
#: A local kernel package directory (the folder holding `build/`) to load instead of the Hub repository.
VERIFY_KERNEL_ENV = "HF_JACOBI_VERIFY_KERNEL"

_TORCH = "torch (hf_jacobi.jacobi.verify_block)"
_CHECK_DEVICE = "cuda"


def _cuda_available() -> bool:
    return torch.cuda.is_available()


def _local_override(repo_id: str) -> str | None:
    """The path `LOCAL_KERNELS="repo=path:..."` gives for `repo_id`, if any (`kernels.get_kernel` reads it too)."""
    for entry in os.environ.get("LOCAL_KERNELS", "").split(":"):
        name, _, path = entry.partition("=")
        if name == repo_id and path:
            return path
    return None


def load_verify_kernel(
    repo_id: str = DEFAULT_VERIFY_REPO,
    *,
    revision: str | None = None,
    version: int | None = None,
    trust_remote_code: bool | list[str] = False,
):
    """Load the `jacobi-verify` kernel module with the `kernels` library; raises when it cannot.

    Looks, in order, at the package directory named by `HF_JACOBI_VERIFY_KERNEL` (`kernels.get_local_kernel`), then
    `kernels.get_kernel(repo_id, ...)`, which honours `LOCAL_KERNELS="<repo_id>=<dir>"` and otherwise downloads from the
    Hub (with `HF_HUB_OFFLINE=1`: the local Hub cache only). `DEFAULT_VERIFY_REPO` is trusted; another repository
    needs `trust_remote_code=True` or `[repo_id]` unless its publisher is trusted on the Hub.

    Returns:
        `(module, source)`: the kernel module and a short description of where it came from.
    """
    import kernels

    path = os.environ.get(VERIFY_KERNEL_ENV)
    if path:
        return kernels.get_local_kernel(Path(path)), f"{VERIFY_KERNEL_ENV}={path}"
    if revision is None and version is None:
        version = DEFAULT_VERIFY_VERSION
    trust = True if trust_remote_code is True else [DEFAULT_VERIFY_REPO, *(trust_remote_code or [])]
    module = kernels.get_kernel(repo_id, revision=revision, version=version, trust_remote_code=trust)
    local = _local_override(repo_id)
    where = f"LOCAL_KERNELS path {local}" if local else ("Hub cache" if constants.HF_HUB_OFFLINE else "Hub")
    return module, f"{repo_id} ({where})"


def _self_check(kernel) -> None:
    """Run the loaded kernel once against the torch reference (ties included); raise on any difference."""
    generator = torch.Generator().manual_seed(0)
    for batch, candidates, n, vocab in ((2, 1, 8, 1000), (2, 3, 5, 5000)):
        rows = batch * candidates
        logits = torch.randint(-4, 4, (rows, n, vocab), generator=generator).float()
        draft = torch.randint(0, vocab, (rows, n), generator=generator)
        keep = torch.rand(rows, n - 1, generator=generator) < 0.7
        draft[:, 1:] = torch.where(keep, logits.argmax(-1)[:, :-1], draft[:, 1:])  # partly accepted drafts
        logits, draft = logits.to(_CHECK_DEVICE), draft.to(_CHECK_DEVICE)
        expected = kernel.verify_reference(draft, logits, candidates, 0)
        reference = jacobi.verify_block(draft, logits, False)
        got = kernel.verify_triton(draft, logits, candidates, 0)
        checks = list(zip(expected._fields, got, expected)) + [
            ("predictions (hf_jacobi)", got.predictions, reference[0]),
            ("accepted (hf_jacobi)", got.accepted, reference[1]),
        ]
        for name, value, target in checks:
            if not torch.equal(value.cpu(), target.cpu()):
                raise AssertionError(f"{name} differs (batch={batch}, candidates={candidates}, n={n}, vocab={vocab})")


def _fused_verify_fn(kernel):
    def verify_block(block: torch.LongTensor, scores: torch.FloatTensor, do_sample: bool = False):
        """`jacobi.verify_block` with the greedy step in the fused kernel (sampling and CPU tensors stay in torch)."""
        if do_sample or not kernel.triton_available(scores):
            return jacobi.verify_block(block, scores, do_sample)
        out = kernel.verify_triton(block, scores)
        return out.predictions, out.accepted

    verify_block.kernel = kernel
    return verify_block


def _first_line(error: Exception, limit: int = 300) -> str:
    text = str(error).strip().splitlines()
    text = text[0] if text else ""
    return f"{type(error).__name__}: {text[:limit]}"


def _decide(use_kernels: bool, repo_id: str, revision, version, trust_remote_code):
    """`(verify_fn, log level, message)` for these settings."""
    if not use_kernels:
        return jacobi.verify_block, logging.INFO, f"{_TORCH}, use_kernels=False."
    if not _cuda_available():
        return (
            jacobi.verify_block,
            logging.INFO,
            f"{_TORCH}: no CUDA device, and the fused kernel runs on GPUs (tokens are identical either way).",
        )
    try:
        kernel, source = load_verify_kernel(
            repo_id, revision=revision, version=version, trust_remote_code=trust_remote_code
        )
    except Exception as error:  # noqa: BLE001 (offline, unpublished, untrusted...: the exact torch path serves)
        wanted = (
            f"{VERIFY_KERNEL_ENV}={os.environ[VERIFY_KERNEL_ENV]}" if os.environ.get(VERIFY_KERNEL_ENV) else repo_id
        )
        return jacobi.verify_block, logging.WARNING, f"{_TORCH}: cannot load {wanted}: {_first_line(error)}"
    if getattr(kernel, "triton", None) is None:
        return (
            jacobi.verify_block,
            logging.WARNING,
            f"{_TORCH}: the kernel from {source} needs Triton (pip install 'hf_jacobi[kernels]').",
        )
    try:
        _self_check(kernel)
    except Exception as error:  # noqa: BLE001 (any failure of the check means: do not use the kernel)
        return (
            jacobi.verify_block,
            logging.WARNING,
            f"{_TORCH}: the kernel from {source} failed its check against the torch reference: {_first_line(error)}",
        )
    return _fused_verify_fn(kernel), logging.INFO, f"fused Triton kernel from {source}."


@functools.cache
def _choose(use_kernels: bool, repo_id: str, revision, version, trust_remote_code):
    if isinstance(trust_remote_code, tuple):
        trust_remote_code = list(trust_remote_code)
    verify_fn, level, message = _decide(use_kernels, repo_id, revision, version, trust_remote_code)
    logger.log(level, "Jacobi verification: %s", message)
    return verify_fn


def get_verify_fn(
    use_kernels: bool = True,
    repo_id: str = DEFAULT_VERIFY_REPO,
    *,
    revision: str | None = None,
    version: int | None = None,
    trust_remote_code: bool | list[str] = False,
):
    """The verification step for `jacobi_decode(verify_fn=...)`: the fused kernel where it can run, else the torch one.

    The fused kernel is used when `use_kernels` is set, a CUDA device is present, the kernel loads (see
    `load_verify_kernel`), Triton is installed and the kernel matches the torch reference on a check run at load.
    Otherwise `hf_jacobi.jacobi.verify_block` is returned. Both give identical tokens. The choice is made once per
    process for each set of arguments and logged in one line on the `hf_jacobi` logger.

    Returns:
        A callable `(block, scores, do_sample) -> (predictions, accepted)`.
    """
    if isinstance(trust_remote_code, list):
        trust_remote_code = tuple(trust_remote_code)
    return _choose(bool(use_kernels), repo_id, revision, version, trust_remote_code)
