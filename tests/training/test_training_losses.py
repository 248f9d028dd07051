"""Jacobi Forcing losses as pure functions, and on a packed forward."""


import torch
import torch.nn.functional as F
from testing_utils import PAD, random_example, tiny_model

from hf_jacobi.training import JacobiForcingCollator, ar_loss, consistency_loss
from hf_jacobi.training.losses import hard_consistency_loss


def test_ar_loss_is_mean_cross_entropy_over_targets():
    logits = torch.randn(2, 5, 11)
    labels = torch.tensor([[3, -100, 4, -100, 1], [-100, -100, 7, -100, -100]])
    counted = labels != -100
    expected = F.cross_entropy(logits[counted], labels[counted])
    torch.testing.assert_close(ar_loss(logits, labels), expected)
    assert ar_loss(logits, torch.full_like(labels, -100)).item() == 0.0


def test_consistency_loss_is_zero_when_student_equals_teacher():
    logits = torch.randn(2, 6, 11)
    mask = torch.ones(2, 6, dtype=torch.bool)
    for temperature in (1.0, 2.0):
        assert consistency_loss(logits, logits.clone(), mask, temperature, torch.tensor([3, 2])).item() == 0.0
    assert consistency_loss(torch.randn(2, 6, 11), logits, torch.zeros_like(mask)).item() == 0.0


def test_hard_consistency_loss_is_cross_entropy_to_the_clean_tokens():
    """Counted positions with a label: mean cross-entropy, each divided by its example's block count; positions
    without a label (-100, past EOS) or outside the mask do not count."""
    logits = torch.randn(2, 4, 9)
    labels = torch.tensor([[1, 2, -100, 4], [5, 6, 7, 8]])
    mask = torch.tensor([[True, True, True, False], [False, True, True, True]])
    counted = mask & (labels != -100)
    per_position = F.cross_entropy(logits[counted], labels[counted], reduction="none")
    torch.testing.assert_close(hard_consistency_loss(logits, labels, mask), per_position.mean())
    blocks = torch.tensor([2, 4]).repeat_interleave(counted.sum(-1))
    torch.testing.assert_close(hard_consistency_loss(logits, labels, mask, torch.tensor([2, 4])),
                               (per_position / blocks).sum() / counted.sum())
    assert hard_consistency_loss(logits, labels, torch.zeros_like(mask)).item() == 0.0


def test_consistency_loss_value_and_gradient():
    student = torch.randn(2, 3, 7, requires_grad=True)
    teacher = torch.randn(2, 3, 7, requires_grad=True)
    mask = torch.tensor([[True, True, False], [False, True, False]])
    num_blocks = torch.tensor([2, 4])
    temperature = 2.0
    loss = consistency_loss(student, teacher, mask, temperature, num_blocks)
    # By hand: KL at temperature, x T^2, / blocks of the example, mean over the 3 counted positions
    p = F.softmax(teacher[mask] / temperature, -1)
    kl = (p * (p.log() - F.log_softmax(student[mask] / temperature, -1))).sum(-1)
    expected = (kl / torch.tensor([2.0, 2.0, 4.0])).mean() * temperature**2
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert teacher.grad is None  # the teacher is detached
    # Same gradient as hao-ai-lab/JacobiForcing's soft cross-entropy (KL differs from it by the teacher entropy only)
    student_ref = student.detach().clone().requires_grad_()
    soft_ce = -(p.detach() * F.log_softmax(student_ref[mask] / temperature, -1)).sum(-1)
    ((soft_ce / torch.tensor([2.0, 2.0, 4.0])).mean() * temperature**2).backward()
    torch.testing.assert_close(student.grad, student_ref.grad)


def test_consistency_loss_is_zero_on_a_packed_forward_with_noisy_equal_clean():
    gen = torch.Generator().manual_seed(0)
    examples = [random_example(3, 2, 4, gen, noisy_from=4), random_example(5, 1, 4, gen, noisy_from=4)]
    assert all(ex["noisy_blocks"] == ex["clean_blocks"] for ex in examples)
    batch = JacobiForcingCollator(pad_token_id=PAD)(examples)
    assert not batch["consistency_mask"].any()
    model = tiny_model("llama").train()
    logits = model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], position_ids=batch["position_ids"]
    ).logits
    rows = torch.arange(2)[:, None]
    loss = consistency_loss(
        logits[rows, batch["noisy_index"]],
        logits[rows, batch["clean_index"]],
        batch["consistency_mask"],
        1.0,
        batch["num_blocks"],
    )
    assert loss.item() == 0.0
    assert loss.requires_grad  # still part of the graph, so DDP sees every parameter used
    assert ar_loss(logits, batch["shift_labels"]).item() > 0
