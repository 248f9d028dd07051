"""Trajectory collection: the parallel all-blocks iteration equals the one-block-at-a-time Jacobi iteration, the
fixed points are the greedy continuation, and an interrupted run resumes to the same records."""

import itertools
import json
import types

import pytest
import torch
import transformers
from testing_utils import make_tiny_model, markov_model, require_smollm2

from hf_jacobi.collection import (
    CollectConfig,
    collect_trajectories,
    decoding_states,
    forced_decoding_states,
    load_prompts,
)
from hf_jacobi.loading import SMOLLM2_GGUF, chat_prompt, smollm2_dir

PROMPTS = ["hello world", "write a function that adds two numbers", "sort a list", "x", "print the first ten primes"]


@pytest.fixture(scope="module")
def tokenizer():
    tok = transformers.AutoTokenizer.from_pretrained(smollm2_dir(), gguf_file=SMOLLM2_GGUF)
    tok.pad_token = tok.eos_token
    return tok


def wide_model(tokenizer, family="llama"):
    """A tiny random model with SmolLM2's vocabulary (for the chat template); the family sets the attention kind."""
    model = make_tiny_model(family)
    config = model.config
    config.vocab_size = len(tokenizer)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation=config._attn_implementation)
    with torch.no_grad():
        model.get_output_embeddings().weight.mul_(8.0)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    return model.eval()


def naive_iterates(model, context, initial, n):
    """Jacobi iteration of one block by plain causal forwards over context + draft (no cache, no custom mask)."""
    steps, current = [initial], initial
    for _ in range(n):
        ids = torch.tensor([context + current[:-1]])
        logits = model(input_ids=ids).logits[0, len(context) - 1 :]
        current = logits.argmax(-1).tolist()
        if current == steps[-1]:
            break
        steps.append(current)
    return steps


@require_smollm2
@pytest.mark.parametrize("family", ["llama", "mistral", "gemma2"])
def test_parallel_iteration_matches_sequential(tokenizer, tmp_path, family):
    model = wide_model(tokenizer, family)
    n = 4
    ds = collect_trajectories(model, tokenizer, PROMPTS[:3], tmp_path, CollectConfig(block_size=n, max_new_tokens=12, batch_size=3),
                              progress=False)
    for record in ds:
        greedy = model.generate(torch.tensor([record["prompt_ids"]]), do_sample=False, max_new_tokens=12,
                                pad_token_id=tokenizer.pad_token_id)[0, len(record["prompt_ids"]):].tolist()
        fixed = [token for block in record["trajectory"] for token in block[-1]]
        assert fixed[: len(greedy)] == greedy
        context = list(record["prompt_ids"])
        for block in record["trajectory"]:
            assert all(len(step) == n for step in block)
            assert naive_iterates(model, context, block[0], n) == block
            context += block[-1]


@require_smollm2
def test_resume_gives_same_records(tokenizer, tmp_path):
    model = wide_model(tokenizer)
    config = CollectConfig(block_size=4, max_new_tokens=8, batch_size=2)
    full = collect_trajectories(model, tokenizer, PROMPTS, tmp_path / "full", config, progress=False)
    assert full is not None and len(full) == len(PROMPTS)
    part = tmp_path / "part"
    first = collect_trajectories(model, tokenizer, PROMPTS, part, config, max_chunks=1, progress=False)
    assert len(first) == 2
    with open(part / "trajectories.jsonl", "a") as handle:
        handle.write('{"prompt_index": 2, "chunk": 1, "prompt": "sort')  # a torn write from a killed run
    resumed = collect_trajectories(model, tokenizer, PROMPTS, part, config, progress=False)
    assert resumed.to_list() == full.to_list()
    lines = (part / "trajectories.jsonl").read_text().splitlines()
    assert sorted(json.loads(line)["prompt_index"] for line in lines) == list(range(len(PROMPTS)))  # no duplicates
    with pytest.raises(ValueError, match="other settings"):
        collect_trajectories(model, tokenizer, PROMPTS, part, CollectConfig(block_size=8), progress=False)


def test_load_prompts_errors_name_the_record(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "a"}\n{"text": "b"}\n')
    with pytest.raises(ValueError, match="record 1"):
        load_prompts(path)
    assert load_prompts(["a", "b"]) == ["a", "b"]


@require_smollm2
@pytest.mark.parametrize("family", ["llama", "mistral"])
def test_decoding_states_are_what_the_decoder_fed(tmp_path, tokenizer, family):
    """On-policy states: the continuation is the greedy one, every state starts with the committed token at its
    offset (so it is a real decoder input) and differs from the clean tokens somewhere; batch rows of different
    prompt lengths get their own offsets."""
    model = wide_model(tokenizer, family)
    config = CollectConfig(block_size=4, max_new_tokens=12, batch_size=3, states="decoding", max_states=5)
    records = collect_trajectories(model, tokenizer, PROMPTS[:3], tmp_path, config, progress=False)
    tokenizer.padding_side = "left"
    for record in records:
        ids = torch.tensor([record["prompt_ids"]])
        greedy = model.generate(ids, do_sample=False, max_new_tokens=12, pad_token_id=tokenizer.pad_token_id)
        assert record["clean_ids"] == greedy[0, ids.shape[1]:].tolist()[: len(record["clean_ids"])]
        assert 0 < len(record["noisy_starts"]) <= 5
        for start, block in zip(record["noisy_starts"], record["noisy_blocks"]):
            assert block[0] == record["clean_ids"][start]
            assert block != record["clean_ids"][start : start + 4]


@require_smollm2
@pytest.mark.parametrize("family", ["llama", "qwen2"])
@pytest.mark.parametrize("draft_init, carry", [("prompt", "all"), (7, "all"), (7, "clean")])
def test_forced_states_along_own_answers_are_the_decoding_states(tokenizer, family, draft_init, carry):
    """Forcing the decoder along the model's own greedy answers replays the real decoder: the same states, offsets
    and answers as `decoding_states` (which hooks the real loop), for a batch of prompts of different lengths; with a
    fixed filler token the first state of every row is that token after the first answer token."""
    model = wide_model(tokenizer, family)
    tokenizer.padding_side = "left"
    batch = tokenizer([chat_prompt(tokenizer, p) for p in PROMPTS], return_tensors="pt", padding=True)
    config = CollectConfig(block_size=4, max_new_tokens=20, states="decoding", draft_init=draft_init, draft_carry=carry)
    real = decoding_states(model, tokenizer, batch, config, seed=3)
    forced = forced_decoding_states(model, batch, [r["clean_ids"] for r in real], config, seed=3)
    assert forced == real
    assert sum(len(r["noisy_starts"]) for r in real) > 0
    if draft_init == 7:
        assert all(r["noisy_starts"][0] == 0 and r["noisy_blocks"][0] == [r["clean_ids"][0], 7, 7, 7] for r in real)


def test_forced_states_replay_multi_token_acceptance():
    """The same replay on a model whose carried predictions are often right (a Markov chain that mostly goes to 5),
    so forwards accept several tokens and rows of a left-padded batch share the smallest commit."""
    model = markov_model([5 if x % 4 else (x * 7 + 3) % 16 for x in range(16)])
    batch = {"input_ids": torch.tensor([[0, 0, 9, 10, 11, 6], [12, 13, 14, 15, 8, 4]]),
             "attention_mask": torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1]])}
    config = CollectConfig(block_size=4, max_new_tokens=24, states="decoding")
    real = decoding_states(model, types.SimpleNamespace(pad_token_id=0), batch, config, seed=1)
    forced = forced_decoding_states(model, batch, [r["clean_ids"] for r in real], config, seed=1)
    assert forced == real
    starts = real[0]["noisy_starts"]
    assert len(starts) > 0 and any(b - a > 1 for a, b in itertools.pairwise(starts))  # some forward accepted > 1


@require_smollm2
def test_teacher_answers_with_student_states(tmp_path, tokenizer):
    """With a teacher, the clean continuation is the teacher's greedy answer and every state is a draft the student's
    decoder would feed along it: it starts with the answer's token at its offset and carries the student's own
    predictions (so it differs from the states the teacher's decoder would feed)."""
    student, teacher = wide_model(tokenizer), wide_model(tokenizer, "qwen2")
    config = CollectConfig(block_size=4, max_new_tokens=16, batch_size=3, states="decoding")
    records = collect_trajectories(student, tokenizer, PROMPTS[:3], tmp_path / "a", config, progress=False,
                                   teacher=teacher)
    own = collect_trajectories(teacher, tokenizer, PROMPTS[:3], tmp_path / "b", config, progress=False)
    for record, reference in zip(records, own):
        ids = torch.tensor([record["prompt_ids"]])
        greedy = teacher.generate(ids, do_sample=False, max_new_tokens=16, pad_token_id=tokenizer.pad_token_id)
        assert record["clean_ids"] == greedy[0, ids.shape[1]:].tolist()[: len(record["clean_ids"])]
        assert record["clean_ids"] == reference["clean_ids"]
        for start, block in zip(record["noisy_starts"], record["noisy_blocks"]):
            assert block[0] == record["clean_ids"][start]
    assert [r["noisy_blocks"] for r in records] != [r["noisy_blocks"] for r in own]
    with pytest.raises(ValueError, match="teacher"):  # another teacher is another collection
        collect_trajectories(student, tokenizer, PROMPTS[:3], tmp_path / "a", config, progress=False, teacher=student)


@pytest.mark.parametrize("kwargs, message", [
    ({"block_size": 0}, "block_size"), ({"batch_size": -1}, "batch_size"), ({"draft_init": "foo"}, "draft_init"), ({"draft_init": -3}, "token id"),
    ({"draft_carry": "clean"}, "needs a token id"),
    ({"states": "all"}, "states"), ({"max_states": 0}, "max_states"), ({"max_states": 2.5}, "max_states"),
    ({"block_size": 2.5}, "block_size"), ({"batch_size": True}, "batch_size"), ({"generate_block_size": 0}, "generate_block_size"),
    ({"seed": 1.5}, "seed"),
])
def test_collect_config_bad_values(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CollectConfig(**kwargs)
