import pytest
import torch
import transformers

from hf_jacobi import cli
from hf_jacobi.demo import SMOLLM2_GGUF, smollm2_dir


def test_cli_generate_streams_and_summarizes(tmp_path, capsys):
    tokenizer = transformers.AutoTokenizer.from_pretrained(smollm2_dir(), gguf_file=SMOLLM2_GGUF)
    config = transformers.LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                      num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2)
    torch.manual_seed(0)
    transformers.LlamaForCausalLM(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    cli.main(["generate", "def add(a, b):", "--model", str(tmp_path), "--max-new-tokens", "12", "--block-size", "4"])
    captured = capsys.readouterr()
    assert "tokens/forward" in captured.err and "tokens/s" in captured.err
    assert captured.out.strip()  # streamed text
    cli.main(["generate", "def add(a, b):", "--model", str(tmp_path), "--max-new-tokens", "12", "--block-size", "1",
              "--lookup-draft", "5"])
    assert "tokens/forward" in capsys.readouterr().err


def test_cli_rejects_negative_block_size(capsys):
    with pytest.raises(SystemExit):
        cli.main(["generate", "hi", "--block-size", "-2"])
    assert "--block-size" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["generate", "hi", "--block-size", "0", "--lookup-draft", "7"])
    assert "--lookup" in capsys.readouterr().err
