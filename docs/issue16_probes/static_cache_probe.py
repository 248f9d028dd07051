"""Greedy decoding of SmolLM2 on the dev CPU: DynamicCache vs StaticCache (and whatever generate compiles with it)."""
import time, statistics, torch
from hf_jacobi.loading import load_model, chat_prompt
torch.set_num_threads(2)
for dtype in ("bfloat16", "float32"):
    model, tok = load_model(dtype=dtype)
    inputs = tok(chat_prompt(tok, "Write a Python function that reverses a linked list."), return_tensors="pt")
    runs = {}
    for name, kw in (("dynamic", {}), ("static", {"cache_implementation": "static"})):
        t = time.perf_counter()
        with torch.inference_mode():
            first = model.generate(**inputs, do_sample=False, max_new_tokens=8, **kw)
        warm = time.perf_counter() - t
        times = []
        for _ in range(3):
            t = time.perf_counter()
            with torch.inference_mode():
                out = model.generate(**inputs, do_sample=False, max_new_tokens=64, min_new_tokens=64, **kw)
            times.append(time.perf_counter() - t)
        runs[name] = out
        print(dtype, name, "warm-up s", round(warm, 1), "ms/token", round(1000 * statistics.median(times) / 64, 1), flush=True)
    print(dtype, "same tokens:", torch.equal(runs["dynamic"], runs["static"]), flush=True)
