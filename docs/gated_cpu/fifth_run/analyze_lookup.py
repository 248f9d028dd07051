import json, sys, math
from collections import Counter
rows = json.load(open(sys.argv[1]))

def occurrences(tokens, max_ngram, max_tokens, limit, any_k=False):
    """Distinct continuations, most recent first, for the longest n-gram with a match (`any_k`: then also for the
    shorter ones), at most `limit`."""
    outs = []
    for k in range(min(max_ngram, len(tokens) - 1), 0, -1):
        suffix = tokens[-k:]
        for start in range(len(tokens) - k - 1, -1, -1):
            if tokens[start:start + k] == suffix:
                found = tokens[start + k:]
                found = (found * math.ceil(max_tokens / len(found)))[:max_tokens]
                if found not in outs:
                    outs.append(found)
                if len(outs) >= limit:
                    return outs
        if outs and not any_k:
            return outs
    return outs

def acc(cand, truth):
    a = 0
    for x, y in zip(cand, truth):
        if x != y: break
        a += 1
    return 1 + a

F = T = 0; mismatch = 0
# name: (max n-gram, continuations kept, also shorter n-grams after a match)
variants = {"ng2 r1": (2, 1, False), "ng3 r1": (3, 1, False), "ng4 r1": (4, 1, False), "ng1 r1": (1, 1, False),
            "ng2 r2": (2, 2, False), "ng3 r2": (3, 2, False), "ng4 r2 anyk": (4, 2, True), "ng3 r3 anyk": (3, 3, True),
            "ng2 r8 oracle": (2, 8, False), "ng4 r16 anyk oracle": (4, 16, True)}
gain = Counter(); after_win = Counter(); dist_d = Counter(); dist_l = Counter(); win = Counter()
for r in rows:
    seq = r["seq"]
    prev_win = False
    for f in r["log"]:
        c = f["committed"]; d = f["acc"][0]; l = f["acc"][1] if f["rows"] > 1 else 0
        n = f["n"]; F += 1; T += n
        truth = seq[c:c + 15]
        ctx = seq[:c]
        base = occurrences(ctx, int(sys.argv[2]), 15, 1)
        lb = acc(base[0], truth) if base and f["rows"] > 1 else 0
        if f["rows"] > 1 and lb != l: mismatch += 1
        for name, (ng, lim, any_k) in variants.items():
            cands = occurrences(ctx, ng, 15, lim, any_k)
            lv = max([acc(x, truth) for x in cands], default=0)
            gain[name] += max(d, lv) - max(d, l)
        if prev_win: after_win[d] += 1
        prev_win = f["chosen"] > 0
        dist_d[d] += 1; dist_l[l] += 1
        if f["chosen"] > 0: win[l] += 1
print("forwards", F, "tokens", T, "TPF", T / F, "lookup accept mismatches", mismatch)
for k, g in gain.items(): print(f"{k:22s} gain {g:5d}  TPF~{(T + g) / F:.3f}")
print("draft accept dist", sorted(dist_d.items()))
print("after lookup win, draft accept", sorted(after_win.items()))
print("lookup wins by accept", sorted(win.items()))
