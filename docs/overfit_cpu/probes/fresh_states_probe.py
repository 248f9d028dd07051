"""Overfit probe: mask filler in decoding + training states [c_p, M x (H-1)] at EVERY prefix p (no collection)."""
import argparse, json, time, os
import torch
from hf_jacobi.loading import load_model, chat_prompt
from hf_jacobi.data import coding_prompts
from hf_jacobi.collection import _cut_at_eos, _eos_set, CollectConfig, forced_decoding_states
from hf_jacobi.training import JacobiForcingCollator
from hf_jacobi.training.losses import ar_loss, hard_consistency_loss
from hf_jacobi.generation.candidates import JacobiDraft
import hf_jacobi  # noqa

p = argparse.ArgumentParser()
p.add_argument("--n", type=int, default=16); p.add_argument("--tokens", type=int, default=64)
p.add_argument("--prompts", type=int, default=4); p.add_argument("--steps", type=int, default=15)
p.add_argument("--rounds", type=int, default=3); p.add_argument("--lr", type=float, default=1e-4)
p.add_argument("--ar", type=float, default=1.0); p.add_argument("--H", type=int, default=8)
p.add_argument("--mask", type=int, default=16); p.add_argument("--onpolicy", type=int, default=0)
p.add_argument("--name", default="allmask"); p.add_argument("--allmask", type=int, default=1)
args = p.parse_args()
MASK = args.mask
def _filler(self, n_fill, last_tokens):
    return torch.full((last_tokens.shape[0], n_fill), MASK, dtype=torch.long, device=last_tokens.device)
if MASK >= 0:
    JacobiDraft.filler = _filler
torch.manual_seed(0); torch.set_num_threads(2)
model, tok = load_model()
tok.padding_side = "left"
prompts = coding_prompts(args.prompts, seed=11)
n, H = args.n, args.H
batch = tok([chat_prompt(tok, q) for q in prompts], return_tensors="pt", padding=True)
with torch.no_grad():
    out = model.generate(**batch, do_sample=False, max_new_tokens=args.tokens, pad_token_id=tok.pad_token_id)
answers = [_cut_at_eos(a, _eos_set(model)) for a in out[:, batch["input_ids"].shape[1]:].tolist()]
prompt_ids = [batch["input_ids"][r][batch["attention_mask"][r].bool()].tolist() for r in range(len(prompts))]

def evaluate(model):
    tot = fw = same = 0
    for r, q in enumerate(prompts):
        ids = torch.tensor([prompt_ids[r]])
        with torch.no_grad():
            o = model.generate(ids, do_sample=False, max_new_tokens=args.tokens, generation_mode="jacobi",
                               block_size=n, return_dict_in_generate=True, pad_token_id=tok.pad_token_id)
        tot += int(o.accepted_tokens.sum()); fw += o.num_forwards
        got = o.sequences[0, ids.shape[1]:].tolist()
        same += next((i for i, (a, b) in enumerate(zip(got, answers[r])) if a != b), min(len(got), len(answers[r])))
    return tot / fw, same / sum(len(a) for a in answers)

def allmask_examples():
    ex = []
    for r, a in enumerate(answers):
        starts = list(range(0, len(a) - H + 1))
        ex.append({"prompt_ids": prompt_ids[r], "clean_ids": a, "noisy_starts": starts,
                   "noisy_blocks": [[a[s]] + [MASK] * (H - 1) for s in starts]})
    return ex

def onpolicy_examples(model, rnd):
    cfg = CollectConfig(block_size=n, max_new_tokens=args.tokens, states="decoding", max_states=args.onpolicy)
    rows = forced_decoding_states(model, batch, answers, cfg, seed=rnd)
    ex = []
    for r in range(len(prompts)):
        a = rows[r]["clean_ids"]; st, bl = [], []
        for s, blk in zip(rows[r]["noisy_starts"], rows[r]["noisy_blocks"]):
            d = next((i for i in range(len(blk)) if blk[i] != a[s + i]), None)
            if d is None or s + d - 1 + H > len(a) or d - 1 + H > len(blk): continue
            st.append(s + d - 1); bl.append(list(blk[d - 1: d - 1 + H]))  # cut to H from the token before the first wrong one
        if st: ex.append({"prompt_ids": prompt_ids[r], "clean_ids": a, "noisy_starts": st, "noisy_blocks": bl})
    return ex

coll = JacobiForcingCollator(pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id)
opt = torch.optim.AdamW([q for q in model.parameters() if q.dim() == 2], lr=args.lr, weight_decay=0.0)
tpf, agree = evaluate(model)
print(f"base TPF {tpf:.3f} agree {agree:.3f}", flush=True)
log = {"args": vars(args), "rounds": [{"tpf": tpf, "agree": agree}]}
t0 = time.time()
for rnd in range(args.rounds):
    model.eval()
    examples = allmask_examples() if args.allmask else []
    if args.onpolicy:
        op = onpolicy_examples(model, rnd)
        print("onpolicy states", [len(e["noisy_starts"]) for e in op], flush=True)
        examples = examples + op
    model.train()
    for step in range(args.steps):
        b = coll(examples)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"],
                           position_ids=b["position_ids"], use_cache=False).logits
        ar = ar_loss(logits, b["shift_labels"])
        rr = torch.arange(logits.shape[0])[:, None]
        cons = hard_consistency_loss(logits[rr, b["noisy_index"]], b["shift_labels"][rr, b["clean_index"]], b["consistency_mask"])
        loss = args.ar * ar + cons
        opt.zero_grad(); loss.backward(); opt.step()
        if step % 5 == 0 or step == args.steps - 1:
            print(f"  step {step} ar {ar.item():.3f} cons {cons.item():.3f}", flush=True)
    model.eval()
    tpf, agree = evaluate(model)
    print(f"round {rnd} TPF {tpf:.3f} agree {agree:.3f} ({time.time() - t0:.0f}s)", flush=True)
    log["rounds"].append({"tpf": tpf, "agree": agree, "seconds": time.time() - t0})
json.dump(log, open(f"runs/diag_mask/{args.name}.json", "w"), indent=1)
