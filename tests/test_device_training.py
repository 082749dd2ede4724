"""Where the pooler + task head train (``TrainConfig.device`` / ``--device``, resolved by
:func:`glot.distributed.device`): every batch, the weights and the optimizer state on that device; a clear one-line
error for CUDA asked for where there is none; the device outside the run key, so a run moves between devices.

The placement tests run on the CPU everywhere and on CUDA too where a GPU is present; the ``cuda`` tests (CUDA vs
CPU numbers, a CUDA run scored and resumed on the CPU) run on a GPU machine (benchmarks/gpu_check.sh)."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from glot.cli import main
from glot.data import get_task
from glot.errors import InputError
from glot.training.loop import TrainConfig, cache_task, fit, load_run
from glot.training.sources import CacheSource

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import make_tiny_bert  # noqa: E402

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(not CUDA, reason="CUDA absent (run benchmarks/gpu_check.sh)")
no_cuda = pytest.mark.skipif(CUDA, reason="checks the error a machine without CUDA gives")
DEVICES = ["cpu", *(["cuda"] if CUDA else [])]
STRESS = {"distractor_ratio": 0.5, "seq_len": 12, "relational_distance": 2, "n_train": 160, "n_eval": 48}


class HashBackbone:
    """A deterministic stand-in for a frozen model: each word's state is a fixed random vector."""

    hidden_size = 32
    name = "hash-32"

    def fingerprint(self) -> dict[str, Any]:
        return {"model": self.name, "hidden_size": self.hidden_size}

    def iter_packed(self, texts, batch_size=64, progress=True, desc=None):  # noqa: ANN001, ANN201
        for start in range(0, len(texts), batch_size):
            states = []
            for text in texts[start : start + batch_size]:
                seeds = [
                    int(hashlib.sha256(w.encode()).hexdigest()[:8], 16) for w in ["[CLS]", *text.split()]
                ]
                states.append(
                    torch.tensor(np.stack([np.random.default_rng(s).standard_normal(32) for s in seeds]))
                )
            ptr = torch.tensor([0, *np.cumsum([len(s) for s in states])])
            yield np.arange(start, start + len(states)), torch.cat(states).float(), ptr


@pytest.fixture(scope="module")
def cached(tmp_path_factory: pytest.TempPathFactory):  # noqa: ANN201
    task = get_task("stress", **STRESS)
    return cache_task(task, HashBackbone(), cache_dir=tmp_path_factory.mktemp("cache"), progress=False)


#: GLOT with tau="auto" and standardised inputs: the input fit, graphs built once and the GNN all take part
GLOT = TrainConfig(
    pooler="glot", pooler_options={"hidden_dim": 8, "tau": "auto", "normalize": "standardize"},
    lr=1e-2, epochs=2, batch_size=16, head_dtype="fp32",
)  # fmt: skip


def _strip_times(metrics: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in metrics.items() if k not in ("train_seconds", "device")}
    out["history"] = [{k: v for k, v in h.items() if k != "seconds"} for h in metrics["history"]]
    return out


# ---------------------------------------------------------------------------------------------- placement
@pytest.fixture
def spy() -> Iterator[dict[str, set[str]]]:
    """Devices of every tensor reaching a module's forward (and of its own weights), and of the optimizer's
    state tensors after each step (Adam keeps its ``step`` counter on the CPU by design: left out)."""
    seen: dict[str, set[str]] = {"inputs": set(), "weights": set(), "optimizer": set()}

    def forward(module: torch.nn.Module, args: tuple[Any, ...]) -> None:
        seen["inputs"] |= {str(a.device) for a in args if isinstance(a, torch.Tensor)}
        seen["weights"] |= {str(t.device) for t in [*module.parameters(False), *module.buffers(False)]}

    def step(optimizer: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        for state in optimizer.state.values():
            seen["optimizer"] |= {
                str(v.device) for k, v in state.items() if isinstance(v, torch.Tensor) and k != "step"
            }

    hooks = [
        torch.nn.modules.module.register_module_forward_pre_hook(forward),
        register_optimizer_step_post_hook(step),
    ]
    yield seen
    for hook in hooks:
        hook.remove()


@pytest.mark.parametrize("device", DEVICES)
def test_every_tensor_reaching_the_pooler_and_the_optimizer_state_is_on_the_device(
    cached, tmp_path: Path, spy: dict[str, set[str]], device: str
) -> None:
    metrics = fit(cached, GLOT.replace(device=device), tmp_path / "run", progress=False)
    want = {str(torch.device(device, 0) if device == "cuda" else torch.device(device))}
    assert spy["inputs"] == want and spy["weights"] == want and spy["optimizer"] == want, spy
    assert metrics["device"] == want.pop() and metrics["input_fit"]["tau_auto"]
    assert metrics["eval"] > 0.5  # it trained and scored (stress: balanced labels)


@pytest.mark.parametrize("device", DEVICES)
def test_the_source_hands_out_every_piece_of_a_batch_on_its_device(cached, device: str) -> None:
    from glot.pooling.poolers import build_pooler

    where = torch.device(device, 0) if device == "cuda" else torch.device(device)
    pooler = build_pooler("glot", 32, hidden_dim=8, tau=0.2).to(where)
    source, rows = CacheSource(cached, graphs=pooler, device=where), np.arange(5)
    x, ptr = source.packed("train", rows)
    graph = source.graph("train", rows, ptr)
    labels = source.labels("train", rows)
    assert graph is not None and labels is not None
    assert {x.device, ptr.device, graph.edges.edge_index.device, labels.device} == {where}
    assert labels.tolist() == cached.task.splits["train"].labels[:5].tolist()


# ---------------------------------------------------------------------------------------------- one rule
@no_cuda
def test_explicit_cpu_is_the_default_here_and_the_device_is_not_in_the_run_key(
    cached, tmp_path: Path
) -> None:
    default = fit(cached, GLOT, tmp_path / "default", progress=False)
    explicit = fit(cached, GLOT.replace(device="cpu"), tmp_path / "explicit", progress=False)
    assert default["device"] == explicit["device"] == "cpu"
    assert _strip_times(default) == _strip_times(explicit)
    config = json.loads((tmp_path / "default" / "run_config.json").read_text())
    assert "device" not in config["train"] and config["key"] == explicit["run_key"]
    again = fit(cached, GLOT.replace(device="cpu"), tmp_path / "default", progress=False)  # same run: reused
    assert again == default


@no_cuda
def test_cuda_without_cuda_is_one_line_from_the_api_and_every_command(
    cached, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(InputError, match=r"device 'cuda' \(--device cuda\) needs CUDA.*--device auto or cpu"):
        fit(cached, GLOT.replace(device="cuda"), tmp_path / "api", progress=False)
    assert not (tmp_path / "api").exists()  # refused before any folder is written
    texts = tmp_path / "texts.txt"
    texts.write_text("a b c\nd e\n")
    model = str(make_tiny_bert(tmp_path / "bert"))
    commands = [
        ["train", "--task", "stress", "--n-train", "40", "--n-eval", "10", "--model", model,
         "--cache-dir", str(tmp_path / "c"), "--out", str(tmp_path / "cli")],
        ["compare", "--ratios", "0.2", "--poolers", "mean", "--model", model, "--out", str(tmp_path / "cmp")],
        ["encode", str(texts), "--model", model, "--pooler", "mean", "-o", str(tmp_path / "e.npy")],
        ["eval", str(tmp_path)],
        ["cache", "--task", "stress", "--n-train", "40", "--n-eval", "10", "--model", model,
         "--cache-dir", str(tmp_path / "cc")],
    ]  # fmt: skip
    for argv in commands:
        capsys.readouterr()
        assert main([*argv, "--device", "cuda:1", "--no-progress"]) == 2, argv[0]
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "device 'cuda:1'" in err and "needs CUDA" in err, (argv[0], err)
    assert not any((tmp_path / d).exists() for d in ("c", "cli", "cc"))


@no_cuda
def test_glot_cache_on_an_explicit_cpu_builds_the_entry_the_default_does(tmp_path: Path, capsys) -> None:
    model = str(make_tiny_bert(tmp_path / "bert"))
    base = [
        "cache",
        "--task",
        "stress",
        "--n-train",
        "30",
        "--n-eval",
        "10",
        "--model",
        model,
        "--no-progress",
    ]
    keys = []
    for name, extra in (("auto", []), ("cpu", ["--device", "cpu"])):
        out = tmp_path / f"{name}.json"
        assert main([*base, "--cache-dir", str(tmp_path / name), "--json", str(out), *extra]) == 0
        info = json.loads(out.read_text())
        keys.append((info["key"], info["texts"], info["tokens"]))
    assert keys[0] == keys[1]  # the device is not in the key, and the same states were stored


def test_a_device_that_is_no_device_is_refused_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("gpu", "cuda:x", "meta", 0):
        with pytest.raises(InputError, match="device must be auto, cpu, cuda or cuda:N"):
            GLOT.replace(device=bad).validate()
    assert main(["train", "--task", "stress", "--device", "tpu", "--no-progress"]) == 2
    assert "device must be auto, cpu, cuda or cuda:N (--device), got 'tpu'" in capsys.readouterr().err


def test_help_says_what_auto_means(capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("train", "compare", "eval", "encode", "cache"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "--device" in text and "auto = this rank's GPU (cuda:LOCAL_RANK under torchrun" in text, (
            command
        )


@pytest.mark.parametrize("device", DEVICES)
def test_online_mode_trains_the_head_on_the_backbones_device(
    tmp_path: Path, spy: dict[str, set[str]], device: str
) -> None:
    from glot.backbones.frozen import FrozenBackbone
    from glot.training.online import OnlineTask, fit_online, head_device

    where = str(torch.device(device, 0) if device == "cuda" else torch.device(device))
    backbone = FrozenBackbone.from_pretrained(
        str(make_tiny_bert(tmp_path / "bert")), dtype="float32", device=where
    )
    task = get_task("stress", **{**STRESS, "n_train": 40, "n_eval": 10})
    config = TrainConfig(pooler="adapool", epochs=1, batch_size=16, head_dtype="fp32")
    metrics = fit_online(OnlineTask(task, backbone), config, tmp_path / "run", progress=False)
    assert metrics["device"] == where and metrics["states"] == "online"
    assert spy["inputs"] == spy["weights"] == spy["optimizer"] == {where}, spy  # backbone, pooler and head
    other = "cpu" if device == "cuda" else "cuda"
    with pytest.raises(InputError, match="online mode trains the pooler|needs CUDA"):  # not the backbone's
        head_device(backbone, other)


# ---------------------------------------------------------------------------------------------- CUDA machines
@needs_cuda
@pytest.mark.parametrize("pooler", ["adapool", "glot"])
def test_cuda_and_cpu_train_to_the_same_numbers(cached, tmp_path: Path, pooler: str) -> None:
    config = (
        GLOT
        if pooler == "glot"
        else TrainConfig(pooler="adapool", lr=1e-2, epochs=2, batch_size=16, head_dtype="fp32")
    )
    on = {d: fit(cached, config.replace(device=d), tmp_path / d, progress=False) for d in ("cuda", "cpu")}
    assert on["cuda"]["device"] == "cuda:0" and on["cpu"]["device"] == "cpu"
    assert on["cuda"]["run_key"] == on["cpu"]["run_key"]  # the device is not in the key
    for a, b in zip(on["cuda"]["history"], on["cpu"]["history"], strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=2e-2, abs=1e-3)
        assert a["val"] == pytest.approx(b["val"], abs=0.07)  # accuracy on 16 rows: one row may flip
    assert on["cuda"]["eval"] == pytest.approx(on["cpu"]["eval"], abs=0.05)


@needs_cuda
def test_a_run_trained_on_cuda_is_scored_and_resumed_on_the_cpu(cached, tmp_path: Path, monkeypatch) -> None:
    import glot.training.loop as loop

    run = tmp_path / "run"
    trained = fit(cached, GLOT.replace(device="cuda"), run, progress=False)
    pooler, head, _ = load_run(run)  # saved on the CPU: loads there
    assert {p.device.type for p in [*pooler.parameters(), *head.parameters()]} == {"cpu"}
    json_out = tmp_path / "eval.json"
    assert main(["eval", str(run), "--device", "cpu", "--no-progress", "--json", str(json_out)]) == 0
    scored = json.loads(json_out.read_text())["per_seed"][0]
    assert scored["states_from_run_cache"] and scored["value"] == pytest.approx(trained["eval"], abs=0.05)

    real = loop._train_epoch

    def killed_in_epoch_2(*args: Any, **kwargs: Any) -> Any:
        if args[4] == 2:
            raise KeyboardInterrupt("simulated kill during epoch 2")
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "_train_epoch", killed_in_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        fit(cached, GLOT.replace(device="cuda"), tmp_path / "moved", progress=False)
    monkeypatch.setattr(loop, "_train_epoch", real)
    resumed = fit(
        cached, GLOT.replace(device="cpu"), tmp_path / "moved", progress=False
    )  # epoch 2 on the CPU
    assert resumed["device"] == "cpu" and resumed["run_key"] == trained["run_key"]
    assert resumed["history"][0]["train_loss"] == trained["history"][0]["train_loss"]  # epoch 1, from CUDA
    assert resumed["history"][1]["train_loss"] == pytest.approx(trained["history"][1]["train_loss"], rel=2e-2)
