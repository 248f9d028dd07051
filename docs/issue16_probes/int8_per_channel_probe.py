"""int8 dynamic quantization with per-channel weight scales (torch.ao per_channel_dynamic_qconfig), with and
without lm_head: 1-token forward cost after a 256-token cache (best of 7) and how long greedy stays equal to fp32
greedy (96 new tokens, one prompt)."""
import copy, json, sys, time, torch
from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
from transformers import DynamicCache
from hf_jacobi.loading import load_model, chat_prompt

torch.set_num_threads(2)
fp32, tok = load_model(dtype="float32")
inputs = tok(chat_prompt(tok, "Write a Python function that checks whether a string is a palindrome."), return_tensors="pt")
with torch.inference_mode():
    reference = fp32.generate(**inputs, do_sample=False, max_new_tokens=96)[0, inputs["input_ids"].shape[1]:].tolist()
context = torch.randint(100, 10000, (1, 256))
results = {}
for name, skip_head in (("per-channel, all linears", False), ("per-channel, lm_head in fp32", True)):
    model = copy.deepcopy(fp32)
    spec = {name_: per_channel_dynamic_qconfig for name_, m in model.named_modules()
            if isinstance(m, torch.nn.Linear) and not (skip_head and name_ == "lm_head")}
    model = quantize_dynamic(model, spec, dtype=torch.qint8)
    times = []
    for _ in range(7):
        with torch.inference_mode():
            cache = DynamicCache(config=model.config)
            model(input_ids=context, past_key_values=cache, use_cache=True)
            t = time.perf_counter()
            model(input_ids=context[:, :1], past_key_values=cache, use_cache=True)
            times.append(time.perf_counter() - t)
    with torch.inference_mode():
        out = model.generate(**inputs, do_sample=False, max_new_tokens=96)[0, inputs["input_ids"].shape[1]:].tolist()
    first = next((i for i, (a, b) in enumerate(zip(out, reference)) if a != b), None)
    results[name] = {"forward_1_ms": round(1000 * min(times), 1), "greedy_equal_to_fp32_for": first if first is not None else len(out)}
    print(name, results[name], flush=True)
print(json.dumps(results, indent=1))
if len(sys.argv) > 1:
    open(sys.argv[1], "w").write(json.dumps(results, indent=1))
