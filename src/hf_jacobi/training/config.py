"""Configuration of the [`JacobiForcingTrainer`]."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import torch
from trl import SFTConfig

from ..loading import bf16_supported
from .collator import MASK_CONTEXTS
from .packing import NOISE_SCHEDULES


@dataclass
class JacobiForcingConfig(SFTConfig):
    r"""
    Configuration class for the [`JacobiForcingTrainer`].

    Extends [`~trl.SFTConfig`] with the parameters of Jacobi Forcing (progressive consistency distillation on the
    model's own Jacobi trajectories). Using [`~transformers.HfArgumentParser`] this class turns into command-line
    arguments.

    Parameters:
        > Parameters that control the blocks and the attention mask

        block_size (`int` or `None`, *optional*, defaults to `None`):
            Block size `n` of the training data. Data of another block size is refused with an error naming the
            record (a curriculum trains each block size as its own stage). `None` reads it from the data.
        mask_context (`str`, *optional*, defaults to `"noisy"`):
            Context of a noisy block in the attention mask: the earlier noisy blocks (`"noisy"`, hao-ai-lab/JacobiForcing's
            default, matching multi-block decoding, which drafts on unverified tokens) or the earlier clean blocks
            (`"clean"`).

        > Parameters that control the losses

        ar_loss_weight (`float`, *optional*, defaults to `10.0`):
            Weight of the next-token loss along the clean sequence (hao-ai-lab/JacobiForcing uses 10). Total loss =
            `ar_loss_weight * ar_loss + consistency_loss`.
        consistency_loss_weight (`float`, *optional*, defaults to `1.0`):
            Weight of the consistency loss; 0 trains the AR loss alone (the control of the overfit diagnostic).
        consistency_temperature (`float`, *optional*, defaults to `1.0`):
            Temperature of the consistency (distillation) loss; the loss is scaled by `temperature**2`.
        ar_loss_on_prompt (`bool`, *optional*, defaults to `True`):
            Whether the AR loss also predicts the prompt tokens, as hao-ai-lab/JacobiForcing does.
        consistency_target (`str`, *optional*, defaults to `"soft"`):
            `"soft"`: distill the clean-block distribution (KL, as hao-ai-lab/JacobiForcing). `"hard"`: cross-entropy
            against the clean next token, the teacher's greedy choice, which is all that acceptance asks.
        ar_target (`str`, *optional*, defaults to `"hard"`):
            `"hard"`: cross-entropy against the clean tokens (hao-ai-lab/JacobiForcing). `"soft"`: KL from a frozen
            reference model's distribution at the same positions (the trainer's `ref_model`, by default the model as
            it was before training). The clean tokens are the teacher's greedy answers; their cross-entropy only asks
            the argmax to stay, and a small model can meet it while its runner-up mass drifts towards repeating
            itself. The KL anchors the whole distribution, at the cost of one no-grad forward of the clean part.
        consistency_horizon (`int` or `None`, *optional*, defaults to `None`):
            Count only the first `consistency_horizon` noisy positions from a block's first wrong token (see
            [`JacobiForcingCollator`]); `None` counts every position after it, as hao-ai-lab/JacobiForcing does.
        consistency_normalization (`str`, *optional*, defaults to `"block"`):
            `"block"`: each counted position is divided by its example's number of noisy blocks, as hao-ai-lab/JacobiForcing
            divides by `T`. `"token"`: a plain mean over counted positions, so the consistency loss keeps its weight
            however many noisy states an example holds (use it with the state layout).

        > Parameters that control packing (used when the trainer is given raw trajectory records)

        noise_schedule (`str`, *optional*, defaults to `"progressive"`):
            How the noisy iterate of each block is chosen: `"progressive"` (block `j` targets
            `linspace(min_noise_ratio, max_noise_ratio, noise_window)[j % noise_window]`) or `"random"`.
        noise_window (`int`, *optional*, defaults to `16`):
            Window of the progressive schedule.
        min_noise_ratio (`float`, *optional*, defaults to `0.0`):
            Lowest target noise ratio.
        max_noise_ratio (`float`, *optional*, defaults to `1.0`):
            Highest target noise ratio.
        max_blocks (`int` or `None`, *optional*, defaults to `None`):
            Keep at most this many blocks per record.
        trim_loops (`bool`, *optional*, defaults to `False`):
            Drop the blocks of a continuation (without EOS) that ends in an exact repetition loop, from the loop's
            second period on, so the AR loss does not train the base model's loops.

        > Parameters that control the model card

        measured_tpf (`float` or `None`, *optional*, defaults to `None`):
            Tokens per forward measured with Jacobi decoding on the trained model, written into the model card. Set it
            after measuring (`trainer.args.measured_tpf = ...`) and save again; `None` writes "not measured".

        > Parameters whose defaults differ from [`~trl.SFTConfig`]

        bf16 (`bool` or `None`, *optional*, defaults to `None`):
            bf16 mixed precision. `None` turns it on only where the training device computes bfloat16 natively (a
            GPU with bf16, a CPU with AVX512-BF16 or AMX), instead of SFTConfig's unconditional `True`: on a CPU
            without bf16 units autocast emulates it, and a SmolLM2 training step ran 23x slower than in float32
            (4 vs 94 tokens/s on a 2-core AVX2 CPU).
        num_train_epochs (`float`, *optional*, defaults to `1.0`):
            One pass over distinct trajectories; more epochs repeat the same AR targets, which a small model memorises.
        remove_unused_columns (`bool`, *optional*, defaults to `False`):
            The collator needs the packed columns, which are not model inputs.
        dataset_kwargs (`dict[str, Any]`, *optional*, defaults to `{"skip_prepare_dataset": True}`):
            Packed data is already token ids; SFT preparation (tokenization, truncation) must not touch it.
        max_length (`int` or `None`, *optional*, defaults to `None`):
            Limit on the packed length `P + 2*T*n`. Longer records raise an error naming the record; they are never
            truncated, which would cut a noisy/clean pair. Positions are always checked against the model's
            `max_position_embeddings`.
    """

    block_size: int | None = field(
        default=None,
        metadata={"help": "Block size n of the training data; None reads it from the data."},
    )
    mask_context: str = field(
        default="noisy",
        metadata={"help": "Context of noisy blocks in the mask.", "choices": list(MASK_CONTEXTS)},
    )
    ar_loss_weight: float = field(
        default=10.0,
        metadata={"help": "Weight of the next-token loss along the clean sequence."},
    )
    consistency_loss_weight: float = field(
        default=1.0,
        metadata={"help": "Weight of the consistency loss (0: AR loss alone, a control)."},
    )
    consistency_temperature: float = field(
        default=1.0,
        metadata={"help": "Temperature of the consistency loss (scaled by temperature**2)."},
    )
    ar_loss_on_prompt: bool = field(
        default=True,
        metadata={"help": "Whether the AR loss also predicts the prompt tokens."},
    )
    consistency_target: str = field(
        default="soft",
        metadata={"help": "Consistency target: the clean logits (soft, KL; the reference) or the clean next token "
                          "(hard, cross-entropy; what acceptance asks).", "choices": ["soft", "hard"]},
    )
    ar_target: str = field(
        default="hard",
        metadata={"help": "AR target along the clean sequence: the clean tokens (hard, cross-entropy) or a frozen "
                          "reference model's distribution (soft, KL; anchors the whole distribution).",
                  "choices": ["hard", "soft"]},
    )
    consistency_horizon: int | None = field(
        default=None,
        metadata={"help": "Count only this many noisy positions from a block's first wrong token (None: all)."},
    )
    consistency_normalization: str = field(
        default="block",
        metadata={"help": "Consistency loss normalisation: per block (reference) or per token.", "choices": ["block", "token"]},
    )
    noise_schedule: str = field(
        default="progressive",
        metadata={"help": "How noisy iterates are chosen when packing.", "choices": list(NOISE_SCHEDULES)},
    )
    noise_window: int = field(default=16, metadata={"help": "Window of the progressive noise schedule."})
    min_noise_ratio: float = field(default=0.0, metadata={"help": "Lowest target noise ratio."})
    max_noise_ratio: float = field(default=1.0, metadata={"help": "Highest target noise ratio."})
    max_blocks: int | None = field(default=None, metadata={"help": "Keep at most this many blocks per record."})
    trim_loops: bool = field(
        default=False,
        metadata={"help": "Drop the blocks of a continuation that ends in an exact repetition loop (from its 2nd period)."},
    )
    measured_tpf: float | None = field(
        default=None,
        metadata={"help": "Measured tokens per forward, for the model card; None writes 'not measured'."},
    )

    # Overridden defaults of SFTConfig
    num_train_epochs: float = field(
        default=1.0,
        metadata={"help": "Passes over the data: one by default (more epochs repeat the same AR targets)."},
    )
    remove_unused_columns: bool = field(
        default=False,
        metadata={"help": "Keep the packed columns: the collator needs them."},
    )
    dataset_kwargs: dict[str, Any] | str | None = field(
        default_factory=lambda: {"skip_prepare_dataset": True},
        metadata={"help": "Packed data is already token ids, so SFT dataset preparation is skipped."},
    )
    max_length: int | None = field(
        default=None,
        metadata={"help": "Limit on the packed length; longer records raise instead of being truncated."},
    )

    def __post_init__(self):
        device = self._training_device()
        if self.bf16 is None and not self.fp16 and device is not None:
            self.bf16 = bf16_supported(device)
        if self.bf16 and device == "cpu" and not bf16_supported("cpu"):
            warnings.warn(
                "bf16=True on a CPU without bfloat16 units (AVX512-BF16/AMX): autocast emulates it, and a training "
                "step runs many times slower than in float32 (23x measured on SmolLM2). Leave bf16 unset to choose "
                "by hardware, or pass bf16=False.",
                stacklevel=2,
            )
        super().__post_init__()
        for name, optional in (("block_size", True), ("noise_window", False), ("max_blocks", True),
                               ("consistency_horizon", True)):
            value = getattr(self, name)
            if optional and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"`{name}` must be a positive integer{' or None' if optional else ''}, got {value!r}."
                )
        for name in ("min_noise_ratio", "max_noise_ratio"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"`{name}` must be a number in [0, 1], got {value!r}.")
        if self.min_noise_ratio > self.max_noise_ratio:
            raise ValueError(
                f"`min_noise_ratio` ({self.min_noise_ratio}) must not exceed `max_noise_ratio` ({self.max_noise_ratio})."
            )
        if self.mask_context not in MASK_CONTEXTS:
            raise ValueError(f"`mask_context` must be one of {MASK_CONTEXTS}, got {self.mask_context!r}.")
        if self.noise_schedule not in NOISE_SCHEDULES:
            raise ValueError(f"`noise_schedule` must be one of {NOISE_SCHEDULES}, got {self.noise_schedule!r}.")
        if self.consistency_target not in ("soft", "hard"):
            raise ValueError(f"`consistency_target` must be 'soft' or 'hard', got {self.consistency_target!r}.")
        if self.ar_target not in ("soft", "hard"):
            raise ValueError(f"`ar_target` must be 'soft' or 'hard', got {self.ar_target!r}.")
        if self.consistency_normalization not in ("block", "token"):
            raise ValueError(
                f"`consistency_normalization` must be 'block' or 'token', got {self.consistency_normalization!r}."
            )
        if self.ar_loss_weight < 0 or self.consistency_loss_weight < 0:
            raise ValueError(
                f"Loss weights must be >= 0, got ar_loss_weight={self.ar_loss_weight}, "
                f"consistency_loss_weight={self.consistency_loss_weight}."
            )
        if self.consistency_temperature <= 0:
            raise ValueError(f"`consistency_temperature` must be > 0, got {self.consistency_temperature}.")
        if isinstance(self.dataset_kwargs, dict) and not self.dataset_kwargs.get("skip_prepare_dataset", False):
            raise ValueError(
                "JacobiForcingConfig needs `dataset_kwargs={'skip_prepare_dataset': True}`: packed Jacobi data is "
                "already token ids, and SFT preparation would tokenize or truncate it."
            )

    def _training_device(self) -> str | None:
        """"cpu" or "cuda" as the Trainer will pick it, before `TrainingArguments` sets up devices; `None` for other
        accelerators (their bf16 default stays SFTConfig's)."""
        if self.use_cpu:
            return "cpu"
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        xpu = getattr(torch, "xpu", None)
        if (mps is not None and mps.is_available()) or (xpu is not None and xpu.is_available()):
            return None
        return "cpu"
