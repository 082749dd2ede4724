"""LoRA / full fine-tuning baselines: real training on a learnable toy task, save/load, LoRA target choice."""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from optional import require  # noqa: E402

require("peft", "pip install 'glot-pooling[peft]'")

from glot.data import Split, Task  # noqa: E402
from glot.io import load_tensors  # noqa: E402
from glot.training.checkpoint import load_run  # noqa: E402
from glot.training.config import TrainConfig  # noqa: E402
from glot.training.finetune import (  # noqa: E402
    EVAL_OUTPUTS,
    FinetuneOptions,
    load_finetuned,
    lora_targets,
    prepare_finetune,
    run_finetune,
    trainable_parameters,
)

try:
    from tests.tiny_models import make_tiny_bert, make_tiny_llama
except ImportError:  # pytest run from inside tests/
    from tiny_models import make_tiny_bert, make_tiny_llama  # type: ignore[no-redef]

POSITIVE, NEGATIVE = ("good", "great", "love"), ("bad", "hate", "never")
FILLER = ["the", "a", "movie", "film", "is", "was", "very", "really", "so", "it", "this"]


def _split(n: int, seed: int) -> Split:
    """Sentiment toy data: label 1 iff the sentence holds a positive word (one signal word among fillers)."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        words = [rng.choice(FILLER) for _ in range(rng.randint(3, 8))]
        words.insert(rng.randint(0, len(words)), rng.choice(POSITIVE if i % 2 else NEGATIVE))
        texts.append(" ".join(words))
        labels.append(i % 2)
    return Split(texts=texts, labels=np.asarray(labels))


@pytest.fixture(scope="module")
def toy_task() -> Task:
    splits = {"train": _split(320, 0), "eval": _split(100, 1)}
    return Task(name="toy", kind="single", metric="accuracy", num_labels=2, splits=splits, max_length=16)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("models") / "bert")


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_llama(tmp_path_factory.mktemp("models") / "llama")


CONFIG = TrainConfig(epochs=3, lr=1e-3, batch_size=16)


@pytest.mark.parametrize(("model", "method"), [("tiny_bert", "lora"), ("tiny_llama", "full")])
def test_trains_saves_and_reloads(
    model: str, method: str, toy_task: Task, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    path = request.getfixturevalue(model)
    opts = FinetuneOptions(backbone_lr=1e-3)
    metrics = run_finetune(
        toy_task, str(path), method, None, CONFIG, tmp_path / "run", options=opts, progress=False
    )

    assert metrics["val_untrained"] <= 0.65  # random backbone + untrained head: near chance
    assert metrics["val"] >= 0.9 and metrics["eval"] >= 0.85  # learned, scored on held-out data
    assert metrics["pooler"] == ("mean" if model == "tiny_bert" else "eos")
    assert metrics["timing"]["steps_total"] == 3 * -(-metrics["sizes"]["train"] // 16)
    assert metrics["timing"]["ms_per_step_median"] >= 0 and metrics["memory"]["peak_rss_mb"] >= 0  # no timing
    assert (
        metrics["params"]["trainable"] == metrics["params"]["backbone_trainable"] + metrics["params"]["head"]
    )
    run = tmp_path / "run"
    for name in ("run_config.json", "metrics.json", "head.safetensors", "head_config.json", "pooler"):
        assert (run / name).exists()
    weights = run / (
        "adapter/adapter_model.safetensors" if method == "lora" else "backbone/model.safetensors"
    )
    assert weights.is_file()
    assert not list(run.rglob("*.bin")) and not list(run.rglob("*.pt"))  # no pickle anywhere

    reloaded = load_finetuned(run)
    saved = load_tensors(run / EVAL_OUTPUTS)["output"]
    torch.testing.assert_close(reloaded.outputs(toy_task.splits["eval"]), saved, rtol=0, atol=1e-5)
    assert reloaded.evaluate(toy_task.splits["eval"], "accuracy") == pytest.approx(metrics["eval"])

    again = run_finetune(toy_task, str(path), method, None, CONFIG, run, options=opts, progress=False)
    assert again == metrics  # an identical finished run is returned, not retrained
    with pytest.raises(ValueError, match="load_finetuned"):  # never silently paired with a frozen backbone
        load_run(run)


def test_full_finetuning_trains_every_used_weight(toy_task: Task, tiny_bert: Path) -> None:
    ft = prepare_finetune(toy_task, str(tiny_bert), "full")
    assert all(p.requires_grad for p in ft.encoder.parameters())
    out = ft([toy_task.splits["train"].texts[:4]])
    ft.head.loss(out, toy_task.splits["train"].labels[:4]).backward()
    no_grad = {n for n, p in ft.encoder.named_parameters() if p.grad is None}
    assert no_grad <= {
        n for n, _ in ft.encoder.named_parameters() if n.startswith("pooler.")
    }  # BERT's pooler only


def _tiny_bert_model() -> nn.Module:
    from transformers import BertConfig, BertModel

    cfg = BertConfig(
        vocab_size=50, hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=24
    )
    return BertModel(cfg, add_pooling_layer=True)


def _tiny_llama_model(causal: bool) -> nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaModel

    cfg = LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=24, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2)  # fmt: skip
    return LlamaForCausalLM(cfg) if causal else LlamaModel(cfg)


def _lora_params(model: nn.Module, targets: set[str], r: int) -> tuple[int, int]:
    """Expected number of wrapped layers and LoRA parameters: r * (in + out) per targeted Linear in a block."""
    in_block = re.compile(r"(^|.*\.)layers?\.\d+\.")
    layers = [m for n, m in model.named_modules() if in_block.match(n) and n.rsplit(".", 1)[-1] in targets]
    return len(layers), sum(r * (m.in_features + m.out_features) for m in layers)


@pytest.mark.parametrize(
    ("build", "family", "names", "pattern"),
    [
        (_tiny_bert_model, "bert-like", ["dense", "key", "query", "value"], "layer"),
        (
            lambda: _tiny_llama_model(False),
            "llama-like",
            ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"],
            "layers",
        ),
        (
            lambda: _tiny_llama_model(True),
            "llama-like",
            ["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"],
            "layers",
        ),
    ],  # fmt: skip
)
def test_lora_targets_and_trainable_count(build, family: str, names: list[str], pattern: str) -> None:  # type: ignore[no-untyped-def]
    from peft import get_peft_model

    from glot.training.finetune import _lora_config

    model = build()
    targets = lora_targets(model)
    assert (targets.family, targets.target_modules, targets.layers_pattern) == (family, names, pattern)
    n_layers, n_params = _lora_params(model, set(names), r=8)
    peft_model = get_peft_model(model, _lora_config(model, FinetuneOptions(r=8, alpha=16)))
    wrapped = [n for n, m in peft_model.named_modules() if hasattr(m, "lora_A") and len(m.lora_A) > 0]
    assert len(wrapped) == n_layers
    assert not any("pooler" in n or "lm_head" in n or "embed" in n for n in wrapped)
    assert peft_model.get_nb_trainable_parameters()[0] == n_params


def test_trainable_count_matches_peft(toy_task: Task, tiny_bert: Path) -> None:
    ft = prepare_finetune(toy_task, str(tiny_bert), "lora")
    counts = trainable_parameters(ft)
    assert counts["backbone_trainable"] == ft.encoder.get_nb_trainable_parameters()[0]  # type: ignore[operator]
    assert counts["head"] == 32 * 2 + 2


def test_errors(toy_task: Task, tiny_bert: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="method must be one of"):
        prepare_finetune(toy_task, str(tiny_bert), "qlora")
    with pytest.raises(ValueError, match="pooling must be one of"):
        prepare_finetune(toy_task, str(tiny_bert), "lora", pooling="glot")
    with pytest.raises(ValueError, match="max_steps"):
        FinetuneOptions(max_steps=0).validate()
    (tmp_path / "run_config.json").write_text('{"train": {}}')
    with pytest.raises(ValueError, match="not a LoRA/full"):
        load_finetuned(tmp_path)


def test_max_steps_bounds_training(toy_task: Task, tiny_bert: Path, tmp_path: Path) -> None:
    opts = FinetuneOptions(max_steps=4, timing_warmup=1, evaluate=False)
    metrics = run_finetune(
        toy_task, str(tiny_bert), "lora", None, CONFIG, tmp_path, options=opts, progress=False
    )
    assert metrics["timing"]["steps_total"] == 4 and metrics["timing"]["steps_timed"] == 3
    assert metrics["timing"]["cpu_ms_per_step_median"] >= 0  # CPU clocks can tick coarser than a tiny step
    assert metrics["epochs_run"] == 1 and metrics["val"] is None and metrics["val_untrained"] is None
    assert "eval" not in metrics and not (tmp_path / EVAL_OUTPUTS).exists()  # timing run: no evaluation
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize(("model", "method"), [("tiny_bert", "lora"), ("tiny_llama", "full")])
def test_every_export_uses_the_trained_backbone(
    model: str, method: str, toy_task: Task, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    from glot.backbones.reference import load_backbone
    from glot.cli import main
    from glot.export.encoder import Encoder

    opts = FinetuneOptions(backbone_lr=1e-2, max_steps=6, evaluate=False, score_untrained=False)
    path, run = request.getfixturevalue(model), tmp_path / "run"
    run_finetune(toy_task, str(path), method, None, CONFIG, run, options=opts, progress=False)
    texts = toy_task.splits["eval"].texts[:12]
    reference = load_finetuned(run)
    with torch.no_grad():
        want = reference.embed(texts).numpy()
    base = Encoder(load_backbone(json_of(run)["backbone"], dtype="float32"), reference.pooler)
    assert np.abs(base.encode(texts, progress=False) - want).max() > 1e-2  # training did change the backbone

    encoder = Encoder.from_pretrained(run)
    np.testing.assert_allclose(encoder.encode(texts, progress=False), want, rtol=0, atol=1e-4)
    saved = encoder.save_pretrained(
        tmp_path / "hub"
    )  # bundles the trained weights: the reference names the base
    assert (saved / "backbone" / "model.safetensors").is_file()
    assert f"trained too ({method}); its weights are included" in (saved / "README.md").read_text()
    np.testing.assert_allclose(
        Encoder.from_pretrained(saved).encode(texts, progress=False), want, rtol=0, atol=1e-4
    )
    (tmp_path / "texts.txt").write_text("\n".join(texts) + "\n")
    out = tmp_path / "v.npy"
    assert (
        main(["encode", str(tmp_path / "texts.txt"), "--run", str(run), "-o", str(out), "--no-progress"]) == 0
    )
    np.testing.assert_allclose(np.load(out), want, rtol=0, atol=1e-4)
    if method == "lora":  # the decoder appends EOS, which sentence-transformers cannot reproduce
        pytest.importorskip("sentence_transformers")
        from sentence_transformers import SentenceTransformer

        from glot.integrations.sentence_transformers import run_to_sentence_transformer

        st = SentenceTransformer(
            str(run_to_sentence_transformer(run, tmp_path / "st", normalize=False)), trust_remote_code=True
        )
        np.testing.assert_allclose(st.encode(texts, convert_to_numpy=True), want, rtol=0, atol=1e-4)


def json_of(run: Path) -> dict[str, object]:
    import json

    return dict(json.loads((run / "run_config.json").read_text()))


def test_lora_without_peft_names_the_extra_before_loading_anything(
    toy_task: Task,
    tiny_bert: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import sys

    from glot.cli import main
    from glot.cli import train as train_cmd
    from glot.training.finetune import model as finetune_model

    monkeypatch.setitem(
        sys.modules, "peft", None
    )  # `import peft` now raises ImportError, as if not installed
    monkeypatch.setattr(
        train_cmd, "load_task", lambda args: pytest.fail("the task was loaded before the check")
    )
    code = main(["train", "--task", "tweets", "--finetune", "lora", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "'peft'" in err and 'pip install "glot-pooling[peft]"' in err
    monkeypatch.setattr(  # the Python API checks before the backbone is loaded, too
        finetune_model.FrozenBackbone, "from_pretrained", lambda *a, **k: pytest.fail("backbone loaded first")
    )
    with pytest.raises(ImportError, match=r"glot-pooling\[peft\]"):
        prepare_finetune(toy_task, str(tiny_bert), "lora")


_TIMES = {
    "train_seconds",
    "seconds",
    "seconds_with_val",
    "seconds_to_best",
    "eval_seconds",
    "timing",
    "memory",
}


def _strip_times(metrics: dict) -> dict:  # type: ignore[type-arg]
    out = {k: v for k, v in metrics.items() if k not in _TIMES}
    out["history"] = [{k: v for k, v in h.items() if k not in _TIMES} for h in metrics["history"]]
    return out


def test_finetuning_resumes_a_killed_run_exactly(
    toy_task: Task, tiny_bert: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The one training loop gives fine-tuning per-epoch checkpoints: a run killed in epoch 2 and rerun ends
    with the numbers and weights of an uninterrupted run (LoRA and BERT dropout masks are drawn per epoch)."""
    import glot.training.loop as loop

    opts = FinetuneOptions(backbone_lr=1e-3, timing_warmup=0)
    full = run_finetune(
        toy_task, str(tiny_bert), "lora", None, CONFIG, tmp_path / "full", options=opts, progress=False
    )
    real_epoch = loop._train_epoch

    def killed_in_epoch_2(*args, **kwargs):  # type: ignore[no-untyped-def]
        if args[4] == 2:  # the epoch argument
            raise KeyboardInterrupt("simulated kill during epoch 2")
        return real_epoch(*args, **kwargs)

    monkeypatch.setattr(loop, "_train_epoch", killed_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        run_finetune(
            toy_task, str(tiny_bert), "lora", None, CONFIG, tmp_path / "killed", options=opts, progress=False
        )
    assert not (tmp_path / "killed" / "metrics.json").exists()
    # the checkpoint holds the adapters (and head), not the frozen base weights
    backbone = load_tensors(tmp_path / "killed" / "checkpoint" / "epoch-001" / "backbone.safetensors")
    assert backbone and all("lora_" in name for name in backbone)
    monkeypatch.setattr(loop, "_train_epoch", real_epoch)
    torch.manual_seed(12345)  # as in a new process: another global RNG state must not change the masks
    resumed = run_finetune(
        toy_task, str(tiny_bert), "lora", None, CONFIG, tmp_path / "killed", options=opts, progress=False
    )
    assert _strip_times(resumed) == _strip_times(full)
    assert resumed["timing"]["steps_total"] == full["timing"]["steps_total"]  # epoch 1's steps were kept
    a, b = load_finetuned(tmp_path / "full"), load_finetuned(tmp_path / "killed")
    for (name, p), q in zip(a.encoder.named_parameters(), b.encoder.parameters(), strict=True):
        assert torch.equal(p, q), name


def test_finetuning_reports_per_epoch_eval_and_selects_on_validation(
    toy_task: Task, tiny_llama: Path
) -> None:
    opts = FinetuneOptions(backbone_lr=1e-3, score_untrained=False)
    m = run_finetune(
        toy_task, str(tiny_llama), "full", None, CONFIG.replace(epochs=2), options=opts, progress=False
    )
    assert [h["epoch"] for h in m["history"]] == [1, 2] and all(h["eval"] is not None for h in m["history"])
    n_val, top = m["sizes"]["val"], max(round(h["val"] * m["sizes"]["val"]) for h in m["history"])
    best = [h for h in m["history"] if round(h["val"] * n_val) >= top - CONFIG.select_slack][-1]  # the rule
    assert m["best_val_epoch"] == best["epoch"] and m["val"] == best["val"]  # chosen on validation, not eval
    assert m["eval"] == best["eval"] and m["eval_best_epoch_optimistic"]["value"] >= m["eval"]
    assert [h["steps"] for h in m["history"]] == [18, 18]  # 288 training rows in batches of 16


def test_a_diverging_finetuning_run_stops_with_a_clear_error(
    toy_task: Task, tiny_bert: Path, tmp_path: Path
) -> None:
    from glot.training.loop import NonFiniteError

    diverging = CONFIG.replace(optimizer="adamw", lr=1.0, weight_decay=1e6)  # |w| x 1e6 per step: overflow
    with pytest.raises(NonFiniteError, match=r"non-finite|loss is (nan|inf)") as info:
        run_finetune(toy_task, str(tiny_bert), "full", None, diverging, tmp_path / "run",
                     options=FinetuneOptions(backbone_lr=1.0), progress=False)  # fmt: skip
    assert "epoch 1" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "run" / "metrics.json").exists()


def test_finetuned_states_come_from_the_frozen_backbone_forward(toy_task: Task, tiny_bert: Path) -> None:
    """One backbone forward: an untrained fine-tuning model embeds exactly as the frozen backbone + pooler."""
    from glot.backbones.frozen import FrozenBackbone

    ft = prepare_finetune(toy_task, str(tiny_bert), "full")
    frozen = FrozenBackbone.from_pretrained(str(tiny_bert), dtype="float32", max_length=16, device="cpu")
    texts = toy_task.splits["eval"].texts[:8]
    ft.eval()
    with torch.no_grad():
        want = ft.pooler.forward_packed(*frozen.embed_packed(texts))
        got = ft.embed(texts)
    torch.testing.assert_close(got, want, rtol=0, atol=0)
    x, _ = ft.backbone.embed_packed(texts, grad=True)  # the fine-tuning path: gradients reach the weights
    assert x.requires_grad and not frozen.embed_packed(texts)[0].requires_grad
