"""Frozen backbone: texts -> real-token hidden states of any Hugging Face encoder or decoder.

GLOT (Mantri et al., "Towards Improved Sentence Representations using Token Graphs", ICLR 2026,
arXiv 2603.03389) keeps the language model frozen and learns only a pooler on its token states: last-layer
``last_hidden_state`` for encoders, ``hidden_states[-1]`` for decoders. :class:`FrozenBackbone` runs that
model once per text under ``torch.no_grad()`` (not ``inference_mode``: the states must be able to feed a
trainable head) and hands out only the real tokens, padded with a boolean mask or packed as ``(x, ptr)``.
Fine-tuning runs the same forward with gradients (``embed_packed(texts, grad=True)``).

Left and right padding give the same states: position ids are derived from the attention mask, so a
sentence's real tokens always sit at positions 0..n-1 (RoBERTa-style models, which derive positions from
their own padding index, are left alone).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import transformers
from torch import Tensor, nn
from transformers import (
    AutoConfig,
    AutoModel,
    AutoTokenizer,
    BatchEncoding,
    PretrainedConfig,
    PreTrainedTokenizerBase,
)

from glot.backbones import introspect as _hf
from glot.backbones.dtypes import FROM_PRETRAINED_DTYPE_KW, dtype_name, resolve_dtype
from glot.backbones.tokenize import TokenPlan, Truncation, TruncationWarning, check_texts
from glot.errors import InputError, InputTypeError
from glot.pooling.packing import pack
from glot.progress import library_bars, tqdm

#: PromptEOL (Jiang et al., 2023), a common one-word-summary prompt for decoder sentence embeddings.
PROMPT_EOL = 'This sentence : "{text}" means in one word:"'


class FrozenBackbone:
    """A frozen Hugging Face model plus its tokenizer, turning texts into real-token states.

    Shapes: texts (B,) -> hidden (B, L, D) float32 + attention_mask (B, L) bool, or packed x (N, D) float32 +
    ptr (B + 1,) int64. States are float32 on the backbone's device whatever the compute dtype.
    """

    def __init__(
        self,
        model: nn.Module,
        tokenizer: PreTrainedTokenizerBase,
        *,
        name: str | None = None,
        source: str | None = None,
        revision: str | None = None,
        layer: int | Sequence[int] = -1,
        max_length: int | None = None,
        padding_side: str | None = None,
        append_eos: bool | None = None,
        prompt: str | None = None,
    ) -> None:
        config = getattr(model, "config", None)
        if not isinstance(config, PretrainedConfig):
            raise InputTypeError(
                f"model must be a transformers model with a .config, got {type(model).__name__}"
            )
        self.model = model.eval().requires_grad_(False)
        self.tokenizer = tokenizer
        self.config = config
        self.is_decoder = _hf.detect_decoder(self.config)
        if self.is_decoder and hasattr(self.config, "use_cache"):
            self.config.use_cache = False
        self.name = name if name is not None else str(getattr(self.config, "_name_or_path", "") or "model")
        self.source = source
        self.revision = revision
        self.num_layers = _hf.num_layers(self.config)
        self.layer = layer
        # several layers: their states side by side, width len x D (a pooler's mix_layers mixes them)
        self._layers = _check_layers(layer, self.num_layers)
        self._layer_index = self._layers[0]
        width = _hf.hidden_width(self.config)
        if width is None:
            raise InputError(f"cannot read the hidden width of {type(model).__name__} from its config")
        self.hidden_size: int = width * len(self._layers)  # the width of the states it gives
        self.length_limit = _hf.position_limit(self.config, model)
        if max_length is None:
            max_length, self.max_length_origin = _hf.configured_max_length(
                self.config, model, tokenizer, source, revision
            )
        else:
            self.max_length_origin = "max_length argument"
        self.max_length = _check_max_length(max_length, self.length_limit)
        #: Truncation count of the latest tokenize / embed / iter_packed call.
        self.last_truncation = Truncation(0, 0, self.max_length)
        _hf.ensure_pad_token(tokenizer)
        side = padding_side if padding_side is not None else tokenizer.padding_side
        if side not in ("left", "right"):
            raise InputError(f"padding_side must be 'left' or 'right', got {side!r}")
        tokenizer.padding_side = side
        self.padding_side: str = side
        self.append_eos = self._check_eos(append_eos)
        self.prompt = prompt
        self._plan = TokenPlan(
            tokenizer, max_length=self.max_length, append_eos=self.append_eos, prompt=prompt
        )
        params = _hf.forward_params(model)
        self._inputs = [k for k in ("token_type_ids",) if k in params]
        self._positions = "position_ids" in params and not _hf.derives_positions_from_ids(model)
        self._weights: dict[str, Any] | str | None = None

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str,
        *,
        dtype: str | torch.dtype = "auto",
        layer: int | Sequence[int] = -1,
        max_length: int | None = None,
        padding_side: str | None = None,
        append_eos: bool | None = None,
        prompt: str | None = None,
        device: str | torch.device | None = None,
        revision: str | None = None,
        trust_remote_code: bool = False,
    ) -> FrozenBackbone:
        """Load a hub id, a local folder or a glot zoo alias (``minilm``, ``mpnet``, ``smollm2-135m``,
        ``gemma3-270m``; see :mod:`glot.backbones.zoo`) as a frozen backbone.

        ``dtype``: "auto" (bf16 where the hardware runs it natively, else float32), "float32"/"fp32",
        "bfloat16"/"bf16", "float16"/"fp16" or a torch.dtype. ``layer`` indexes ``hidden_states`` (0 = the
        embeddings, -1 = last layer); a list of indices stacks those layers side by side
        (width len x D, for a pooler with ``mix_layers``). ``max_length`` (tokens per text, longer texts are cut with a
        :class:`~glot.backbones.tokenize.TruncationWarning`) defaults to the model's own configured limit, as
        sentence-transformers uses it: sentence_bert_config.json ``max_seq_length``, else the tokenizer's
        ``model_max_length``, else the position embeddings, else 512 (see ``glot.backbones.introspect.configured_max_length``;
        ``max_length_origin`` says which). ``append_eos`` defaults to True for decoders, False for encoders.
        ``prompt`` is a template with ``{text}``, e.g. :data:`PROMPT_EOL`.

        Shapes: none (loads a model).
        """
        from glot.backbones import zoo

        dev = torch.device(device) if device is not None else _default_device()
        torch_dtype = resolve_dtype(dtype, dev)
        source = str(zoo.resolve(str(name_or_path)))
        kw: dict[str, Any] = {"revision": revision, "trust_remote_code": trust_remote_code}
        config = AutoConfig.from_pretrained(source, **kw)
        if _hf.detect_decoder(config):
            config.use_cache = False
        tokenizer = AutoTokenizer.from_pretrained(source, **kw)
        with library_bars():  # "Loading weights" only where glot's own bars draw
            model = AutoModel.from_pretrained(
                source, config=config, **{FROM_PRETRAINED_DTYPE_KW: torch_dtype}, **kw
            )
        if getattr(config, "is_encoder_decoder", False):
            model = model.get_encoder()
        model.to(dev)
        return cls(
            model, tokenizer, name=str(name_or_path), source=source, revision=revision, layer=layer,
            max_length=max_length, padding_side=padding_side, append_eos=append_eos, prompt=prompt,
        )  # fmt: skip

    # ------------------------------------------------------------------ properties
    @property
    def dtype(self) -> torch.dtype:
        """Compute dtype of the backbone weights."""
        return next(self.model.parameters()).dtype

    @property
    def device(self) -> torch.device:
        """Device the backbone runs on (states come back on it)."""
        return next(self.model.parameters()).device

    def __repr__(self) -> str:
        kind = "decoder" if self.is_decoder else "encoder"
        return (
            f"FrozenBackbone({self.name!r}, {kind}, D={self.hidden_size}, layer={self.layer}, "
            f"dtype={dtype_name(self.dtype)}, max_length={self.max_length}, padding={self.padding_side}, "
            f"append_eos={self.append_eos})"
        )

    # ------------------------------------------------------------------ texts -> tokens
    def tokenize(self, texts: Sequence[str]) -> BatchEncoding:
        """Prompt, tokenize, truncate to ``max_length``, append EOS, pad to the longest text of the batch.

        Shapes: texts (B,) -> input_ids (B, L) int64, attention_mask (B, L) int64 [, token_type_ids (B, L)].
        """
        features = self._encode(check_texts(texts))
        return self._plan.pad(features, range(len(features["input_ids"])), self.padding_side)

    def _encode(self, items: list[str]) -> dict[str, list[list[int]]]:
        """Token ids of ``items``; records :attr:`last_truncation` and warns once when texts were cut."""
        features = self._plan.encode(items)
        self.last_truncation = report = self._plan.last_truncation
        if report.truncated:
            limit = self.length_limit
            fix = (
                "the model takes no more" if limit is not None and limit <= report.max_length
                else f"pass a larger max_length{f' (up to {limit})' if limit else ''} to keep more of them"
            )  # fmt: skip
            warnings.warn(
                f"{report.truncated} of {report.total} texts were cut to max_length={report.max_length} "
                f"tokens; {fix}",
                TruncationWarning,
                stacklevel=3,
            )
        return features

    # ------------------------------------------------------------------ tokens -> states
    def _run(self, enc: BatchEncoding, grad: bool = False) -> tuple[Tensor, Tensor]:
        """The one backbone forward (``grad``: see :meth:`embed_packed`).

        Shapes: enc (B, L) -> hidden (B, L, D) float32 (padding zeroed), mask (B, L) bool.
        """
        dev = self.device
        ids = enc["input_ids"].to(dev)
        mask = enc["attention_mask"].to(dev)
        kwargs: dict[str, Any] = {"input_ids": ids, "attention_mask": mask}
        for key in self._inputs:
            if key in enc:
                kwargs[key] = enc[key].to(dev)
        if self._positions:
            kwargs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)
        last = self._layers == (-1,)
        with torch.set_grad_enabled(grad and torch.is_grad_enabled()):
            out = self.model(**kwargs, output_hidden_states=not last, return_dict=True)
            hidden = (
                out.last_hidden_state if last else torch.cat([out.hidden_states[i] for i in self._layers], -1)
            )
        keep = mask.bool()
        return hidden.float().masked_fill(~keep[..., None], 0.0), keep

    def embed_padded(self, texts: Sequence[str]) -> tuple[Tensor, Tensor]:
        """Token states of one batch of texts, padding positions set to 0.

        Shapes: texts (B,) -> hidden (B, L, D) float32, attention_mask (B, L) bool.
        """
        items = check_texts(texts)
        if not items:
            return torch.zeros(0, 0, self.hidden_size), torch.zeros(0, 0, dtype=torch.bool)
        return self._run(self.tokenize(items))

    def embed_packed(self, texts: Sequence[str], *, grad: bool = False) -> tuple[Tensor, Tensor]:
        """Real-token states of one batch of texts, packed (one forward; use :meth:`iter_packed` for many).

        ``grad=False`` runs the model under ``torch.no_grad()``. ``grad=True`` leaves autograd to the caller:
        fine-tuning (:mod:`glot.training.finetune`) trains the model's weights through this same forward.

        Shapes: texts (B,) -> x (N, D) float32, ptr (B + 1,) int64.
        """
        items = check_texts(texts)
        if not items:
            return torch.zeros(0, self.hidden_size), torch.zeros(1, dtype=torch.long)
        return pack(*self._run(self.tokenize(items), grad))

    def iter_packed(
        self,
        texts: Sequence[str],
        batch_size: int = 64,
        progress: bool = True,
        desc: str = "backbone",
    ) -> Iterator[tuple[np.ndarray, Tensor, Tensor]]:
        """Embed many texts in length-bucketed batches (longest first, so little padding is computed).

        Tokenizes everything once up front (setting :attr:`last_truncation`, with one
        :class:`~glot.backbones.tokenize.TruncationWarning` when texts were cut); yields ``(indices, x, ptr)`` where
        ``indices`` are the positions of the batch's texts in ``texts``; every text appears in exactly one batch.

        Shapes: texts (T,) -> per batch indices (B,) int64, x (N, D) float32, ptr (B + 1,) int64.
        """
        items = check_texts(texts)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be a positive int, got {batch_size!r}")
        features = self._encode(items)
        lengths = np.fromiter((len(ids) for ids in features["input_ids"]), dtype=np.int64, count=len(items))
        order = np.argsort(-lengths, kind="stable")
        with tqdm(total=len(items), desc=desc, unit="text", disable=not progress) as bar:
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                enc = self._plan.pad(features, rows.tolist(), self.padding_side)
                x, ptr = pack(*self._run(enc))
                yield rows.astype(np.int64), x, ptr
                bar.update(len(rows))

    # ------------------------------------------------------------------ identity
    def fingerprint(self) -> dict[str, Any]:
        """JSON-serialisable description of everything that changes the states (for cache keys).

        Weights: a local folder is identified by a content digest of its weight, config and tokenizer files
        (see ``glot.backbones.introspect.file_digest``: whole files up to 256 MiB, larger ones sampled), a hub model by its
        revision or resolved commit, a model built in memory by a digest of its parameters.

        Shapes: none.
        """
        tok = self.tokenizer
        specials = ("pad", "eos", "bos", "unk", "cls", "sep", "mask")
        return {
            "format": 1,
            "name": self.name,
            "source": _source_kind(self.source),
            "weights": self._weights_id(),
            "model_class": type(self.model).__name__,
            "model_type": getattr(self.config, "model_type", None),
            "hidden_size": self.hidden_size,
            "num_layers": self.num_layers,
            "layer": _layer_names(self._layers),
            "dtype": dtype_name(self.dtype),
            "max_length": self.max_length,
            "padding_side": self.padding_side,
            "append_eos": self.append_eos,
            "prompt": self.prompt,
            "tokenizer": {
                "class": type(tok).__name__,
                "vocab_size": len(tok),
                "special_ids": {s: getattr(tok, f"{s}_token_id", None) for s in specials},
            },
            "transformers": transformers.__version__,
            "torch": torch.__version__.split("+")[0],
        }

    def _weights_id(self) -> dict[str, Any] | str | None:
        if self._weights is None:
            self._weights = _hf.weights_identity(self.model, self.source, self.revision)
        return self._weights

    def _check_eos(self, append_eos: bool | None) -> bool:
        has_eos = self.tokenizer.eos_token_id is not None
        if append_eos is None:
            return self.is_decoder and has_eos
        if append_eos and not has_eos:
            raise InputError(
                f"append_eos=True but tokenizer {type(self.tokenizer).__name__} has no eos token; "
                "set tokenizer.eos_token or pass append_eos=False"
            )
        return bool(append_eos)


def _source_kind(source: str | None) -> str:
    """Where weights came from; a local folder's path is left out so identical weights key alike anywhere."""
    if source is None:
        return "memory"
    return "local" if Path(source).is_dir() else f"hub:{source}"


def _default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _check_layers(layer: int | Sequence[int], n_layers: int | None) -> tuple[int, ...]:
    """One hidden_states index or a list of distinct ones, each normalised as :func:`_check_layer`."""
    if not isinstance(layer, Sequence):
        return (_check_layer(layer, n_layers),)
    layers = tuple(_check_layer(i, n_layers) for i in layer)
    if not layers or len(set(layers)) != len(layers):
        raise InputError(f"layer must list distinct hidden_states indices, got {list(layer)}")
    return layers


def _layer_names(layers: tuple[int, ...]) -> int | str | list[int | str]:
    """The fingerprint's ``layer``: one index as before (so single-layer cache keys do not change), else a list."""
    names: list[int | str] = [i if i >= 0 else "last" for i in layers]
    return names[0] if len(names) == 1 else names


def _check_layer(layer: int, n_layers: int | None) -> int:
    """Normalise a hidden_states index to -1 (last layer) or 0..n_layers-1. Raises ValueError if out of range."""
    if isinstance(layer, bool) or not isinstance(layer, int):
        raise InputTypeError(f"layer must be an int index into hidden_states, got {type(layer).__name__}")
    if n_layers is None:
        return layer
    lo, hi = -(n_layers + 1), n_layers
    if not lo <= layer <= hi:
        raise InputError(
            f"layer must be in [{lo}, {hi}] for a model with {n_layers} layers "
            f"(0 = embeddings, {hi} or -1 = last layer), got {layer}"
        )
    index = layer % (n_layers + 1)
    return -1 if index == n_layers else index


def _check_max_length(max_length: int, limit: int | None) -> int:
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 2:
        raise InputError(f"max_length must be an int >= 2, got {max_length!r}")
    if limit is not None and max_length > limit:
        raise InputError(f"max_length={max_length} exceeds the model's {limit} position embeddings")
    return max_length
