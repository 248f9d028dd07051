"""jacobi-verify: the torch reference against a plain-Python oracle, and the Triton kernel against the reference.

Where each part runs:
- the reference (`verify_reference`, and `verify`/`verify_block` on CPU tensors): everywhere, on CPU;
- the Triton kernel on CPU tensors: in Triton's interpreter, which must be switched on before the kernel is imported,
  so those checks run this file as a script in a subprocess with `TRITON_INTERPRET=1`; skipped without Triton;
- the compiled Triton kernel: on a CUDA GPU only.

Run from the repository root: `python -m pytest kernels/jacobi_verify/tests`.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

KERNEL_DIR = Path(__file__).resolve().parents[1]
HAS_TRITON = importlib.util.find_spec("triton") is not None
NO_TRITON = "Triton is not installed (pip install triton); the reference path is tested without it"
NO_GPU = "needs a CUDA GPU: Triton compiles the kernel for GPUs (the interpreter check covers its logic on CPU)"


def load_kernel():
    import kernels

    return kernels.get_local_kernel(KERNEL_DIR)


def oracle(draft, logits, num_candidates, fill_value):
    """The verification step written out with Python loops, independent of both implementations."""
    rows, n = draft.shape
    predictions = logits.argmax(-1)
    accepted = []
    for row in range(rows):
        length = 1
        while length < n and int(draft[row, length]) == int(predictions[row, length - 1]):
            length += 1
        accepted.append(length)
    best, next_draft = [], []
    for seq in range(rows // num_candidates):
        lengths = accepted[seq * num_candidates : (seq + 1) * num_candidates]
        choice = lengths.index(max(lengths))
        row = seq * num_candidates + choice
        tail = predictions[row, accepted[row] :].tolist()
        best.append(choice)
        next_draft.append(tail + [fill_value] * (n - len(tail)))
    return predictions, torch.tensor(accepted), torch.tensor(best), torch.tensor(next_draft)


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


def special_values_case(generator):
    """NaN (counts as the maximum, the first one wins), all -inf, +inf ties and an all-equal row."""
    draft, _ = random_case(generator, 2, 2, 5, 600)
    logits = torch.randn(4, 5, 600, generator=generator)
    logits[0, 0] = float("-inf")
    logits[0, 1, 7], logits[0, 1, 500] = float("nan"), float("nan")
    logits[1, 2] = float("inf")
    logits[2, 3, 590] = float("nan")
    logits[3] = 0.0
    return draft, logits


def assert_same(out, expected, context):
    for name, value, target in zip(("predictions", "accepted", "best", "next_draft"), out, expected, strict=True):
        assert torch.equal(value.cpu(), target.cpu()), f"{name} differs for {context}: {value} vs {target}"


# --- the reference, on CPU -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch,candidates,n,vocab", [(1, 1, 1, 50), (2, 3, 4, 300), (3, 2, 16, 700), (1, 4, 8, 9)])
def test_reference_matches_oracle(jacobi_verify, batch, candidates, n, vocab):
    generator = torch.Generator().manual_seed(batch * 100 + n)
    for fill_value in (0, 5):
        draft, logits = random_case(generator, batch, candidates, n, vocab)
        expected = oracle(draft, logits, candidates, fill_value)
        assert_same(jacobi_verify.verify_reference(draft, logits, candidates, fill_value), expected, "reference")


def test_reference_special_values(jacobi_verify):
    draft, logits = special_values_case(torch.Generator().manual_seed(0))
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        scores = logits.to(dtype)
        out = jacobi_verify.verify_reference(draft, scores, 2, 0)
        assert torch.equal(out.predictions, scores.argmax(-1)), dtype
        assert_same(out, oracle(draft, scores, 2, 0), dtype)


def test_verify_on_cpu_runs_the_reference(jacobi_verify, monkeypatch):
    """Without the interpreter, CPU tensors (and unsupported dtypes) take the reference path of `verify`."""
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    generator = torch.Generator().manual_seed(1)
    draft, logits = random_case(generator, 2, 3, 6, 400)
    assert not jacobi_verify.triton_available(logits)
    assert not jacobi_verify.triton_available(logits.double())
    expected = jacobi_verify.verify_reference(draft, logits, 3, 7)
    assert_same(jacobi_verify.verify(draft, logits, 3, 7), expected, "verify")
    assert_same(jacobi_verify.verify(draft.int(), logits.double(), 3, 7), expected, "verify (int32 draft, float64)")


def test_verify_block(jacobi_verify):
    generator = torch.Generator().manual_seed(2)
    draft, logits = random_case(generator, 3, 1, 8, 300)
    predictions, accepted = jacobi_verify.verify_block(draft, logits)
    expected = jacobi_verify.verify_reference(draft, logits)
    assert torch.equal(predictions, expected.predictions) and torch.equal(accepted, expected.accepted)
    torch.manual_seed(0)
    sampled, sampled_accepted = jacobi_verify.verify_block(draft, logits, do_sample=True)
    assert sampled.shape == draft.shape and sampled_accepted.shape == (3,)
    assert torch.equal(sampled_accepted, jacobi_verify.accept_length(draft, sampled))


def test_input_checks(jacobi_verify):
    draft, logits = torch.zeros(4, 3, dtype=torch.long), torch.zeros(4, 3, 10)
    with pytest.raises(ValueError, match="Expected draft"):
        jacobi_verify.verify(draft, logits[:, :2])
    with pytest.raises(ValueError, match="multiple of num_candidates"):
        jacobi_verify.verify(draft, logits, num_candidates=3)
    with pytest.raises(ValueError, match="must not be empty"):
        jacobi_verify.verify(draft[:, :0], logits[:, :0])


# --- the Triton kernel ---------------------------------------------------------------------------------------------


@pytest.mark.skipif(not HAS_TRITON, reason=NO_TRITON)
def test_triton_kernel_matches_reference_in_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1", HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, __file__, "interpreter"], check=False, env=env, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    if "interpreter: skip" in result.stdout:
        pytest.skip(result.stdout.split("interpreter: skip: ", 1)[1].strip())
    assert "interpreter: ok" in result.stdout


@pytest.mark.skipif(not torch.cuda.is_available(), reason=NO_GPU)
@pytest.mark.skipif(not HAS_TRITON, reason=NO_TRITON)
def test_triton_kernel_on_cuda(jacobi_verify):
    generator = torch.Generator(device="cuda").manual_seed(0)
    cases = [(1, 1, 1, 32000), (1, 1, 16, 151936), (2, 3, 16, 32000), (4, 1, 64, 151936), (1, 2, 256, 151936)]
    for batch, candidates, n, vocab in cases:
        for dtype in (torch.float32, torch.bfloat16):
            draft, logits = random_case(generator, batch, candidates, n, vocab, dtype, device="cuda")
            expected = jacobi_verify.verify_reference(draft, logits, candidates, 0)
            assert jacobi_verify.triton_available(logits)
            assert_same(jacobi_verify.verify(draft, logits, candidates, 0), expected, "verify")
            for num_splits in (None, 1, 7):
                for _ in range(3):  # the cross-program hand-off (atomic counters) must hold on every run
                    out = jacobi_verify.verify_triton(draft, logits, candidates, 0, num_splits=num_splits)
                    assert_same(out, expected, (batch, candidates, n, vocab, dtype, num_splits))
    draft, logits = special_values_case(torch.Generator().manual_seed(0))
    draft, logits = draft.cuda(), logits.cuda()
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        scores = logits.to(dtype)
        expected = jacobi_verify.verify_reference(draft, scores, 2, 0)
        for num_splits in (1, 3):
            assert_same(jacobi_verify.verify_triton(draft, scores, 2, 0, num_splits=num_splits), expected, dtype)


# --- run in a subprocess under TRITON_INTERPRET=1 ------------------------------------------------------------------


def interpreter_runs_runtime_loops() -> str | None:
    """Why this Triton's interpreter cannot run the kernel, or None. Triton 3.6's interpreter turns loop bounds that
    are kernel arguments into Python ints with `int(array)`, which numpy 2 refuses for 1-element arrays (Triton 3.9
    runs it). The compiled kernel is unaffected."""
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


def interpreter_check():
    kernel = load_kernel()
    assert kernel.triton_available(torch.zeros(1)), "TRITON_INTERPRET=1 should route CPU tensors to Triton"
    generator = torch.Generator().manual_seed(0)
    cases = [
        # (batch, candidates, n, vocab, num_splits, block_v)
        (1, 1, 1, 300, None, None),
        (1, 1, 4, 2048, None, 256),
        (3, 1, 16, 300, 3, 64),
        (2, 3, 4, 1000, 1, 128),
        (1, 3, 16, 2000, 4, 256),
        (3, 2, 1, 700, 2, 128),
        (2, 2, 16, 257, None, 32),
    ]
    for batch, candidates, n, vocab, num_splits, block_v in cases:
        draft, logits = random_case(generator, batch, candidates, n, vocab)
        context = (batch, candidates, n, vocab, num_splits, block_v)
        expected = kernel.verify_reference(draft, logits, candidates, 9)
        out = kernel.verify_triton(draft, logits, candidates, 9, num_splits=num_splits, block_v=block_v)
        assert_same(out, expected, context)
        assert_same(out, oracle(draft, logits, candidates, 9), context)
    draft, logits = special_values_case(generator)
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        for num_splits in (1, 3):
            scores = logits.to(dtype)
            expected = kernel.verify_reference(draft, scores, 2, 0)
            assert_same(kernel.verify_triton(draft, scores, 2, 0, num_splits=num_splits, block_v=64), expected, dtype)
    strided = torch.randn(4, 7, 603, generator=generator)[:, 1:6, :600]
    assert_same(
        kernel.verify_triton(draft, strided, 2, 0, num_splits=2, block_v=64),
        kernel.verify_reference(draft, strided, 2, 0),
        "strided",
    )
    assert_same(kernel.verify(draft.int(), strided), kernel.verify_reference(draft, strided), "verify")


if __name__ == "__main__":
    torch.set_num_threads(1)
    if (reason := interpreter_runs_runtime_loops()) is not None:
        print(f"{sys.argv[1]}: skip: {reason}")
        sys.exit(0)
    {"interpreter": interpreter_check}[sys.argv[1]]()
    print(f"{sys.argv[1]}: ok")
