"""`block_size="auto"`: calibration cached per model and device, choices that never leave the greedy output, and a
choice of n=1 wherever parallel drafting cannot pay."""

import json

import pytest
import torch
import transformers
from testing_utils import generation_inputs, make_tiny_model, markov_model, padded_batch

import hf_jacobi
from hf_jacobi.generation import auto

PROMPT = torch.tensor([[9, 10, 11, 12, 13, 14, 15, 6]])

FLAT = {size: 1.0 for size in auto.CALIBRATION_SIZES}  # a GPU-like device: more tokens per forward are free
LINEAR = {size: float(size) for size in auto.CALIBRATION_SIZES}  # a device where every token costs the same


@pytest.fixture(autouse=True)
def calibration_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_JACOBI_CACHE", str(tmp_path))
    auto.clear_memory_cache()
    yield tmp_path
    auto.clear_memory_cache()


@pytest.fixture
def count_measurements(monkeypatch):
    calls = []
    measure = auto.measure_forward_costs

    def counting(model, *args, **kwargs):
        calls.append(type(model).__name__)
        return measure(model, *args, **kwargs)

    monkeypatch.setattr(auto, "measure_forward_costs", counting)
    return calls


def test_calibration_is_cached_in_memory_and_on_disk(calibration_dir, count_measurements):
    model = make_tiny_model("llama")
    costs = auto.forward_costs(model)
    assert sorted(costs) == list(auto.CALIBRATION_SIZES) and all(cost > 0 for cost in costs.values())
    assert auto.forward_costs(model) == costs and len(count_measurements) == 1  # memory
    stored = json.loads((calibration_dir / "calibration.json").read_text())
    assert list(stored) == [auto.calibration_key(model)]
    auto.clear_memory_cache()
    assert auto.forward_costs(model) == costs and len(count_measurements) == 1  # disk
    # the same architecture with other weights shares the calibration; another architecture does not
    assert auto.forward_costs(make_tiny_model("llama", seed=1)) == costs and len(count_measurements) == 1
    auto.forward_costs(make_tiny_model("qwen2"))
    assert len(count_measurements) == 2
    assert len(json.loads((calibration_dir / "calibration.json").read_text())) == 2
    auto.forward_costs(model, refresh=True)
    assert len(count_measurements) == 3


def test_generate_with_auto_calibrates_once(count_measurements):
    model = make_tiny_model("llama")
    ids, _ = padded_batch(1, [6])
    for _ in range(2):
        model.generate(ids, do_sample=False, max_new_tokens=5, generation_mode="jacobi", block_size="auto")
    assert len(count_measurements) == 1


@pytest.mark.parametrize("family", ["gemma2", "mistral"])
def test_calibration_of_sliding_window_models_leaves_no_trace(family):
    """The calibration rolls its cache back after every forward, including across a sliding window."""
    costs = auto.measure_forward_costs(make_tiny_model(family), sizes=(1, 8), context_length=12, repeats=2)
    assert sorted(costs) == [1, 8]


def test_unwritable_cache_directory_does_not_break_generation(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("")
    monkeypatch.setenv("HF_JACOBI_CACHE", str(blocker / "sub"))  # a directory below a file cannot be created
    assert 1 in auto.forward_costs(make_tiny_model("llama"))


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("family", ["llama", "gemma2", "gpt2"])
def test_auto_output_identical_to_greedy(family, batch):
    model = make_tiny_model(family)
    inputs = generation_inputs(batch)
    reference = model.generate(**inputs, do_sample=False, max_new_tokens=40)
    for costs in (None, FLAT):  # measured here, and a device where the probes look free
        policy = None if costs is None else auto.AutoBlockSize(costs)
        out = model.generate(**inputs, do_sample=False, max_new_tokens=40, generation_mode="jacobi",
                             block_size="auto", block_size_policy=policy, return_dict_in_generate=True)
        torch.testing.assert_close(out.sequences, reference, rtol=0, atol=0)


def test_auto_on_generation_config(count_measurements):
    model = make_tiny_model("llama")
    ids, _ = padded_batch(1, [6])
    reference = model.generate(ids, do_sample=False, max_new_tokens=12)
    config = transformers.GenerationConfig.from_dict(model.generation_config.to_dict())
    config.generation_mode, config.block_size, config.do_sample, config.max_new_tokens = "jacobi", "auto", False, 12
    out = model.generate(ids, generation_config=config, return_dict_in_generate=True)
    torch.testing.assert_close(out.sequences, reference, rtol=0, atol=0)
    assert len(count_measurements) == 1 and out.draft_lengths[0] > 1  # calibrated, then probed
    config.pool_size = 2
    with pytest.raises(ValueError, match="pool_size"):
        model.generate(ids, generation_config=config)


def test_untrained_model_gets_greedy_block_size():
    """Acceptance ~0 on an untrained model: after the probe forwards, auto decodes one token per forward."""
    model = make_tiny_model("llama")
    ids, _ = padded_batch(1, [7])
    policy = auto.AutoBlockSize.for_model(model)
    out = model.generate(ids, do_sample=False, max_new_tokens=100, generation_mode="jacobi", block_size="auto",
                         block_size_policy=policy, return_dict_in_generate=True)
    assert policy.best() == (1, 1.0)
    assert policy.expected_tokens().max() < 1.05  # whatever the timings, no block size can reach min_gain = 1.1
    lengths = out.draft_lengths.tolist()
    assert lengths[: policy.probe_forwards] == [policy.probe_size] * policy.probe_forwards
    probes = sum(length > 1 for length in lengths)
    assert probes <= policy.probe_forwards + 2 * policy.reprobe_forwards  # then only the (ever rarer) re-probes
    assert out.tokens_per_forward < 1.1


def test_no_block_size_pays_when_every_token_costs_the_same():
    """With forward cost proportional to tokens (a saturated device), even perfect acceptance gains nothing."""
    policy = auto.AutoBlockSize(LINEAR)
    for _ in range(50):
        policy.observe(8, 8)
    assert policy.expected_tokens()[7] > 7.0
    assert policy.best() == (1, 1.0)


def test_high_acceptance_picks_a_large_block():
    model = markov_model([5] * 16)  # always predicts 5: every carried token is accepted
    reference = model.generate(PROMPT, do_sample=False, max_new_tokens=120)
    policy = auto.AutoBlockSize(FLAT)
    out = model.generate(PROMPT, do_sample=False, max_new_tokens=120, generation_mode="jacobi", block_size="auto",
                         block_size_policy=policy, return_dict_in_generate=True)
    torch.testing.assert_close(out.sequences, reference, rtol=0, atol=0)
    n, gain = policy.best()
    assert n >= 32 and gain > 4
    assert out.tokens_per_forward > 8


def test_expected_tokens_from_statistics():
    policy = auto.AutoBlockSize(FLAT, max_block_size=8, prior_strength=1e-9, shrinkage=1e-9)
    for accepted in (1, 4) * 20:  # a forward of 4 commits 1 or 4 tokens: q_1 = 0.5, q_2 = q_3 = 1
        policy.observe(4, accepted)
    torch.testing.assert_close(policy.expected_tokens()[:4], torch.tensor([1.0, 1.5, 2.0, 2.5], dtype=torch.float64))


class Cycling:
    """A block-size policy changing n at every forward."""

    def __init__(self, sizes):
        self.sizes, self.calls = sizes, 0

    def next_block_size(self, remaining):
        self.calls += 1
        return self.sizes[self.calls % len(self.sizes)]

    def observe(self, draft_length, num_accepted):
        pass


@pytest.mark.parametrize("family", ["llama", "mistral", "gemma2"])
def test_block_size_changing_between_forwards_is_lossless(family):
    model = make_tiny_model(family)
    ids, mask = padded_batch(3, [9, 5, 7])
    reference = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=50)
    out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=50,
                         generation_mode="jacobi", block_size="auto", block_size_policy=Cycling([1, 5, 2, 8, 3, 13]),
                         return_dict_in_generate=True)
    torch.testing.assert_close(out.sequences, reference, rtol=0, atol=0)
    assert len(set(out.draft_lengths.tolist())) >= 5


def test_auto_under_sampling_is_reproducible():
    model = make_tiny_model("llama")
    runs = []
    for _ in range(2):
        torch.manual_seed(5)
        runs.append(model.generate(PROMPT % 90, do_sample=True, max_new_tokens=12, generation_mode="jacobi",
                                   block_size="auto", block_size_policy=auto.AutoBlockSize(FLAT)))
    torch.testing.assert_close(runs[0], runs[1], rtol=0, atol=0)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(block_size="auto", num_blocks=2), "num_blocks"),
        (dict(block_size="auto", pool_size=4), "pool_size"),
        (dict(block_size="fast"), "'auto'"),
    ],
)
def test_bad_input_clear_errors(kwargs, message, count_measurements):
    model = make_tiny_model("llama")
    ids, _ = padded_batch(1, [6])
    with pytest.raises(ValueError, match=message):
        model.generate(ids, generation_mode="jacobi", max_new_tokens=4, do_sample=False, **kwargs)
    assert not count_measurements  # refused before calibrating


def test_auto_without_hf_jacobi_policy_is_refused():
    """`jacobi_decode` called directly, without a policy, cannot time the model: it says what to do."""
    model = make_tiny_model("llama")
    ids, _ = padded_batch(1, [6])
    with pytest.raises(ValueError, match="int block_size"):
        model.generate(ids, custom_generate=hf_jacobi.jacobi_decode, block_size="auto", max_new_tokens=4,
                       do_sample=False)


def test_policy_arguments_are_checked():
    with pytest.raises(ValueError, match="key 1"):
        auto.AutoBlockSize({2: 1.0, 4: 1.0})
    with pytest.raises(ValueError, match="max_block_size"):
        auto.AutoBlockSize(FLAT, max_block_size=0)
