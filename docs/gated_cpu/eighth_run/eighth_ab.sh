#!/bin/bash
# Eighth sitting as an A/B at equal tokens: 800 new prompts (coding_prompts(9400)[8600:9400]), collected once, trained
# twice from the shipped seven-sitting adapter: "hard" is the command of the earlier sittings (cross-entropy against the
# clean token at the 4 guess positions); "soft" differs only in --consistency_target soft (KL to the base model's
# distribution at the clean position, the reference's target). Both train one epoch over the same examples in the same order.
cd /work/main; . .venv/bin/activate
ARGS="--rounds 1 --round_block_sizes 16 --states fresh --draft_init 16 \
 --draft_carry clean --max_states 96 --max_new_tokens 128 --collect_batch_size 16 --answers base \
 --consistency_horizon 4 --eval_prompts 16 --eval_max_new_tokens 128 --eval_block_size 16 \
 --learning_rate 3e-4 --warmup_steps 10 --ar_target hard --ar_loss_weight 5 --ar_loss_on_prompt false \
 --consistency_normalization token --per_device_train_batch_size 4 --gradient_accumulation_steps 1 \
 --gradient_checkpointing false --use_cpu --report_to none --save_steps 10 --save_total_limit 1 --logging_steps 5 \
 --max_minutes 60 --dataloader_num_workers 0 --num_train_epochs 1 --trim_loops true \
 --use_peft true --lora_r 64 --lora_alpha 128 --lora_target_modules q_proj k_proj v_proj o_proj gate_proj up_proj down_proj \
 --filler_gated_adapter true --init_adapter src/hf_jacobi/assets/smollm2-jacobi-forcing"
date
hf-jacobi train --prompts runs/prompts_8th.jsonl $ARGS --consistency_target hard --output_dir runs/gated_eighth_hard
date
mkdir -p runs/gated_eighth_soft/round_0
[ -d runs/gated_eighth_soft/round_0/data ] || cp -r runs/gated_eighth_hard/round_0/data runs/gated_eighth_soft/round_0/
hf-jacobi train --prompts runs/prompts_8th.jsonl $ARGS --consistency_target soft --output_dir runs/gated_eighth_soft
date
