"""Head precision (issue 12 item 3): ``head_dtype`` auto / fp32 / bf16 for the pooler, training and inference.

The capability probe is always mocked (``native`` fixture): these tests never depend on the machine's CPU.
bf16 autocast also runs (emulated, slower) on CPUs without native bf16, so the bf16 numbers are checked
everywhere.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from torch.utils._python_dispatch import TorchDispatchMode

import glot.backbones.dtypes as dtypes
import glot.pooling.gnn as gnn_module
from glot import build_pooler
from glot.cli import main
from glot.errors import InputError
from glot.export.encoder import Encoder
from glot.pooling.packing import lengths_to_ptr
from glot.training import precision
from glot.training.loop import TrainConfig, cache_task, fit
from test_encoder import TEXTS, FakeBackbone
from test_train import WordBackbone, _stress
from tiny_models import make_tiny_bert

GLOT = TrainConfig(pooler="glot", pooler_options={"hidden_dim": 16, "tau": 0.2}, lr=1e-2, epochs=2,
                   batch_size=16)  # fmt: skip
PROBE = precision.native_bf16  # the real function (tests/conftest.py pins it to "no bf16" in every test)


@pytest.fixture
def native(monkeypatch: pytest.MonkeyPatch):  # noqa: ANN201
    """``native(True/False)``: pretend the CPU has (or lacks) native bf16, through the backbone's probe."""

    def set_native(value: bool) -> None:
        monkeypatch.setattr(precision, "native_bf16", lambda device="cpu": value)

    return set_native


@pytest.fixture(scope="module")
def cached(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    task = _stress(n_train=192, n_eval=48)
    return cache_task(task, WordBackbone(), cache_dir=tmp_path_factory.mktemp("cache"), progress=False)


def test_head_dtype_is_validated_with_one_line_errors(native, capsys: pytest.CaptureFixture[str]) -> None:
    assert TrainConfig().head_dtype == "auto"
    for bad in ("fp16", "bfloat16", None, 16):
        with pytest.raises(InputError, match=r"head_dtype must be one of auto, fp32, bf16 \(--head-dtype\)"):
            TrainConfig(head_dtype=bad).validate()  # type: ignore[arg-type]
    with pytest.raises(InputError, match="head_dtype"):
        TrainConfig.from_dict(TrainConfig().to_dict() | {"head_dtype": "half"})
    native(False)
    code = main(["train", "--task", "stress", "--n-train", "40", "--head-dtype", "bf16", "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1  # refused before any data or model is loaded
    assert "--head-dtype bf16" in err[0] and "use --head-dtype auto or fp32" in err[0]
    with pytest.raises(SystemExit):
        main(["train", "--task", "stress", "--head-dtype", "fp16"])
    assert "--head-dtype" in capsys.readouterr().err


@pytest.mark.parametrize("has", [True, False])
def test_auto_follows_the_one_capability_probe(monkeypatch: pytest.MonkeyPatch, has: bool) -> None:
    monkeypatch.setattr(precision, "native_bf16", PROBE)
    monkeypatch.setattr(dtypes, "cpu_has_fast_bf16", lambda: has)  # the backbone's probe, mocked
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: not has)
    assert precision.resolve_head_dtype("auto") == ("bf16" if has else "fp32")
    assert precision.resolve_head_dtype("auto", "cuda") == ("fp32" if has else "bf16")
    assert dtypes.auto_dtype(torch.device("cpu")) == (torch.bfloat16 if has else torch.float32)  # same rule
    assert precision.resolve_head_dtype("fp32") == "fp32"
    if has:
        assert precision.resolve_head_dtype("bf16") == "bf16"
    else:
        with pytest.raises(InputError, match=r"emulates it \(slower\); use --head-dtype auto or fp32$"):
            precision.resolve_head_dtype("bf16")
    assert precision.saved_head_dtype("bf16") == "auto" and precision.saved_head_dtype(None) == "fp32"
    pooler = build_pooler("adapool", 8)
    # a reloaded run (glot eval) scores at its recorded dtype where this machine has it; older runs: fp32
    assert isinstance(precision.for_run(pooler, "bf16"), precision.MixedPrecisionPooler) == has
    assert precision.for_run(pooler, "fp32") is pooler and precision.for_run(pooler, None) is pooler


def test_cpu_features_read_torch_then_cpuinfo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    probe = dtypes.cpu_bf16_features.__wrapped__  # the uncached function
    cpuinfo = tmp_path / "cpuinfo"
    monkeypatch.setattr(dtypes, "Path", lambda _: cpuinfo)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert probe() == ()  # no cpuinfo file and torch says no
    cpuinfo.write_text("flags\t: fpu sse2 avx512f amx_bf16 amx_tile\n")
    assert probe() == ("amx_bf16",)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert probe() == ("avx512_bf16", "amx_bf16")


class _Dtypes(TorchDispatchMode):
    """Records the input dtype of every exp / softmax, and of every matmul outside graph construction (the
    edge path's sparse products apart: CPU sparse kernels have no bf16, and they sum in fp32 as PyG does).

    Matrix-vector-like products (a dimension under 4: the GAT attention logits' 2 * heads columns, the
    one-feature edge attributes, the readout's score) are recorded apart, in ``narrow``: memory-bound, they
    gain nothing from bf16 and may run in the fp32 that PyG's mixed-dtype products give."""

    def __init__(self) -> None:
        super().__init__()
        self.softmax: set[torch.dtype] = set()
        self.matmul: set[torch.dtype] = set()
        self.narrow: set[torch.dtype] = set()
        self.sparse: set[torch.dtype] = set()
        self.in_graph = False  # graph construction (fp32 cosines: the test above) is not recorded

    def watch_graphs(self, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in ("build_token_graph", "build_dense_graph"):  # what TokenGNN.on_graph calls
            build = getattr(gnn_module, name)

            def flagged(*args, _build=build, **kwargs):  # noqa: ANN002, ANN003, ANN202
                self.in_graph = True
                try:
                    return _build(*args, **kwargs)
                finally:
                    self.in_graph = False

            monkeypatch.setattr(gnn_module, name, flagged)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        name = func.overloadpacket.__name__
        if name in ("exp", "_softmax", "_log_softmax"):
            self.softmax.add(args[0].dtype)
        sparse = any(isinstance(a, torch.Tensor) and a.layout != torch.strided for a in args)
        if name == "sparse_sampled_addmm" or (sparse and name in ("mm", "addmm")):
            self.sparse.add(args[-1].dtype)
        elif name in ("mm", "addmm", "bmm", "baddbmm") and not self.in_graph:
            a, b = args[-2:]  # mm (a, b), addmm (bias, a, b), bmm and baddbmm alike
            narrow = min(a.shape[-2], a.shape[-1], b.shape[-1]) < 4
            (self.narrow if narrow else self.matmul).add(b.dtype)
        return func(*args, **(kwargs or {}))


def _on_path(pooler: torch.nn.Module, dense: bool) -> None:
    """Force the GNN's dense or edge-list path (the auto rule would pick by cost)."""
    pooler.gnn.dense_max_tokens, pooler.gnn.dense_choice = (512, "dense") if dense else (0, "edge")


@pytest.mark.parametrize("dense", [False, True], ids=["edge-list", "dense"])
def test_the_graph_is_built_from_fp32_cosines_under_bf16(
    dense: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    x = torch.randn(60, 32) + 0.8 * torch.randn(1, 32)  # a shared direction: many cosines near tau = 0.4
    ptr = lengths_to_ptr(torch.tensor([20, 25, 15]))
    pooler = build_pooler("glot", 32, hidden_dim=8, tau=0.4, weighted=True, normalize="none")
    _on_path(pooler, dense)
    name = "build_dense_graph" if dense else "build_token_graph"
    real, graphs = getattr(gnn_module, name), []
    monkeypatch.setattr(gnn_module, name, lambda *a, **k: graphs.append(real(*a, **k)) or graphs[-1])
    precision.pool(pooler, x, ptr, "bf16")
    built, exact = graphs[0], real(x, ptr, pooler.config.graph)
    # in bf16 the cosines round to 2^-8 and 4 of these 354 edges flip at tau: the graph must be the fp32 one
    if dense:
        assert all(torch.equal(a.adj, b.adj) and torch.equal(a.sim, b.sim) for a, b in zip(built.buckets,
                   exact.buckets, strict=True))  # fmt: skip
    else:
        assert torch.equal(built.edge_index, exact.edge_index) and torch.equal(
            built.edge_weight, exact.edge_weight
        )


class _MixedKernels(TorchDispatchMode):
    """Records every op (casts apart) whose floating-point tensor operands come in more than one dtype: some of
    torch's mixed bf16 x fp32 CPU kernels run 2x slower than the cast and an fp32 one (benchmarks/
    bench_kernels.py, GAT logits), so the head casts first, everywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.mixed: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204
        operands = [a for a in (*args, *(kwargs or {}).values()) if isinstance(a, torch.Tensor)]
        dtypes = {a.dtype for a in operands if a.is_floating_point() and a.dim() > 0}
        if len(dtypes) > 1 and func.overloadpacket.__name__ not in ("copy_", "_to_copy"):
            self.mixed.add(f"{func} {sorted(map(str, dtypes))}")
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize(
    ("name", "dense", "weighted"),
    [("glot", False, False), ("glot", True, False), ("glot", False, True), ("glot", True, True),
     ("adapool", False, False), ("mlp", False, False)],
    ids=["glot-edge", "glot-dense", "glot-edge-weighted", "glot-dense-weighted", "adapool", "mlp"],
)  # fmt: skip
def test_bf16_pooling_mixes_no_dtypes_within_one_kernel(name: str, dense: bool, weighted: bool) -> None:
    torch.manual_seed(0)
    options = {"hidden_dim": 16, "tau": 0.0, "weighted": weighted} if name == "glot" else {}
    pooler = build_pooler(name, 32, **options)
    if name == "glot":
        _on_path(pooler, dense)
    x, ptr = torch.randn(30, 32), lengths_to_ptr(torch.tensor([12, 10, 8]))
    with _MixedKernels() as seen:
        precision.pool(pooler, x, ptr, "bf16").sum().backward()
    assert not seen.mixed  # forward and backward: every mixed pair is cast to one dtype first


@pytest.mark.parametrize("dense", [False, True], ids=["edge-list", "dense"])
def test_bf16_runs_matmuls_in_bf16_and_softmaxes_in_fp32(
    dense: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.manual_seed(0)
    pooler = build_pooler("glot", 32, hidden_dim=16, tau=0.0, weighted=True)
    _on_path(pooler, dense)
    x, ptr = torch.randn(30, 32), lengths_to_ptr(torch.tensor([12, 10, 8]))
    seen = _Dtypes()
    seen.watch_graphs(monkeypatch)
    with seen:
        z = precision.pool(pooler, x, ptr, "bf16")
        z.sum().backward()
    assert seen.matmul == {torch.bfloat16}  # every dense matmul of the GNN and readout ran in bf16 ...
    assert torch.float32 in seen.narrow  # (the GAT logits: fp32, as PyG's mixed-dtype products give them)
    assert seen.sparse == (set() if dense else {torch.float32})  # (the edge path's aggregation sums in fp32)
    assert seen.softmax == {torch.float32}  # ... and every softmax (GAT attention, readout) in fp32
    assert z.dtype == torch.float32 and all(p.grad.dtype == torch.float32 for p in pooler.parameters())
    with torch.no_grad():
        exact = pooler.forward_packed(x, ptr)
    # bf16 keeps 8 mantissa bits (relative rounding <= 2^-9 per operand); a few chained matmuls: ~1e-2
    assert torch.allclose(z.detach(), exact, rtol=5e-2, atol=5e-2)
    assert torch.equal(precision.pool(pooler, x, ptr, "fp32"), pooler.forward_packed(x, ptr))


def test_bf16_training_is_finite_close_to_fp32_and_saves_fp32(native, cached, tmp_path: Path) -> None:
    native(True)
    fp32 = fit(cached, GLOT.replace(head_dtype="fp32"), tmp_path / "fp32", progress=False)
    bf16 = fit(cached, GLOT, tmp_path / "bf16", progress=False)  # "auto" on a (mocked) bf16 machine
    assert bf16["precision"] == {"head_dtype": "bf16", "requested": "auto"}
    assert fp32["precision"] == {"head_dtype": "fp32", "requested": "fp32"}
    assert bf16["run_key"] != fp32["run_key"]  # the dtype used is part of the run key
    run_config = json.loads((tmp_path / "bf16" / "run_config.json").read_text())
    assert run_config["train"]["head_dtype"] == "bf16"
    for a, b in zip(fp32["history"], bf16["history"], strict=True):
        assert np.isfinite(b["train_loss"]) and np.isfinite(b["val"])
        # same init and batches; bf16 rounding (2^-9 relative per matmul operand) moved the mean training loss
        # by <= 0.14% in epoch 1 and <= 1.8% in epoch 2 (measured, seeds 0-2: the trajectories drift apart)
        assert abs(a["train_loss"] - b["train_loss"]) <= 0.05 * a["train_loss"]
    assert abs(fp32["eval"] - bf16["eval"]) <= 0.15  # 48 eval items: a few flips at most
    for name in ("pooler/model.safetensors", "head.safetensors"):
        weights = load_file(str(tmp_path / "bf16" / name))
        assert weights and all(t.dtype == torch.float32 for t in weights.values()), name


def test_encode_under_bf16_returns_fp32_and_round_trips(native, tmp_path: Path) -> None:
    native(True)
    torch.manual_seed(0)
    pooler = build_pooler("glot", FakeBackbone.hidden_size, hidden_dim=8, tau=0.2)
    fp32 = Encoder(FakeBackbone(), pooler, head_dtype="fp32").encode(TEXTS, progress=False)
    encoder = Encoder(FakeBackbone(), pooler, head_dtype="bf16")
    got = encoder.encode(TEXTS, progress=False)
    assert isinstance(got, np.ndarray) and got.dtype == np.float32 and got.shape == fp32.shape
    cos = (got * fp32).sum(1) / np.linalg.norm(got, axis=1) / np.linalg.norm(fp32, axis=1)
    assert cos.min() > 0.999  # bf16 rounding (~2^-9 relative) barely turns the embeddings
    encoder.pooler.save_pretrained(tmp_path / "p")  # weights are fp32 after bf16 inference too
    assert all(
        t.dtype == torch.float32 for t in load_file(str(tmp_path / "p" / "model.safetensors")).values()
    )
    native(False)
    with pytest.raises(InputError, match="--head-dtype auto or fp32"):
        Encoder(FakeBackbone(), pooler, head_dtype="bf16")
    assert Encoder(FakeBackbone(), pooler).head_dtype == "auto"


def test_cli_train_and_encode_keep_the_runs_precision(native, tmp_path: Path) -> None:
    """``glot train --head-dtype bf16`` records bf16; ``glot encode --run`` runs at it (saved bf16 = auto) unless
    ``--head-dtype`` says otherwise; the vectors are float32 and the weights stay fp32."""
    native(True)
    model, run = str(make_tiny_bert(tmp_path / "bert")), tmp_path / "run"
    common = ["--no-progress", "--cache-dir", str(tmp_path / "cache")]
    assert main(["train", "--task", "stress", "--model", model, "--n-train", "48", "--n-eval", "16", "--epochs",
                 "1", "--pooler", "glot", "--hidden-dim", "8", "--head-dtype", "bf16", "--out", str(run),
                 "--dtype", "float32", *common]) == 0  # fmt: skip
    seed = run / "seed-0"
    assert json.loads((seed / "run_config.json").read_text())["train"]["head_dtype"] == "bf16"
    metrics = json.loads((seed / "metrics.json").read_text())
    assert main(["eval", str(run), "--json", str(tmp_path / "e.json"), *common]) == 0
    # glot eval scores at the run's bf16 (precision.for_run): the run's own number
    assert json.loads((tmp_path / "e.json").read_text())["per_seed"][0]["value"] == metrics["eval"]
    encoder = Encoder.from_pretrained(seed)
    assert encoder.head_dtype == "auto" and all(p.dtype == torch.float32 for p in encoder.pooler.parameters())
    (tmp_path / "texts.txt").write_text("the delivery contains not keys\nthe quick brown fox\n")
    vectors = {}
    for name, extra in (("saved", []), ("fp32", ["--head-dtype", "fp32"])):
        out = tmp_path / f"{name}.npy"
        assert main(["encode", str(tmp_path / "texts.txt"), "--run", str(run), "-o", str(out), "--no-progress",
                     *extra]) == 0  # fmt: skip
        vectors[name] = np.load(out)
        assert vectors[name].dtype == np.float32 and vectors[name].shape == (2, encoder.out_dim)
    a, b = vectors["saved"], vectors["fp32"]
    assert ((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).min() > 0.999
    assert not np.array_equal(a, b)  # the run's bf16 was used (bit-equal bf16 and fp32 GEMMs: no chance)
    for choice, loads_as in (("bf16", "auto"), ("fp32", "fp32")):  # a saved encoder folder keeps the choice
        folder = Encoder(
            encoder.backbone, encoder.pooler, encoder.transform, head_dtype=choice
        ).save_pretrained(tmp_path / f"saved-{choice}")
        assert json.loads((folder / "glot_config.json").read_text())["head_dtype"] == choice
        assert Encoder.from_pretrained(folder).head_dtype == loads_as
    np.testing.assert_allclose(
        b,
        Encoder.from_pretrained(seed, head_dtype="fp32").encode(
            ["the delivery contains not keys", "the quick brown fox"], progress=False
        ),
        rtol=1e-5,
        atol=1e-6,
    )
