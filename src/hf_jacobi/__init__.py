"""hf_jacobi: Jacobi Forcing for HuggingFace causal LMs.

`import hf_jacobi` makes `model.generate(..., generation_mode="jacobi", block_size=16)` available on every
transformers causal LM; under greedy decoding it returns exactly the tokens of ordinary greedy decoding.
"""

from .integration import disable, enable, export_custom_generate
from .jacobi import JacobiDraft, JacobiGenerateOutput, accept_length, jacobi_decode

__version__ = "0.1.0"

enable()

__all__ = [
    "JacobiDraft",
    "JacobiGenerateOutput",
    "accept_length",
    "disable",
    "enable",
    "export_custom_generate",
    "jacobi_decode",
]
