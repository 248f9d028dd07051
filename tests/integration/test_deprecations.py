"""Old public paths keep working for one release, with a FutureWarning that names the new one."""

import importlib
import sys

import pytest

import hf_jacobi


@pytest.mark.parametrize(
    "old, new, name",
    [
        ("hf_jacobi.jacobi", "hf_jacobi.generation", "jacobi_decode"),
        ("hf_jacobi.auto", "hf_jacobi.generation.auto", "AutoBlockSize"),
        ("hf_jacobi.demo", "hf_jacobi.loading", "load_model"),
    ],
)
def test_moved_modules_still_import(old, new, name, monkeypatch):
    monkeypatch.delitem(sys.modules, old, raising=False)
    with pytest.warns(FutureWarning, match=new.replace(".", r"\.")):
        module = importlib.import_module(old)
    assert getattr(module, name) is getattr(importlib.import_module(new), name)


def test_rejection_pool_is_now_rejection_recycling():
    with pytest.warns(FutureWarning, match="RejectionRecycling"):
        assert hf_jacobi.RejectionPool is hf_jacobi.RejectionRecycling
