"""Weight-only int8 + row_exact attention (hf_jacobi.quantization) on SmolLM2: forward costs after a 256-token cache
(best of 7) against float32 and bfloat16, and the largest logit difference between feeding a 16-token block at once
and token by token (0 means a position's logits do not depend on the forward's width).

    python docs/issue16_probes/int8_weight_only_probe.py > docs/issue16_probes/int8_weight_only_probe.json
"""

import copy
import json
import time

import torch

from hf_jacobi.loading import load_model
from hf_jacobi.quantization import quantize_int8

torch.manual_seed(0)
ids = torch.randint(100, 40000, (1, 256))
block = torch.randint(100, 40000, (1, 16))


@torch.no_grad()
def cost(model, n, reps=7):
    best = float("inf")
    for _ in range(reps):
        cache = model(input_ids=ids, use_cache=True).cache
        x = torch.randint(100, 40000, (1, n))
        start = time.perf_counter()
        model(input_ids=x, cache=cache, use_cache=True)
        best = min(best, time.perf_counter() - start)
    return round(1000 * best, 1)


@torch.no_grad()
def width_dependence(model):
    wide = model(input_ids=block, cache=model(input_ids=ids, use_cache=True).cache).logits[0]
    cache = model(input_ids=ids, use_cache=True).cache
    narrow = torch.cat([model(input_ids=block[:, i:i + 1], cache=cache).logits[0] for i in range(16)])
    return (wide.float() - narrow.float()).abs().max().item()


fp32, _ = load_model(dtype="float32", device="cpu")
int8 = quantize_int8(copy.deepcopy(fp32))
int8_sdpa = copy.deepcopy(int8)
int8_sdpa.set_attn_implementation("sdpa")
models = {"float32 (sdpa)": fp32, "bfloat16 (sdpa)": copy.deepcopy(fp32).to(torch.bfloat16),
          "int8 + row_exact": int8, "int8 + sdpa (not exact)": int8_sdpa}
out = {"machine": f"{torch.get_num_threads()} threads, torch {torch.__version__}", "context": 256}
for name, model in models.items():
    out[name] = {"ms": {n: cost(model, n) for n in (1, 4, 8, 16, 32)}, "max_logit_diff_wide_vs_narrow": width_dependence(model)}
print(json.dumps(out, indent=1))
