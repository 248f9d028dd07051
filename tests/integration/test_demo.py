"""examples/demo.py: repeats every method round-robin, reports medians with their spread, checks identity, explains
its columns. Run on a tiny model in place of SmolLM2 (fast, offline)."""

import torch
from testing_utils import load_example, tiny_model, tiny_tokenizer

from hf_jacobi.generation import JacobiConfig


def test_demo_round_robin_medians_and_legend(monkeypatch, capsys):
    demo = load_example("demo")
    model, tokenizer = tiny_model("llama"), tiny_tokenizer()
    model.generation_config.eos_token_id = None  # run to max_new_tokens
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    calls = []
    generate = model.generate

    def recording_generate(**kwargs):
        if kwargs["max_new_tokens"] > 4:  # not a warm-up
            if kwargs.get("generation_mode") != "jacobi":
                calls.append((None, None, None))
            else:  # the settings as generate resolves them (the rest from the model's generation config)
                names = JacobiConfig.names()
                config = JacobiConfig.from_generation_config(model.generation_config,
                                                             **{k: v for k, v in kwargs.items() if k in names})
                calls.append((config.block_size, config.lookup_ngram or None,
                              None if config.lookup_mode == "row" else config.lookup_mode))
        return generate(**kwargs)

    monkeypatch.setattr(model, "generate", recording_generate)
    monkeypatch.setattr(demo, "load_model", lambda jacobi_forcing: (model, tokenizer))
    threads = torch.get_num_threads()
    try:
        results = demo.main(["--prompt", "t5 t6 t7 t8 t5 t6 t7", "--repeats", "3", "--max-new-tokens", "12",
                             "--threads", "1"])
    finally:
        torch.set_num_threads(threads)
    out = capsys.readouterr().out

    names = list(results)
    assert names == ["HF greedy", "Jacobi n=8", "Jacobi n=8 + lookup rows", "Jacobi n=4 + lookup draft"]
    assert len(calls) == 3 * len(names)
    methods = [(None, None, None), (8, None, None), (8, 2, None), (4, 2, "draft")]
    for r in range(3):  # every repeat runs every method once, starting from a different one
        repeat = calls[r * 4 : (r + 1) * 4]
        assert sorted(repeat, key=str) == sorted(methods, key=str)
        assert repeat[0] == methods[r]
    for result in results.values():
        assert len(result["times"]) == 3 and result["identical"] and result["tokens"] == 12
        low, high = result["speedup_range"]
        assert low <= high and result["speedup"] > 0
    assert results["HF greedy"]["speedup"] == 1.0 and results["HF greedy"]["tpf"] == 1.0
    assert results["Jacobi n=8"]["tpf"] >= 1.0
    for text in ("speedup [min-max]", "identical", "TPF        tokens per forward", "HF greedy median time",
                 "same tokens as HF greedy", "repeat 3/3", 'lookup_mode="draft"'):
        assert text in out


def test_demo_runs_fresh_tails_with_a_trained_filler(monkeypatch, capsys):
    """A model trained with a token filler and the clean carry also runs fresh tails beside a lookup row, losslessly;
    the base model (no token filler) does not."""
    demo = load_example("demo")
    model, tokenizer = tiny_model("llama"), tiny_tokenizer()
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    monkeypatch.setattr(demo, "load_model", lambda jacobi_forcing: (model, tokenizer))
    argv = ["--prompt", "t5 t6 t7 t8 t5 t6 t7", "--repeats", "1", "--max-new-tokens", "12", "--threads", "1",
            "--fresh-tails", "2"]
    threads = torch.get_num_threads()
    try:
        assert "Jacobi n=4 tails + lookup" not in demo.main(argv)
        model.generation_config.draft_init, model.generation_config.draft_carry = 5, "clean"
        results = demo.main(argv)
    finally:
        torch.set_num_threads(threads)
    assert results["Jacobi n=4 tails + lookup"]["identical"] and results["Jacobi n=4 tails + lookup"]["tokens"] == 12
    assert "fresh_tails=2" in capsys.readouterr().out


def test_free_threads_leaves_busy_cores(monkeypatch):
    demo = load_example("demo")
    monkeypatch.setattr(demo, "cores", lambda: 2)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)
    assert demo.free_threads(0.1) == 2
    assert demo.free_threads(1.2) == 1
    assert demo.free_threads(5.0) == 1
