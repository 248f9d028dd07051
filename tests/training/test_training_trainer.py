"""JacobiForcingTrainer on tiny models: losses go down, logging, LoRA, gradient checkpointing, resume, model card."""

import json

import pytest
import torch
from datasets import Dataset
from testing_utils import random_trajectory_records, tiny_model, tiny_tokenizer

from hf_jacobi.training import (
    JacobiForcingConfig,
    JacobiForcingTrainer,
    ar_loss,
    consistency_loss,
    pack_trajectories,
)


def make_args(tmp_path, **kwargs):
    defaults = {
        "output_dir": str(tmp_path / "out"),
        "max_steps": 4,
        "per_device_train_batch_size": 4,
        "learning_rate": 1e-2,
        "lr_scheduler_type": "constant",
        "logging_steps": 1,
        "report_to": [],
        "bf16": False,
        "save_strategy": "no",
        "gradient_checkpointing": False,
        "disable_tqdm": True,
        "noise_window": 2,  # with 3 blocks of 4, targets 0.5 and 1.0 pick noisy iterates
        "min_noise_ratio": 0.5,
    }
    defaults.update(kwargs)
    return JacobiForcingConfig(**defaults)


def raw_dataset(num_records=4, block_size=4, num_blocks=3):
    return Dataset.from_list(random_trajectory_records(num_records, block_size, num_blocks))


def make_trainer(model, args, train_dataset=None, **kwargs):
    train_dataset = raw_dataset() if train_dataset is None else train_dataset
    tokenizer = tiny_tokenizer()
    return JacobiForcingTrainer(model, args=args, train_dataset=train_dataset, processing_class=tokenizer, **kwargs)


def batch_losses(trainer, batch):
    model = trainer.model
    with torch.no_grad():
        logits = model(
            input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], position_ids=batch["position_ids"]
        ).logits
    rows = torch.arange(logits.shape[0])[:, None]
    consistency = consistency_loss(
        logits[rows, batch["noisy_index"]],
        logits[rows, batch["clean_index"]],
        batch["consistency_mask"],
        trainer.args.consistency_temperature,
        batch["num_blocks"],
    )
    return ar_loss(logits, batch["shift_labels"]).item(), consistency.item()


@pytest.mark.parametrize("ar_loss_weight", [10.0, 0.0])
def test_training_lowers_the_losses(tmp_path, ar_loss_weight):
    """A few steps lower the AR loss (default weights) and the consistency loss (alone: with the AR loss on, the
    teacher's clean predictions sharpen on random data, so the distance to them can grow)."""
    args = make_args(tmp_path, max_steps=10, ar_loss_weight=ar_loss_weight)
    trainer = make_trainer(tiny_model("llama"), args)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    assert batch["consistency_mask"].sum() > 0
    ar_before, consistency_before = batch_losses(trainer, batch)
    trainer.train()
    ar_after, consistency_after = batch_losses(trainer, batch)
    if ar_loss_weight:
        assert ar_after < 0.8 * ar_before
    else:
        assert consistency_after < 0.5 * consistency_before


def test_raw_records_with_trim_loops(tmp_path):
    records = random_trajectory_records(2, block_size=4, num_blocks=10)
    for iterates in records[0]["trajectory"][2:]:  # record 0 loops on one token from block 2 on
        iterates[-1] = [5, 5, 5, 5]
    dataset = Dataset.from_list(records)
    trimmed = make_trainer(tiny_model("llama"), make_args(tmp_path, trim_loops=True), dataset).train_dataset
    assert [len(blocks) for blocks in trimmed["clean_blocks"]] == [2, 10]
    kept = make_trainer(tiny_model("llama"), make_args(tmp_path), dataset).train_dataset
    assert [len(blocks) for blocks in kept["clean_blocks"]] == [10, 10]


def test_logging_with_gradient_accumulation_and_eval(tmp_path):
    args = make_args(
        tmp_path,
        per_device_train_batch_size=2,
        gradient_accumulation_steps=2,
        eval_strategy="steps",
        eval_steps=2,
        gradient_checkpointing=True,
    )
    dataset = raw_dataset()
    trainer = JacobiForcingTrainer(
        tiny_model("llama"), args=args, train_dataset=dataset, eval_dataset=dataset, processing_class=tiny_tokenizer()
    )
    trainer.train()
    train_logs = [log for log in trainer.state.log_history if "ar_loss" in log]
    eval_logs = [log for log in trainer.state.log_history if "eval_ar_loss" in log]
    assert len(train_logs) == 4 and len(eval_logs) == 2
    for log in train_logs:
        # `loss` (Trainer's, de-scaled for accumulation) is the weighted sum of the two logged means
        assert log["loss"] == pytest.approx(10.0 * log["ar_loss"] + log["consistency_loss"], rel=1e-4)
        assert log["consistency_loss"] > 0
    for log in eval_logs:
        assert log["eval_loss"] == pytest.approx(10.0 * log["eval_ar_loss"] + log["eval_consistency_loss"], rel=1e-4)


def test_eager_model_gets_an_additive_float_mask(tmp_path):
    trainer = make_trainer(tiny_model("qwen2", "eager"), make_args(tmp_path))
    batch = trainer.data_collator([trainer.train_dataset[0]])
    assert batch["attention_mask"].dtype == torch.float32
    assert batch["attention_mask"].min() == torch.finfo(torch.float32).min


def test_lora_gradient_checkpointing_bf16(tmp_path):
    from peft import LoraConfig

    args = make_args(tmp_path, max_steps=3, gradient_checkpointing=True, bf16=True, use_cpu=True)
    model = tiny_model("llama")
    base_weight = model.model.layers[0].self_attn.q_proj.weight.detach().clone()
    trainer = JacobiForcingTrainer(
        model,
        args=args,
        train_dataset=raw_dataset(),
        processing_class=tiny_tokenizer(),
        peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"),
    )
    trainer.train()
    losses = [log["ar_loss"] for log in trainer.state.log_history if "ar_loss" in log]
    assert len(losses) == 3 and all(torch.isfinite(torch.tensor(losses)))
    peft_model = trainer.model
    assert torch.equal(peft_model.base_model.model.model.layers[0].self_attn.q_proj.base_layer.weight, base_weight)
    trainer.save_model()
    out = tmp_path / "out"
    assert (out / "adapter_model.safetensors").exists() and (out / "README.md").exists()


def test_resume_from_checkpoint(tmp_path):
    args = make_args(tmp_path, max_steps=4, save_strategy="steps", save_steps=2)
    trainer = make_trainer(tiny_model("llama"), args)
    trainer.train()
    checkpoint = tmp_path / "out" / "checkpoint-2"
    assert (checkpoint / "README.md").exists()
    resumed = make_trainer(tiny_model("llama", seed=1), args)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    assert resumed.state.global_step == 4
    # Resuming from step 2 replays steps 3 and 4 from the same weights, data order and optimizer state
    final = dict(trainer.model.state_dict())
    for key, value in resumed.model.state_dict().items():
        torch.testing.assert_close(value, final[key])


def test_time_box_keeps_its_schedule_across_an_interruption(tmp_path, monkeypatch):
    """`hf-jacobi train --max_minutes`: the time spent in the box is saved in each checkpoint, so a run killed inside
    its box resumes at the same point of its learning-rate decay; a box that ran out starts anew (a continuation)."""
    from hf_jacobi.training import pipeline

    clock = [100.0]  # each training step takes one "minute"
    monkeypatch.setattr(pipeline.time, "monotonic", lambda: clock[0])

    class Tick(pipeline.TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            clock[0] += 60

    def run(resume=None, minutes=10):
        box = pipeline.TimeBox(minutes)
        trainer = make_trainer(tiny_model("llama"), make_args(tmp_path, max_steps=20, save_strategy="steps",
                                                              save_steps=2), callbacks=[Tick(), box])
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        return box, trainer

    box, trainer = run()
    assert box.hit and trainer.state.global_step == 11  # stops after the step that ran past 10 minutes
    # a process killed after checkpoint 4 resumes 4 minutes into its box, not at the start of a new one
    resumed = pipeline.TimeBox(10)
    resumed.on_train_begin(None, pipeline.TrainerState.load_from_json(
        str(tmp_path / "out" / "checkpoint-4" / "trainer_state.json")), None)
    assert resumed.spent == pytest.approx(240)
    box, trainer = run(tmp_path / "out" / "checkpoint-4")
    assert box.hit and trainer.state.global_step == 11  # the same 10 minutes in all
    # the end of a finished box: resuming starts a new box
    box, trainer = run(tmp_path / "out" / "checkpoint-11", minutes=3)
    assert box.hit and trainer.state.global_step == 15  # 11 + 4 steps of one minute, past 3


def test_resume_skips_a_checkpoint_torn_by_a_kill(tmp_path):
    """A run killed while saving leaves a partial checkpoint (the trainer writes `trainer_state.json` last): the
    pipeline resumes from the newest complete one, where `get_last_checkpoint` would pick the torn one and fail."""
    import shutil

    from transformers.trainer_utils import get_last_checkpoint

    from hf_jacobi.training.pipeline import TimeBox, last_complete_checkpoint

    out = tmp_path / "out"
    make_trainer(tiny_model("llama"), make_args(tmp_path, max_steps=4, save_strategy="steps", save_steps=2)).train()
    shutil.copytree(out / "checkpoint-4", out / "checkpoint-6", ignore=shutil.ignore_patterns("trainer_state.json"))
    shutil.copytree(out / "checkpoint-4", out / "checkpoint-8")
    state = out / "checkpoint-8" / "trainer_state.json"
    state.write_text(state.read_text()[:100])  # killed in the middle of writing it
    assert get_last_checkpoint(str(out)) == str(out / "checkpoint-8")
    assert last_complete_checkpoint(out) == str(out / "checkpoint-4")
    assert last_complete_checkpoint(tmp_path / "missing") is None
    # resumed with a time box, from a checkpoint saved without one (as in runs from before boxes kept time)
    box = TimeBox(minutes=60)
    resumed = make_trainer(tiny_model("llama"), make_args(tmp_path, max_steps=6, save_strategy="steps", save_steps=2),
                           callbacks=[box])
    resumed.train(resume_from_checkpoint=last_complete_checkpoint(out))
    assert resumed.state.global_step == 6 and box.spent == 0.0 and not box.hit
    assert "TimeBox" in json.loads((out / "checkpoint-6" / "trainer_state.json").read_text())["stateful_callbacks"]


def test_model_card(tmp_path):
    dataset = pack_trajectories(random_trajectory_records(5, 4, 2), strategy="random", min_ratio=0.25, seed=1)
    args = make_args(tmp_path, max_steps=1)
    trainer = make_trainer(tiny_model("llama"), args, dataset)
    trainer.train()
    trainer.save_model()
    card = (tmp_path / "out" / "README.md").read_text()
    assert "| Block size `n` | 4 |" in card
    assert "| Noise schedule | random |" in card and "| Noise ratio range | 0.25 to 1.0 |" in card
    assert "Tokens per forward (TPF): not measured" in card
    assert "Records (prompts with their Jacobi trajectories): 5" in card
    assert "jacobi-forcing" in card
    trainer.args.measured_tpf = 3.214
    trainer.save_model(str(tmp_path / "final"))
    assert "Tokens per forward (TPF): 3.21" in (tmp_path / "final" / "README.md").read_text()


def test_validation_errors_name_the_record(tmp_path):
    tokenizer = tiny_tokenizer()
    with pytest.raises(ValueError, match=r"Record 0: a block in 'noisy_blocks' has 4 tokens but the block size is 8"):
        JacobiForcingTrainer(
            tiny_model("llama"),
            args=make_args(tmp_path, block_size=8),
            train_dataset=pack_trajectories(random_trajectory_records(2, 4, 2)),
            processing_class=tokenizer,
        )
    with pytest.raises(ValueError, match=r"Record 0, block 0, iterate 0: has 4 tokens, expected block_size=8"):
        JacobiForcingTrainer(
            tiny_model("llama"),
            args=make_args(tmp_path, block_size=8),
            train_dataset=raw_dataset(),
            processing_class=tokenizer,
        )
    model = tiny_model("llama")
    model.config.max_position_embeddings = 16  # record 2: prompt 5 + 3 blocks of 4 = 17 positions
    with pytest.raises(ValueError, match=r"Record 2: .*17 positions.*max_position_embeddings=16"):
        JacobiForcingTrainer(model, args=make_args(tmp_path), train_dataset=raw_dataset(), processing_class=tokenizer)
    with pytest.raises(TypeError, match=r"JacobiForcingConfig"):
        from trl import SFTConfig

        JacobiForcingTrainer(
            tiny_model("llama"),
            args=SFTConfig(output_dir=str(tmp_path), bf16=False),
            train_dataset=raw_dataset(),
            processing_class=tokenizer,
        )


def test_trains_on_collected_trajectories(tmp_path):
    """Records from `hf_jacobi.collection` (with its extra fields) go straight into the trainer."""
    from hf_jacobi.collection import CollectConfig, collect_trajectories

    model, tokenizer = tiny_model("llama"), tiny_tokenizer()
    prompts = ["t5 t6 t7", "t9 t10", "t11 t12 t13 t14"]
    config = CollectConfig(block_size=4, max_new_tokens=12, batch_size=3)
    records = collect_trajectories(model, tokenizer, prompts, tmp_path / "collect", config, progress=False)
    args = make_args(tmp_path, max_steps=2, per_device_train_batch_size=3, block_size=4)
    trainer = JacobiForcingTrainer(model.train(), args=args, train_dataset=records, processing_class=tokenizer)
    assert trainer.train_dataset[0]["prompt_ids"] == records[0]["prompt_ids"]
    trainer.train()
    assert trainer.state.global_step == 2


def test_config_parses_from_the_command_line_and_validates(tmp_path):
    from transformers import HfArgumentParser

    argv = ["--output_dir", str(tmp_path), "--bf16", "False", "--block_size", "16", "--mask_context", "clean"]
    (config,) = HfArgumentParser(JacobiForcingConfig).parse_args_into_dataclasses(argv)
    assert (config.block_size, config.mask_context, config.ar_loss_weight) == (16, "clean", 10.0)
    assert config.remove_unused_columns is False and config.dataset_kwargs == {"skip_prepare_dataset": True}
    assert config.max_length is None and config.measured_tpf is None
    with pytest.raises(ValueError, match="skip_prepare_dataset"):
        JacobiForcingConfig(output_dir=str(tmp_path), bf16=False, dataset_kwargs={})
    with pytest.raises(ValueError, match="mask_context"):
        JacobiForcingConfig(output_dir=str(tmp_path), bf16=False, mask_context="both")


def test_consistency_horizon_reaches_the_collator(tmp_path):
    trainer = make_trainer(tiny_model(), make_args(tmp_path, consistency_horizon=2))
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(2)])
    full = make_trainer(tiny_model(), make_args(tmp_path)).data_collator([trainer.train_dataset[i] for i in range(2)])
    assert trainer.data_collator.consistency_horizon == 2
    assert 0 < batch["consistency_mask"].sum() < full["consistency_mask"].sum()


def separated_model(arch, attn_implementation="sdpa", seed=0):
    """A tiny model whose logits are far from uniform, so that a KL between two of them is far from 0."""
    model = tiny_model(arch, attn_implementation, seed)
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(30.0)
    return model


@pytest.mark.parametrize("layout", ["interleaved", "states"])
@pytest.mark.parametrize("attn_implementation", ["sdpa", "eager"])
def test_soft_ar_target_distills_a_frozen_reference(tmp_path, layout, attn_implementation):
    """`ar_target="soft"`: the reference's logits of the counted prefix equal a full forward's at every counted position,
    the KL starts at 0 (reference = the model before training), grows once the model moves, and the reference stays."""
    from hf_jacobi.training import pack_states
    from hf_jacobi.training.losses import IGNORE_INDEX

    records = random_trajectory_records(4, 4)
    dataset = pack_states(records, block_size=4) if layout == "states" else raw_dataset()
    extra = {"mask_context": "clean", "block_size": 4} if layout == "states" else {}
    args = make_args(tmp_path, ar_target="soft", ar_loss_weight=1.0, max_steps=6, **extra)
    model = separated_model("llama", attn_implementation)  # well-separated logits
    trainer = make_trainer(model, args, train_dataset=dataset)
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(4)])
    reference_logits = trainer._reference_logits(trainer.model, batch)
    if layout == "states":  # the clean part alone is forwarded
        assert reference_logits.shape[1] < batch["input_ids"].shape[1]
    with torch.no_grad():
        full = trainer.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                             position_ids=batch["position_ids"]).logits
    counted = batch["shift_labels"][:, : reference_logits.shape[1]] != IGNORE_INDEX
    torch.testing.assert_close(reference_logits[counted], full[:, : reference_logits.shape[1]][counted])
    reference_weight = trainer.ref_model.model.layers[0].self_attn.q_proj.weight.detach().clone()
    trainer.train()
    kls = [log["ar_kl"] for log in trainer.state.log_history if "ar_kl" in log]
    assert len(kls) == 6 and kls[0] < 1e-5 < kls[-1]
    assert torch.equal(trainer.ref_model.model.layers[0].self_attn.q_proj.weight, reference_weight)


def test_soft_ar_target_with_lora_switches_the_adapter_off(tmp_path):
    from peft import LoraConfig

    args = make_args(tmp_path, ar_target="soft", ar_loss_weight=1.0, max_steps=4)
    trainer = make_trainer(separated_model("llama"), args,
                           peft_config=LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                  task_type="CAUSAL_LM"))
    assert trainer.ref_model is None
    trainer.train()
    kls = [log["ar_kl"] for log in trainer.state.log_history if "ar_kl" in log]
    assert kls[0] < 1e-5 < kls[-1]


def test_soft_ar_target_pulls_towards_a_given_reference(tmp_path):
    args = make_args(tmp_path, ar_target="soft", consistency_loss_weight=0.0, max_steps=8)
    trainer = make_trainer(separated_model("llama"), args, ref_model=separated_model("llama", seed=1))
    trainer.train()
    kls = [log["ar_kl"] for log in trainer.state.log_history if "ar_kl" in log]
    assert kls[-1] < 0.5 * kls[0]


def test_ref_model_needs_the_soft_ar_target(tmp_path):
    with pytest.raises(ValueError, match="ar_target='soft'"):
        make_trainer(tiny_model(), make_args(tmp_path), ref_model=tiny_model())
    with pytest.raises(ValueError, match="ar_target"):
        make_args(tmp_path, ar_target="kl")


def test_copy_model_runs_its_own_weights(tmp_path):
    """A model that went through the trainer has TRL's patched `forward` (a closure over the original model): a plain
    deep copy would run the original's weights; `copy_model` runs its own, as the pipeline's bf16 copies need."""
    from hf_jacobi.training.trainer import copy_model

    trainer = make_trainer(separated_model("llama"), make_args(tmp_path, max_steps=1))
    clone = copy_model(trainer.model)
    with torch.no_grad():
        clone.lm_head.weight.mul_(2.0)
    ids = torch.tensor([[5, 6, 7]])
    assert not torch.allclose(clone(input_ids=ids).logits, trainer.model(input_ids=ids).logits)
