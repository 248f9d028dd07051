import json

import torch
import transformers

import hf_jacobi  # noqa: F401
from hf_jacobi import benchmark
from hf_jacobi.demo import SMOLLM2_GGUF, smollm2_dir


def test_benchmark_two_models_side_by_side(tmp_path):
    tokenizer = transformers.AutoTokenizer.from_pretrained(smollm2_dir(), gguf_file=SMOLLM2_GGUF)
    tokenizer.pad_token = tokenizer.eos_token
    config = transformers.LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).eval()
    model.generation_config.eos_token_id = None
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
