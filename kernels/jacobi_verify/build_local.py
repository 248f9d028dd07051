# Copyright 2026 The hf_jacobi authors. Apache-2.0.
"""Write the `build/` variants of this noarch kernel from `torch-ext/jacobi_verify/` and `build.toml`.

    python kernels/jacobi_verify/build_local.py          # rewrite build/
    python kernels/jacobi_verify/build_local.py --check  # exit 1 (and list the files) if build/ is stale

The source lives once, in `torch-ext/jacobi_verify/`. A pure-Python (Triton) kernel needs no compilation, so a build
is that folder copied into `build/torch-<backend>/` for every backend of `build.toml` (the flat layout the `kernels`
library loads), beside a `metadata.json` naming that backend. `kernel-builder build-and-copy` (Nix) writes the same
layout, with more provenance fields in `metadata.json`. The `build/` folder is committed so that
`kernels.get_local_kernel("kernels/jacobi_verify")` works from a checkout; `tests/test_jacobi_verify_layout.py`
fails when it is stale.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

KERNEL_DIR = Path(__file__).resolve().parent


def read_config(kernel_dir: Path = KERNEL_DIR) -> dict:
    with open(kernel_dir / "build.toml", "rb") as file:
        return tomllib.load(file)["general"]


def source_files(kernel_dir: Path = KERNEL_DIR) -> dict[str, bytes]:
    """`{path relative to torch-ext/<module>: content}` of the kernel's Python package, bytecode left out."""
    config = read_config(kernel_dir)
    package = kernel_dir / "torch-ext" / config["name"].replace("-", "_")
    if not (package / "__init__.py").is_file():
        raise FileNotFoundError(f"{package}/__init__.py does not exist")
    return {
        path.relative_to(package).as_posix(): path.read_bytes()
        for path in sorted(package.rglob("*"))
        if path.is_file() and path.suffix != ".pyc" and "__pycache__" not in path.parts
    }


def metadata(config: dict, backend: str, digest: str) -> bytes:
    """`metadata.json` of one variant; `id` names the module in `sys.modules`, so it changes with the source."""
    module = config["name"].replace("-", "_")
    data = {
        "id": f"_{module}_{backend}_{digest}",
        "name": config["name"],
        "version": config["version"],
        "license": config["license"],
        "python-depends": config.get("python-depends", []),
        "backend": {"type": backend},
    }
    return (json.dumps(data, indent=2) + "\n").encode()


def expected_build(kernel_dir: Path = KERNEL_DIR) -> dict[str, bytes]:
    """`{path relative to build/: content}` that `build/` must hold."""
    config = read_config(kernel_dir)
    sources = source_files(kernel_dir)
    digest = hashlib.sha256()
    for name, content in sources.items():
        digest.update(name.encode() + b"\0" + hashlib.sha256(content).digest())
    files = {}
    for backend in config["backends"]:
        variant = f"torch-{backend}"
        files[f"{variant}/metadata.json"] = metadata(config, backend, digest.hexdigest()[:10])
        files.update({f"{variant}/{name}": content for name, content in sources.items()})
    return files


def built_files(kernel_dir: Path = KERNEL_DIR) -> dict[str, bytes]:
    build = kernel_dir / "build"
    if not build.is_dir():
        return {}
    return {
        path.relative_to(build).as_posix(): path.read_bytes()
        for path in sorted(build.rglob("*"))
        if path.is_file() and path.suffix != ".pyc" and "__pycache__" not in path.parts
    }


def stale_files(kernel_dir: Path = KERNEL_DIR) -> list[str]:
    """Paths under `build/` that are missing, differ from what `torch-ext/` and `build.toml` give, or are extra."""
    expected, found = expected_build(kernel_dir), built_files(kernel_dir)
    return sorted(name for name in expected.keys() | found.keys() if expected.get(name) != found.get(name))


def write_build(kernel_dir: Path = KERNEL_DIR) -> list[str]:
    """Replace `build/` with the expected variants; returns the paths written."""
    expected = expected_build(kernel_dir)
    build = kernel_dir / "build"
    if build.exists():
        shutil.rmtree(build)
    for name, content in expected.items():
        path = build / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return sorted(expected)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare build/ with torch-ext/ and build.toml")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for name in stale:
            print(f"stale: build/{name}")
        if stale:
            print(f"to rewrite it: python {__file__}")
        return 1 if stale else 0
    for name in write_build():
        print(f"wrote build/{name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
