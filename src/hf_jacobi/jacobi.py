# Copyright 2026 The hf_jacobi authors. Apache-2.0.
"""Deprecated: Jacobi decoding moved to `hf_jacobi.generation`. This module re-exports its names for one release."""

import warnings

from .generation import (  # noqa: F401
    JacobiDraft,
    JacobiGenerateOutput,
    MultiBlockDraft,
    accept_length,
    choose_rows,
    jacobi_decode,
    select_tokens,
    verify_block,
)
from .generation.generate import generate, route_to_jacobi  # noqa: F401

warnings.warn(
    "`hf_jacobi.jacobi` is deprecated and will be removed in the next release; import from `hf_jacobi` or "
    "`hf_jacobi.generation` instead.",
    FutureWarning,
    stacklevel=2,
)
