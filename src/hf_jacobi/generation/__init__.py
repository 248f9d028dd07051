# Copyright 2026 The hf_jacobi authors. Apache-2.0.
"""Jacobi decoding, laid out like transformers' generation utilities.

- `configuration_jacobi`: `JacobiConfig`, the settings and their checks.
- `candidates`: the draft sources (`CandidateSource`: the Jacobi block, multi-block, rejection recycling, context
  lookup) and the factory that builds them from a `JacobiConfig`.
- `verification`: acceptance (`accept_length`, the one rule), sampling-exact verification, the choice of row.
- `decoding`: the loop, `jacobi_decode`, in numbered steps.
- `auto`: `block_size="auto"`, a block-size policy from forward timings.
- `generate`: the Hub `custom_generate` entry point and the argument routing.

The modules import only torch, transformers and each other (relatively): `hf_jacobi.export_custom_generate` copies
them as they are into a Hub `custom_generate/` folder.
"""

from .candidates import (
    CandidateSource,
    ContextLookupDraft,
    ContextLookupRows,
    DraftStep,
    JacobiDraft,
    MultiBlockDraft,
    RejectionRecycling,
    build_candidate_sources,
    prompt_lookup,
)
from .configuration_jacobi import JacobiConfig
from .decoding import JacobiGenerateOutput, jacobi_decode
from .generate import route_to_jacobi
from .verification import Verification, accept_length, choose_rows, select_tokens, verify_block, verify_candidates

__all__ = [
    "CandidateSource",
    "ContextLookupDraft",
    "ContextLookupRows",
    "DraftStep",
    "JacobiConfig",
    "JacobiDraft",
    "JacobiGenerateOutput",
    "MultiBlockDraft",
    "RejectionRecycling",
    "Verification",
    "accept_length",
    "build_candidate_sources",
    "choose_rows",
    "jacobi_decode",
    "prompt_lookup",
    "route_to_jacobi",
    "select_tokens",
    "verify_block",
    "verify_candidates",
]
