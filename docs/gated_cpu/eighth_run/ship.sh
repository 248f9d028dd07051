#!/bin/bash
# Ship the eighth sitting's better arm (ARM=hard or soft): fp16 copy whose generation config keeps the shipped decoding
# defaults (4 fresh tails beside a lookup row), into the package, then the float32 identity check of the shipped setting.
cd /work/main
ARM=${ARM:?set ARM=hard or ARM=soft}
docs/gated_cpu/ship_run.sh runs/gated_eighth_$ARM runs/tails_eval_eighth_fp32.json
