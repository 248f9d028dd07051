import time, statistics, torch
from hf_jacobi.loading import load_model
from torch.profiler import profile, ProfilerActivity
torch.set_num_threads(2)
for dtype in ("float32", "bfloat16"):
    model, tok = load_model(dtype=dtype)
    ctx = torch.arange(256)[None] % 1000
    with torch.inference_mode():
        out = model(input_ids=ctx, use_cache=True); cache = out.cache
        def step(n):
            model(input_ids=torch.arange(n)[None] + 5, cache=cache, use_cache=True); cache.crop(-n)
        for n in (1, 16):
            for _ in range(3): step(n)
            ts = []
            for _ in range(9):
                t = time.perf_counter(); step(n); ts.append(time.perf_counter() - t)
            print(dtype, n, "median ms", round(1000 * statistics.median(ts), 1), flush=True)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(5): step(1)
    ev = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in ev)
    print(dtype, "ops per 1-token forward:", sum(e.count for e in ev) // 5)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
