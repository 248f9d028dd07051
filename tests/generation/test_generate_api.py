"""What users expect from generate, with generation_mode="jacobi": every feature matches ordinary greedy decoding."""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
import transformers
from testing_utils import make_tiny_model, padded_batch, require_smollm2
from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer
from transformers.generation.streamers import BaseStreamer

import hf_jacobi
from hf_jacobi.loading import SMOLLM2_GGUF, smollm2_dir

JACOBI = dict(generation_mode="jacobi", block_size=5)


@pytest.fixture(scope="module")
def llama():
    return make_tiny_model("llama")


@pytest.fixture(scope="module")
def tokenizer():
    return transformers.AutoTokenizer.from_pretrained(smollm2_dir(), gguf_file=SMOLLM2_GGUF)


@pytest.fixture(scope="module")
def wide_llama(tokenizer):
    """A tiny random Llama with SmolLM2's vocabulary, so real text tools (stop strings, text streamers) apply."""
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, pad_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(config).eval()
    with torch.no_grad():
        model.lm_head.weight.mul_(8.0)
    model.generation_config.eos_token_id = None
    return model


def both(model, **kwargs):
    reference = model.generate(do_sample=False, **kwargs)
    jacobi = model.generate(do_sample=False, **JACOBI, **kwargs)
    return reference, jacobi


def assert_same(reference, jacobi):
    torch.testing.assert_close(jacobi, reference, rtol=0, atol=0)


class StopOnToken(StoppingCriteria):
    def __init__(self, token):
        self.token = token

    def __call__(self, input_ids, scores, **kwargs):
        return input_ids[:, -1] == self.token


def test_custom_stopping_criteria_stop_exactly(llama):
    ids, _ = padded_batch(1, [6])
    free = llama.generate(ids, do_sample=False, max_new_tokens=30)
    token = int(free[0, ids.shape[1] + 7])
    ref, jac = both(llama, input_ids=ids, max_new_tokens=30, stopping_criteria=StoppingCriteriaList([StopOnToken(token)]))
    assert ref.shape[1] < free.shape[1]
    assert_same(ref, jac)


@require_smollm2
def test_stop_strings(wide_llama, tokenizer):
    ids = tokenizer("def is_prime(n):", return_tensors="pt").input_ids
    free = wide_llama.generate(ids, do_sample=False, max_new_tokens=24)
    stop = tokenizer.decode(free[0, ids.shape[1] + 9 : ids.shape[1] + 10])
    ref, jac = both(wide_llama, input_ids=ids, max_new_tokens=24, stop_strings=[stop], tokenizer=tokenizer)
    assert ref.shape[1] < free.shape[1]
    assert_same(ref, jac)


def test_min_new_tokens_and_repetition_penalty(llama):
    """Logits processors that depend on the prefix are applied per block position with the right prefix."""
    ids, mask = padded_batch(3, [8, 4, 6])
    free = llama.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=20)
    eos = int(free[0, ids.shape[1] + 2])
    for kwargs in (dict(min_new_tokens=10, eos_token_id=eos), dict(repetition_penalty=1.7), dict(no_repeat_ngram_size=2)):
        ref, jac = both(llama, input_ids=ids, attention_mask=mask, max_new_tokens=20, **kwargs)
        assert_same(ref, jac)


def test_return_dict_scores_and_statistics(llama):
    ids, _ = padded_batch(1, [6])
    kwargs = dict(max_new_tokens=13, return_dict_in_generate=True, output_scores=True, output_logits=True)
    ref, jac = both(llama, input_ids=ids, **kwargs)
    assert_same(ref.sequences, jac.sequences)
    assert len(jac.scores) == len(ref.scores) == 13
    torch.testing.assert_close(torch.stack(jac.scores), torch.stack(ref.scores), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(torch.stack(jac.logits), torch.stack(ref.logits), rtol=1e-4, atol=1e-4)
    assert jac.num_forwards == len(jac.accepted_tokens)
    assert jac.tokens_per_forward == pytest.approx(12 / jac.num_forwards)
    assert jac.cache.get_seq_length() == jac.sequences.shape[1] - 1


class RecordingStreamer(BaseStreamer):
    def __init__(self):
        self.puts, self.ended = [], False

    def put(self, value):
        self.puts.append(value.reshape(-1).tolist())

    def end(self):
        self.ended = True


def test_streamer_gets_prompt_then_accepted_tokens(llama):
    ids, _ = padded_batch(1, [6])
    streamer = RecordingStreamer()
    out = llama.generate(ids, do_sample=False, max_new_tokens=17, streamer=streamer, **JACOBI)
    assert streamer.ended
    assert streamer.puts[0] == ids[0].tolist()
    assert sum(streamer.puts[1:], []) == out[0, ids.shape[1] :].tolist()


@require_smollm2
def test_text_iterator_streamer(wide_llama, tokenizer):
    ids = tokenizer("Hello there", return_tensors="pt").input_ids
    streamer = TextIteratorStreamer(tokenizer, skip_prompt=True)
    out = wide_llama.generate(ids, do_sample=False, max_new_tokens=12, streamer=streamer, **JACOBI)
    assert "".join(streamer) == tokenizer.decode(out[0, ids.shape[1] :])


def test_settings_on_generation_config(llama):
    ids, _ = padded_batch(1, [6])
    reference = llama.generate(ids, do_sample=False, max_new_tokens=12)
    config = transformers.GenerationConfig.from_dict(llama.generation_config.to_dict())
    config.generation_mode, config.block_size, config.do_sample, config.max_new_tokens = "jacobi", 3, False, 12
    out = llama.generate(ids, generation_config=config, return_dict_in_generate=True)
    assert_same(reference, out.sequences)
    assert out.accepted_tokens.max() <= 3


def test_other_generation_modes_untouched(llama):
    """With hf_jacobi imported, generate without generation_mode is transformers' own, bit for bit."""
    ids, mask = padded_batch(2, [7, 4])
    calls = [
        dict(do_sample=False, max_new_tokens=10),
        dict(do_sample=True, top_k=20, max_new_tokens=10),
        dict(num_beams=3, do_sample=False, max_new_tokens=8),
    ]
    with_package = []
    for kwargs in calls:
        torch.manual_seed(0)
        with_package.append(llama.generate(input_ids=ids, attention_mask=mask, **kwargs))
    hf_jacobi.disable()
    try:
        assert transformers.GenerationMixin.generate is hf_jacobi.integration._original_generate
        for kwargs, expected in zip(calls, with_package):
            torch.manual_seed(0)
            assert_same(llama.generate(input_ids=ids, attention_mask=mask, **kwargs), expected)
        with pytest.raises(ValueError, match="generation_mode"):
            llama.generate(ids, max_new_tokens=3, generation_mode="jacobi")
    finally:
        hf_jacobi.enable()


def test_custom_generate_directory_without_package(llama, tmp_path):
    """The exported Hub layout runs Jacobi decoding in a process where hf_jacobi cannot be imported."""
    hf_jacobi.export_custom_generate(tmp_path / "jacobi_repo")
    model_dir = tmp_path / "model"
    llama.save_pretrained(model_dir)
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["hf_jacobi"] = None  # importing it now fails
        import torch, transformers
        model = transformers.AutoModelForCausalLM.from_pretrained({str(model_dir)!r}).eval()
        ids = torch.randint(3, 90, (1, 6), generator=torch.Generator().manual_seed(0))
        ref = model.generate(ids, do_sample=False, max_new_tokens=15, eos_token_id=None)
        out = model.generate(ids, do_sample=False, max_new_tokens=15, eos_token_id=None, block_size=4,
                             custom_generate={str(tmp_path / "jacobi_repo")!r}, trust_remote_code=True,
                             return_dict_in_generate=True)
        assert torch.equal(ref, out.sequences), (ref, out.sequences)
        auto = model.generate(ids, do_sample=False, max_new_tokens=15, eos_token_id=None, block_size="auto",
                              custom_generate={str(tmp_path / "jacobi_repo")!r}, trust_remote_code=True)
        assert torch.equal(ref, auto), (ref, auto)  # the exported package times the model itself
        print("OK", out.num_forwards)
        """
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_JACOBI_CACHE": str(tmp_path / "calibration")}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK" in result.stdout


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(block_size=0), "block_size"),
        (dict(block_size=2.5), "block_size"),
        (dict(block_size="16"), "block_size"),
        (dict(block_size=True), "block_size"),
        (dict(num_beams=2), "beam"),
        (dict(max_new_tokens=0), "max_new_tokens"),
        (dict(use_cache=False), "use_cache"),
        (dict(draft_init="zeros"), "draft_init"),
        (dict(draft_init=-1), "token id"),
        (dict(draft_init=2.0), "draft_init"),
        (dict(draft_carry="clean"), "needs a token id"),
        (dict(draft_init=3, draft_carry="some"), "draft_carry"),
        (dict(draft_init=3, fresh_rows=2), "pass draft_carry='clean'"),
        (dict(draft_init=3, draft_carry="clean", fresh_rows=-1), "fresh_rows"),
        (dict(draft_init=3, draft_carry="clean", fresh_rows=1, block_size="auto"), "fresh_rows=1"),
        (dict(output_attentions=True), "attentions"),
        (dict(generation_mode="medusa"), "generation_mode"),
        (dict(prompt_lookup_num_tokens=3), "prompt lookup"),
        (dict(draft_seed="x"), "draft_seed"),
        (dict(jacobi_config=hf_jacobi.JacobiConfig(), block_size=-1), "block_size"),
    ],
)
def test_bad_input_clear_errors(llama, kwargs, message):
    ids, _ = padded_batch(1, [6])
    call = dict(generation_mode="jacobi", max_new_tokens=5, do_sample=False)
    call.update(kwargs)
    with pytest.raises(ValueError, match=message):
        llama.generate(ids, **call)


def test_jacobi_settings_without_generation_mode_say_so(llama):
    ids, _ = padded_batch(1, [6])
    with pytest.raises(ValueError, match=r"\['block_size'\] are Jacobi decoding settings.*generation_mode='jacobi'"):
        llama.generate(ids, max_new_tokens=3, do_sample=False, block_size=4)


def test_jacobi_config_object(llama):
    ids, mask = padded_batch(2, [6, 3])
    reference = llama.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=12)
    config = hf_jacobi.JacobiConfig(block_size=3, lookup_ngram=2, lookup_mode="draft")
    out = llama.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=12,
                         generation_mode="jacobi", jacobi_config=config, return_dict_in_generate=True)
    assert_same(reference, out.sequences)
    out = llama.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=12,
                         generation_mode="jacobi", jacobi_config=config, block_size=5, return_dict_in_generate=True)
    assert_same(reference, out.sequences)
    assert out.draft_lengths.max() == 5  # a kwarg overrides the config object


def test_row_of_only_padding(llama):
    """A batch row that is all padding has no prompt token to draw filler from: it decodes like HF does."""
    ids, mask = padded_batch(2, [6, 3])
    mask[1] = 0
    reference = llama.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=10)
    out = llama.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=10,
                         generation_mode="jacobi", block_size=4)
    assert_same(reference, out)


def test_prompt_longer_than_model_maximum():
    gpt2 = make_tiny_model("gpt2")  # n_positions=256
    with pytest.raises(ValueError, match="positions"):
        gpt2.generate(torch.randint(3, 90, (1, 256)), max_new_tokens=4, do_sample=False, generation_mode="jacobi")
    with pytest.raises(ValueError, match="lower max_new_tokens"):
        gpt2.generate(torch.randint(3, 90, (1, 250)), max_new_tokens=20, do_sample=False, generation_mode="jacobi")


def test_encoder_decoder_refused():
    config = transformers.T5Config(vocab_size=64, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=2)
    t5 = transformers.T5ForConditionalGeneration(config).eval()
    with pytest.raises(ValueError, match="encoder-decoder"):
        t5.generate(torch.randint(3, 60, (1, 5)), max_new_tokens=4, do_sample=False, generation_mode="jacobi")


def test_recurrent_cache_refused():
    config = transformers.MambaConfig(vocab_size=64, hidden_size=16, state_size=4, num_hidden_layers=2)
    mamba = transformers.MambaForCausalLM(config).eval()
    with pytest.raises(ValueError, match="rolled back|cache"):
        mamba.generate(torch.randint(3, 60, (1, 5)), max_new_tokens=6, do_sample=False, generation_mode="jacobi")
