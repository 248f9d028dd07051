#!/bin/bash
# After a continued sitting's eval_sitting.sh: apply the ship rule (decide_ship.py: the shipped adapter's offsets come
# from its own sitting's folder here, the new one's from runs/) and ship with the float32 check (ship_run.sh) if it
# says so. The README and card are edited by hand after it (model_cards/ must then get the card's copy).
# Usage: docs/gated_cpu/ship_sitting.sh runs/gated_eleventh/model eleventh twelfth  (the shipped adapter as its offset
# files name it, its sitting, the new sitting)
cd /work/main; . .venv/bin/activate
OLD_MODEL=${1:?the shipped adapter as its offset files name it}; OLD=${2:?its sitting, e.g. eleventh}
NEW=${3:?the new sitting, e.g. twelfth}
if python docs/gated_cpu/decide_ship.py $OLD_MODEL docs/gated_cpu/${OLD}_run/offset_$OLD.json \
    docs/gated_cpu/${OLD}_run/offset_unseen64_$OLD.json runs/gated_$NEW/model runs/offset_$NEW.json \
    runs/offset_unseen64_$NEW.json runs/tails_eval_$NEW.json; then
  docs/gated_cpu/ship_run.sh runs/gated_$NEW runs/tails_eval_${NEW}_fp32.json
fi
