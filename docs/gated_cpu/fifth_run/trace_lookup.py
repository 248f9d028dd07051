"""Trace per-forward row accepts of tails4 + lookup2 row on 16 held-out prompts (shipped adapter, bf16)."""
import json, sys, torch
import hf_jacobi  # noqa
from hf_jacobi.generation.candidates import CandidateSource
from hf_jacobi.loading import chat_prompt, load_saved_model, load_model
from hf_jacobi.training.pipeline import _eval_prompts

class Rec(CandidateSource):
    def __init__(self): self.log = []
    def update_candidate_strategy(self, step, v):
        self.log.append({"committed": step.input_ids.shape[1], "acc": v.accepted[0].tolist(), "chosen": int(v.chosen[0]),
                         "rows": step.candidates.shape[1], "n": v.num_accepted})

torch.set_num_threads(1)
model = load_saved_model(sys.argv[1]).to(torch.bfloat16).eval()
_, tok = load_model(dtype="float32")
out_rows = []
for prompt in _eval_prompts(16):
    inputs = tok(chat_prompt(tok, prompt), return_tensors="pt")
    rec = Rec()
    out = model.generate(**inputs, do_sample=False, max_new_tokens=128, generation_mode="jacobi", draft_init=16,
                         block_size=16, draft_carry="clean", fresh_tails=4, lookup_ngram=int(sys.argv[3]), lookup_num_tokens=(int(sys.argv[4]) if len(sys.argv) > 4 else None),
                         return_dict_in_generate=True, pad_token_id=tok.pad_token_id, candidate_sources=[rec])
    out_rows.append({"prompt_len": inputs["input_ids"].shape[1], "seq": out.sequences[0].tolist(), "log": rec.log})
    print(len(rec.log), int(out.accepted_tokens.sum()), flush=True)
json.dump(out_rows, open(sys.argv[2], "w"))
t = sum(sum(f["n"] for f in r["log"]) for r in out_rows); f = sum(len(r["log"]) for r in out_rows)
print("TPF", t / f)
