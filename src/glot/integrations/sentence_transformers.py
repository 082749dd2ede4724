"""sentence-transformers integration: any glot pooler as a drop-in replacement for ``Pooling``.

```python
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Normalize, Transformer
from glot.integrations.sentence_transformers import GLOTPooling

transformer = Transformer("sentence-transformers/all-MiniLM-L6-v2")
model = SentenceTransformer(modules=[transformer, GLOTPooling(384, "glot", tau=0.3), Normalize()])
model.save("my-glot-model")
model = SentenceTransformer("my-glot-model", trust_remote_code=True)  # custom module: see below
```

Loading needs ``trust_remote_code=True``: since sentence-transformers 6.0 any ``modules.json`` type outside the
``sentence_transformers.*`` namespace is refused without it, even from a local folder
(``sentence_transformers.util.misc.import_module_class``). Nothing is downloaded: the class is imported from
the installed ``glot`` package (path ``glot.integrations.sentence_transformers.GLOTPooling``, kept stable).

The module folder holds glot's own pooler files (``pooler_config.json`` + ``model.safetensors``), so
``glot.load_pooler(folder)`` also reads it; ``glot_pooling.json`` adds the sentence-transformers settings.
Requires ``pip install glot-pooling[st]``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from glot import __version__
from glot.errors import InputError, InputTypeError
from glot.io import atomic_write_json, load_weights, read_json
from glot.pooling.config import PoolerConfig
from glot.pooling.poolers import CONFIG_NAME as POOLER_CONFIG_NAME
from glot.pooling.poolers import WEIGHTS_NAME, Pooler, build_pooler, from_config

try:
    from sentence_transformers.base.modules.module import Module  # sentence-transformers >= 6
except ImportError:  # pragma: no cover - 5.x layout
    try:
        from sentence_transformers.models import Module  # type: ignore[no-redef]
    except ImportError as err:
        raise ImportError(
            "glot.integrations.sentence_transformers needs sentence-transformers; "
            "install it with: pip install 'glot-pooling[st]'"
        ) from err

if TYPE_CHECKING:
    from glot.integrations.st_export import run_to_sentence_transformer

__all__ = ["GLOTPooling", "freeze_backbone", "run_to_sentence_transformer"]


def _check_layer(layer: int) -> int:
    if isinstance(layer, bool) or not isinstance(layer, int):
        raise InputTypeError(f"layer must be an int index into hidden_states (-1 = last), got {layer!r}")
    return layer


class GLOTPooling(Module):
    """A sentence-transformers module pooling ``token_embeddings`` with a glot pooler.

    ``GLOTPooling(embedding_dimension, pooler="glot", **options)`` builds a fresh pooler
    (``glot.build_pooler(pooler, embedding_dimension, **options)``); ``GLOTPooling(pooler=existing_pooler)``
    wraps a trained one. ``layer`` != -1 pools ``all_layer_embeddings[layer]`` instead (0 = embeddings),
    which needs ``Transformer(..., config_kwargs={"output_hidden_states": True})``. Prompt tokens are pooled
    like every other token (glot's own backbones do the same).

    Shapes: features token_embeddings (B, L, D) + attention_mask (B, L), or unpadded (1, N, D) +
    cu_seq_lens_q (B + 1,) -> sentence_embedding (B, out_dim).
    """

    config_file_name = "glot_pooling.json"
    config_keys = ["embedding_dimension", "layer"]

    def __init__(
        self,
        embedding_dimension: int | None = None,
        pooler: str | Pooler = "glot",
        *,
        layer: int = -1,
        word_embedding_dimension: int | None = None,
        **pooler_options: Any,
    ) -> None:
        super().__init__()
        if word_embedding_dimension is not None:  # the name sentence-transformers < 6 used for Pooling
            if embedding_dimension not in (None, word_embedding_dimension):
                raise InputError(
                    f"embedding_dimension={embedding_dimension} and word_embedding_dimension="
                    f"{word_embedding_dimension} disagree; pass only embedding_dimension"
                )
            embedding_dimension = word_embedding_dimension
        self.pooler = self._make_pooler(embedding_dimension, pooler, pooler_options)
        self.embedding_dimension = int(self.pooler.input_dim)
        self.layer = _check_layer(layer)

    @staticmethod
    def _make_pooler(dim: int | None, pooler: str | Pooler, options: dict[str, Any]) -> Pooler:
        if isinstance(pooler, Pooler):
            if options:
                raise InputTypeError(
                    f"pooler options {sorted(options)} only apply when pooler is a registry name"
                )
            if dim is not None and dim != pooler.input_dim:
                raise InputError(
                    f"embedding_dimension={dim} but the given pooler was built for input_dim={pooler.input_dim}"
                )
            return pooler
        if not isinstance(pooler, str):
            raise InputTypeError(
                f"pooler must be a registry name or a glot Pooler, got {type(pooler).__name__}"
            )
        if dim is None:
            raise InputError(
                "embedding_dimension is required to build a pooler by name: the Transformer's hidden size, "
                "e.g. GLOTPooling(transformer.get_embedding_dimension(), 'glot')"
            )
        return build_pooler(pooler, dim, **options)

    @classmethod
    def from_pooler(cls, pooler: Pooler, layer: int = -1) -> GLOTPooling:
        """Wrap an existing (e.g. trained, ``glot.load_pooler``) pooler."""
        return cls(pooler=pooler, layer=layer)

    def get_embedding_dimension(self) -> int:
        """Width of ``sentence_embedding``."""
        return int(self.pooler.out_dim)

    def get_config_dict(self) -> dict[str, Any]:
        return {
            "embedding_dimension": self.embedding_dimension,
            "layer": self.layer,
            "pooler": self.pooler.config.name,
            "out_dim": self.get_embedding_dimension(),
            "glot_version": __version__,
        }

    def _token_states(self, features: dict[str, Any]) -> Tensor:
        if self.layer == -1:
            return features["token_embeddings"]
        layers = features.get("all_layer_embeddings")
        if layers is None:
            raise InputError(
                f"GLOTPooling(layer={self.layer}) needs all hidden states; build the Transformer with "
                "config_kwargs={'output_hidden_states': True}"
            )
        return layers[self.layer]

    def forward(self, features: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Write ``features["sentence_embedding"]``. Shapes: see the class docstring."""
        tokens = self._token_states(features)
        if "cu_seq_lens_q" in features:
            # Flash-attention varlen path (Transformer.unpad_inputs): the batch stays unpadded as (1, N, D)
            # with cumulative lengths (B + 1,) -- exactly glot's packed (x, ptr), so nothing is re-padded.
            x = tokens.reshape(-1, tokens.shape[-1])
            ptr = features["cu_seq_lens_q"].reshape(-1).to(device=x.device, dtype=torch.long)
            pooled = self.pooler.forward_packed(x, ptr)
        else:
            mask = features.get("attention_mask")
            if not isinstance(mask, Tensor) or tuple(mask.shape) != tuple(tokens.shape[:2]):
                mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
            pooled = self.pooler(tokens, mask)
        features["sentence_embedding"] = pooled
        return features

    def save(self, output_path: str, *args: Any, safe_serialization: bool = True, **kwargs: Any) -> None:
        """Write glot's pooler files plus ``glot_pooling.json``, atomically; always safetensors (no pickle)."""
        self.pooler.save_pretrained(output_path)
        atomic_write_json(Path(output_path) / self.config_file_name, self.get_config_dict())

    @classmethod
    def load(  # type: ignore[override]
        cls,
        model_name_or_path: str,
        subfolder: str = "",
        token: bool | str | None = None,
        cache_folder: str | None = None,
        revision: str | None = None,
        local_files_only: bool = False,
        **kwargs: Any,
    ) -> GLOTPooling:
        """Load from a saved SentenceTransformer folder or Hub repo (``subfolder`` e.g. ``1_GLOTPooling``)."""
        hub: dict[str, Any] = {"subfolder": subfolder, "token": token, "cache_folder": cache_folder,
                               "revision": revision, "local_files_only": local_files_only}  # fmt: skip
        settings = cls.load_config(model_name_or_path, **hub)
        meta_path = cls.load_file_path(model_name_or_path, POOLER_CONFIG_NAME, **hub)
        weights_path = cls.load_file_path(model_name_or_path, WEIGHTS_NAME, **hub)
        if meta_path is None or weights_path is None:
            raise FileNotFoundError(
                f"{model_name_or_path}/{subfolder} lacks {POOLER_CONFIG_NAME} or {WEIGHTS_NAME}; "
                "it was not saved by GLOTPooling.save"
            )
        meta = read_json(meta_path)
        pooler = from_config(PoolerConfig.from_dict(meta["pooler"]))
        load_weights(pooler, weights_path)
        return cls(pooler=pooler, layer=int(settings.get("layer", -1)))


def _force_eval(module: nn.Module, args: Any) -> None:
    module.train(False)


def freeze_backbone(model: nn.Sequential) -> int:
    """Freeze every module before the first :class:`GLOTPooling` of a SentenceTransformer, as glot does.

    Its parameters get ``requires_grad=False`` and it always runs in eval mode (a forward pre-hook), so
    ``SentenceTransformerTrainer``'s ``model.train()`` does not switch on the backbone's dropout: the pooler
    trains on the same token states it will see at inference. Returns the number of frozen parameters.
    """
    modules = list(model.children())
    first = next((i for i, m in enumerate(modules) if isinstance(m, GLOTPooling)), None)
    if first is None:
        raise InputError("the model has no GLOTPooling module; add one after the Transformer")
    frozen = 0
    for module in modules[:first]:
        module.requires_grad_(False)
        if not getattr(module, "_glot_frozen", False):  # one hook, however often this is called
            module.register_forward_pre_hook(_force_eval)
            module._glot_frozen = True  # type: ignore[assignment]
        module.train(False)
        frozen += sum(p.numel() for p in module.parameters())
    return frozen


# the export lives in its own module; imported last because it builds on GLOTPooling above
def __getattr__(name: str) -> Any:
    """``run_to_sentence_transformer`` lives in :mod:`glot.integrations.st_export` (which imports this module);
    it is offered here too, resolved on first use so the two modules do not import each other at load time."""
    if name == "run_to_sentence_transformer":
        from glot.integrations.st_export import run_to_sentence_transformer

        return run_to_sentence_transformer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
