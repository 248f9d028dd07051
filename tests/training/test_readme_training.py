"""The README's Python training snippet runs as written on this CPU-only machine, with a tiny local model in place of
SmolLM2 and fewer prompts and tokens."""

import re
from pathlib import Path

from testing_utils import tiny_model, tiny_tokenizer

README = Path(__file__).resolve().parents[2] / "README.md"


def training_snippet() -> str:
    text = README.read_text()
    section = text[text.index("Python API, the same pieces") :]
    return re.search(r"```python\n(.*?)```", section, flags=re.DOTALL).group(1)


def test_readme_training_snippet_runs(tmp_path, monkeypatch):
    code = training_snippet()
    model_dir = tmp_path / "tiny"
    tiny_model("llama").save_pretrained(model_dir)
    tiny_tokenizer().save_pretrained(model_dir)
    for old, new in {
        'model_id = "HuggingFaceTB/SmolLM2-135M-Instruct"': f"model_id = {str(model_dir)!r}",
        "coding_prompts(64)": "coding_prompts(6)",
        "max_new_tokens=128": "max_new_tokens=32",
    }.items():
        assert code.count(old) == 1, f"{old!r} is not in the README snippet (once)"
        code = code.replace(old, new)
    monkeypatch.chdir(tmp_path)  # the snippet writes runs/r0 and runs/jf
    namespace = {"__name__": "__readme__"}
    exec(compile(code, "<README training snippet>", "exec"), namespace)  # noqa: S102  (the README's own code)

    collect, trainer = namespace["collect"], namespace["trainer"]
    assert (collect.block_size, collect.max_new_tokens, collect.states) == (16, 32, "decoding")
    assert len(namespace["records"]) == 6 and len(namespace["train"]) > 0
    assert trainer.state.global_step >= 1
    assert trainer.args.use_cpu or trainer.args.device.type == "cuda"
    out = tmp_path / "runs" / "jf"
    assert (out / "model.safetensors").exists()
    assert "| Block size `n` | 16 |" in (out / "README.md").read_text()
