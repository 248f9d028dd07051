"""The example training script runs end to end on a tiny local model (offline), with and without LoRA."""

import json

import pytest
from testing_utils import load_example, random_trajectory_records, tiny_model, tiny_tokenizer


@pytest.mark.parametrize("lora", [False, True])
def test_example_script(tmp_path, lora):
    model_dir = tmp_path / "model"
    tiny_model("qwen2").save_pretrained(model_dir)
    tiny_tokenizer().save_pretrained(model_dir)
    data = tmp_path / "trajectories.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in random_trajectory_records(4, block_size=4, num_blocks=2)))
    argv = [
        "--model_name_or_path", str(model_dir), "--trajectories", str(data), "--output_dir", str(tmp_path / "out"),
        "--block_size", "4", "--noise_window", "2", "--max_steps", "2", "--per_device_train_batch_size", "2",
        "--learning_rate", "1e-3", "--use_cpu", "--bf16", "false", "--gradient_checkpointing", "false",
        "--report_to", "none", "--save_strategy", "no",
    ] + (["--use_peft", "--lora_r", "2", "--lora_target_modules", "all-linear"] if lora else [])  # fmt: skip
    trainer = load_example("train_jacobi_forcing").main(argv)
    assert trainer.state.global_step == 2
    out = tmp_path / "out"
    assert (out / ("adapter_model.safetensors" if lora else "model.safetensors")).exists()
    assert "| Block size `n` | 4 |" in (out / "README.md").read_text()


def test_benchmark_script_runs(tmp_path, capsys):
    module = load_example("bench_training_step")
    tiny_model("llama").save_pretrained(tmp_path / "model")
    argv = ["--model", str(tmp_path / "model"), "--block-size", "4", "--num-blocks", "2", "--prompt-len", "8"]
    median = module.main([*argv, "--steps", "1", "--warmup", "1", "--device", "cpu", "--no-memory"])
    assert set(median) == {"jacobi", "plain"}
    assert "tokens/s" in capsys.readouterr().out


def test_decoder_tpf_visits_positions_as_decoding_does():
    """`offset_accuracy.decoder_tpf`: a forward at start p commits 1 + its state's run of right guesses (capped), and
    the next forward starts where it ended; the states it skips do not count."""
    decoder_tpf = load_example("offset_accuracy").decoder_tpf
    runs = {(0, 0): 2, (0, 1): 0, (0, 2): 0, (0, 3): 1, (0, 4): 0, (1, 0): 0}
    # answer 0: p=0 commits 3, p=3 commits 2; answer 1: p=0 commits 1 -> 6 tokens in 3 forwards
    assert decoder_tpf(runs) == 2.0
    # at most 1 guess a forward: p=0 commits 2, p=2 commits 1, p=3 commits 2; answer 1 as before -> 6 in 4
    assert decoder_tpf(runs, max_guesses=1) == 1.5
    assert load_example("offset_accuracy").decoder_commits(runs, max_guesses=1) == [2, 1, 2, 1]
    # a branch for the first guess's second choice: p=2's first guess is wrong but its second choice right, so that
    # forward commits 2 (p=4's third choice is not held by one branch)
    ranks = {(0, 2): 1, (0, 4): 2}
    commits = load_example("offset_accuracy").decoder_commits
    assert commits(runs, max_guesses=1, first_ranks=ranks, alternatives=1) == [2, 2, 1, 1]
    assert commits(runs, max_guesses=1, first_ranks=ranks, alternatives=2) == [2, 2, 2, 1]
