"""hf_jacobi's use of the fused kernels (`hf_jacobi.kernels`): choice, trust, fallback, decoding through the kernel.

The kernel package's own tests (reference against an oracle, Triton against the reference, layout) are in
`kernels/jacobi_verify/tests/`. Here: the Triton kernel runs on CPU in Triton's interpreter, which must be switched on
before the kernel is imported, so those checks run this file as a script in a subprocess with `TRITON_INTERPRET=1`
(`PYTHONPATH=tests python tests/kernels/test_kernels.py <check>`). The real fused path needs a CUDA GPU and is
skipped without one.
"""

import logging
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
import transformers
from testing_utils import require_cuda, require_triton

import hf_jacobi
from hf_jacobi.kernels import verify as verify_module

KERNEL_DIR = Path(__file__).resolve().parents[2] / "kernels" / "jacobi_verify"


def tiny_llama(seed: int = 0):
    config = transformers.LlamaConfig(
        vocab_size=96,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():  # well-separated logits: no argmax near-ties between block and one-token forwards
        model.get_output_embeddings().weight.mul_(8.0)
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    return model


def prompts(batch: int):
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 96, (batch, 9), generator=generator)
    mask = torch.ones_like(ids)
    if batch > 1:
        mask[1, :4] = 0
        ids[1, :4] = 0
    return {"input_ids": ids, "attention_mask": mask}


def hf_jacobi_records(caplog):
    return [record for record in caplog.records if record.name == "hf_jacobi"]


def load_local_kernel():
    import kernels

    return kernels.get_local_kernel(KERNEL_DIR)


def random_case(generator, batch, candidates, n, vocab, dtype=torch.float32, device="cpu"):
    """Logits whose maximum is tied at 3 random vocabulary positions (anywhere: across tiles and slices), half of the
    rows also with small-integer values (ties everywhere), and drafts accepted up to a random length per row."""
    rows = batch * candidates
    logits = torch.randn(rows, n, vocab, generator=generator, device=device)
    ties = torch.randint(0, vocab, (rows, n, 3), generator=generator, device=device)
    logits.scatter_(-1, ties, 10.0)
    logits[::2] = logits[::2].round().clamp(-3, 3)
    logits = logits.to(dtype)
    predictions = logits.argmax(-1)
    draft = torch.randint(0, vocab, (rows, n), generator=generator, device=device)
    lengths = torch.randint(0, n, (rows,), generator=generator, device=device).tolist()
    for row, k in enumerate(lengths):
        draft[row, 1 : k + 1] = predictions[row, :k]
    return draft, logits


def assert_same(out, expected, context):
    for name, value, target in zip(("predictions", "accepted", "best", "next_draft"), out, expected, strict=True):
        assert torch.equal(value.cpu(), target.cpu()), f"{name} differs for {context}: {value} vs {target}"


@pytest.fixture
def fresh_choice(monkeypatch):
    """`get_verify_fn` decides once per process; start and end each test with no decision made."""
    monkeypatch.delenv("HF_JACOBI_VERIFY_KERNEL", raising=False)
    monkeypatch.delenv("LOCAL_KERNELS", raising=False)
    monkeypatch.delenv("HF_JACOBI_TRUSTED_KERNELS", raising=False)
    verify_module._choose.cache_clear()
    yield
    verify_module._choose.cache_clear()


# --- the torch fallback --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch", [1, 3])
def test_use_kernels_fallback_gives_greedy_tokens(fresh_choice, monkeypatch, batch):
    monkeypatch.setattr(verify_module, "_cuda_available", lambda: False)
    model, inputs = tiny_llama(), prompts(batch)
    reference = model.generate(**inputs, do_sample=False, max_new_tokens=20)
    for block_size in (1, 4, 16):
        kwargs = {"do_sample": False, "max_new_tokens": 20, "generation_mode": "jacobi", "block_size": block_size}
        without = model.generate(**inputs, use_kernels=False, **kwargs)
        with_kernels = model.generate(**inputs, use_kernels=True, **kwargs)
        assert torch.equal(without, reference) and torch.equal(with_kernels, reference), block_size


def test_use_kernels_sampling_unchanged(fresh_choice, monkeypatch):
    monkeypatch.setattr(verify_module, "_cuda_available", lambda: False)
    model, inputs = tiny_llama(), prompts(2)
    outputs = []
    for use_kernels in (False, True):
        torch.manual_seed(3)
        outputs.append(
            model.generate(
                **inputs,
                do_sample=True,
                top_k=20,
                max_new_tokens=12,
                generation_mode="jacobi",
                block_size=4,
                use_kernels=use_kernels,
            )
        )
    assert torch.equal(*outputs)


def test_choice_logged_once(fresh_choice, monkeypatch, caplog):
    monkeypatch.setattr(verify_module, "_cuda_available", lambda: False)
    caplog.set_level(logging.INFO, logger="hf_jacobi")
    model, inputs = tiny_llama(), prompts(1)
    first = hf_jacobi.kernels.get_verify_fn()
    assert first is hf_jacobi.verify_block and hf_jacobi.kernels.get_verify_fn() is first
    model.generate(**inputs, max_new_tokens=5, generation_mode="jacobi", block_size=4, use_kernels=True)
    model.generate(**inputs, max_new_tokens=5, generation_mode="jacobi", block_size=4, use_kernels=True)
    records = hf_jacobi_records(caplog)
    assert len(records) == 1, [record.getMessage() for record in records]
    assert "no CUDA device" in records[0].getMessage() and "verify_block" in records[0].getMessage()


def test_verify_fn_hook_and_argument_errors():
    model, inputs = tiny_llama(), prompts(2)
    calls = []

    def spy(block, scores, do_sample):
        calls.append(block.shape)
        return hf_jacobi.verify_block(block, scores, do_sample)

    reference = model.generate(**inputs, max_new_tokens=10)
    out = model.generate(**inputs, max_new_tokens=10, generation_mode="jacobi", block_size=4, verify_fn=spy)
    assert torch.equal(out, reference) and calls and all(shape[1] <= 4 for shape in calls)
    with pytest.raises(ValueError, match="generation_mode='jacobi'"):
        model.generate(**inputs, max_new_tokens=3, use_kernels=True)
    with pytest.raises(ValueError, match="pass one"):
        model.generate(**inputs, max_new_tokens=3, generation_mode="jacobi", use_kernels=True, verify_fn=spy)


# --- trust: hf_jacobi never trusts a Hub kernel repository by itself -----------------------------------------------

REPO = hf_jacobi.kernels.DEFAULT_VERIFY_REPO
OPT_IN = f"HF_JACOBI_TRUSTED_KERNELS={REPO}"


def fake_kernel():
    """Stands in for a downloaded kernel module (hf_jacobi's load-time check is patched out where it is used)."""
    return SimpleNamespace(triton=object(), triton_available=lambda scores: False)


@pytest.fixture
def hub_loader(monkeypatch):
    """`kernels.get_kernel` without the network: it records the trust it is given and applies the `kernels` library's
    own trust rule (the publisher's Hub status is `publisher.trusted`), then "downloads" a fake kernel."""
    import kernels.hf_hub  # binds `kernels` too

    calls, publisher = [], SimpleNamespace(trusted=False)
    hub = SimpleNamespace(
        get_organization_overview=lambda name: SimpleNamespace(trustedKernelPublisher=publisher.trusted)
    )
    monkeypatch.setattr(kernels.hf_hub, "_get_hf_api", lambda *args, **kwargs: hub)

    def get_kernel(repo_id, *, revision=None, version=None, trust_remote_code=False, **kwargs):
        calls.append({"repo_id": repo_id, "version": version, "trust_remote_code": trust_remote_code})
        offline = verify_module.constants.HF_HUB_OFFLINE
        kernels.hf_hub._check_trust_remote_code(repo_id, offline, trust_remote_code)
        return fake_kernel()

    monkeypatch.setattr(kernels, "get_kernel", get_kernel)
    monkeypatch.setattr(verify_module, "_cuda_available", lambda: True)
    monkeypatch.setattr(verify_module, "_self_check", lambda kernel: None)
    return SimpleNamespace(calls=calls, publisher=publisher)


def one_record(caplog):
    records = hf_jacobi_records(caplog)
    assert len(records) == 1, [record.getMessage() for record in records]
    assert "\n" not in records[0].getMessage()
    return records[0]


@pytest.mark.parametrize("offline", [True, False])
def test_default_repo_not_trusted_without_opt_in(fresh_choice, hub_loader, monkeypatch, caplog, offline):
    """A GPU user with `use_kernels=True` and no opt-in gets the torch step and one warning saying how to opt in."""
    monkeypatch.setattr(verify_module.constants, "HF_HUB_OFFLINE", offline)
    caplog.set_level(logging.INFO, logger="hf_jacobi")
    assert hf_jacobi.kernels.get_verify_fn() is hf_jacobi.verify_block
    assert hf_jacobi.kernels.get_verify_fn() is hf_jacobi.verify_block
    record = one_record(caplog)
    assert record.levelno == logging.WARNING and f"{REPO} is not trusted" in record.getMessage()
    assert OPT_IN in record.getMessage() and "runs that repository's code" in record.getMessage()
    if offline:  # a publisher cannot be checked offline: nothing is even looked up in the Hub cache
        assert hub_loader.calls == []
    else:  # online, the `kernels` library checks the publisher, with nothing added to the trust list
        assert [call["trust_remote_code"] for call in hub_loader.calls] == [[]]
    with pytest.raises(hf_jacobi.kernels.UntrustedKernelError, match=OPT_IN):
        hf_jacobi.kernels.load_verify_kernel()


@pytest.mark.parametrize(
    "how", ["env", "env list", "argument", "argument True"], ids=lambda how: how.replace(" ", "-")
)
def test_opt_in_loads_the_hub_kernel(fresh_choice, hub_loader, monkeypatch, caplog, how):
    caplog.set_level(logging.INFO, logger="hf_jacobi")
    kwargs = {}
    if how == "env":
        monkeypatch.setenv("HF_JACOBI_TRUSTED_KERNELS", REPO)
    elif how == "env list":
        monkeypatch.setenv("HF_JACOBI_TRUSTED_KERNELS", f" someone/else , {REPO},")
    elif how == "argument":
        kwargs = {"trust_remote_code": [REPO]}
    else:
        kwargs = {"trust_remote_code": True}
    for offline in (True, False):
        monkeypatch.setattr(verify_module.constants, "HF_HUB_OFFLINE", offline)
        verify_module._choose.cache_clear()
        caplog.clear()
        verify_fn = hf_jacobi.kernels.get_verify_fn(**kwargs)
        assert hasattr(verify_fn, "kernel"), "the opted-in Hub kernel should have been chosen"
        record = one_record(caplog)
        where = "Hub cache" if offline else "Hub"
        assert record.levelno == logging.INFO and f"fused Triton kernel from {REPO} ({where})" in record.getMessage()
    trust = hub_loader.calls[-1]["trust_remote_code"]
    assert trust is True if how == "argument True" else REPO in trust
    assert {call["version"] for call in hub_loader.calls} == {hf_jacobi.kernels.DEFAULT_VERIFY_VERSION}


def test_opt_in_is_per_repository(fresh_choice, hub_loader, monkeypatch, caplog):
    """Trusting one repository trusts no other; setting the variable later in the process takes effect."""
    monkeypatch.setattr(verify_module.constants, "HF_HUB_OFFLINE", True)
    caplog.set_level(logging.INFO, logger="hf_jacobi")
    monkeypatch.setenv("HF_JACOBI_TRUSTED_KERNELS", "someone/jacobi-verify")
    assert hf_jacobi.kernels.get_verify_fn() is hf_jacobi.verify_block
    assert OPT_IN in one_record(caplog).getMessage()
    monkeypatch.setenv("HF_JACOBI_TRUSTED_KERNELS", REPO)
    assert hasattr(hf_jacobi.kernels.get_verify_fn(), "kernel")


def test_trusted_publisher_loads_without_opt_in(fresh_choice, hub_loader, monkeypatch, caplog):
    """Online, a repository whose publisher the Hub marks as trusted loads through the `kernels` library's own rule."""
    monkeypatch.setattr(verify_module.constants, "HF_HUB_OFFLINE", False)
    hub_loader.publisher.trusted = True
    caplog.set_level(logging.INFO, logger="hf_jacobi")
    assert hasattr(hf_jacobi.kernels.get_verify_fn(repo_id="trusted-org/jacobi-verify"), "kernel")
    assert hub_loader.calls[0]["trust_remote_code"] == []
    assert "fused Triton kernel from trusted-org/jacobi-verify (Hub)" in one_record(caplog).getMessage()


def test_trusted_but_unloadable_kernel_falls_back_with_one_warning(fresh_choice, monkeypatch, caplog):
    """Opted in, with a GPU but no kernel (offline, not in the cache): the torch path is chosen and said so, once."""
    monkeypatch.setattr(verify_module, "_cuda_available", lambda: True)
    monkeypatch.setenv("HF_JACOBI_TRUSTED_KERNELS", REPO)
    caplog.set_level(logging.INFO, logger="hf_jacobi")
    assert verify_module.constants.HF_HUB_OFFLINE  # tests/conftest.py: the real `kernels.get_kernel` stays offline
    assert hf_jacobi.kernels.get_verify_fn() is hf_jacobi.verify_block
    assert hf_jacobi.kernels.get_verify_fn() is hf_jacobi.verify_block
    record = one_record(caplog)
    assert record.levelno == logging.WARNING and f"cannot load {REPO}" in record.getMessage()
    assert "is not trusted" not in record.getMessage()


# --- the kernel package, loaded by the `kernels` library -----------------------------------------------------------


def test_local_kernel_package_loads_offline_and_matches(fresh_choice, monkeypatch):
    kernel = load_local_kernel()
    generator = torch.Generator().manual_seed(0)
    for batch, candidates, n, vocab in ((1, 1, 1, 50), (2, 3, 4, 300), (3, 2, 16, 700)):
        draft, logits = random_case(generator, batch, candidates, n, vocab)
        expected = kernel.verify_reference(draft, logits, candidates, 5)
        predictions, accepted = hf_jacobi.verify_block(draft, logits, False)
        assert torch.equal(expected.predictions, predictions) and torch.equal(expected.accepted, accepted)
        # CPU tensors without the interpreter: `verify` and `verify_block` take the reference path
        assert not kernel.triton_available(logits)
        assert_same(kernel.verify(draft, logits, candidates, 5), expected, "verify")
        assert all(torch.equal(a, b) for a, b in zip(kernel.verify_block(draft, logits), (predictions, accepted)))

    # The same package through hf_jacobi's loader: HF_JACOBI_VERIFY_KERNEL, then LOCAL_KERNELS for the Hub repo id.
    # Both name a folder whose code the user chose to run: no Hub trust is involved.
    monkeypatch.setenv("HF_JACOBI_VERIFY_KERNEL", str(KERNEL_DIR))
    module, source = hf_jacobi.kernels.load_verify_kernel()
    assert module is kernel and "HF_JACOBI_VERIFY_KERNEL" in source
    monkeypatch.delenv("HF_JACOBI_VERIFY_KERNEL")
    monkeypatch.setenv("LOCAL_KERNELS", f"{hf_jacobi.kernels.DEFAULT_VERIFY_REPO}={KERNEL_DIR}")
    module, source = hf_jacobi.kernels.load_verify_kernel()
    assert module is kernel and "LOCAL_KERNELS" in source


@require_triton
def test_decoding_through_fused_kernel_in_interpreter():
    run_in_interpreter("decode")


@require_cuda  # Triton compiles the fused kernel for GPUs; the interpreter checks cover its logic on CPU
@require_triton
def test_fused_kernel_on_cuda(fresh_choice, monkeypatch, caplog):
    """The kernel's own CUDA test (all shapes, dtypes, splits) is in kernels/jacobi_verify/tests; here: hf_jacobi's
    verification step and decoding through the kernel on the GPU."""
    kernel = load_local_kernel()
    generator = torch.Generator(device="cuda").manual_seed(0)
    for batch, n, vocab in ((1, 16, 32000), (4, 64, 151936)):
        draft, logits = random_case(generator, batch, 1, n, vocab, device="cuda")
        out = kernel.verify_triton(draft, logits)
        predictions, accepted = hf_jacobi.verify_block(draft, logits, False)
        assert torch.equal(out.predictions, predictions) and torch.equal(out.accepted, accepted), (batch, n, vocab)
    # End to end on the GPU: the choice is the fused kernel, and the tokens are greedy's.
    monkeypatch.setenv("HF_JACOBI_VERIFY_KERNEL", str(KERNEL_DIR))
    caplog.set_level(logging.INFO, logger="hf_jacobi")
    model, inputs = tiny_llama().cuda(), {k: v.cuda() for k, v in prompts(3).items()}
    reference = model.generate(**inputs, do_sample=False, max_new_tokens=24)
    for block_size in (1, 4, 16):
        out = model.generate(
            **inputs,
            do_sample=False,
            max_new_tokens=24,
            generation_mode="jacobi",
            block_size=block_size,
            use_kernels=True,
        )
        assert torch.equal(out, reference), block_size
    assert hasattr(hf_jacobi.kernels.get_verify_fn(), "kernel")
    records = hf_jacobi_records(caplog)
    assert len(records) == 1 and "fused Triton kernel" in records[0].getMessage()


# --- layer kernels -------------------------------------------------------------------------------------------------


def test_kernelize_for_decoding_unchanged_on_cpu(caplog):
    caplog.set_level(logging.INFO, logger="hf_jacobi")
    model, inputs = tiny_llama(), prompts(2)
    reference = model.generate(**inputs, do_sample=False, max_new_tokens=12)
    assert hf_jacobi.kernels.kernelize_for_decoding(model) is model
    records = hf_jacobi_records(caplog)
    assert len(records) == 1 and "model unchanged" in records[0].getMessage()
    assert not any("forward" in module.__dict__ for module in model.modules())
    assert torch.equal(model.generate(**inputs, do_sample=False, max_new_tokens=12), reference)
    jacobi_out = model.generate(**inputs, do_sample=False, max_new_tokens=12, generation_mode="jacobi", block_size=4)
    assert torch.equal(jacobi_out, reference)


RMSNORM_LAYER = """
import torch
from torch import nn


class RMSNorm(nn.Module):
    def forward(self, hidden_states):
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        return self.weight * (hidden_states * torch.rsqrt(variance + self.eps))
"""


def toy_model():
    """A model with a hub-kernel-enabled RMSNorm (transformers enables its own only with a `kernels` it supports)."""
    import kernels

    @kernels.use_kernel_forward_from_hub("RMSNorm")
    class ToyRMSNorm(torch.nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.rand(dim) + 0.5)
            self.eps = 1e-6

        def forward(self, hidden_states):
            variance = hidden_states.pow(2).mean(-1, keepdim=True)
            return self.weight * (hidden_states * torch.rsqrt(variance + self.eps))

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(8, 8), ToyRMSNorm(8), torch.nn.Linear(8, 8), ToyRMSNorm(8))


def test_kernelize_for_decoding_unloadable_kernel(tmp_path, caplog):
    import kernels

    caplog.set_level(logging.INFO, logger="hf_jacobi")
    model, x = toy_model(), torch.randn(3, 8)
    reference = model(x)
    mapping = {"RMSNorm": {"cpu": kernels.LocalLayerRepository(tmp_path / "missing", layer_name="RMSNorm")}}
    assert hf_jacobi.kernels.kernelize_for_decoding(model, mapping) is model
    records = hf_jacobi_records(caplog)
    assert len(records) == 1 and "model unchanged, no layer kernel could be loaded" in records[0].getMessage()
    assert not any("forward" in module.__dict__ for module in model.modules())
    assert torch.equal(model(x), reference)


def test_kernelize_for_decoding_local_layer_kernel(tmp_path, caplog):
    """The kernelize path itself, on CPU, with a local layer kernel package (same math, so same outputs)."""
    import kernels

    variant = tmp_path / "build" / "torch-universal"
    (variant / "toy_rmsnorm").mkdir(parents=True)
    (variant / "metadata.json").write_text(
        '{"id": "_toy_rmsnorm_test", "name": "toy-rmsnorm", "version": 1, "license": "Apache-2.0", '
        '"python-depends": [], "backend": {"type": "cpu"}}'
    )
    (variant / "toy_rmsnorm" / "__init__.py").write_text("from . import layers\n")
    (variant / "toy_rmsnorm" / "layers.py").write_text(RMSNORM_LAYER)
    caplog.set_level(logging.INFO, logger="hf_jacobi")
    model, x = toy_model(), torch.randn(3, 8)
    reference = model(x)
    mapping = {"RMSNorm": {"cpu": kernels.LocalLayerRepository(tmp_path, layer_name="RMSNorm")}}
    assert hf_jacobi.kernels.kernelize_for_decoding(model, mapping) is model
    records = hf_jacobi_records(caplog)
    assert len(records) == 1 and "RMSNorm layers use Hub kernels on cpu" in records[0].getMessage()
    norms = [module for module in model.modules() if hasattr(type(module), "kernel_layer_name")]
    assert len(norms) == 2 and all(norm.forward.__func__ is not type(norm).forward for norm in norms)
    assert torch.equal(model(x), reference)


# --- checks run in a subprocess under TRITON_INTERPRET=1 -----------------------------------------------------------


def run_in_interpreter(check: str):
    env = dict(os.environ, TRITON_INTERPRET="1", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    tests_dir = str(Path(__file__).resolve().parents[1])  # this file imports testing_utils
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [tests_dir, os.environ.get("PYTHONPATH")]))
    result = subprocess.run(
        [sys.executable, __file__, check], check=False, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    if f"{check}: skip" in result.stdout:
        pytest.skip(result.stdout.split(f"{check}: skip: ", 1)[1].strip())
    assert f"{check}: ok" in result.stdout


def interpreter_runs_runtime_loops() -> str | None:
    """Why this Triton's interpreter cannot run the kernel, or None. Triton 3.6's interpreter turns loop bounds that
    are kernel arguments into Python ints with `int(array)`, which numpy 2 refuses for 1-element arrays (seen on a GPU
    machine with Triton 3.6 and numpy 2.5; Triton 3.9 runs it). The compiled kernel is unaffected."""
    import numpy as np
    import triton
    import triton.language as tl

    @triton.jit
    def probe(out_ptr, n):
        total = tl.zeros((), tl.int32)
        for _ in range(0, n, 2):
            total += 1
        tl.store(out_ptr, total)

    out = torch.zeros(1, dtype=torch.int32)
    try:
        probe[(1,)](out, 4)
    except Exception as error:  # noqa: BLE001
        return (
            f"Triton {triton.__version__}'s interpreter cannot run loops with runtime bounds under numpy "
            f"{np.__version__} ({type(error).__name__}: {str(error)[:120]}); the compiled kernel is tested on CUDA"
        )
    assert int(out) == 2
    return None


def interpreter_decode_check():
    """`get_verify_fn` choosing the fused kernel (the GPU check pretended), then decoding through it."""
    os.environ["HF_JACOBI_VERIFY_KERNEL"] = str(KERNEL_DIR)
    verify_module._cuda_available = lambda: True
    verify_module._CHECK_DEVICE = "cpu"  # the load-time check runs in the interpreter too
    verify_fn = hf_jacobi.kernels.get_verify_fn()
    assert hasattr(verify_fn, "kernel"), "the fused kernel should have been chosen"
    assert verify_fn.kernel.triton_available(torch.zeros(1)), "CPU tensors should run the interpreted kernel"
    calls = []

    def counting(block, scores, do_sample):
        calls.append(1)
        return verify_fn(block, scores, do_sample)

    model = tiny_llama()
    for batch in (1, 3):
        inputs = prompts(batch)
        reference = model.generate(**inputs, do_sample=False, max_new_tokens=16)
        for block_size in (1, 4, 16):
            kwargs = {"do_sample": False, "max_new_tokens": 16, "generation_mode": "jacobi", "block_size": block_size}
            assert torch.equal(model.generate(**inputs, use_kernels=True, **kwargs), reference), (batch, block_size)
            assert torch.equal(model.generate(**inputs, verify_fn=counting, **kwargs), reference), (batch, block_size)
    assert calls


if __name__ == "__main__":
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO)
    if (reason := interpreter_runs_runtime_loops()) is not None:
        print(f"{sys.argv[1]}: skip: {reason}")
        sys.exit(0)
    {"decode": interpreter_decode_check}[sys.argv[1]]()
    print(f"{sys.argv[1]}: ok")
