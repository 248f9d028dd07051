"""JacobiForcingTrainer under DDP: two CPU processes launched with `accelerate launch`.

`accelerate launch --cpu --num_processes 2` starts ONE process (its simple launcher ignores the count without
mpirun). Two CPU processes need the multi-process launcher (`--multi_gpu`, i.e. torch.distributed.run) plus
`use_cpu=True` in the training arguments, which makes accelerate pick the gloo backend (`MULTI_CPU`).
"""

import json
import os
import subprocess
import sys
import textwrap

from testing_utils import random_trajectory_records, tiny_model, tiny_tokenizer

TRAIN_SCRIPT = textwrap.dedent(
    """
    import json, os, sys

    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer

    from hf_jacobi.training import JacobiForcingConfig, JacobiForcingTrainer

    model_dir, out_dir = sys.argv[1], sys.argv[2]
    torch.set_num_threads(1)
    records = json.load(open(os.path.join(model_dir, "records.json")))
    args = JacobiForcingConfig(
        output_dir=out_dir, use_cpu=True, bf16=False, max_steps=3, per_device_train_batch_size=2,
        learning_rate=1e-3, logging_steps=1, report_to=[], save_strategy="no", gradient_checkpointing=False,
        disable_tqdm=True, block_size=4, noise_window=2,
    )
    trainer = JacobiForcingTrainer(
        model=model_dir, args=args, train_dataset=Dataset.from_list(records),
        processing_class=AutoTokenizer.from_pretrained(model_dir),
    )
    state = trainer.accelerator.state
    assert state.num_processes == 2 and state.distributed_type == "MULTI_CPU", state
    trainer.train()
    trainer.save_model()
    if trainer.is_world_process_zero():
        with open(os.path.join(out_dir, "log_history.json"), "w") as f:
            json.dump(trainer.state.log_history, f)
    """
)


def test_ddp_two_cpu_processes(tmp_path):
    model_dir, out_dir = tmp_path / "model", tmp_path / "out"
    tiny_model("llama").save_pretrained(model_dir)
    tiny_tokenizer().save_pretrained(model_dir)
    (model_dir / "records.json").write_text(json.dumps(random_trajectory_records(8, block_size=4, num_blocks=2)))
    script = tmp_path / "train.py"
    script.write_text(TRAIN_SCRIPT)
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1")
    # fmt: off
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0",
        str(script), str(model_dir), str(out_dir),
    ]
    # fmt: on
    result = subprocess.run(command, check=False, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    logs = json.loads((out_dir / "log_history.json").read_text())
    steps = [log for log in logs if "ar_loss" in log]
    assert len(steps) == 3
    assert all(log["consistency_loss"] > 0 for log in steps)
    assert (out_dir / "model.safetensors").exists() and "Block size `n` | 4" in (out_dir / "README.md").read_text()
