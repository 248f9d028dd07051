"""Base model on the 16 held-out prompts, bf16, block 16, lookup rows (ngram 2) with the clean carry and filler 16:
what the lookup rows give without the adapter (same settings as fresh_rows_eval's lookup rows)."""
import json, torch
import hf_jacobi  # noqa
from hf_jacobi.loading import chat_prompt, load_model
from hf_jacobi.training.pipeline import _eval_prompts
model, tok = load_model(dtype="bfloat16")
res = {}
for name, kw in {"n=16 clean + lookup 2": dict(draft_carry="clean", lookup_ngram=2),
                 "n=16 clean + 3 fresh rows + lookup 2": dict(draft_carry="clean", lookup_ngram=2, fresh_rows=3)}.items():
    tokens = forwards = 0
    for p in _eval_prompts(16):
        inputs = tok(chat_prompt(tok, p), return_tensors="pt")
        out = model.generate(**inputs, do_sample=False, max_new_tokens=128, generation_mode="jacobi", block_size=16,
                             draft_init=16, return_dict_in_generate=True, pad_token_id=tok.pad_token_id, **kw)
        tokens += int(out.accepted_tokens.sum()); forwards += out.num_forwards
    res[name] = tokens / forwards
    print(name, round(tokens / forwards, 3), flush=True)
json.dump(res, open("base_lookup.json", "w"), indent=1)
