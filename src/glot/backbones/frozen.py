"""Frozen backbone: texts -> real-token hidden states of any Hugging Face encoder or decoder.

GLOT (Mantri et al., "Towards Improved Sentence Representations using Token Graphs", ICLR 2026,
arXiv 2603.03389) keeps the language model frozen and learns only a pooler on its token states: last-layer
``last_hidden_state`` for encoders, ``hidden_states[-1]`` for decoders. :class:`FrozenBackbone` runs that
model once per text under ``torch.no_grad()`` (not ``inference_mode``: the states must be able to feed a
trainable head) and hands out only the real tokens, padded with a boolean mask or packed as ``(x, ptr)``.
Fine-tuning runs the same forward with gradients (``embed_packed(texts, grad=True)``).

Texts longer than ``max_length`` are cut (``long="truncate"``, the paper) or embedded whole in overlapping
windows stitched back into one token sequence (``long="chunk"``, :mod:`glot.backbones.chunking`).

Left and right padding give the same states: position ids are derived from the attention mask, so a
sentence's real tokens always sit at positions 0..n-1 (RoBERTa-style models, which derive positions from
their own padding index, are left alone).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from transformers import BatchEncoding, PretrainedConfig, PreTrainedTokenizerBase

from glot.backbones import identity
from glot.backbones import introspect as _hf
from glot.backbones.chunking import ChunkPlan, Windows, check_long, iter_windows, stitch
from glot.backbones.dtypes import dtype_name
from glot.backbones.loading import load_model
from glot.backbones.tokenize import TokenPlan, Truncation, TruncationWarning, check_texts, truncation_warning
from glot.errors import InputError, InputTypeError
from glot.pooling.packing import pack, unpack
from glot.progress import tqdm

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
        long: str = "truncate",
        chunk_overlap: int | None = None,
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
        self._layers = identity.check_layers(layer, self.num_layers)
        self._layer_index = self._layers[0]
        width = _hf.hidden_width(self.config)
        if width is None:
            raise InputError(f"cannot read the hidden width of {type(model).__name__} from its config")
        self.hidden_size: int = width * len(self._layers)  # the width of the states it gives
        self.length_limit = _hf.position_limit(self.config, model)
        self.max_length, self.max_length_origin = identity.resolve_max_length(
            max_length, self.length_limit, model, tokenizer, source, revision
        )
        self.long, overlap = check_long(long, chunk_overlap)
        #: Truncation count of the latest tokenize / embed / iter_packed call (0 cut under long="chunk").
        self.last_truncation = Truncation(0, 0, self.max_length)
        #: Under long="chunk": how many texts of the latest iter_packed call took more than one window.
        self.last_chunked = 0
        _hf.ensure_pad_token(tokenizer)
        self.padding_side: str = identity.check_padding_side(tokenizer, padding_side)
        self.append_eos = identity.check_eos(tokenizer, self.is_decoder, append_eos)
        self.prompt = prompt
        self._plan = TokenPlan(
            tokenizer, max_length=self.max_length, append_eos=self.append_eos, prompt=prompt
        )
        self._chunks = ChunkPlan(self._plan, overlap) if self.long == "chunk" else None
        #: Tokens consecutive windows share under long="chunk" (the resolved default), else None.
        self.chunk_overlap: int | None = self._chunks.overlap if self._chunks is not None else None
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
        long: str = "truncate",
        chunk_overlap: int | None = None,
        device: str | torch.device | None = None,
        revision: str | None = None,
        trust_remote_code: bool = False,
        device_map: str | dict[str, Any] | None = None,
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
        ``prompt`` is a template with ``{text}``, e.g. :data:`PROMPT_EOL`. ``long``: "truncate" cuts texts
        longer than ``max_length``; "chunk" embeds every token in windows of ``max_length`` sharing
        ``chunk_overlap`` tokens, stitched into one sequence per text (:mod:`glot.backbones.chunking`).
        ``device_map`` ("auto" or a transformers device map) spreads a model too big for one GPU over the
        visible GPUs (and CPU), via Accelerate; ``device`` is then ignored.

        Shapes: none (loads a model).
        """
        model, tokenizer, source = load_model(
            name_or_path,
            dtype=dtype,
            device=device,
            revision=revision,
            trust_remote_code=trust_remote_code,
            device_map=device_map,
        )
        return cls(
            model, tokenizer, name=str(name_or_path), source=source, revision=revision, layer=layer,
            max_length=max_length, padding_side=padding_side, append_eos=append_eos, prompt=prompt,
            long=long, chunk_overlap=chunk_overlap,
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
        long = f", long='chunk', overlap={self.chunk_overlap}" if self._chunks is not None else ""
        return (
            f"FrozenBackbone({self.name!r}, {kind}, D={self.hidden_size}, layer={self.layer}, "
            f"dtype={dtype_name(self.dtype)}, max_length={self.max_length}, padding={self.padding_side}, "
            f"append_eos={self.append_eos}{long})"
        )

    # ------------------------------------------------------------------ texts -> tokens
    def tokenize(self, texts: Sequence[str]) -> BatchEncoding:
        """Prompt, tokenize, truncate to ``max_length``, append EOS, pad to the longest text of the batch
        (one row per text, so always truncating; ``long="chunk"`` applies in the embed methods).

        Shapes: texts (B,) -> input_ids (B, L) int64, attention_mask (B, L) int64 [, token_type_ids (B, L)].
        """
        features = self._encode(check_texts(texts))
        return self._plan.pad(features, range(len(features["input_ids"])), self.padding_side)

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """The token ids behind each text's states (one per row :meth:`embed_packed` returns), in order.

        Shapes: texts (B,) -> B lists of N_i ids."""
        items = check_texts(texts)
        if self._chunks is not None:
            win = self._windows(items)
            return [win.text_ids(i) for i in range(len(items))]
        return [list(ids) for ids in self._encode(items)["input_ids"]]

    def _encode(self, items: list[str]) -> dict[str, list[list[int]]]:
        """Token ids of ``items``; records :attr:`last_truncation` and warns once when texts were cut."""
        features = self._plan.encode(items)
        self.last_truncation = report = self._plan.last_truncation
        if report.truncated:
            warnings.warn(truncation_warning(report, self.length_limit), TruncationWarning, stacklevel=3)
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
        """Token states of one batch of texts, padding positions set to 0 (``long="chunk"``: stitched windows).

        Shapes: texts (B,) -> hidden (B, L, D) float32, attention_mask (B, L) bool.
        """
        items = check_texts(texts)
        if not items:
            return torch.zeros(0, 0, self.hidden_size), torch.zeros(0, 0, dtype=torch.bool)
        if self._chunks is not None:
            return unpack(*self.embed_packed(items))
        return self._run(self.tokenize(items))

    def embed_packed(self, texts: Sequence[str], *, grad: bool = False) -> tuple[Tensor, Tensor]:
        """Real-token states of one batch of texts, packed (one forward; use :meth:`iter_packed` for many).

        ``grad=False`` runs the model under ``torch.no_grad()``. ``grad=True`` leaves autograd to the caller:
        fine-tuning (:mod:`glot.training.finetune`) trains the model's weights through this same forward.
        Under ``long="chunk"`` the forward runs every window of the batch's texts and stitches them.

        Shapes: texts (B,) -> x (N, D) float32, ptr (B + 1,) int64.
        """
        items = check_texts(texts)
        if not items:
            return torch.zeros(0, self.hidden_size), torch.zeros(1, dtype=torch.long)
        if self._chunks is not None:
            win = self._windows(items)
            rows = list(range(len(win.keep)))
            x, ptr = pack(*self._run(self._plan.pad(win.features, rows, self.padding_side), grad))
            return stitch(x, ptr, win.docs, win.keep)
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
        Under ``long="chunk"`` a batch holds about ``batch_size`` windows and each text's states are stitched.

        Shapes: texts (T,) -> per batch indices (B,) int64, x (N, D) float32, ptr (B + 1,) int64.
        """
        items = check_texts(texts)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise InputError(f"batch_size must be a positive int, got {batch_size!r}")
        if self._chunks is not None:
            win = self._windows(items)
            pad = lambda rows: self._plan.pad(win.features, rows, self.padding_side)  # noqa: E731
            with tqdm(total=len(items), desc=desc, unit="text", disable=not progress) as bar:
                for batch in iter_windows(win, batch_size, pad, self._run):
                    yield batch
                    bar.update(len(batch[0]))
            return
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

    def _windows(self, items: list[str]) -> Windows:
        """Windows of ``items`` (long="chunk"); nothing is cut, :attr:`last_chunked` counts the long texts."""
        assert self._chunks is not None
        win = self._chunks.encode(items)
        self.last_truncation = Truncation(0, len(items), self.max_length)
        self.last_chunked = win.long
        return win

    # ------------------------------------------------------------------ identity
    def fingerprint(self) -> dict[str, Any]:
        """JSON-serialisable description of everything that changes the states (for cache keys; weights by
        content digest, hub revision or parameter digest): :func:`glot.backbones.identity.fingerprint`.

        Shapes: none.
        """
        return identity.fingerprint(self)

    def _weights_id(self) -> dict[str, Any] | str | None:
        if self._weights is None:
            self._weights = _hf.weights_identity(self.model, self.source, self.revision)
        return self._weights
