# Copyright 2026 The hf_jacobi authors. Apache-2.0.
"""Deprecated: the offline model loading moved to `hf_jacobi.loading`; this name is that module, for one release."""

import sys
import warnings

from . import loading as _loading

warnings.warn(
    "`hf_jacobi.demo` is deprecated and will be removed in the next release; use `hf_jacobi.loading`.",
    FutureWarning,
    stacklevel=2,
)
sys.modules[__name__] = _loading
