# Copyright 2026 The hf_jacobi authors. Apache-2.0.
"""Choosing the Jacobi verification step: the fused `jacobi-verify` kernel on GPUs, else `hf_jacobi.verify_block`."""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import torch
from huggingface_hub import constants

from ..generation import verification as jacobi

logger = logging.getLogger("hf_jacobi")

#: Hub kernel repository name of the `kernels/jacobi_verify` package, and its API version (branch `v1`). Nobody
#: controls this name for hf_jacobi: it is not trusted, and so not downloaded, unless the user says so (or the Hub
#: marks its publisher as a trusted kernel publisher).
DEFAULT_VERIFY_REPO = "hf-jacobi/jacobi-verify"
DEFAULT_VERIFY_VERSION = 1
#: A local kernel package directory (the folder holding `build/`) to load instead of the Hub repository. Whatever
#: folder it names is imported, so its Python code runs in this process.
VERIFY_KERNEL_ENV = "HF_JACOBI_VERIFY_KERNEL"
#: Comma-separated Hub kernel repositories the user trusts: hf_jacobi passes them to `kernels.get_kernel` as
#: `trust_remote_code`, which lets it download and run their code.
TRUSTED_KERNELS_ENV = "HF_JACOBI_TRUSTED_KERNELS"

_TORCH = "torch (hf_jacobi.verify_block)"
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


class UntrustedKernelError(ValueError):
    """The Hub kernel repository is not trusted, so its code was neither downloaded nor run."""


def _user_trust(trust_remote_code: bool | list[str] | tuple[str, ...] = False) -> bool | list[str]:
    """What the user trusts: `True` (any repository), or the repository ids of the argument and of the environment."""
    if trust_remote_code is True:
        return True
    from_env = [name.strip() for name in os.environ.get(TRUSTED_KERNELS_ENV, "").split(",") if name.strip()]
    return list(dict.fromkeys([*(trust_remote_code or []), *from_env]))


def _opt_in_hint(repo_id: str) -> str:
    return (
        f"to trust it, set {TRUSTED_KERNELS_ENV}={repo_id} or pass trust_remote_code=[{repo_id!r}] "
        "(this downloads and runs that repository's code)"
    )


def load_verify_kernel(
    repo_id: str = DEFAULT_VERIFY_REPO,
    *,
    revision: str | None = None,
    version: int | None = None,
    trust_remote_code: bool | list[str] = False,
):
    """Load the `jacobi-verify` kernel module with the `kernels` library; raises when it cannot.

    Looks, in order, at:

    1. the package directory named by `HF_JACOBI_VERIFY_KERNEL` (`kernels.get_local_kernel`);
    2. `LOCAL_KERNELS="<repo_id>=<dir>"`, read by `kernels.get_kernel`;
    3. the Hub repository `repo_id` (with `HF_HUB_OFFLINE=1`: the local Hub cache only), if it is trusted.

    Both environment variables import and run the Python code of whatever folder they name, like any local package:
    point them only at code you trust. A Hub repository is trusted when the user says so, with `trust_remote_code=True`
    (every repository), `trust_remote_code=[repo_id, ...]` or `HF_JACOBI_TRUSTED_KERNELS="<repo_id>,..."`, or,
    online, when the `kernels` library finds that its publisher is a trusted kernel publisher on the Hub. hf_jacobi
    trusts no repository by itself, `DEFAULT_VERIFY_REPO` included (hf_jacobi does not control that name). Offline,
    a publisher cannot be checked, so a Hub-cache copy loads only when the user trusts it.

    Returns:
        `(module, source)`: the kernel module and a short description of where it came from.

    Raises:
        `UntrustedKernelError` (a `ValueError`): the Hub repository is not trusted; the message says how to opt in.
    """
    import kernels

    path = os.environ.get(VERIFY_KERNEL_ENV)
    if path:
        return kernels.get_local_kernel(Path(path)), f"{VERIFY_KERNEL_ENV}={path}"
    if revision is None and version is None:
        version = DEFAULT_VERIFY_VERSION
    trust = _user_trust(trust_remote_code)
    trusted = trust is True or repo_id in trust
    local = _local_override(repo_id)
    if not (trusted or local) and constants.HF_HUB_OFFLINE:
        raise UntrustedKernelError(
            f"{repo_id} is not trusted and, offline, its publisher cannot be checked; {_opt_in_hint(repo_id)}."
        )
    try:
        module = kernels.get_kernel(repo_id, revision=revision, version=version, trust_remote_code=trust)
    except Exception as error:
        if trusted or local:
            raise
        reason = _first_line(error, limit=160).split(". ")[0]
        raise UntrustedKernelError(
            f"{repo_id} is not trusted by the user and did not load as a trusted publisher's kernel ({reason}); "
            f"{_opt_in_hint(repo_id)}."
        ) from error
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
    except UntrustedKernelError as error:
        return jacobi.verify_block, logging.WARNING, f"{_TORCH}: {error}"
    except Exception as error:  # noqa: BLE001 (offline, unpublished, no build for this system...: torch serves)
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
def _choose(use_kernels: bool, repo_id: str, revision, version, trust, environment):
    """`environment` (the kernel-folder variables) is only part of the cache key: a change makes a new decision."""
    trust = trust if trust is True else list(trust)
    verify_fn, level, message = _decide(use_kernels, repo_id, revision, version, trust)
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
    Otherwise `hf_jacobi.verify_block` is returned. Both give identical tokens. The choice is made once per process
    for each set of arguments and environment, and logged in one line on the `hf_jacobi` logger (a warning, saying
    how to opt in, when the kernel repository is not trusted).

    Trust: the Hub repository `repo_id` is downloaded and its code run only when the user trusts it:
    `trust_remote_code=True` (any repository), `trust_remote_code=[repo_id]`, or the environment variable
    `HF_JACOBI_TRUSTED_KERNELS="<repo_id>[,<repo_id>...]"`, which is how `model.generate(..., use_kernels=True)`
    (which calls this function with its defaults) opts in. Online, a repository whose publisher the `kernels` library
    trusts loads without it. `HF_JACOBI_VERIFY_KERNEL=<dir>` and `LOCAL_KERNELS="<repo_id>=<dir>"` load a local
    folder instead, importing and running its Python code, whatever that folder holds.

    Args:
        use_kernels (`bool`): whether to try the fused kernel at all.
        repo_id (`str`): Hub kernel repository; `DEFAULT_VERIFY_REPO` by default, which is not trusted by default.
        revision (`str`, *optional*): branch, tag or commit of `repo_id` (instead of `version`).
        version (`int`, *optional*): kernel API version (branch `v<version>`); `DEFAULT_VERIFY_VERSION` by default.
        trust_remote_code (`bool` or `list[str]`): repositories trusted in addition to `HF_JACOBI_TRUSTED_KERNELS`.

    Returns:
        A callable `(block, scores, do_sample) -> (predictions, accepted)`.
    """
    trust = _user_trust(trust_remote_code)
    trust = trust if trust is True else tuple(trust)
    environment = (os.environ.get(VERIFY_KERNEL_ENV), os.environ.get("LOCAL_KERNELS"))
    return _choose(bool(use_kernels), repo_id, revision, version, trust, environment)
