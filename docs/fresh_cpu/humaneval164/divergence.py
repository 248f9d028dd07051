"""Where the round-6 model leaves the base model's answer on base-passing HumanEval problems, and how close the base
model's own choice was there (margin between its top-2 log-probs)."""
import json, sys
import torch
from transformers import AutoModelForCausalLM
from hf_jacobi.benchmark import humaneval_prompt, load_humaneval, passes_tests
from hf_jacobi.loading import load_model

ids = sys.argv[2:]
base, tok = load_model()
tuned = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32).eval()
problems = {p["task_id"]: p for p in load_humaneval(164)}
rows = []
for tid in ids:
    p = problems[tid]
    inputs = tok(humaneval_prompt(tok, p), return_tensors="pt")
    n = inputs["input_ids"].shape[1]
    with torch.inference_mode():
        a = base.generate(**inputs, do_sample=False, max_new_tokens=256)[0, n:]
        b = tuned.generate(**inputs, do_sample=False, max_new_tokens=256)[0, n:]
    k = next((i for i in range(min(len(a), len(b))) if a[i] != b[i]), None)
    row = {"task_id": tid, "tuned_passes": passes_tests(p, tok.decode(b, skip_special_tokens=True)), "first_diff": k}
    if k is not None:
        ctx = torch.cat([inputs["input_ids"][0], a[:k]])[None]
        with torch.inference_mode():
            lb = base(ctx).logits[0, -1].log_softmax(-1)
            lt = tuned(ctx).logits[0, -1].log_softmax(-1)
        top = lb.topk(2)
        row |= {"base_margin": float(top.values[0] - top.values[1]), "base_tok": tok.decode(a[k]), "tuned_tok": tok.decode(b[k]),
                "tuned_margin_for_own": float(lt[b[k]] - lt[a[k]]), "context": tok.decode(a[max(0, k - 12):k])}
    rows.append(row)
    print(json.dumps(row), flush=True)
