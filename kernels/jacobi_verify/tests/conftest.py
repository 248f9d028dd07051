import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the kernel is loaded from this folder, never from the Hub
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import pytest


@pytest.fixture(scope="session")
def jacobi_verify():
    """The kernel as users get it: `build/torch-<backend>/` of this folder, loaded by the `kernels` library."""
    import kernels

    return kernels.get_local_kernel(Path(__file__).resolve().parents[1])
