"""hf_jacobi: Jacobi Forcing for HuggingFace causal LMs.

`import hf_jacobi` makes `model.generate(..., generation_mode="jacobi", block_size=16)` available on every
transformers causal LM; under greedy decoding it returns exactly the tokens of ordinary greedy decoding.
"""

from .generation import (
    CandidateSource,
    JacobiConfig,
    JacobiDraft,
    JacobiGenerateOutput,
    MultiBlockDraft,
    RejectionRecycling,
    accept_length,
    jacobi_decode,
    verify_block,
)
from .filler_gate import gate_adapter_on_filler, is_filler_gated
from .integration import disable, enable, export_custom_generate
from .quantization import quantize_int8

__version__ = "0.1.0"

enable()

# The training side imports TRL (about a second): load it on first use only.
_TRAINING = (
    "JacobiForcingCollator",
    "JacobiForcingConfig",
    "JacobiForcingTrainer",
    "pack_trajectories",
)


def __getattr__(name):
    if name == "RejectionPool":
        import warnings

        warnings.warn(
            "`hf_jacobi.RejectionPool` is now `hf_jacobi.RejectionRecycling` (a draft source; context lookup became "
            "`generation.ContextLookupRows`); the old name goes in the next release.",
            FutureWarning,
            stacklevel=2,
        )
        return RejectionRecycling
    if name in _TRAINING:
        from . import training

        return getattr(training, name)
    if name in ("collect_trajectories", "CollectConfig"):
        from . import collection

        return getattr(collection, name)
    raise AttributeError(f"module 'hf_jacobi' has no attribute {name!r}")

__all__ = [
    "CandidateSource",
    "CollectConfig",
    "JacobiConfig",
    "JacobiDraft",
    "JacobiForcingCollator",
    "JacobiForcingConfig",
    "JacobiForcingTrainer",
    "JacobiGenerateOutput",
    "MultiBlockDraft",
    "RejectionRecycling",
    "accept_length",
    "collect_trajectories",
    "disable",
    "enable",
    "export_custom_generate",
    "gate_adapter_on_filler",
    "is_filler_gated",
    "jacobi_decode",
    "quantize_int8",
    "pack_trajectories",
    "verify_block",
]
