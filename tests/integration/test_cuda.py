"""The same paths on a CUDA device: greedy identity, trajectory collection and a bf16 Jacobi Forcing step.

Skipped without a GPU (CI has none); run on a lent GPU machine before a GPU training run.
"""

import pytest
import torch
from testing_utils import make_tiny_model, padded_batch, require_cuda, tiny_model, tiny_tokenizer

import hf_jacobi  # noqa: F401

pytestmark = require_cuda


@pytest.mark.parametrize("family", ["llama", "mistral", "gemma2", "gpt2"])
@pytest.mark.parametrize("block_size", [1, 4, 16])
def test_greedy_identity_on_cuda(family, block_size):
    model = make_tiny_model(family).to("cuda")
    ids, mask = padded_batch(3, [5, 9, 7])
    ids, mask = ids.cuda(), mask.cuda()
    kwargs = dict(do_sample=False, max_new_tokens=24, min_new_tokens=24)
    reference = model.generate(input_ids=ids, attention_mask=mask, **kwargs)
    jacobi = model.generate(input_ids=ids, attention_mask=mask, generation_mode="jacobi", block_size=block_size, **kwargs)
    assert torch.equal(reference, jacobi)


def test_collect_and_train_bf16_on_cuda(tmp_path):
    from hf_jacobi.collection import CollectConfig, collect_trajectories
    from hf_jacobi.training import JacobiForcingConfig, JacobiForcingTrainer

    model, tokenizer = tiny_model("llama").to("cuda"), tiny_tokenizer()
    prompts = ["t5 t6 t7", "t9 t10", "t11 t12 t13 t14"]
    config = CollectConfig(block_size=4, max_new_tokens=12, batch_size=3)
    records = collect_trajectories(model, tokenizer, prompts, tmp_path / "collect", config, progress=False)
    assert all(len(r["trajectory"]) == 3 for r in records)
    args = JacobiForcingConfig(
        output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=3, block_size=4, bf16=True,
        report_to=[], save_strategy="no", gradient_checkpointing=False, disable_tqdm=True, learning_rate=1e-3,
    )
    trainer = JacobiForcingTrainer(model.train(), args=args, train_dataset=records, processing_class=tokenizer)
    trainer.train()
    assert trainer.state.global_step == 2
    assert next(trainer.model.parameters()).device.type == "cuda"
