#!/bin/bash
# Ship the seventh sitting's adapter: fp16 copy whose generation config keeps the shipped decoding defaults (4 fresh
# tails beside a lookup row, README Results), then into the package.
cd /work/main; . .venv/bin/activate
python examples/train_smollm2.py --output-dir runs/gated_seventh --ship
cp runs/gated_seventh/ship/adapter_model.safetensors runs/gated_seventh/ship/adapter_config.json \
   runs/gated_seventh/ship/generation_config.json src/hf_jacobi/assets/smollm2-jacobi-forcing/
