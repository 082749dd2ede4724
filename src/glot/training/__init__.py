"""Training heads on cached states: config, task heads, metrics, the loop, checkpoints (run key,
run folder, resume) and fine-tuning baselines (finetune/)."""
