"""Fixtures for the whole suite (every subfolder); helpers and `require_*` marks are in testing_utils.py."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest
import torch
from testing_utils import make_tiny_model

# Tiny models run far faster on one thread (and do not fight other processes); the SmolLM2 tests take all cores.
torch.set_num_threads(1)


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models run ~100x faster on one thread than on two contended ones: every module starts on one thread and
    gets back the count it found, whatever its own fixtures set."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_model_factory():
    cache = {}

    def get(family):
        if family not in cache:
            cache[family] = make_tiny_model(family)
        return cache[family]

    return get
