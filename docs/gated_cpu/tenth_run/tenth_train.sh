#!/bin/bash
# Tenth sitting: more tokens with the ninth sitting's shipped recipe (lr 3e-4, hard targets), 1,000 new prompts
# (coding_prompts()[10200:11200], none among the last 64), one epoch from the shipped nine-sitting adapter.
# Same flags as ../ninth_run/ninth_ab.sh's lr3e-4 arm except --max_minutes 80 (a quarter more prompts).
cd /work/main; . .venv/bin/activate
ARGS="--rounds 1 --round_block_sizes 16 --states fresh --draft_init 16 \
 --draft_carry clean --max_states 96 --max_new_tokens 128 --collect_batch_size 16 --answers base \
 --consistency_horizon 4 --eval_prompts 16 --eval_max_new_tokens 128 --eval_block_size 16 \
 --warmup_steps 10 --ar_target hard --ar_loss_weight 5 --ar_loss_on_prompt false \
 --consistency_normalization token --consistency_target hard --per_device_train_batch_size 4 \
 --gradient_accumulation_steps 1 \
 --gradient_checkpointing false --use_cpu --report_to none --save_steps 10 --save_total_limit 1 --logging_steps 5 \
 --max_minutes 80 --dataloader_num_workers 0 --num_train_epochs 1 --trim_loops true \
 --use_peft true --lora_r 64 --lora_alpha 128 --lora_target_modules q_proj k_proj v_proj o_proj gate_proj up_proj down_proj \
 --filler_gated_adapter true --init_adapter src/hf_jacobi/assets/smollm2-jacobi-forcing"
date
hf-jacobi train --prompts runs/prompts_10th.jsonl $ARGS --learning_rate 3e-4 --output_dir runs/gated_tenth
date
