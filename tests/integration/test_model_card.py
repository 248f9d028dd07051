"""The model cards' quick-start code runs: the shipped SmolLM2 adapter's card (offline snippet on the real model, the
online snippet with local stand-ins for the Hub) and the card `JacobiForcingTrainer` renders (full model and LoRA)."""

import json
import re
import shutil
from pathlib import Path

import pytest
from testing_utils import random_trajectory_records, require_smollm2, tiny_model, tiny_tokenizer

import hf_jacobi

ROOT = Path(__file__).resolve().parents[2]
ADAPTER = Path(hf_jacobi.__file__).parent / "assets" / "smollm2-jacobi-forcing"
SHIPPED_CARD = ADAPTER / "README.md"
REPO_CARD = ROOT / "model_cards" / "smollm2-135m-jacobi-forcing.md"
NEW_TOKENS = 8  # the snippets ask for 128; a few are enough to run every line



def python_blocks(card: str, section: str = "## Quick start") -> list[str]:
    """The ```python blocks of a card's section, in order."""
    start = card.index(section)
    end = card.find("\n## ", start + len(section))
    return re.findall(r"```python\n(.*?)```", card[start : end if end != -1 else None], flags=re.DOTALL)


def run_snippet(code: str, capsys, **replace) -> str:
    """Executes `code` with fewer new tokens and the given string replacements; returns what it printed."""
    assert "max_new_tokens=128" in code
    code = code.replace("max_new_tokens=128", f"max_new_tokens={NEW_TOKENS}")
    for old, new in replace.items():
        assert old in code, f"{old!r} not in the snippet"
        code = code.replace(old, new)
    capsys.readouterr()
    namespace = {"__name__": "__card__"}
    exec(compile(code, "<model card quick start>", "exec"), namespace)  # noqa: S102  (the card's own code)
    printed = capsys.readouterr().out
    assert printed.strip(), "the snippet printed nothing"
    return printed


def test_shipped_card_is_the_repo_card_and_names_its_base():
    card = SHIPPED_CARD.read_text()
    assert card == REPO_CARD.read_text(), "model_cards/ and the shipped adapter's README.md must stay the same"
    base = json.loads((ADAPTER / "adapter_config.json").read_text())["base_model_name_or_path"]
    front = card.split("---")[1]
    assert f"base_model: {base}" in front and "library_name: peft" in front
    assert "LoRA adapter" in card and base in card.split("## Quick start")[0]
    offline, online = python_blocks(card)
    assert "PeftModel.from_pretrained" in offline and 'generation_mode="jacobi"' in offline
    assert "AutoPeftModelForCausalLM" in online and base in online
    # the shipped adapter is filler-gated: both snippets gate it and neither merges it (that would ungate it)
    filler = json.loads((ADAPTER / "generation_config.json").read_text())["draft_init"]
    for snippet in (offline, online):
        assert "gate_adapter_on_filler(" in snippet and f"filler_token_id={filler}" in snippet
        assert "merge_and_unload" not in snippet


@pytest.fixture(scope="module")
def smollm2_base():
    """hf_jacobi's own offline SmolLM2 (no adapter), loaded once for both tests below."""
    from hf_jacobi.loading import load_model

    return load_model()


@pytest.mark.slow
@require_smollm2
def test_shipped_card_offline_quick_start_runs(capsys, smollm2_base):
    """The offline snippet as written (fewer tokens), on the real SmolLM2 GGUF + the shipped adapter; it prints the
    base model's greedy tokens, as the card says (the adapter is filler-gated: it only makes the guesses)."""
    offline = python_blocks(SHIPPED_CARD.read_text())[0]
    printed = run_snippet(offline, capsys)
    base, tokenizer = smollm2_base
    messages = [{"role": "user", "content": "Write a Python function that checks whether a number is prime."}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    expected = base.generate(**inputs, max_new_tokens=NEW_TOKENS, do_sample=False)
    assert printed == tokenizer.decode(expected[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True) + "\n"


@pytest.mark.slow
@require_smollm2
def test_shipped_card_online_quick_start_runs(tmp_path, capsys, smollm2_base):
    """The online snippet, with the Hub replaced by local folders: the base SmolLM2 saved from the GGUF, and a copy of
    the adapter whose `base_model_name_or_path` points at it."""
    base_id = json.loads((ADAPTER / "adapter_config.json").read_text())["base_model_name_or_path"]
    base, tokenizer = smollm2_base
    base.save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    adapter = tmp_path / "adapter"
    shutil.copytree(ADAPTER, adapter)
    config = json.loads((adapter / "adapter_config.json").read_text())
    config["base_model_name_or_path"] = str(tmp_path / "base")
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    online = python_blocks(SHIPPED_CARD.read_text())[1]
    run_snippet(online, capsys, **{'"path/to/smollm2-jacobi-forcing"': repr(str(adapter)),
                                   f'"{base_id}"': repr(str(tmp_path / "base"))})


@pytest.mark.parametrize("lora", [False, True])
def test_rendered_card_quick_start_runs(tmp_path, capsys, lora):
    """The card `JacobiForcingTrainer.save_model` writes: its quick start loads the saved folder (full model, or a
    LoRA adapter over a local base model) and decodes with Jacobi decoding."""
    from hf_jacobi import JacobiForcingConfig, JacobiForcingTrainer
    from hf_jacobi.training import pack_trajectories

    tiny_model("llama").save_pretrained(tmp_path / "base")
    tiny_tokenizer().save_pretrained(tmp_path / "base")
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tmp_path / "base")
    peft_config = None
    if lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"])
    args = JacobiForcingConfig(str(tmp_path / "out"), max_steps=1, per_device_train_batch_size=2, report_to="none",
                               use_cpu=True, bf16=False, save_strategy="no", block_size=4)
    trainer = JacobiForcingTrainer(model=model, args=args, train_dataset=pack_trajectories(random_trajectory_records(4, 4, 2)),
                                   processing_class=tiny_tokenizer(), peft_config=peft_config)
    trainer.train()
    trainer.save_model()
    out = tmp_path / "out"
    assert (out / "adapter_config.json").exists() == lora
    card = (out / "README.md").read_text()
    (quick_start,) = python_blocks(card)
    assert "block_size=4)" in quick_start
    run_snippet(quick_start, capsys, **{'"out"': repr(str(out))})
