"""Training side of Jacobi Forcing: pack trajectories, collate packed sequences, train with TRL.

- `packing.py`: noise schedule, `pack_trajectories`.
- `collator.py`: `JacobiForcingCollator` (packed sequence, position ids, block-structured attention mask).
- `losses.py`: `ar_loss`, `consistency_loss`.
- `config.py` / `trainer.py`: `JacobiForcingConfig`, `JacobiForcingTrainer` (an `SFTTrainer`).
"""

from .collator import JacobiForcingCollator, jacobi_attention_mask, jacobi_block_mask
from .config import JacobiForcingConfig
from .losses import ar_loss, consistency_loss
from .packing import (
    loop_start,
    noise_ratio,
    noise_schedule,
    pack_states,
    pack_trajectories,
    packing_info,
    validate_packed_dataset,
)
from .trainer import JacobiForcingTrainer

__all__ = [
    "JacobiForcingCollator",
    "JacobiForcingConfig",
    "JacobiForcingTrainer",
    "ar_loss",
    "consistency_loss",
    "jacobi_attention_mask",
    "jacobi_block_mask",
    "loop_start",
    "noise_ratio",
    "noise_schedule",
    "pack_states",
    "pack_trajectories",
    "packing_info",
    "validate_packed_dataset",
]
