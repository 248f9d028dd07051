#!/bin/bash
# Ship the ninth sitting's better arm (ARM=lr3e-4 or lr1e-3): fp16 copy whose generation config keeps the shipped decoding
# defaults (4 fresh tails beside a lookup row), into the package, then the float32 identity check of the shipped setting.
cd /work/main
ARM=${ARM:?set ARM=lr3e-4 or ARM=lr1e-3}
docs/gated_cpu/ship_run.sh runs/gated_ninth_$ARM runs/tails_eval_ninth_fp32.json
