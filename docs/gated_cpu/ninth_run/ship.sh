#!/bin/bash
# Ship the ninth sitting's better arm (ARM=lr3e-4 or lr1e-3): fp16 copy whose generation config keeps the shipped decoding
# defaults (4 fresh tails beside a lookup row), into the package, then the float32 identity check of the shipped setting.
cd /work/main; . .venv/bin/activate
ARM=${ARM:?set ARM=lr3e-4 or ARM=lr1e-3}
date
python examples/train_smollm2.py --output-dir runs/gated_ninth_$ARM --ship
cp runs/gated_ninth_$ARM/ship/adapter_model.safetensors runs/gated_ninth_$ARM/ship/adapter_config.json \
   runs/gated_ninth_$ARM/ship/generation_config.json src/hf_jacobi/assets/smollm2-jacobi-forcing/
git status --short
date
python examples/fresh_rows_eval.py --models src/hf_jacobi/assets/smollm2-jacobi-forcing --block-sizes 16 --dtype float32 \
  --fresh-rows --fresh-tails 4 --lookup 2 --only "tails + lookup 2 row" --output runs/tails_eval_ninth_fp32.json
date
