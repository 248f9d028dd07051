"""Re-measure held-out TPF with the loop split for existing models."""
import json, sys, time, torch
torch.set_num_threads(2)
from hf_jacobi.loading import load_model
from hf_jacobi.training.pipeline import measure_tpf, _eval_prompts
from transformers import AutoModelForCausalLM
prompts = _eval_prompts(16)
out = {}
for name in sys.argv[1:]:
    t = time.time()
    if name == "base":
        m, tok = load_model(dtype="bfloat16")
    elif name == "shipped":
        m, tok = load_model(jacobi_forcing=True, dtype="bfloat16")
    elif name.endswith("adapter"):
        m, tok = load_model(adapter=name, dtype="bfloat16")
    else:
        _, tok = load_model()
        m = AutoModelForCausalLM.from_pretrained(name, dtype=torch.bfloat16).eval()
    r = measure_tpf(m, tok, prompts, 16, 128)
    r.pop("answers")
    r["seconds"] = time.time() - t
    print(name, r, flush=True)
    out[name] = r
json.dump(out, open("/tmp/split/split_%d.json" % int(time.time()), "w"), indent=1)
