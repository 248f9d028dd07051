"""`block_size="auto"`: pick the Jacobi block size from forward timings on this device and the acceptance observed.

Two parts:

1. **Calibration** (`forward_costs`): the time of one forward of `m` new tokens over a small cache, for
   `m = 1, 2, 4, ..., 64`, with the actual model on its device (median of a few repeats after a warm-up). It is cached
   per model and device, in memory and on disk (`$HF_JACOBI_CACHE/calibration.json`, default
   `~/.cache/hf_jacobi/calibration.json`), so it runs once per model, device, dtype and attention implementation.
2. **Choice** (`AutoBlockSize`): a block-size policy for `jacobi_decode`. It records, for every draft position `j`,
   how often the draft survived up to `j` and how often its token `j` was then accepted, estimates from that the
   expected tokens per forward `E[TPF(n)]` of every block size `n`, and picks the `n` maximising the speed-up over
   greedy decoding, `E[TPF(n)] * cost(1) / cost(n)` (`n = 1` is exactly greedy decoding: one token per forward of
   cost `cost(1)`). Unless that speed-up is clearly above 1 (`min_gain`) it picks `n = 1`, so an untrained model is
   decoded at plain greedy cost after a few cheap probe forwards.

Any block size, changed at any forward, gives the greedy output (and the sampling distribution): the policy only
changes the speed. `jacobi.py` stays free of this module: `generate(block_size="auto")` builds the policy here (see
`integration.py`) and hands it to `jacobi_decode` as `block_size_policy`.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from .configuration_jacobi import cache_rolls_back

logger = logging.getLogger(__name__)

CALIBRATION_SIZES = (1, 2, 4, 8, 16, 32, 64)
_MEMORY: dict[str, dict[int, float]] = {}
# Config entries that do not change the cost of a forward.
_VOLATILE_CONFIG_KEYS = ("_name_or_path", "transformers_version", "_commit_hash", "name_or_path")


def calibration_file() -> Path:
    """The calibration store: `$HF_JACOBI_CACHE/calibration.json`, else `~/.cache/hf_jacobi/calibration.json`."""
    root = os.environ.get("HF_JACOBI_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "hf_jacobi") / "calibration.json"


def _device_name(device: torch.device) -> str:
    if device.type == "cuda" and torch.cuda.is_available():
        return f"cuda:{torch.cuda.get_device_name(device)}"
    if device.type == "cpu":
        return f"cpu:{platform.machine()}:{torch.get_num_threads()}threads"
    return str(device)


def calibration_key(model) -> str:
    """Identifies what the forward cost depends on: model name, architecture (config hash), dtype, attention
    implementation and device (GPU name, or CPU architecture and thread count)."""
    config = model.config.to_dict()
    for key in _VOLATILE_CONFIG_KEYS:
        config.pop(key, None)
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()[:16]
    name = getattr(model.config, "name_or_path", "") or "unnamed"
    attn = getattr(model.config, "_attn_implementation", None)
    return f"{name}|{digest}|{model.dtype}|{attn}|{_device_name(model.device)}"


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type != "cpu" and hasattr(torch, "accelerator"):
        torch.accelerator.synchronize(device)


@torch.inference_mode()
def measure_forward_costs(model, sizes=CALIBRATION_SIZES, context_length: int = 64, repeats: int = 5,
                          warmup: int = 1, filler_token_id: int | None = None) -> dict[int, float]:
    """Median seconds of one forward of `m` new tokens after a cache of `context_length` tokens, for each `m` in
    `sizes`. The cache is rolled back after every forward, so every measurement sees the same cache. With
    `filler_token_id`, the timed tokens after the first are that filler, as in a fresh Jacobi draft (a filler-gated
    adapter, `hf_jacobi.filler_gate`, runs only on forwards that hold it)."""
    device = model.device
    vocab = model.get_input_embeddings().num_embeddings
    context = (torch.arange(context_length, device=device) % vocab)[None]
    outputs = model(input_ids=context, use_cache=True)
    cache = getattr(outputs, "cache", None)
    if cache is None or not cache_rolls_back(cache):
        raise ValueError(
            f"block_size='auto' times forwards over a KV cache that is rolled back after each; {type(model).__name__} "
            "has no croppable cache. Pass an int block_size."
        )
    cache.activate_past_recording()
    costs = {}
    for size in sizes:
        tokens = (torch.arange(size, device=device) % vocab)[None]
        if filler_token_id is not None:
            tokens[:, 1:] = filler_token_id
        times = []
        for repeat in range(warmup + repeats):
            _synchronize(device)
            start = time.perf_counter()
            model(input_ids=tokens, cache=cache, use_cache=True)
            _synchronize(device)
            elapsed = time.perf_counter() - start
            cache.crop(-size)
            if repeat >= warmup:
                times.append(elapsed)
        costs[size] = statistics.median(times)
    return costs


def _read_disk() -> dict:
    try:
        return json.loads(calibration_file().read_text())
    except (OSError, ValueError):
        return {}


def _write_disk(key: str, costs: dict[int, float]) -> None:
    path = calibration_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        stored = _read_disk()
        stored[key] = {"costs": {str(size): cost for size, cost in sorted(costs.items())}, "created": time.time()}
        with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp") as handle:
            json.dump(stored, handle, indent=1, sort_keys=True)
        os.replace(handle.name, path)
    except OSError as error:  # a read-only home must not break generation
        logger.warning("Could not store the block-size calibration in %s: %s", path, error)


def forward_costs(model, sizes=CALIBRATION_SIZES, refresh: bool = False, **measure_kwargs) -> dict[int, float]:
    """Forward cost (seconds) per number of new tokens for this model on its device, calibrated once and cached.

    Looks in memory, then on disk (`calibration_file()`), and measures (`measure_forward_costs`) only when neither
    holds every size in `sizes`, or with `refresh=True`.
    """
    key = calibration_key(model)
    if not refresh:
        costs = _MEMORY.get(key)
        if costs is None:
            entry = _read_disk().get(key)
            if isinstance(entry, dict) and isinstance(entry.get("costs"), dict):
                costs = dict(sorted((int(size), float(cost)) for size, cost in entry["costs"].items()))
        if costs is not None and all(size in costs for size in sizes):
            _MEMORY[key] = costs
            return dict(costs)
    costs = measure_forward_costs(model, sizes, **measure_kwargs)
    _MEMORY[key] = costs
    _write_disk(key, costs)
    return dict(costs)


def clear_memory_cache() -> None:
    """Forget the in-memory calibrations (the disk file stays)."""
    _MEMORY.clear()


def interpolate_cost(costs: dict[int, float], width: float) -> float:
    """Cost of a forward of `width` new tokens from timed widths: piecewise linear, extrapolated along the last
    segment (and flat below the first width)."""
    sizes = sorted(costs)
    if width <= sizes[0] or len(sizes) == 1:
        return costs[sizes[0]]
    for a, b in itertools.pairwise(sizes):
        if width <= b or b == sizes[-1]:
            return costs[a] + (width - a) * (costs[b] - costs[a]) / (b - a)
    raise AssertionError("unreachable")


class AutoBlockSize:
    r"""Block-size policy for `jacobi_decode(block_size_policy=...)`: the `n` with the best expected speed-up.

    Statistics: for each draft index `j >= 1`, `reached[j]` counts forwards whose draft tokens `0..j-1` were all
    committed and that had a token `j`; `kept[j]` counts those whose token `j` was accepted too. The conditional
    acceptance `q_j = kept[j] / reached[j]` is shrunk towards the pooled rate (which starts pessimistic), so that
    indices seen rarely or never borrow strength from the rest. Then

        E[TPF(n)] = sum_{j=0}^{n-1} prod_{i=1}^{j} q_i,   speed-up(n) = E[TPF(n)] * cost(1) / cost(n),

    with `cost` interpolated from the calibration and made non-decreasing (a forward of more tokens is never assumed
    cheaper). The policy picks the best `n` if its speed-up is at least `min_gain`, else `n = 1`.

    Exploration: the first `probe_forwards` forwards use `probe_size`, the largest calibrated size up to
    `max_probe_size` whose forward costs at most `probe_cost_ratio` times the one-token forward (at least 2). While
    `n = 1` is chosen, a run of `reprobe_forwards` probe forwards is made after `reprobe_every` forwards, the interval
    doubling after each run that does not change the choice, so that a model whose acceptance improves (e.g. on
    repetitive text) is noticed. A run starts with a warm-up forward whose draft is all filler (nothing is carried
    after one-token forwards); it is not recorded, since later forwards draft from carried predictions. Probe forwards
    are the only ones that can cost more than greedy decoding, and their number grows only logarithmically with the
    output length.

    One instance can serve several `generate` calls; its statistics accumulate.

    Args:
        costs (`dict[int, float]`): seconds per forward by number of new tokens (`forward_costs`); must include 1.
        max_block_size (`int`): largest `n` considered.
        min_gain (`float`): smallest expected speed-up over greedy decoding worth a block size > 1.
    """

    def __init__(self, costs: dict[int, float], max_block_size: int = 64, min_gain: float = 1.1,
                 probe_forwards: int = 3, reprobe_forwards: int = 2, reprobe_every: int = 32,
                 probe_cost_ratio: float = 2.0, max_probe_size: int = 16, prior_acceptance: float = 0.1,
                 prior_strength: float = 4.0, shrinkage: float = 2.0):
        if 1 not in costs:
            raise ValueError("`costs` must include the cost of a one-token forward (key 1).")
        if not isinstance(max_block_size, int) or max_block_size < 1:
            raise ValueError(f"`max_block_size` must be an int >= 1, got {max_block_size!r}.")
        self.max_block_size = max_block_size
        self.min_gain = min_gain
        self.probe_forwards = probe_forwards
        self.reprobe_forwards = reprobe_forwards
        self.reprobe_every = reprobe_every
        self.prior_acceptance = prior_acceptance
        self.prior_strength = prior_strength
        self.shrinkage = shrinkage
        self.cost = self._interpolate(costs, max_block_size)
        cheap = [size for size in costs if size <= max_probe_size and costs[size] <= probe_cost_ratio * costs[1]]
        self.probe_size = min(max_block_size, max([2, *cheap]))
        self.reached = torch.zeros(max_block_size + 1, dtype=torch.float64)
        self.kept = torch.zeros(max_block_size + 1, dtype=torch.float64)
        self.forwards = 0
        self.probes_left = probe_forwards
        self.since_probe = 0
        self.reprobe_interval = reprobe_every
        self.last_size = 0
        self.warmup = False
        self._best = None
        self.choices: list[int] = []

    @staticmethod
    def _interpolate(costs: dict[int, float], max_block_size: int) -> torch.Tensor:
        """Cost of `n = 0..max_block_size` new tokens (index 0 unused): `interpolate_cost`, made non-decreasing."""
        cost = torch.tensor([interpolate_cost(costs, n) for n in range(1, max_block_size + 1)], dtype=torch.float64)
        cost = torch.cat([cost[:1], cost])
        return torch.cummax(cost.clamp_min(1e-12), dim=0).values

    @classmethod
    def for_model(cls, model, **kwargs) -> AutoBlockSize:
        """The policy with this model's (cached) calibration on its device."""
        return cls(forward_costs(model), **kwargs)

    def acceptance(self) -> torch.Tensor:
        """Estimated `q_j` for `j = 1..max_block_size - 1` (index 0 unused, 1.0)."""
        pooled = (self.kept[1:].sum() + self.prior_strength * self.prior_acceptance) / (
            self.reached[1:].sum() + self.prior_strength
        )
        q = (self.kept + self.shrinkage * pooled) / (self.reached + self.shrinkage)
        q[0] = 1.0
        return q[: self.max_block_size]

    def expected_tokens(self) -> torch.Tensor:
        """`E[TPF(n)]` for `n = 1..max_block_size` (index `n - 1`)."""
        return torch.cumprod(self.acceptance(), dim=0).cumsum(0)

    def speedups(self) -> torch.Tensor:
        """Expected speed-up over greedy decoding for `n = 1..max_block_size` (index `n - 1`)."""
        return self.expected_tokens() * self.cost[1] / self.cost[1:]

    def best(self) -> tuple[int, float]:
        """The block size to use and its expected speed-up (1 and 1.0 when nothing is clearly faster than greedy)."""
        if self._best is None:  # recomputed only after statistics changed
            gain, index = self.speedups().max(0)
            self._best = (1, 1.0) if float(gain) < self.min_gain else (int(index) + 1, float(gain))
        return self._best

    def next_block_size(self, remaining: int) -> int:
        """Block size of the next forward."""
        if self.probes_left > 0:
            n = self.probe_size
            self.probes_left -= 1
        else:
            n = self.best()[0]
            if n > 1:
                self.since_probe, self.reprobe_interval = 0, self.reprobe_every
            else:
                self.since_probe += 1
                if self.since_probe > self.reprobe_interval:
                    n = self.probe_size
                    self.probes_left = self.reprobe_forwards - 1
                    self.since_probe = 0
                    self.reprobe_interval *= 2  # probes that keep failing become rarer
        n = max(1, min(n, remaining))
        self.warmup = n > 1 and self.last_size <= 1  # nothing carried: an all-filler draft
        self.last_size = n
        self.choices.append(n)
        return n

    def observe(self, draft_length: int, num_accepted: int) -> None:
        """Record one forward: its draft length and the tokens it committed per sequence (with batch > 1 the
        smallest accepted prefix among the unfinished rows, which is what the forward yields)."""
        self.forwards += 1
        length = min(draft_length, self.max_block_size)
        if length < 2 or self.warmup:
            return
        self.reached[1 : min(num_accepted, length - 1) + 1] += 1
        self.kept[1 : min(num_accepted - 1, length - 1) + 1] += 1
        self._best = None

    def __repr__(self) -> str:
        n, gain = self.best()
        name = type(self).__name__
        return f"{name}(best={n}, speedup={gain:.2f}, forwards={self.forwards}, probe={self.probe_size})"

