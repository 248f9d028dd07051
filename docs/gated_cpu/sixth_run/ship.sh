#!/bin/bash
# Ship the sixth sitting's adapter: fp16 copy (examples/train_smollm2.py --ship), then the decoding defaults the
# shipped generation config keeps (4 fresh tails beside a lookup row: the best held-out TPF, see README Results).
cd /work/main; . .venv/bin/activate
python examples/train_smollm2.py --output-dir runs/gated_sixth --ship
cp runs/gated_sixth/ship/adapter_model.safetensors runs/gated_sixth/ship/adapter_config.json \
   runs/gated_sixth/ship/generation_config.json src/hf_jacobi/assets/smollm2-jacobi-forcing/
python - <<'PY'
import json
path = "src/hf_jacobi/assets/smollm2-jacobi-forcing/generation_config.json"
config = json.load(open(path))
config |= {"fresh_tails": 4, "lookup_ngram": 2}
open(path, "w").write(json.dumps(dict(sorted(config.items())), indent=2) + "\n")
PY
