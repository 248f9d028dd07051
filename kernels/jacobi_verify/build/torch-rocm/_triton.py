# Copyright 2026 The hf_jacobi authors. Apache-2.0.
"""The Jacobi verification step as one fused Triton kernel.

One launch does everything. Program `(p, s)` takes block position `p` (a `(row, position)` pair) and the `s`-th slice
of the vocabulary, and scans it in tiles for the first maximal logit. With several slices, the program that finishes
last for its position (an atomic counter) combines the slices. The program that finishes last for a whole sequence
(another atomic counter, over its `num_candidates * n` positions) then computes the accepted prefix of each candidate
row, the best row and the next draft. Ties and NaN follow `torch.argmax`: the first maximal index wins, and a NaN counts
as the maximum.

Set `TRITON_INTERPRET=1` before this module is imported to run the kernel on CPU tensors in Triton's interpreter.
"""

from __future__ import annotations

import os
from contextlib import nullcontext

import torch

from ._reference import VerifyOutput, check_inputs

try:
    import triton
    import triton.language as tl
except ImportError:  # the pure-torch reference still works
    triton = None

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)  # converted to float32 exactly


def interpreter_enabled() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


if triton is not None:

    @triton.jit
    def _epilogue(
        seq,
        draft_ptr,
        pred_ptr,
        accepted_ptr,
        best_ptr,
        next_ptr,
        n,
        stride_draft,
        fill_value,
        NUM_CAND: tl.constexpr,
        BLOCK_N: tl.constexpr,
        BLOCK_C: tl.constexpr,
    ):
        """Accepted prefixes, best candidate and next draft of sequence `seq`, once all its predictions exist."""
        cand = tl.arange(0, BLOCK_C)
        pos = tl.arange(0, BLOCK_N)
        rows = seq * NUM_CAND + cand
        cand_ok = cand < NUM_CAND
        # draft[:, i + 1] is checked against predictions[:, i] for i < n - 1.
        pair_ok = cand_ok[:, None] & (pos[None, :] < n - 1)
        row_pred = pred_ptr + rows[:, None].to(tl.int64) * n + pos[None, :]
        pred = tl.load(row_pred, mask=pair_ok, other=-1, cache_modifier=".cg")
        draft = tl.load(
            draft_ptr + rows[:, None].to(tl.int64) * stride_draft + pos[None, :] + 1, mask=pair_ok, other=-1
        )
        mismatch = (pred != draft) & pair_ok
        accepted = tl.min(tl.where(mismatch, pos[None, :], n - 1), axis=1) + 1
        tl.store(accepted_ptr + rows, accepted.to(tl.int64), mask=cand_ok)

        accepted = tl.where(cand_ok, accepted, -1)
        best_accepted = tl.max(accepted, axis=0)
        best = tl.min(tl.where(accepted == best_accepted, cand, BLOCK_C), axis=0)
        tl.store(best_ptr + seq, best.to(tl.int64))

        source = best_accepted + pos
        best_row = (seq * NUM_CAND + best).to(tl.int64)
        shifted = tl.load(pred_ptr + best_row * n + source, mask=source < n, other=0, cache_modifier=".cg")
        fill = tl.zeros((BLOCK_N,), tl.int64) + fill_value
        tl.store(next_ptr + seq.to(tl.int64) * n + pos, tl.where(source < n, shifted, fill), mask=pos < n)

    @triton.jit
    def _verify_kernel(
        logits_ptr,
        draft_ptr,
        pred_ptr,
        accepted_ptr,
        best_ptr,
        next_ptr,
        part_val_ptr,
        part_idx_ptr,
        count_ptr,
        n,
        vocab,
        split_size,
        stride_row,
        stride_pos,
        stride_draft,
        fill_value,
        NUM_CAND: tl.constexpr,
        SPLITS: tl.constexpr,
        BLOCK_V: tl.constexpr,
        BLOCK_S: tl.constexpr,
        BLOCK_N: tl.constexpr,
        BLOCK_C: tl.constexpr,
    ):
        position = tl.program_id(0)  # row * n + i
        split = tl.program_id(1)
        row = position // n
        i = position % n
        base = logits_ptr + row.to(tl.int64) * stride_row + i.to(tl.int64) * stride_pos

        # First maximal index in this slice; NaN is tracked apart because it compares false with everything.
        start = split * split_size
        end = tl.minimum(start + split_size, vocab)
        offsets = tl.arange(0, BLOCK_V)
        run_max = tl.full((), float("-inf"), tl.float32)
        run_idx = start
        nan_idx = tl.zeros((), tl.int32) + vocab
        for tile in range(start, end, BLOCK_V):
            idx = tile + offsets
            in_range = idx < end
            x = tl.load(base + idx, mask=in_range, other=float("-inf")).to(tl.float32)
            is_nan = x != x  # noqa: PLR0124 (NaN test)
            nan_idx = tl.minimum(nan_idx, tl.min(tl.where(is_nan & in_range, idx, vocab), axis=0))
            x = tl.where(is_nan, float("-inf"), x)
            tile_max = tl.max(x, axis=0)
            tile_idx = tl.min(tl.where((x == tile_max) & in_range, idx, vocab), axis=0)
            better = tile_max > run_max  # strict: an earlier tile keeps a tie
            run_idx = tl.where(better, tile_idx, run_idx)
            run_max = tl.where(better, tile_max, run_max)
        has_nan = nan_idx < vocab

        if SPLITS == 1:
            prediction = tl.where(has_nan, nan_idx, run_idx)
            tl.store(pred_ptr + position, prediction.to(tl.int64))
            tl.debug_barrier()
            seq = row // NUM_CAND
            arrived = tl.atomic_add(count_ptr + seq, 1, sem="acq_rel")
            if arrived == NUM_CAND * n - 1:
                _epilogue(
                    seq, draft_ptr, pred_ptr, accepted_ptr, best_ptr, next_ptr, n, stride_draft, fill_value,
                    NUM_CAND, BLOCK_N, BLOCK_C,
                )  # fmt: skip
        else:
            part = position.to(tl.int64) * SPLITS + split
            tl.store(part_val_ptr + part, tl.where(has_nan, float("nan"), run_max))
            tl.store(part_idx_ptr + part, tl.where(has_nan, nan_idx, run_idx))
            tl.debug_barrier()
            slices_done = tl.atomic_add(count_ptr + position, 1, sem="acq_rel")
            if slices_done == SPLITS - 1:
                # Last slice of this position: combine the slices (in vocabulary order, so ties keep the first).
                s = tl.arange(0, BLOCK_S)
                s_ok = s < SPLITS
                first = position.to(tl.int64) * SPLITS
                vals = tl.load(part_val_ptr + first + s, mask=s_ok, other=float("-inf"), cache_modifier=".cg")
                idxs = tl.load(part_idx_ptr + first + s, mask=s_ok, other=vocab, cache_modifier=".cg")
                slice_nan = (vals != vals) & s_ok  # noqa: PLR0124 (NaN test)
                first_nan = tl.min(tl.where(slice_nan, idxs, vocab), axis=0)
                vals = tl.where(slice_nan, float("-inf"), vals)
                best_val = tl.max(vals, axis=0)
                best_idx = tl.min(tl.where((vals == best_val) & s_ok, idxs, vocab), axis=0)
                prediction = tl.where(first_nan < vocab, first_nan, best_idx)
                tl.store(pred_ptr + position, prediction.to(tl.int64))
                tl.debug_barrier()
                seq = row // NUM_CAND
                arrived = tl.atomic_add(count_ptr + tl.num_programs(0) + seq, 1, sem="acq_rel")
                if arrived == NUM_CAND * n - 1:
                    _epilogue(
                        seq, draft_ptr, pred_ptr, accepted_ptr, best_ptr, next_ptr, n, stride_draft, fill_value,
                        NUM_CAND, BLOCK_N, BLOCK_C,
                    )  # fmt: skip


def _cdiv(a: int, b: int) -> int:
    return -(-a // b)


def _next_power_of_2(x: int) -> int:
    return 1 << max(0, (x - 1).bit_length())


def _target_programs(device: torch.device) -> int:
    if device.type == "cuda":
        return 4 * torch.cuda.get_device_properties(device).multi_processor_count
    return 64


def verify_triton(
    draft: torch.Tensor,
    logits: torch.Tensor,
    num_candidates: int = 1,
    fill_value: int = 0,
    *,
    num_splits: int | None = None,
    block_v: int | None = None,
) -> VerifyOutput:
    """Fused Jacobi verification (see `verify_reference` for the arguments); identical results.

    Args:
        num_splits (`int`, *optional*): vocabulary slices per position (more programs when the block is small).
            Chosen from the device's multiprocessor count by default.
        block_v (`int`, *optional*): vocabulary tile (a power of 2).
    """
    if triton is None:
        raise RuntimeError("The fused verification kernel needs Triton: pip install triton.")
    batch, num_candidates, n = check_inputs(draft, logits, num_candidates)
    if logits.dtype not in SUPPORTED_DTYPES:
        raise TypeError(f"Logits of dtype {logits.dtype} are not supported; use one of {SUPPORTED_DTYPES}.")
    if logits.device.type == "cpu" and not interpreter_enabled():
        raise RuntimeError("CPU tensors run only in Triton's interpreter (TRITON_INTERPRET=1 before importing).")
    rows, vocab = draft.shape[0], logits.shape[-1]
    if logits.stride(-1) != 1:
        logits = logits.contiguous()
    draft = draft.to(torch.long)
    if draft.stride(-1) != 1:
        draft = draft.contiguous()
    device = logits.device
    draft = draft.to(device)

    if block_v is None:
        block_v = 4096 if vocab >= 32768 else 1024
    block_v = min(_next_power_of_2(block_v), _next_power_of_2(vocab))
    positions = rows * n
    tiles = _cdiv(vocab, block_v)
    if num_splits is None:
        num_splits = min(tiles, 64, max(1, _cdiv(_target_programs(device), positions)))
    num_splits = max(1, min(num_splits, tiles))
    split_size = _cdiv(tiles, num_splits) * block_v
    num_splits = _cdiv(vocab, split_size)  # no empty slice

    predictions = torch.empty((rows, n), dtype=torch.long, device=device)
    accepted = torch.empty(rows, dtype=torch.long, device=device)
    best = torch.empty(batch, dtype=torch.long, device=device)
    next_draft = torch.empty((batch, n), dtype=torch.long, device=device)
    if num_splits > 1:
        part_val = torch.empty(positions * num_splits, dtype=torch.float32, device=device)
        part_idx = torch.empty(positions * num_splits, dtype=torch.int32, device=device)
        counts = torch.zeros(positions + batch, dtype=torch.int32, device=device)
    else:
        part_val, part_idx = predictions, predictions  # unused
        counts = torch.zeros(batch, dtype=torch.int32, device=device)

    grid = (positions, num_splits)
    with torch.cuda.device(device) if device.type == "cuda" else nullcontext():
        _verify_kernel[grid](
            logits,
            draft,
            predictions,
            accepted,
            best,
            next_draft,
            part_val,
            part_idx,
            counts,
            n,
            vocab,
            split_size,
            logits.stride(0),
            logits.stride(1),
            draft.stride(0),
            fill_value,
            NUM_CAND=num_candidates,
            SPLITS=num_splits,
            BLOCK_V=block_v,
            BLOCK_S=_next_power_of_2(num_splits),
            BLOCK_N=_next_power_of_2(n),
            BLOCK_C=_next_power_of_2(num_candidates),
            num_warps=8 if block_v >= 4096 else 4,
        )
    return VerifyOutput(predictions, accepted, best, next_draft)
