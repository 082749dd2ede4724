"""Model cards (README.md): the saved glot encoder's and the sentence-transformers export's.

Each card starts with Hub YAML front matter (license, base_model, datasets, tags, metrics and a ``model-index``
with the run's reported metric), then parameters, training, usage lines that run as copied, and the citation.
:func:`model_card` is a pure function of the ``glot_config.json`` content that :func:`glot.export.hub.save_pretrained`
writes; :func:`glot.export.hub.push_to_hub` regenerates it with the repo id in the usage snippet.
:func:`st_model_card` is the card of :func:`glot.integrations.st_export.run_to_sentence_transformer`'s folder.
No local absolute path and no Python ``repr`` reaches a card.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import yaml

from glot.io import read_json
from glot.training.checkpoint import METRICS_NAME, RUN_CONFIG_NAME

#: the licence of what this library trains and writes (pooler, head, transform)
LICENSE = "apache-2.0"
TAGS = ["sentence-embeddings", "feature-extraction", "glot", "token-graph", "frozen-backbone"]
#: task-card ``type`` per glot head kind
TASK_TYPES = {"single": "text-classification", "pair": "text-classification", "sts": "sentence-similarity",
              "contrastive": "sentence-similarity"}  # fmt: skip
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_METRIC_TYPES = ("accuracy", "f1", "mcc", "spearman", "pearson", "mrr@10", "ndcg@10", "recall@10", "auc")

CITATION = """@inproceedings{mantri2026glot,
  title     = {Towards Improved Sentence Representations using Token Graphs},
  author    = {Mantri, K. S. I. and Sch{\\"o}nlieb, C.-B. and L{\\"a}hner, Z. and Eliasof, M.},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2026},
  eprint    = {2603.03389},
  archivePrefix = {arXiv}
}"""


def hub_id(value: Any) -> str | None:
    """``value`` when it reads as a Hub id (``owner/name``, not an existing local path), else None."""
    if not isinstance(value, str) or not _HUB_ID.match(value) or Path(value).exists():
        return None
    return value


def base_model(reference: dict[str, Any]) -> str | None:
    """The backbone's Hub id when known (a zoo model's id, or a recorded ``owner/name``)."""
    return hub_id(reference.get("hub_id")) or hub_id(reference.get("name_or_path"))


def backbone_licence(model_id: str | None) -> str | None:
    """The licence of a packaged (zoo) backbone, e.g. ``Apache-2.0`` or ``Gemma Terms of Use``; None if unknown."""
    if model_id is None:
        return None
    from glot.backbones import zoo

    return next((m.licence for m in zoo.list_models() if m.hf_id == model_id), None)


def backbone_label(reference: dict[str, Any]) -> str:
    """The backbone as a card may print it: its Hub id, else the folder's name (never a local absolute path)."""
    name = str(reference.get("name_or_path") or "unknown")
    return base_model(reference) or (
        Path(name).name if Path(name).is_absolute() or Path(name).exists() else name
    )


def dataset_id(training: dict[str, Any]) -> str | None:
    """The Hub dataset the run trained on (``task.info['source']`` such as ``nyu-mll/glue``), else None."""
    for value in (training.get("data"), training.get("task")):
        if isinstance(value, dict):
            found = hub_id(value.get("source"))
            if found:
                return found
        elif hub_id(value):
            return str(value)
    return None


def data_text(training: dict[str, Any]) -> str:
    """One line for the training data: a recorded sentence, or the task name, Hub dataset and split sizes."""
    data, task = training.get("data"), training.get("task")
    if isinstance(data, str) and not Path(data).is_absolute():
        return data
    parts = [f"task `{task}`" if isinstance(task, str) else "not recorded"]
    source = dataset_id(training) or (data.get("source") if isinstance(data, dict) else None)
    if isinstance(source, str) and not Path(source).is_absolute():
        parts.append(f"from `{source}`")
    sizes = training.get("sizes")
    if isinstance(sizes, dict) and sizes:
        parts.append(
            "("
            + ", ".join(f"{k}: {v:,}" if isinstance(v, int) else f"{k}: {v}" for k, v in sizes.items())
            + ")"
        )
    return " ".join(parts)


def _metric_type(name: str) -> str:
    words = name.lower().replace("_", " ").split()
    return next((t for t in _METRIC_TYPES if t in words), words[-1] if words else "score")


def _task_type(kind: str | None, metrics: list[str], pipeline: str) -> str:
    """The model-index task type: from the head kind, else from the metric (accuracy & co. = classification)."""
    if kind in TASK_TYPES:
        return TASK_TYPES[kind]
    return "text-classification" if set(metrics) & {"accuracy", "f1", "mcc", "auc"} else pipeline


def front_matter(training: dict[str, Any], reference: dict[str, Any], name: str, pipeline: str,
                 library: str, task_kind: str | None = None) -> str:  # fmt: skip
    """Hub YAML front matter: license, base_model, datasets, tags, metrics and the model-index."""
    meta: dict[str, Any] = {
        "library_name": library,
        "license": LICENSE,
        "pipeline_tag": pipeline,
        "tags": list(TAGS),
    }
    base = base_model(reference)
    if base:
        meta["base_model"] = base
    dataset = dataset_id(training)
    if dataset:
        meta["datasets"] = [dataset]
    metrics = {k: float(v) for k, v in (training.get("metrics") or {}).items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}  # fmt: skip
    if metrics:
        reported = {k: v for k, v in metrics.items() if k.startswith("eval")} or metrics
        meta["metrics"] = sorted({_metric_type(k) for k in reported})
        task = training.get("task")
        task_name = task if isinstance(task, str) else (dataset or "glot task")
        meta["model-index"] = [{"name": name, "results": [{
            "task": {"type": _task_type(task_kind, meta["metrics"], pipeline), "name": task_name},
            "dataset": {"name": task_name, "type": dataset or task_name},
            "metrics": [{"type": _metric_type(k), "value": round(v, 6), "name": k} for k, v in reported.items()],
        }]}]  # fmt: skip
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---"


def _licence_text(reference: dict[str, Any]) -> str:
    base = base_model(reference)
    licence = backbone_licence(base)
    own = "The pooler and head trained by glot-pooling are released under Apache-2.0"
    if base is None:
        return f"{own}; the backbone keeps its own licence (see its model card)."
    return f"{own}; the base model `{base}` keeps its own licence: {licence or 'see its model card'}."


def _rows(mapping: dict[str, Any]) -> list[str]:
    return [f"| {key} | {_cell(value)} |" for key, value in mapping.items()]


def _cell(value: Any) -> str:
    """A table cell: floats to 4 digits, a local absolute path as its last part (the card may be shared)."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, str) and Path(value).is_absolute():
        return f"`{Path(value).name}`"
    return str(value)


def _provenance(config: dict[str, Any]) -> str:
    """Which parts were trained and what the folder holds (backbone referenced or bundled, transform)."""
    bb, transform = config["backbone"], config.get("transform")
    if bb.get("bundled"):
        method = (bb.get("trained_from") or {}).get("method", "fine-tuning")
        text = f"The backbone was trained too ({method}); its weights are included in `{bb['bundled']}/`."
    else:
        text = "Only the pooler (and head) were trained; the backbone is referenced, not copied."
    if transform:
        text += (
            f" The trained head's projection ({transform.get('in_features')} -> {transform.get('out_features')}, "
            f"`{transform.get('path')}/`) is applied after the pooler, as in training."
        )
    return text


def model_card(config: dict[str, Any], repo_id: str | None = None) -> str:
    """Markdown model card (with Hub YAML front matter) for a saved encoder's ``glot_config.json`` content."""
    bb, pooler = config["backbone"], config["pooler"]
    training = config.get("training") or {}
    label = backbone_label(bb)
    kind = (config.get("head") or {}).get("kind")
    name = repo_id.split("/")[-1] if repo_id else f"glot-{pooler['name']}-{label.split('/')[-1]}"
    front = front_matter(training, bb, name, "sentence-similarity", "glot-pooling", kind)
    params = {"backbone": f"`{label}`", "backbone layer": bb.get("layer"),
              "backbone dtype": bb.get("dtype"), "max_length": bb.get("max_length"),
              "prompt": f"`{bb['prompt']}`" if bb.get("prompt") else "none",
              "pooler": f"`{pooler['name']}`", "embedding dimension": config["embedding_dim"],
              "trainable pooler parameters": f"{pooler['trainable_parameters']:,}",
              "head": kind or "none"}  # fmt: skip
    gnn = ((pooler.get("options") or {}).get("gnn")) or {}
    graph = ((pooler.get("options") or {}).get("graph")) or {}
    if pooler["name"] == "glot":
        params["token graph"] = f"cos > {graph.get('tau')}, knn={graph.get('knn')}"
        params["token GNN"] = (
            f"{gnn.get('conv')} K={gnn.get('num_layers')} P={gnn.get('hidden_dim')}, JK {gnn.get('jk')}"
        )
    lines = [front, f"# glot encoder on {label}", "",
             "Sentence embeddings from a **frozen** language model pooled by a trained "
             f"[glot-pooling](https://arxiv.org/abs/2603.03389) `{pooler['name']}` pooler (GLOT: token graph -> "
             "token GNN -> attention readout). " + _provenance(config), "", _licence_text(bb), "",
             "## Parameters", "", "| | |", "|---|---|", *_rows(params), ""]  # fmt: skip
    lines += _training_lines(training)
    lines += ["## Usage", "", "```bash", "pip install glot-pooling", "```", "", "```python",
              "from glot.export.hub import from_pretrained", "",
              f'encoder = from_pretrained("{repo_id or "path/to/this/folder"}")',
              'vectors = encoder.encode(["A sentence.", "Another one."], normalize=True)  # (2, '
              f"{config['embedding_dim']})", "```", "", *_citation()]  # fmt: skip
    return "\n".join(lines)


def st_model_card(reference: dict[str, Any], pooler: str, dim: int, training: dict[str, Any] | None = None,
                  repo_id: str | None = None) -> str:  # fmt: skip
    """The card of a sentence-transformers export (Transformer -> GLOTPooling -> [Dense] -> [Normalize])."""
    training = training or {}
    label = backbone_label(reference)
    name = repo_id.split("/")[-1] if repo_id else f"glot-{pooler}-{label.split('/')[-1]}-st"
    front = front_matter(training, reference, name, "sentence-similarity", "sentence-transformers")
    lines = [front, f"# `{pooler}` pooling on {label} (sentence-transformers)", "",
             "A [sentence-transformers](https://www.sbert.net) model: the frozen backbone's token states pooled by "
             f"a trained [glot-pooling](https://arxiv.org/abs/2603.03389) `{pooler}` pooler ({dim}-dimensional "
             "embeddings, cosine similarity). The pooling module is glot's code, so loading needs glot-pooling "
             "installed and `trust_remote_code=True`.", "", _licence_text(reference), ""]  # fmt: skip
    lines += _training_lines(training)
    lines += ["## Usage", "", "```bash", "pip install 'glot-pooling[st]'", "```", "", "```python",
              "from sentence_transformers import SentenceTransformer", "",
              f'model = SentenceTransformer("{repo_id or "path/to/this/folder"}", trust_remote_code=True)',
              f'embeddings = model.encode(["A sentence.", "Another one."])  # (2, {dim})',
              "similarities = model.similarity(embeddings, embeddings)  # (2, 2) cosine", "```", "",
              *_citation()]  # fmt: skip
    return "\n".join(lines)


def st_card_for(folder: str | os.PathLike[str], pooler_dir: Path, reference: dict[str, Any], dim: int) -> str:
    """:func:`st_model_card` for an export of ``folder`` (a ``glot train`` run or a saved encoder)."""
    from glot.pooling.poolers import CONFIG_NAME

    root = Path(folder)
    if (root / RUN_CONFIG_NAME).is_file():
        training = run_training_info(root)
    else:
        saved = root / "glot_config.json"
        training = (read_json(saved).get("training") if saved.is_file() else None) or {}
    pooler = str(read_json(pooler_dir / CONFIG_NAME).get("name", "glot"))
    return st_model_card(reference, pooler, dim, training)


def run_training_info(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """``training_info`` for :func:`save_pretrained` from a ``glot train`` run (task, metrics, settings)."""
    root = Path(run_dir)
    run_config = read_json(root / RUN_CONFIG_NAME)
    metrics = read_json(root / METRICS_NAME) if (root / METRICS_NAME).is_file() else {}
    task = run_config.get("task") or {}
    name = metrics.get("metric") or task.get("metric") or "score"
    scores = {
        f"{split} {name}": metrics[split]
        for split in ("val", "eval")
        if isinstance(metrics.get(split), float)
    }
    train = run_config.get("train") or {}
    return {
        "task": task.get("name"),
        "data": task.get("info") or task.get("name"),
        "metrics": scores,
        "hyperparameters": {k: v for k, v in train.items() if isinstance(v, (int, float, str, bool))},
        "sizes": task.get("sizes"),
    }


def _training_lines(training: dict[str, Any]) -> list[str]:
    lines = ["## Training", "", f"Data: {data_text(training)}.", ""]
    if isinstance(training.get("hyperparameters"), dict):
        lines += ["| hyperparameter | value |", "|---|---|", *_rows(training["hyperparameters"]), ""]
    if isinstance(training.get("metrics"), dict) and training["metrics"]:
        lines += ["## Metrics", "", "| metric | value |", "|---|---|", *_rows(training["metrics"]), ""]
    if training.get("notes"):
        lines += [str(training["notes"]), ""]
    return lines


def _citation() -> list[str]:
    return ["## Citation", "", "```bibtex", CITATION, "```", ""]
