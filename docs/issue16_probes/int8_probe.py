"""Per-forward cost of SmolLM2 on the dev CPU with int8 weights (torch dynamic quantization of every nn.Linear,
lm_head included) against fp32 and bf16: one forward of 1 / 16 new tokens after a 256-token cache, best of 7; then
greedy and Jacobi (block 16) tokens/s on one prompt, 96 new tokens, int8 against fp32."""
import copy, json, sys, time, torch
from transformers import DynamicCache
from hf_jacobi.loading import load_model, chat_prompt

torch.set_num_threads(2)
fp32, tok = load_model(dtype="float32")
models = {"float32": fp32, "bfloat16": copy.deepcopy(fp32).to(torch.bfloat16),
          "int8 (dynamic)": torch.ao.quantization.quantize_dynamic(copy.deepcopy(fp32), {torch.nn.Linear}, dtype=torch.qint8)}
context = torch.randint(100, 10000, (1, 256))
results = {}
for name, model in models.items():
    row = {}
    for new in (1, 16):
        times = []
        for _ in range(7):
            with torch.inference_mode():
                cache = DynamicCache(config=model.config)
                model(input_ids=context, past_key_values=cache, use_cache=True)
                ids = torch.randint(100, 10000, (1, new))
                t = time.perf_counter()
                model(input_ids=ids, past_key_values=cache, use_cache=True)
                times.append(time.perf_counter() - t)
        row[f"forward_{new}_ms"] = round(1000 * min(times), 1)
    results[name] = row
    print(name, row, flush=True)
inputs = tok(chat_prompt(tok, "Write a Python function that checks whether a string is a palindrome."), return_tensors="pt")
for name in ("float32", "int8 (dynamic)"):
    model = models[name]
    for mode, kw in (("greedy", {}), ("jacobi", {"generation_mode": "jacobi", "block_size": 16})):
        with torch.inference_mode():
            model.generate(**inputs, do_sample=False, max_new_tokens=8, **kw)
            t = time.perf_counter()
            out = model.generate(**inputs, do_sample=False, max_new_tokens=96, **kw)
            seconds = time.perf_counter() - t
        new = out.shape[1] - inputs["input_ids"].shape[1]
        results[name][f"{mode}_tokens_per_s"] = round(new / seconds, 1)
        results[name][f"{mode}_ids"] = out[0, inputs["input_ids"].shape[1]:].tolist()
    print(name, {k: v for k, v in results[name].items() if not k.endswith("ids")}, flush=True)
for name in ("float32", "int8 (dynamic)"):
    r = results[name]
    r["jacobi_equals_greedy"] = r.pop("jacobi_ids") == r["greedy_ids"]
same = results["float32"]["greedy_ids"] == results["int8 (dynamic)"]["greedy_ids"]
first_diff = next((i for i, (a, b) in enumerate(zip(results["float32"]["greedy_ids"], results["int8 (dynamic)"]["greedy_ids"])) if a != b), None)
for name in ("float32", "int8 (dynamic)"):
    results[name].pop("greedy_ids")
results["int8_greedy_equals_fp32_greedy"] = same
results["int8_first_difference"] = first_diff
print(json.dumps(results, indent=1))
if len(sys.argv) > 1:
    open(sys.argv[1], "w").write(json.dumps(results, indent=1))
