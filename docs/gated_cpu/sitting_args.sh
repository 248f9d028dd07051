# The flags of `hf-jacobi train` every continued sitting since the eighth shares (sourced by their scripts): fresh-block
# states of filler 16 at the 4 positions fresh tails read, the base model's answers, the filler-gated LoRA started
# from the shipped adapter. Each sitting adds its time box and the knobs it set or compared (--learning_rate,
# --consistency_target).
SITTING_ARGS="--rounds 1 --round_block_sizes 16 --states fresh --draft_init 16 \
 --draft_carry clean --max_states 96 --max_new_tokens 128 --collect_batch_size 16 --answers base \
 --consistency_horizon 4 --eval_prompts 16 --eval_max_new_tokens 128 --eval_block_size 16 \
 --warmup_steps 10 --ar_target hard --ar_loss_weight 5 --ar_loss_on_prompt false \
 --consistency_normalization token --per_device_train_batch_size 4 --gradient_accumulation_steps 1 \
 --gradient_checkpointing false --use_cpu --report_to none --save_steps 10 --save_total_limit 1 --logging_steps 5 \
 --dataloader_num_workers 0 --num_train_epochs 1 --trim_loops true \
 --use_peft true --lora_r 64 --lora_alpha 128 --lora_target_modules q_proj k_proj v_proj o_proj gate_proj up_proj down_proj \
 --filler_gated_adapter true --init_adapter src/hf_jacobi/assets/smollm2-jacobi-forcing"
