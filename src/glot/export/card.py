"""The model card (README.md) of a saved glot encoder: Hub front matter, parameters, training, usage, citation.

:func:`model_card` is a pure function of the ``glot_config.json`` content that :func:`glot.export.hub.save_pretrained`
writes; :func:`glot.export.hub.push_to_hub` regenerates it with the repo id in the usage snippet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

CITATION = """@inproceedings{mantri2026glot,
  title     = {Towards Improved Sentence Representations using Token Graphs},
  author    = {Mantri, K. S. I. and Sch{\\"o}nlieb, C.-B. and L{\\"a}hner, Z. and Eliasof, M.},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2026},
  eprint    = {2603.03389},
  archivePrefix = {arXiv}
}"""


def _rows(mapping: dict[str, Any]) -> list[str]:
    return [f"| {key} | {value:.4g} |" if isinstance(value, float) else f"| {key} | {value} |"
            for key, value in mapping.items()]  # fmt: skip


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
    base = bb.get("hub_id") or bb["name_or_path"]
    front = ["---", "library_name: glot-pooling", "pipeline_tag: sentence-similarity",
             "tags: [sentence-embeddings, feature-extraction, glot, token-graph, frozen-backbone]"]  # fmt: skip
    if base.count("/") == 1 and not Path(base).exists():
        front.append(f"base_model: {base}")
    front.append("---")
    params = {"backbone": f"`{bb['name_or_path']}`", "backbone layer": bb.get("layer"),
              "backbone dtype": bb.get("dtype"), "max_length": bb.get("max_length"),
              "prompt": f"`{bb['prompt']}`" if bb.get("prompt") else "none",
              "pooler": f"`{pooler['name']}`", "embedding dimension": config["embedding_dim"],
              "trainable pooler parameters": f"{pooler['trainable_parameters']:,}",
              "head": (config.get("head") or {}).get("kind", "none")}  # fmt: skip
    gnn = ((pooler.get("options") or {}).get("gnn")) or {}
    graph = ((pooler.get("options") or {}).get("graph")) or {}
    if pooler["name"] == "glot":
        params["token graph"] = f"cos > {graph.get('tau')}, knn={graph.get('knn')}"
        params["token GNN"] = (
            f"{gnn.get('conv')} K={gnn.get('num_layers')} P={gnn.get('hidden_dim')}, JK {gnn.get('jk')}"
        )
    lines = [*front, f"# glot encoder on {bb['name_or_path']}", "",
             "Sentence embeddings from a **frozen** language model pooled by a trained "
             f"[glot-pooling](https://arxiv.org/abs/2603.03389) `{pooler['name']}` pooler (GLOT: token graph -> "
             "token GNN -> attention readout). " + _provenance(config), "", "## Parameters", "", "| | |", "|---|---|",
             *_rows(params), ""]  # fmt: skip
    data = training.get("data") or training.get("task")
    lines += ["## Training", "", f"Data: {data or 'not recorded'}.", ""]
    if isinstance(training.get("hyperparameters"), dict):
        lines += ["| hyperparameter | value |", "|---|---|", *_rows(training["hyperparameters"]), ""]
    if isinstance(training.get("metrics"), dict) and training["metrics"]:
        lines += ["## Metrics", "", "| metric | value |", "|---|---|", *_rows(training["metrics"]), ""]
    if training.get("notes"):
        lines += [str(training["notes"]), ""]
    lines += ["## Usage", "", "```python", "# pip install glot-pooling", "from glot.export.hub import from_pretrained",
              "", f'encoder = from_pretrained("{repo_id or "path/to/this/folder"}")',
              'vectors = encoder.encode(["A sentence.", "Another one."], normalize=True)  # (2, '
              f"{config['embedding_dim']})", "```", "", "## Citation", "", "```bibtex", CITATION, "```", ""]  # fmt: skip
    return "\n".join(lines)
