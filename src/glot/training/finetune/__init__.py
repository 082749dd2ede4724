"""Efficiency baselines: LoRA and full fine-tuning of the backbone with a simple pooling and the same task head.

The GLOT paper (Mantri et al., ICLR 2026, Table 5) compares its frozen-backbone pooler with full fine-tuning and
LoRA r = 64. Neither can use the hidden-state cache, because the backbone changes every step: each training step
runs the backbone forward and backward (float32 here, the safe choice for CPU training). On top sits a
parameter-free ``mean`` / ``eos`` / ``cls`` pooler and the task head of :mod:`glot.training.heads`.

LoRA (PEFT): r = 64 as in the paper, alpha = 128 (alpha / r = 2, the common "alpha = 2r" convention: the update
B A x is scaled by 2 whatever the rank), dropout 0.05. Targets: every linear layer INSIDE the repeated transformer
blocks, found from the module tree (never from a list of model names). For BERT-like models that is
query, key, value, dense (attention + feed-forward); for Llama-like models q_proj, k_proj, v_proj, o_proj,
gate_proj, up_proj, down_proj. Layers outside the blocks (BERT's unused pooler, embeddings) are left alone.

Training is THE loop of :mod:`glot.training.loop` (:func:`~glot.training.loop.run_loop`); a fine-tuning run
differs from a frozen-head run only in its :class:`~glot.training.setup.Setup`: the token states come from a
backbone forward on the batch's texts with gradients (:class:`~glot.training.sources.BackboneSource`, which
calls :class:`~glot.backbones.frozen.FrozenBackbone`'s own forward), and the backbone's trainable weights (the
LoRA adapters, or every weight) are optimised with ``backbone_lr`` beside the head. So fine-tuning shares the
validation split carved from train, best-on-validation selection, eval predictions stored per epoch (the eval
labels read once at the end; the optimistic best-epoch number reported too), patience, the non-finite guard,
and a checkpoint per epoch with exact resume: a killed run rerun with the same command continues from its last
finished epoch (dropout masks are drawn per (seed, epoch)). Each checkpoint holds the backbone's TRAINABLE
weights and their Adam moments: small for LoRA, about 3x the model's float32 size for full fine-tuning; as for
every run only the latest and the best-on-validation epoch are kept (so at most 2 such copies on disk).

Run folder (same layout as GLOT runs, plus the backbone weights)::

    run_config.json     "method": "lora" | "full", finetune options, train config, task, backbone reference
    checkpoint/         state.json + epoch-NNN/ (pooler, head, backbone = trainable weights, optimizer,
                        eval predictions): see glot.training.checkpoint
    adapter/            LoRA: PEFT save_pretrained (adapter_config.json + adapter_model.safetensors)
    backbone/           full: model.save_pretrained (safetensors) + tokenizer
    pooler/             the (parameter-free) pooler, pooler.save_pretrained
    head.safetensors    head weights;  head_config.json: build_head(**config) rebuilds it
    eval_outputs.safetensors   raw head outputs on the eval split of the selected epoch (for reload checks)
    metrics.json        written last: eval metric, val, trainable params, peak RSS, ms/step, seconds/epoch

Modules: :mod:`~glot.training.finetune.options` (settings), :mod:`~glot.training.finetune.lora` (LoRA targets and config),
:mod:`~glot.training.finetune.model` (backbone + pooler + head), :mod:`~glot.training.finetune.run` (the run: setup, costs, weights),
:mod:`~glot.training.finetune.costs` (memory, parameters, step times), :mod:`~glot.training.finetune.folder` (the run folder),
:mod:`~glot.training.finetune.export` (the trained backbone for every export path: ``glot.Encoder.from_pretrained(run)``,
``glot encode --run``, MTEB and the sentence-transformers export compute what :func:`load_finetuned` computes,
the LoRA adapter merged into its base).
"""

from __future__ import annotations

from glot.training.finetune.costs import peak_rss_mb, trainable_parameters
from glot.training.finetune.folder import ADAPTER_DIR, BACKBONE_DIR, EVAL_OUTPUTS, load_finetuned
from glot.training.finetune.lora import LoraTargets, lora_targets
from glot.training.finetune.lora import _lora_config as _lora_config  # private, imported by tests
from glot.training.finetune.model import COLUMNS, FinetunedModel, prepare_finetune
from glot.training.finetune.options import METHODS, POOLINGS, FinetuneOptions
from glot.training.finetune.run import run_finetune

__all__ = [
    "ADAPTER_DIR",
    "BACKBONE_DIR",
    "COLUMNS",
    "EVAL_OUTPUTS",
    "METHODS",
    "POOLINGS",
    "FinetuneOptions",
    "FinetunedModel",
    "LoraTargets",
    "load_finetuned",
    "lora_targets",
    "peak_rss_mb",
    "prepare_finetune",
    "run_finetune",
    "trainable_parameters",
]
