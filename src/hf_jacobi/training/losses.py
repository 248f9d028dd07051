"""Jacobi Forcing losses (arXiv 2512.14681: AR loss plus consistency loss) as pure functions on tensors.

Total loss = `ar_weight * ar_loss + consistency_loss`; the trainer computes both from one packed forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def ar_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy along the clean sequence, averaged over the counted targets.

    Args:
        logits (`torch.Tensor` of shape `[B, S, V]`): logits of the packed forward.
        labels (`torch.LongTensor` of shape `[B, S]`): target of the logits at each position, already shifted
            (`shift_labels` from [`JacobiForcingCollator`]), -100 where there is none.

    Returns:
        Scalar tensor; 0 (still attached to the graph) when nothing is counted.
    """
    counted = labels != IGNORE_INDEX
    # Select first so that the float32 upcast only touches counted positions
    selected = logits[counted].float()  # [N, V]
    loss = F.cross_entropy(selected, labels[counted], reduction="sum")
    return loss / counted.sum().clamp(min=1)


def distillation_loss(logits: torch.Tensor, reference_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """`KL(p_reference || p_model)` along the clean sequence, averaged over the positions `ar_loss` counts.

    The soft AR target (`ar_target="soft"`): the reference (a frozen copy of the model before training) keeps the
    whole next-token distribution of the clean positions in place, where `ar_loss` only asks for the clean token.

    Args:
        logits (`torch.Tensor` of shape `[B, S, V]`): logits of the packed forward.
        reference_logits (`torch.Tensor` of shape `[B, S', V]`, `S' <= S`): the reference's logits of the first `S'`
            positions, which hold every counted one.
        labels (`torch.LongTensor` of shape `[B, S]`): `shift_labels`; only where it is not -100 counts.
    """
    counted = labels[:, : reference_logits.shape[1]] != IGNORE_INDEX
    if int(counted.sum()) != int((labels != IGNORE_INDEX).sum()):
        raise ValueError("`reference_logits` must cover every position that `labels` counts.")
    return consistency_loss(logits[:, : reference_logits.shape[1]], reference_logits, counted)


def consistency_loss(
    noisy_logits: torch.Tensor,
    clean_logits: torch.Tensor,
    mask: torch.Tensor,
    temperature: float = 1.0,
    num_blocks: torch.Tensor | None = None,
) -> torch.Tensor:
    """Distill the clean-block predictions (teacher, detached) into the noisy-block predictions (student).

    The reference uses the soft cross-entropy `-sum(p_teacher * log p_student)`. This computes
    `KL(p_teacher || p_student)` instead: it is that cross-entropy minus the teacher's entropy, which does not depend
    on the student, so the gradient is the same, but it is exactly 0 when the student matches the teacher (the soft
    cross-entropy would report the teacher's entropy there, which reads like an unconverged loss).

    Per counted position, the divergence is computed at `temperature`, multiplied by `temperature**2` (so the
    gradient scale does not depend on the temperature) and divided by its example's number of blocks `T`; the loss
    is the mean over counted positions. Dividing by each example's own `T` (hao-ai-lab/JacobiForcing divides by the batch's
    total) keeps the loss independent of the batch size.

    Args:
        noisy_logits (`torch.Tensor` of shape `[B, L, V]`): student logits at the noisy block positions.
        clean_logits (`torch.Tensor` of shape `[B, L, V]`): teacher logits at the matching clean positions.
        mask (`torch.BoolTensor` of shape `[B, L]`): positions that count.
        temperature (`float`, *optional*, defaults to `1.0`): distillation temperature.
        num_blocks (`torch.LongTensor` of shape `[B]`, *optional*): `T` per example; `None` divides by 1.

    Returns:
        Scalar tensor; exactly 0 (still attached to the graph) when nothing is counted.
    """
    student = noisy_logits[mask].float() / temperature  # [N, V]
    teacher = clean_logits[mask].detach().float() / temperature  # [N, V]
    teacher_log_probs = F.log_softmax(teacher, dim=-1)
    student_log_probs = F.log_softmax(student, dim=-1)
    per_position = (teacher_log_probs.exp() * (teacher_log_probs - student_log_probs)).sum(dim=-1)  # [N]
    return _normalized_mean(per_position, mask, num_blocks) * (temperature**2)


def _normalized_mean(per_position: torch.Tensor, mask: torch.Tensor, num_blocks: torch.Tensor | None) -> torch.Tensor:
    """Mean of the counted positions' losses `[N]`, each first divided by its example's `T` when `num_blocks` is given."""
    if num_blocks is not None:
        blocks = num_blocks.to(per_position.device)[:, None].expand_as(mask)[mask]  # [N]
        per_position = per_position / blocks.clamp(min=1)
    return per_position.sum() / mask.sum().clamp(min=1)


def hard_consistency_loss(
    noisy_logits: torch.Tensor,
    labels: torch.Tensor,
    mask: torch.Tensor,
    num_blocks: torch.Tensor | None = None,
) -> torch.Tensor:
    """Cross-entropy of the noisy-block predictions against the clean next tokens (the teacher's greedy choices).

    Acceptance only asks the argmax at a noisy position to be the clean token, so this trains exactly that, and it is
    cheaper than the soft loss (no teacher softmax over the vocabulary). Same normalisation as [`consistency_loss`].

    Args:
        noisy_logits (`torch.Tensor` of shape `[B, L, V]`): student logits at the noisy block positions.
        labels (`torch.LongTensor` of shape `[B, L]`): the clean next token of each position, -100 where none.
        mask (`torch.BoolTensor` of shape `[B, L]`): positions that count.
        num_blocks (`torch.LongTensor` of shape `[B]`, *optional*): `T` per example; `None` divides by 1.
    """
    mask = mask & (labels != IGNORE_INDEX)
    per_position = F.cross_entropy(noisy_logits[mask].float(), labels[mask], reduction="none")  # [N]
    return _normalized_mean(per_position, mask, num_blocks)
