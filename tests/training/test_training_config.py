"""JacobiForcingConfig refuses values of the wrong kind up front, with a message naming the field."""

import pytest

from hf_jacobi.training import JacobiForcingConfig


def make(tmp_path, **kwargs):
    return JacobiForcingConfig(output_dir=str(tmp_path), bf16=False, **kwargs)


@pytest.mark.parametrize("kwargs, message", [
    ({"block_size": 2.5}, r"`block_size` must be a positive integer or None, got 2.5"),
    ({"block_size": 0}, r"`block_size` must be a positive integer"),
    ({"block_size": True}, r"`block_size` must be a positive integer"),
    ({"noise_window": 0}, r"`noise_window` must be a positive integer, got 0"),
    ({"noise_window": 4.0}, r"`noise_window` must be a positive integer, got 4.0"),
    ({"noise_window": None}, r"`noise_window` must be a positive integer, got None"),
    ({"max_blocks": 0}, r"`max_blocks` must be a positive integer or None, got 0"),
    ({"max_blocks": 1.5}, r"`max_blocks` must be a positive integer or None"),
    ({"min_noise_ratio": -0.1}, r"`min_noise_ratio` must be a number in \[0, 1\]"),
    ({"max_noise_ratio": 1.5}, r"`max_noise_ratio` must be a number in \[0, 1\]"),
    ({"min_noise_ratio": 0.8, "max_noise_ratio": 0.2}, r"`min_noise_ratio` \(0.8\) must not exceed"),
])
def test_bad_values_are_refused(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        make(tmp_path, **kwargs)


def test_good_values_are_kept(tmp_path):
    config = make(tmp_path, block_size=16, noise_window=1, max_blocks=3, min_noise_ratio=0, max_noise_ratio=1)
    assert (config.block_size, config.noise_window, config.max_blocks) == (16, 1, 3)
    assert make(tmp_path).block_size is None and make(tmp_path).max_blocks is None


@pytest.mark.parametrize("native", [True, False])
def test_bf16_default_follows_the_cpu(tmp_path, monkeypatch, native):
    """Unset, bf16 is on only where the CPU computes bfloat16 natively; SFTConfig would turn it on everywhere, and
    emulated bf16 autocast trains many times slower than float32."""
    import hf_jacobi.training.config as config_module

    monkeypatch.setattr(config_module, "bf16_supported", lambda device: native)
    args = JacobiForcingConfig(output_dir=str(tmp_path), use_cpu=True)
    assert args.bf16 is native
    assert JacobiForcingConfig(output_dir=str(tmp_path), use_cpu=True, bf16=False).bf16 is False


def test_bf16_forced_on_a_cpu_without_bf16_units_warns(tmp_path, monkeypatch):
    import hf_jacobi.training.config as config_module

    monkeypatch.setattr(config_module, "bf16_supported", lambda device: False)
    with pytest.warns(UserWarning, match="without bfloat16 units"):
        args = JacobiForcingConfig(output_dir=str(tmp_path), use_cpu=True, bf16=True)
    assert args.bf16 is True
