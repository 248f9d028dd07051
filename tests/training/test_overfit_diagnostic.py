"""The chain proven end to end on a tiny model: on-policy states + consistency loss make Jacobi decoding accept
several tokens per forward on the trained prompts; the AR-only control (same data, same steps) does not.

Each round collects the states the current model's decoder visits (`states="decoding"`), trains on them, and
measures TPF on the same prompts. A model that fits the consistency targets of the states decoding actually meets
must climb towards the block size; without the consistency loss it stays at ~1.
"""

import copy

import pytest
import torch
from testing_utils import CONFIGS, tiny_tokenizer
from transformers import AutoModelForCausalLM

from hf_jacobi.collection import CollectConfig, collect_trajectories
from hf_jacobi.training import JacobiForcingConfig, JacobiForcingTrainer, pack_states
from hf_jacobi.training.pipeline import answer_agreement, measure_tpf

BLOCK, TOKENS = 8, 40


def overfit(tmp_path, consistency_loss_weight, rounds=3, steps=40, anchored=False):
    """TPF on the trained prompts after each round; with `anchored`, the answers stay the base model's (a frozen
    teacher) and the consistency target is the clean token, and the last element is the share of answer tokens the
    trained model's greedy output has in common with the base model's (up to the first difference)."""
    torch.manual_seed(0)
    config = copy.deepcopy(CONFIGS["llama"])
    config.hidden_size, config.intermediate_size = 64, 128
    model = AutoModelForCausalLM.from_config(config).eval()
    tokenizer = tiny_tokenizer()
    prompts = [" ".join(f"t{(7 * i + 3 * k) % 120 + 4}" for k in range(6)) for i in range(4)]
    base = measure_tpf(model, tokenizer, prompts, BLOCK, TOKENS)
    teacher = copy.deepcopy(model) if anchored else None
    tpf = [base["tpf"]]
    for r in range(rounds):
        records = collect_trajectories(
            model, tokenizer, prompts, tmp_path / f"data_{r}",
            CollectConfig(block_size=BLOCK, max_new_tokens=TOKENS, batch_size=4, states="decoding", seed=r),
            progress=False, teacher=teacher if r > 0 else None,
        )
        args = JacobiForcingConfig(
            str(tmp_path / f"train_{r}"), max_steps=steps, per_device_train_batch_size=4, learning_rate=3e-3,
            lr_scheduler_type="constant", use_cpu=True, bf16=False, gradient_checkpointing=False, report_to="none",
            save_strategy="no", disable_tqdm=True, ar_loss_weight=1.0, consistency_normalization="token",
            consistency_loss_weight=consistency_loss_weight, consistency_target="hard" if anchored else "soft",
        )
        data = pack_states(records, BLOCK, eos_token_id=tokenizer.eos_token_id)
        JacobiForcingTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer).train()
        measured = measure_tpf(model.eval(), tokenizer, prompts, BLOCK, TOKENS)
        tpf.append(measured["tpf"])
    if anchored:
        tpf.append(answer_agreement(measured["answers"], base["answers"]))
    return tpf


@pytest.mark.parametrize("consistency_loss_weight", [1.0, 0.0])
def test_overfit_diagnostic(tmp_path, consistency_loss_weight):
    tpf = overfit(tmp_path, consistency_loss_weight)
    assert tpf[0] < 1.1  # the untrained model: about one token per forward
    if consistency_loss_weight:
        assert tpf[-1] > 2.0, tpf  # measured 1.01 -> 1.29 -> 2.28 -> 2.73
    else:
        assert tpf[-1] < 1.2, tpf  # measured 1.01 -> 1.01 -> 1.02 -> 1.03


def test_overfit_diagnostic_anchored_to_the_base_answers(tmp_path):
    """Rounds after the first keep the base model's answers as targets (`teacher=`), with the hard consistency
    target: TPF still climbs, and the trained model's greedy output stays the base model's."""
    *tpf, agreement = overfit(tmp_path, 1.0, anchored=True)
    assert tpf[-1] > 2.0, tpf  # measured 1.01 -> 1.38 -> 1.88 -> 2.28
    assert agreement > 0.9, agreement  # measured 1.0
