"""How `generation_mode="jacobi"` reaches the Jacobi loop, and the Hub `custom_generate` export.

transformers has no registry of decoding strategies, but `generate(custom_generate=<callable>)` runs all of its
preparation and then hands over the decoding loop. The only global change hf_jacobi makes is one thin wrapper around
`GenerationMixin.generate` that turns `generation_mode="jacobi"` into that call (`generation.route_to_jacobi`); every
other call passes through untouched. `use_kernels=True` is resolved here (it needs the `kernels` library, which the
self-contained `generation` package must not import) and passed in as `verify_fn`.
"""
from __future__ import annotations

import functools
import inspect
import shutil
from pathlib import Path

from transformers import GenerationMixin

from . import generation
from .generation import JacobiConfig

GENERATION_MODES = ("jacobi",)
_original_generate = GenerationMixin.generate
_generate_signature = inspect.signature(_original_generate)


@functools.wraps(_original_generate)
def generate(self, *args, generation_mode: str | None = None, use_kernels: bool = False, **kwargs):
    bound = _generate_signature.bind(self, *args, **kwargs).arguments
    config = bound.get("generation_config") or getattr(self, "generation_config", None)
    if generation_mode is None:
        generation_mode = getattr(config, "generation_mode", None)
    if generation_mode is None:
        if use_kernels:
            raise ValueError("`use_kernels=True` selects the fused Jacobi verification; pass generation_mode='jacobi'.")
        if bound.get("custom_generate") is None:
            settings = sorted(set(bound.get("kwargs", {})) & {*JacobiConfig.names(), "jacobi_config"})
            if settings:
                raise ValueError(
                    f"{settings} are Jacobi decoding settings, but generation_mode is not set: pass "
                    "generation_mode='jacobi' to decode with Jacobi decoding, or drop them."
                )
        return _original_generate(self, *args, **kwargs)  # the common path: untouched
    if generation_mode not in GENERATION_MODES:
        raise ValueError(
            f"Unknown generation_mode={generation_mode!r}; hf_jacobi provides {GENERATION_MODES}. Leave it unset for "
            "the usual transformers decoding."
        )
    if bound.get("custom_generate") is not None:
        raise ValueError("`generation_mode='jacobi'` and `custom_generate` both choose the decoding loop; pass one.")
    if bound.get("assistant_model") is not None:
        raise ValueError("Jacobi decoding drafts with the model itself; drop `assistant_model`.")
    extra = bound.pop("kwargs", {})
    bound.pop("self")
    if use_kernels:
        if extra.get("verify_fn") is not None:
            raise ValueError("`use_kernels=True` and `verify_fn` both choose the verification step; pass one.")
        from .kernels import get_verify_fn  # imports the `kernels` library only when asked for

        extra["verify_fn"] = get_verify_fn()
    return _original_generate(self, **generation.route_to_jacobi({**bound, **extra}, self))


def enable() -> None:
    """Install the `generation_mode` wrapper (done on `import hf_jacobi`; idempotent)."""
    GenerationMixin.generate = generate


def disable() -> None:
    """Restore transformers' own `GenerationMixin.generate`."""
    GenerationMixin.generate = _original_generate


def export_custom_generate(path: str | Path) -> Path:
    """Write the Hub `custom_generate` layout of Jacobi decoding into `path` (a local dir or a repo to upload).

    `model.generate(custom_generate=str(path), trust_remote_code=True, block_size=16)` then runs Jacobi decoding
    without hf_jacobi installed. The files are the modules of `hf_jacobi.generation` themselves (so there is one
    implementation); transformers fetches `generate.py` and, through its relative imports, the others.
    """
    source = Path(inspect.getsourcefile(generation)).parent
    target = Path(path) / "custom_generate"
    target.mkdir(parents=True, exist_ok=True)
    for module in sorted(source.glob("*.py")):
        if module.name != "__init__.py":
            shutil.copyfile(module, target / module.name)
    (target / "requirements.txt").write_text("torch\ntransformers>=5.0\n")
    return Path(path)
