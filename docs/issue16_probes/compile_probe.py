"""Greedy decoding of SmolLM2 (bf16, dev CPU) with a StaticCache and torch.compile (inductor) on the forward."""
import time, statistics, torch
from transformers import CompileConfig
from hf_jacobi.loading import load_model, chat_prompt
torch.set_num_threads(2)
model, tok = load_model(dtype="bfloat16")
inputs = tok(chat_prompt(tok, "Write a Python function that reverses a linked list."), return_tensors="pt")
kw = {"cache_implementation": "static"}
with torch.inference_mode():
    ref = model.generate(**inputs, do_sample=False, max_new_tokens=64, min_new_tokens=64)
model.forward = torch.compile(model.forward, dynamic=False)  # transformers only auto-compiles on accelerators
t = time.perf_counter()
with torch.inference_mode():
    model.generate(**inputs, do_sample=False, max_new_tokens=8, **kw)
print("compile + 8 tokens s", round(time.perf_counter() - t, 1), flush=True)
times = []
for _ in range(3):
    t = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(**inputs, do_sample=False, max_new_tokens=64, min_new_tokens=64, **kw)
    times.append(time.perf_counter() - t)
print("static+compile ms/token", round(1000 * statistics.median(times) / 64, 1), "same tokens as dynamic:", torch.equal(out, ref), flush=True)
