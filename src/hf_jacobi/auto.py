# Copyright 2026 The hf_jacobi authors. Apache-2.0.
"""Deprecated: moved to `hf_jacobi.generation.auto`; this name is that module, for one release."""

import sys
import warnings

from .generation import auto as _auto

warnings.warn(
    "`hf_jacobi.auto` is deprecated and will be removed in the next release; use `hf_jacobi.generation.auto`.",
    FutureWarning,
    stacklevel=2,
)
sys.modules[__name__] = _auto
