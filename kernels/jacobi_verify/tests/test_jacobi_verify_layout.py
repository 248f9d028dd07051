"""The kernel repository's layout: `build.toml`, the source in `torch-ext/`, and a `build/` that matches both."""

import importlib.util
import json
from pathlib import Path

import pytest

KERNEL_DIR = Path(__file__).resolve().parents[1]


def build_script():
    spec = importlib.util.spec_from_file_location("jacobi_verify_build_local", KERNEL_DIR / "build_local.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_build_is_generated_from_torch_ext():
    """`build/` holds exactly `torch-ext/jacobi_verify/` per backend plus its metadata, byte for byte."""
    stale = build_script().stale_files(KERNEL_DIR)
    assert not stale, f"build/ is stale ({', '.join(stale)}): run python kernels/jacobi_verify/build_local.py"


def test_variants_and_metadata_follow_build_toml():
    from kernels._rust import Metadata

    config = build_script().read_config(KERNEL_DIR)
    variants = sorted(path.name for path in (KERNEL_DIR / "build").iterdir() if path.is_dir())
    assert variants == sorted(f"torch-{backend}" for backend in config["backends"])
    assert "torch-universal" not in variants  # the `kernels` library's legacy name; metadata cannot say "universal"
    for backend in config["backends"]:
        path = KERNEL_DIR / "build" / f"torch-{backend}" / "metadata.json"
        metadata = Metadata.read_from_file(path)  # what `kernels` parses when it loads the variant
        assert str(metadata.backend.backend_type).lower() == backend
        assert metadata.name.python_name == "jacobi_verify" and metadata.version == config["version"]
        assert json.loads(path.read_text())["id"].startswith(f"_jacobi_verify_{backend}_")


def test_build_toml_is_valid_for_kernel_builder():
    rust = pytest.importorskip("kernels._rust", reason="the `kernels` library's build.toml parser is not available")
    general = rust.Build.open(KERNEL_DIR).general
    assert sorted(str(backend).lower() for backend in general.backends) == ["cpu", "cuda", "rocm"]


def test_loaded_variant_is_the_one_for_this_machine(jacobi_verify):
    import torch

    # `kernels` picks the variant from the torch build (a CUDA build without a GPU still gets torch-cuda).
    expected = "torch-cuda" if torch.version.cuda else "torch-rocm" if torch.version.hip else "torch-cpu"
    assert Path(jacobi_verify.__file__).parent == KERNEL_DIR / "build" / expected
    assert {"verify", "verify_reference", "verify_triton", "verify_block", "VerifyOutput"} <= set(dir(jacobi_verify))
