"""Probe: TPF of saved round models with the usual carry (every prediction past the accepted prefix) vs a clean carry
(predictions made after an unverified non-filler token are replaced by the filler), fixed filler 16.

Scratch record, as run (2026-12-06, `DTYPE=float32 python eval_carry.py MODEL,MODEL,...`): it patches the rule in
before `draft_carry` existed. The package's `draft_carry="clean"` gives the same TPF (round 3 model: 3.769 both)."""
import json, sys, torch
from transformers import AutoModelForCausalLM
from hf_jacobi.loading import load_model
from hf_jacobi.data import coding_prompts
from hf_jacobi.generation.candidates import JacobiDraft
from hf_jacobi.training.pipeline import measure_tpf, answer_agreement
import hf_jacobi  # noqa

orig = JacobiDraft.update_candidate_strategy
def clean_carry(self, step, verification):
    a = verification.num_accepted
    tokens = verification.tokens[:, a:]
    if isinstance(self.draft_init, int):
        block = verification.block[:, a:]
        idx = torch.arange(a, a + tokens.shape[1], device=tokens.device)
        dirty = ((block != self.draft_init) & (idx[None] >= verification.row_accepted[:, None])).cumsum(1) > 0
        tokens = torch.where(dirty, torch.full_like(tokens, self.draft_init), tokens)
    self.guess = tokens

torch.set_num_threads(2)
_, tok = load_model()
prompts = coding_prompts(int(sys.argv[2]) if len(sys.argv) > 2 else 4)
out = {}
for path in sys.argv[1].split(","):
    import os
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, os.environ.get("DTYPE", "bfloat16"))).eval()
    for mode in ("all", "clean"):
        JacobiDraft.update_candidate_strategy = orig if mode == "all" else clean_carry
        m = measure_tpf(model, tok, prompts, 16, 64)
        out[f"{path}:{mode}:{model.dtype}"] = {"tpf": m["tpf"], "loops": m["loops"], "answers": m["answers"]}
        print(path, mode, model.generation_config.draft_init if hasattr(model.generation_config, "draft_init") else None, round(m["tpf"], 3), flush=True)
json.dump(out, open("runs/carry/result.json", "a"), indent=1)
