"""Efficiency baselines: LoRA and full fine-tuning of the backbone with a simple pooling and the same task head.

The GLOT paper (Mantri et al., ICLR 2026, Table 5) compares its frozen-backbone pooler with full fine-tuning and
LoRA r = 64. Neither can use the hidden-state cache, because the backbone changes every step: each training step
runs the backbone forward and backward (float32 here, the safe choice for CPU training). On top sits a
parameter-free ``mean`` / ``eos`` / ``cls`` pooler and the task head of :mod:`glot.heads`.

LoRA (PEFT): r = 64 as in the paper, alpha = 128 (alpha / r = 2, the common "alpha = 2r" convention: the update
B A x is scaled by 2 whatever the rank), dropout 0.05. Targets: every linear layer INSIDE the repeated transformer
blocks, found from the module tree (never from a list of model names). For BERT-like models that is
query, key, value, dense (attention + feed-forward); for Llama-like models q_proj, k_proj, v_proj, o_proj,
gate_proj, up_proj, down_proj. Layers outside the blocks (BERT's unused pooler, embeddings) are left alone.

Model selection as in :mod:`glot.train`: a validation split carved from train, the best-on-validation epoch is
kept (in memory: while a non-final epoch is the best so far, peak RSS includes one copy of the trainable weights
- LoRA adapters only, or the whole backbone for full fine-tuning), and the eval split is scored once at the end.
There is no mid-run resume (an unfinished run is redone).

Run folder (same layout as GLOT runs, plus the backbone weights)::

    run_config.json     "method": "lora" | "full", finetune options, train config, task, backbone reference
    adapter/            LoRA: PEFT save_pretrained (adapter_config.json + adapter_model.safetensors)
    backbone/           full: model.save_pretrained (safetensors) + tokenizer
    pooler/             the (parameter-free) pooler, pooler.save_pretrained
    head.safetensors    head weights;  head_config.json: build_head(**config) rebuilds it
    eval_outputs.safetensors   raw head outputs on the eval split (for reload checks)
    metrics.json        written last: eval metric, val, trainable params, peak RSS, ms/step, seconds/epoch
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from glot import __version__, _hf
from glot.backbone import FrozenBackbone
from glot.data import Split, Task
from glot.heads import TaskHead, build_head
from glot.io import atomic_save_tensors, atomic_write_json, load_tensors, read_json
from glot.metrics import compute
from glot.packing import pack
from glot.poolers import Pooler, build_pooler, load_pooler
from glot.runs import HEAD_CONFIG, HEAD_WEIGHTS, METRICS_NAME, POOLER_DIR, RUN_CONFIG_NAME
from glot.trainconfig import TrainConfig

__all__ = [
    "METHODS",
    "POOLINGS",
    "FinetuneOptions",
    "FinetunedModel",
    "LoraTargets",
    "load_finetuned",
    "lora_targets",
    "prepare_finetune",
    "run_finetune",
]

METHODS = ("lora", "full")
POOLINGS = ("mean", "eos", "cls")
ADAPTER_DIR = "adapter"
BACKBONE_DIR = "backbone"
EVAL_OUTPUTS = "eval_outputs.safetensors"
COLUMNS = ("texts", "texts_pair", "negatives")
_BLOCK_LEAF_TYPES: tuple[type[nn.Module], ...] = (nn.Linear,)


@dataclass
class FinetuneOptions:
    """Settings specific to backbone fine-tuning (the shared ones live in :class:`TrainConfig`).

    ``backbone_lr`` = learning rate of the backbone / LoRA parameters; None means ``TrainConfig.lr`` for LoRA
    and 2e-5 for full fine-tuning (the usual BERT range; 2e-4 destabilises a full update). The head always uses
    ``TrainConfig.lr``. ``max_steps`` bounds the optimizer steps (None = all epochs). ``timing_warmup`` steps
    are left out of the per-step median. ``score_untrained`` scores the validation split before training.
    ``evaluate=False`` (timing runs) skips validation and the eval split: the last epoch's weights are kept.
    """

    r: int = 64
    alpha: int = 128
    dropout: float = 0.05
    backbone_lr: float | None = None
    max_steps: int | None = None
    timing_warmup: int = 3
    score_untrained: bool = True
    evaluate: bool = True

    def validate(self) -> None:
        """Raise ValueError naming the bad field."""
        if self.r < 1 or self.alpha <= 0 or not 0.0 <= self.dropout < 1.0:
            raise ValueError(
                f"need r >= 1, alpha > 0, 0 <= dropout < 1; got {self.r}, {self.alpha}, {self.dropout}"
            )
        if self.backbone_lr is not None and not self.backbone_lr > 0:
            raise ValueError(f"backbone_lr must be None or > 0, got {self.backbone_lr!r}")
        if self.max_steps is not None and self.max_steps < 1:
            raise ValueError(f"max_steps must be None or >= 1, got {self.max_steps!r}")
        if self.timing_warmup < 0:
            raise ValueError(f"timing_warmup must be >= 0, got {self.timing_warmup!r}")


@dataclass
class LoraTargets:
    """Where LoRA goes: leaf names of the linear layers inside the transformer blocks, and the blocks' list."""

    family: str  # "bert-like", "llama-like" or "generic" (informational)
    target_modules: list[str]
    layers_pattern: str  # name of the ModuleList holding the blocks ("layer" for BERT, "layers" for Llama)
    num_layers: int


def _block_list(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """The ModuleList of repeated transformer blocks: the longest ModuleList whose items share one type."""
    best: tuple[str, nn.ModuleList] | None = None
    for name, module in model.named_modules():
        same_type = isinstance(module, nn.ModuleList) and len({type(m) for m in module}) == 1
        if same_type and (best is None or len(module) > len(best[1])):
            best = (name, module)
    if best is None:
        raise ValueError(f"cannot find the transformer blocks (a ModuleList) in {type(model).__name__}")
    return best


def lora_targets(model: nn.Module) -> LoraTargets:
    """Choose LoRA targets from the module tree: every linear layer inside the repeated transformer blocks.

    Gives query/key/value/dense for BERT-like encoders and q/k/v/o/gate/up/down_proj for Llama-like decoders.
    """
    name, blocks = _block_list(model)
    types = _BLOCK_LEAF_TYPES + _conv1d_types()
    leaves = sorted({n.rsplit(".", 1)[-1] for n, m in blocks[0].named_modules() if isinstance(m, types)})
    if not leaves:
        raise ValueError(f"the blocks {name!r} of {type(model).__name__} contain no linear layer for LoRA")
    if {"query", "key", "value"} <= set(leaves):
        family = "bert-like"
    elif {"q_proj", "k_proj", "v_proj", "gate_proj"} <= set(leaves):
        family = "llama-like"
    else:
        family = "generic"
    return LoraTargets(family, leaves, name.rsplit(".", 1)[-1], len(blocks))


def _conv1d_types() -> tuple[type[nn.Module], ...]:
    from transformers.pytorch_utils import Conv1D  # GPT-2 style "linear" layers

    return (Conv1D,)


def _lora_config(model: nn.Module, options: FinetuneOptions) -> Any:
    from peft import LoraConfig

    targets = lora_targets(model)
    return LoraConfig(
        r=options.r, lora_alpha=options.alpha, lora_dropout=options.dropout, bias="none",
        target_modules=targets.target_modules, layers_pattern=targets.layers_pattern,
        layers_to_transform=list(range(targets.num_layers)),
        fan_in_fan_out=any(isinstance(m, _conv1d_types()) for m in model.modules()),
    )  # fmt: skip


class FinetunedModel(nn.Module):
    """A trainable backbone (plain or PEFT-wrapped) + pooler + task head.

    Shapes: texts of each column (B,) -> z (B, D) per column -> head output (task-dependent, e.g. (B, C)).
    """

    def __init__(self, backbone: FrozenBackbone, encoder: nn.Module, pooler: Pooler, head: TaskHead) -> None:
        super().__init__()
        self.backbone = backbone  # tokenizer + settings; its .model is the (possibly adapted) base model
        self.encoder = encoder
        self.pooler = pooler
        self.head = head
        accepted = _hf.forward_params(backbone.model)
        self._token_types = "token_type_ids" in accepted
        self._positions = "position_ids" in accepted and not _hf.derives_positions_from_ids(backbone.model)

    def embed(self, texts: list[str]) -> Tensor:
        """Pooled embeddings, with gradients when training. Shapes: texts (B,) -> (B, D)."""
        enc = self.backbone.tokenize(texts)
        device = self.backbone.device
        mask = enc["attention_mask"].to(device)
        kwargs: dict[str, Any] = {"input_ids": enc["input_ids"].to(device), "attention_mask": mask}
        if self._token_types and "token_type_ids" in enc:
            kwargs["token_type_ids"] = enc["token_type_ids"].to(device)
        if self._positions:  # left padding: real tokens sit at positions 0..n-1, as in FrozenBackbone
            kwargs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)
        last = self.backbone.layer in (-1, self.backbone.num_layers)
        out = self.encoder(**kwargs, output_hidden_states=not last, return_dict=True)
        hidden = out.last_hidden_state if last else out.hidden_states[self.backbone.layer]
        return self.pooler.forward_packed(*pack(hidden.float(), mask.bool()))

    def forward(self, columns: list[list[str]]) -> Tensor:
        """Head output for one batch; all text columns (texts, pair, negatives) go through ONE backbone call."""
        sizes = [len(c) for c in columns]
        z = self.embed([t for c in columns for t in c])
        return self.head(*torch.split(z, sizes))

    def outputs(self, split: Split, rows: np.ndarray | None = None, batch_size: int = 64) -> Tensor:
        """Raw head outputs for ``rows`` of ``split`` (all rows by default), in eval mode without gradients."""
        rows = np.arange(len(split)) if rows is None else rows
        self.eval()
        zs = []
        with torch.no_grad():
            for texts in _columns(split, rows):  # longest first, so each batch pads little (like iter_packed)
                order = np.argsort([-len(t) for t in texts], kind="stable")
                z = torch.cat([self.embed([texts[i] for i in order[s : s + batch_size]])
                               for s in range(0, len(order), batch_size)])  # fmt: skip
                zs.append(z[torch.from_numpy(np.argsort(order))])
            return self.head(*zs).float()

    def evaluate(
        self, split: Split, metric: str, rows: np.ndarray | None = None, batch_size: int = 64
    ) -> float:
        """The task metric on ``rows`` of ``split`` (reads its labels)."""
        rows = np.arange(len(split)) if rows is None else rows
        out = self.outputs(split, rows, batch_size)
        return _score(self.head, metric, out, None if split.labels is None else split.labels[rows])


def _columns(split: Split, rows: np.ndarray) -> list[list[str]]:
    present = [getattr(split, c) for c in COLUMNS if getattr(split, c) is not None]
    return [[col[i] for i in rows.tolist()] for col in present]


def _score(head: TaskHead, metric: str, output: Tensor, labels: np.ndarray | None) -> float:
    preds = output.numpy() if metric == "mrr" else head.predict(output)
    return float(compute(metric, preds, None if metric == "mrr" else labels))


def prepare_finetune(
    task: Task,
    model: str | FrozenBackbone,
    method: str,
    pooling: str | None = None,
    train_config: TrainConfig | None = None,
    options: FinetuneOptions | None = None,
) -> FinetunedModel:
    """Load the backbone in float32, make it trainable (LoRA adapters or all weights) and add pooler + head."""
    config, opts = train_config or TrainConfig(), options or FinetuneOptions()
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if isinstance(model, FrozenBackbone):
        backbone = model
        backbone.model.float()
    else:
        max_length = config.max_length or task.max_length
        backbone = FrozenBackbone.from_pretrained(str(model), dtype="float32", max_length=max_length)
    pooling = pooling or ("eos" if backbone.is_decoder else "mean")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS} for fine-tuning, got {pooling!r}")
    encoder: nn.Module = backbone.model
    if method == "lora":
        from peft import get_peft_model

        encoder = get_peft_model(backbone.model, _lora_config(backbone.model, opts))
    else:
        backbone.model.requires_grad_(True)
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        pooler = build_pooler(pooling, backbone.hidden_size)
        head = build_head(task.kind, pooler.out_dim, num_labels=task.num_labels, **config.head_options)
    return FinetunedModel(backbone, encoder, pooler, head)


# ---------------------------------------------------------------------------------------------- training
def peak_rss_mb() -> float:
    """This process's resident-memory high-water mark in MiB (Linux VmHWM; ru_maxrss elsewhere)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def trainable_parameters(model: FinetunedModel) -> dict[str, int]:
    """Parameter counts: trainable backbone/adapter weights, head, and the backbone's total."""
    enc = sum(p.numel() for p in model.encoder.parameters() if p.requires_grad)
    head = sum(p.numel() for p in model.head.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.backbone.model.parameters())
    return {"backbone_trainable": enc, "head": head, "trainable": enc + head, "backbone_total": total}


def _optimizer(model: FinetunedModel, config: TrainConfig, opts: FinetuneOptions, method: str) -> Any:
    backbone_lr = opts.backbone_lr or (config.lr if method == "lora" else 2e-5)
    groups = [
        {"params": [p for p in model.encoder.parameters() if p.requires_grad], "lr": backbone_lr},
        {"params": list(model.head.parameters()), "lr": config.lr},
    ]
    kind = torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW
    return kind(groups, lr=config.lr, weight_decay=config.weight_decay)


def _freeze_unused(model: FinetunedModel) -> list[str]:
    """After the first backward: parameters that got no gradient (e.g. BERT's unused pooler) stop counting
    as trainable. Returns their names."""
    unused = [n for n, p in model.encoder.named_parameters() if p.requires_grad and p.grad is None]
    for name, param in model.encoder.named_parameters():
        if name in unused:
            param.requires_grad_(False)
    return unused


def _snapshot(model: FinetunedModel) -> dict[str, Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _restore(model: FinetunedModel, state: dict[str, Tensor]) -> None:
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)


def _train_loop(
    model: FinetunedModel,
    task: Task,
    rows: tuple[np.ndarray, np.ndarray],
    config: TrainConfig,
    opts: FinetuneOptions,
    method: str,
    progress: bool,
) -> dict[str, Any]:
    """Epochs of training with best-on-validation selection; returns history, timings and the best state."""
    train, labels = task.splits["train"], task.splits["train"].labels
    train_rows, val_rows = rows
    optimizer, step_times, history = _optimizer(model, config, opts, method), [], []
    best: dict[str, Any] = {"val": None, "epoch": 0, "state": None, "seconds": 0.0}
    if opts.score_untrained and opts.evaluate:
        best["untrained_val"] = model.evaluate(train, task.metric, val_rows, config.eval_batch_size)
    clock, unused = 0.0, None
    for epoch in range(1, config.epochs + 1):
        model.train()
        order = train_rows[np.random.default_rng([config.seed, epoch]).permutation(len(train_rows))]
        t0, losses = time.perf_counter(), []
        for start in tqdm(range(0, len(order), config.batch_size), desc=f"{method} epoch {epoch}",
                          leave=False, disable=not progress):  # fmt: skip
            chunk, s0, c0 = order[start : start + config.batch_size], time.perf_counter(), time.process_time()
            loss = model.head.loss(model(_columns(train, chunk)), None if labels is None else labels[chunk])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            unused = _freeze_unused(model) if unused is None else unused
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], config.grad_clip)
            optimizer.step()
            step_times.append((time.perf_counter() - s0, time.process_time() - c0))
            losses.append(float(loss.detach()))
            if opts.max_steps is not None and len(step_times) >= opts.max_steps:
                break
        train_s = time.perf_counter() - t0
        val = model.evaluate(train, task.metric, val_rows, config.eval_batch_size) if opts.evaluate else None
        clock += time.perf_counter() - t0
        history.append({"epoch": epoch, "train_loss": float(np.mean(losses)), "val": val, "seconds": train_s,
                        "steps": len(losses), "seconds_with_val": clock})  # fmt: skip
        done = epoch == config.epochs or (opts.max_steps is not None and len(step_times) >= opts.max_steps)
        if val is None or best["val"] is None or val > best["val"]:  # the final epoch needs no copy
            best.update(val=val, epoch=epoch, state=None if done else _snapshot(model), seconds=clock)
        if done:
            break
    return {"history": history, "step_times": step_times, "best": best, "unused": unused or []}


def _timing(step_times: list[tuple[float, float]], warmup: int) -> dict[str, Any]:
    """Median/min/max milliseconds per step after ``warmup`` steps: wall clock and process CPU time."""
    timed = step_times[warmup:] if len(step_times) > warmup else step_times
    out: dict[str, Any] = {"steps_timed": len(timed), "steps_warmup": len(step_times) - len(timed)}
    for prefix, values in (("", [w for w, _ in timed]), ("cpu_", [c for _, c in timed])):
        out |= {f"{prefix}ms_per_step_median": 1000.0 * statistics.median(values),
                f"{prefix}ms_per_step_min": 1000.0 * min(values), f"{prefix}ms_per_step_max": 1000.0 * max(values)}  # fmt: skip
    return out | {"steps_total": len(step_times)}


# ---------------------------------------------------------------------------------------------- run folders
def _run_config(
    task: Task,
    model: FinetunedModel,
    method: str,
    config: TrainConfig,
    opts: FinetuneOptions,
    sizes: dict[str, int],
) -> dict[str, Any]:
    from glot.hub import backbone_reference

    labels = task.splits["train"].labels
    finetune: dict[str, Any] = {"method": method, "pooling": model.pooler.name, **asdict(opts)}
    if method == "lora":
        finetune["lora_targets"] = asdict(lora_targets(model.backbone.model))
    body = {
        "method": method, "finetune": finetune, "train": config.to_dict(),
        "task": {"name": task.name, "kind": task.kind, "metric": task.metric, "num_labels": task.num_labels,
                 "max_length": task.max_length, "label_names": task.label_names, "sizes": sizes,
                 "train_labels_sha256": None if labels is None else hashlib.sha256(labels.tobytes()).hexdigest()},
        "backbone": backbone_reference(model.backbone),
    }  # fmt: skip
    canon = json.loads(json.dumps(body, sort_keys=True, default=str))
    key = hashlib.sha256(json.dumps(canon, sort_keys=True).encode()).hexdigest()
    return {"format": 1, "glot_version": __version__, "key": key, **canon}


def _check_folder(run_dir: Path, run_config: dict[str, Any], overwrite: bool) -> dict[str, Any] | None:
    """Return the metrics of an identical finished run; refuse to mix a different run into ``run_dir``."""
    existing = run_dir / RUN_CONFIG_NAME
    if existing.is_file() and not overwrite:
        if read_json(existing).get("key") != run_config["key"]:
            raise ValueError(f"{run_dir} holds a different run; pass a new output folder or overwrite=True")
        if (run_dir / METRICS_NAME).is_file():
            return dict(read_json(run_dir / METRICS_NAME))
    if run_dir.exists() and (overwrite or existing.is_file()):
        shutil.rmtree(run_dir)  # an unfinished run of the same config is redone from scratch (no resume)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(existing, run_config)
    return None


def _save(model: FinetunedModel, run_dir: Path, method: str) -> None:
    if method == "lora":
        save: Any = model.encoder.save_pretrained  # PeftModel: adapter weights only, safetensors
        save(str(run_dir / ADAPTER_DIR), save_embedding_layers=False)
    else:
        save = model.backbone.model.save_pretrained  # transformers 5 writes safetensors only
        save(str(run_dir / BACKBONE_DIR))
        model.backbone.tokenizer.save_pretrained(str(run_dir / BACKBONE_DIR))
    model.pooler.save_pretrained(run_dir / POOLER_DIR)
    atomic_save_tensors(run_dir / HEAD_WEIGHTS, model.head.state_dict())
    atomic_write_json(run_dir / HEAD_CONFIG, model.head.config())


def run_finetune(
    task: Task,
    model: str | FrozenBackbone,
    method: str,
    pooling: str | None = None,
    train_config: TrainConfig | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    *,
    options: FinetuneOptions | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Fine-tune ``model`` (alias, path, hub id or a FrozenBackbone) on ``task`` with ``method`` "lora" or
    "full" and ``pooling`` mean | eos | cls (default: eos for decoders, mean for encoders); return metrics.

    ``train_config`` supplies epochs, batch size, lr (head; LoRA too), seed, val_fraction, max_length;
    its ``pooler``/``pooler_options`` are ignored. With ``out_dir`` the run folder described in the module
    docstring is written (an identical finished run there is returned as is). A FrozenBackbone passed in is
    changed in place (cast to float32, LoRA layers injected or all weights unfrozen).
    """
    from glot.train import carve_validation

    config, opts = train_config or TrainConfig(), options or FinetuneOptions()
    config.validate()
    opts.validate()
    torch.manual_seed(config.seed)
    n_train = len(task.splits["train"])
    rows = carve_validation(task.splits["train"].labels, n_train, config.val_fraction, config.seed)
    has_eval = "eval" in task.splits
    sizes = {"train": len(rows[0]), "val": len(rows[1]), "eval": len(task.splits["eval"]) if has_eval else 0}
    ft = prepare_finetune(task, model, method, pooling, config, opts)
    run_dir = Path(out_dir) if out_dir is not None else None
    run_config = _run_config(task, ft, method, config, opts, sizes)
    if run_dir is not None and (done := _check_folder(run_dir, run_config, overwrite)) is not None:
        return done
    rss_before = peak_rss_mb()
    result = _train_loop(ft, task, rows, config, opts, method, progress)
    best = result["best"]
    if best["state"] is not None:  # an earlier epoch beat the last one
        _restore(ft, best["state"])
    metrics: dict[str, Any] = {
        "task": task.name, "metric": task.metric, "seed": config.seed, "method": method,
        "pooler": ft.pooler.name, "best_val_epoch": best["epoch"], "val": best["val"],
        "val_untrained": best.get("untrained_val"), "epochs_run": len(result["history"]), "sizes": sizes,
        "train_seconds": sum(h["seconds"] for h in result["history"]), "seconds_to_best": best["seconds"],
        "params": trainable_parameters(ft), "no_gradient_params": result["unused"],
        "timing": _timing(result["step_times"], opts.timing_warmup), "history": result["history"],
        "memory": {"peak_rss_mb": peak_rss_mb(), "peak_rss_before_training_mb": rss_before},
        "max_steps": opts.max_steps,
    }  # fmt: skip
    if has_eval and opts.evaluate:
        t0 = time.perf_counter()
        outputs = ft.outputs(task.splits["eval"], batch_size=config.eval_batch_size)
        labels = task.splits["eval"].labels  # read once, after model selection
        metrics.update(
            eval=_score(ft.head, task.metric, outputs, labels), eval_seconds=time.perf_counter() - t0
        )
    if run_dir is not None:
        _save(ft, run_dir, method)
        if has_eval and opts.evaluate:
            atomic_save_tensors(run_dir / EVAL_OUTPUTS, {"output": outputs})
        atomic_write_json(run_dir / METRICS_NAME, metrics)
    return metrics


def load_finetuned(run_dir: str | os.PathLike[str]) -> FinetunedModel:
    """Rebuild a fine-tuned model from its run folder (safetensors + JSON, no pickle), in eval mode."""
    from glot.hub import load_backbone

    path = Path(run_dir)
    config = read_json(path / RUN_CONFIG_NAME)
    method = config.get("method")
    if method not in METHODS:
        raise ValueError(
            f"{path} is not a LoRA/full fine-tuning run (method={method!r}); use glot.runs.load_run"
        )
    if not (path / METRICS_NAME).is_file():
        raise FileNotFoundError(f"{path} is unfinished (no {METRICS_NAME}); rerun the training to finish it")
    ref = config["backbone"]
    if method == "lora":
        from peft import PeftModel

        backbone = load_backbone(ref, dtype="float32")
        encoder: nn.Module = PeftModel.from_pretrained(backbone.model, str(path / ADAPTER_DIR))
    else:
        keys = ("layer", "max_length", "padding_side", "append_eos", "prompt")
        kwargs = {k: ref[k] for k in keys if ref.get(k) is not None}
        backbone = FrozenBackbone.from_pretrained(str(path / BACKBONE_DIR), dtype="float32", **kwargs)
        encoder = backbone.model
    head = build_head(**read_json(path / HEAD_CONFIG))
    head.load_state_dict(load_tensors(path / HEAD_WEIGHTS))
    return FinetunedModel(backbone, encoder, load_pooler(path / POOLER_DIR), head).eval()
