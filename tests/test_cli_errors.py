"""The CLI error boundary: every bad input a user can give ends in exit code != 0 and exactly ONE stderr line
that names the problem; a bug of ours (any other exception) keeps its traceback.

Table-driven: each row is a real ``glot`` invocation (``glot.cli.main``, plus a few through the installed
console script) on a tiny random BERT and a tiny trained run.
"""

from __future__ import annotations

import builtins
import errno
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

import glot
from glot.cli import main

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import make_tiny_bert  # noqa: E402

GLOT = Path(sys.executable).with_name("glot")  # the console script installed with the package


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cli-errors")


@pytest.fixture(scope="module")
def tiny(work: Path) -> Path:
    return make_tiny_bert(work / "bert")


def stress_args(tiny: Path, work: Path) -> list[str]:
    return [
        "--model", str(tiny), "--task", "stress", "--task-option", "seq_len=16", "--n-train", "40",
        "--n-eval", "16", "--max-length", "40", "--cache-dir", str(work / "cache"), "--no-progress",
    ]  # fmt: skip


@pytest.fixture(scope="module")
def run_dir(tiny: Path, work: Path) -> Path:
    """A finished one-seed run of a small GLOT pooler."""
    out = work / "run"
    argv = ["train", *stress_args(tiny, work), "--pooler", "glot", "--hidden-dim", "8", "--epochs", "1",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    return out


@pytest.fixture(scope="module")
def texts(work: Path) -> Path:
    path = work / "texts.txt"
    path.write_text("the delivery contains keys\nthe box is not a folder\n")
    (work / "folder.npy").mkdir()  # a folder where an output file is asked for
    return path


def damaged_run(run_dir: Path, work: Path, name: str, damage: Callable[[Path], None]) -> Path:
    """A copy of the run whose pooler folder was damaged by ``damage(pooler_dir)``."""
    copy = work / f"run-{name}"
    if not copy.exists():
        shutil.copytree(run_dir, copy)
        pooler_dir = next(copy.rglob("pooler_config.json")).parent
        damage(pooler_dir)
    return copy


def truncate(pooler_dir: Path) -> None:
    weights = pooler_dir / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-64])


def pickle_weights(pooler_dir: Path) -> None:
    weights = pooler_dir / "model.safetensors"
    torch.save({"w": torch.ones(2)}, weights)


def wrong_shapes(pooler_dir: Path) -> None:
    other = glot.build_pooler("glot", 32, hidden_dim=4)  # the run's pooler has hidden_dim 8
    other.save_pretrained(pooler_dir.parent / "other")
    (pooler_dir.parent / "other" / "model.safetensors").replace(pooler_dir / "model.safetensors")


def string_bool(pooler_dir: Path) -> None:
    meta = json.loads((pooler_dir / "pooler_config.json").read_text())
    meta["pooler"]["graph"]["weighted"] = "false"
    (pooler_dir / "pooler_config.json").write_text(json.dumps(meta))


def huge_layers(pooler_dir: Path) -> None:
    meta = json.loads((pooler_dir / "pooler_config.json").read_text())
    meta["pooler"]["gnn"]["num_layers"] = 10**6
    (pooler_dir / "pooler_config.json").write_text(json.dumps(meta))


@pytest.fixture(autouse=True)
def _in_scratch_folder(work: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands that default to ./runs must never write into the checkout."""
    monkeypatch.chdir(work)


@pytest.fixture()
def read_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder nothing can be written into: chmod 0o555, and where that does not bind (root ignores file
    modes) every way Python creates, opens for writing or renames into a path under it fails with EACCES,
    as the kernel would fail it."""
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        (folder / "probe").touch()
    except PermissionError:
        pass  # the file mode binds: a real read-only folder
    else:
        (folder / "probe").unlink()
        real_open, real_mkdir = os.open, os.mkdir

        def refuse(path: object) -> None:
            if str(path).startswith(str(folder) + os.sep):
                raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

        def guarded_open(path: object, flags: int, *args: object, **kwargs: object) -> int:
            if flags & (os.O_CREAT | os.O_WRONLY | os.O_RDWR):
                refuse(path)
            return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

        def guarded_mkdir(path: object, *args: object, **kwargs: object) -> None:
            refuse(path)
            real_mkdir(path, *args, **kwargs)  # type: ignore[arg-type]

        real_builtin_open, real_replace = builtins.open, os.replace

        def guarded_file_open(file: object, mode: str = "r", *args: object, **kwargs: object) -> object:
            if any(c in mode for c in "wax+"):
                refuse(file)
            return real_builtin_open(file, mode, *args, **kwargs)  # type: ignore[call-overload]

        def guarded_replace(src: object, dst: object, *args: object, **kwargs: object) -> None:
            refuse(dst)
            real_replace(src, dst, *args, **kwargs)  # type: ignore[arg-type]

        monkeypatch.setattr(os, "open", guarded_open)
        monkeypatch.setattr(os, "mkdir", guarded_mkdir)
        monkeypatch.setattr(os, "replace", guarded_replace)
        monkeypatch.setattr(os, "rename", guarded_replace)
        monkeypatch.setattr(builtins, "open", guarded_file_open)
        monkeypatch.setattr(io, "open", guarded_file_open)
    yield folder
    folder.chmod(0o755)


def one_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run ``glot argv`` in-process; it must fail with exit != 0 and exactly one stderr line, returned."""
    capsys.readouterr()
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse-level errors
        code = exc.code if isinstance(exc.code, int) else 1
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0, err
    assert len(err) == 1 and err[0].startswith("glot: error: "), err
    return err[0]


# ---------------------------------------------------------------------------------------------- the table

# (id, argv builder (tiny, work, run_dir, texts) -> argv, substring expected in the one line)
Argv = Callable[[Path, Path, Path, Path], list[str]]


def case(case_id: str, argv_of: Argv, expected: str, marks: object = ()) -> object:
    return pytest.param(argv_of, expected, id=case_id, marks=marks)


CASES: list = [
    case("unknown-command", lambda t, w, r, x: ["frobnicate"], "unknown command 'frobnicate'"),
    case("unknown-option", lambda t, w, r, x: ["models", "--frobnicate", "3"], "unrecognized arguments"),
    case("bad-choice", lambda t, w, r, x: ["bench", "nope"], "invalid choice"),
    case("bad-cache-dtype", lambda t, w, r, x: ["cache", "--cache-dtype", "int3"], "invalid choice"),
    case("not-an-int", lambda t, w, r, x: ["train", "--epochs", "many"], "invalid int value"),
    case(
        "unknown-pooler",
        lambda t, w, r, x: ["train", *stress_args(t, w), "--pooler", "nope"],
        "unknown pooler",
    ),
    case("bad-seeds", lambda t, w, r, x: ["train", *stress_args(t, w), "--seeds", "0,a"], "--seeds takes"),
    case(
        "negative-epochs",
        lambda t, w, r, x: ["train", *stress_args(t, w), "--epochs", "-1", "--out", str(w / "neg")],
        "epochs",
    ),
    case(
        "tau-5",
        lambda t, w, r, x: ["train", *stress_args(t, w), "--tau", "5", "--out", str(w / "t5")],
        "tau=5",
    ),
    case(
        "num-layers-huge",
        lambda t, w, r, x: ["train", *stress_args(t, w), "--num-layers", "1000000", "--out", str(w / "nl")],
        "num_layers=1000000 is invalid",
    ),
    case("unknown-task", lambda t, w, r, x: ["train", "--task", "no-such-task"], "unknown task"),
    case(
        "missing-run-eval",
        lambda t, w, r, x: ["eval", str(w / "no-run"), "--task", "stress"],
        "does not exist",
    ),
    case(
        "missing-run-encode",
        lambda t, w, r, x: ["encode", str(x), "--run", str(w / "no-run"), "-o", str(w / "e.npy")],
        "does not exist",
    ),
    case(
        "missing-texts",
        lambda t, w, r, x: [
            "encode",
            str(w / "no.txt"),
            "--run",
            str(r),
            "-o",
            str(w / "e.npy"),
            "--no-progress",
        ],
        "does not exist",
    ),
    case(
        "output-not-npy",
        lambda t, w, r, x: ["encode", str(x), "--run", str(r), "-o", str(w / "e.txt")],
        "must end in .npy",
    ),
    case(
        "truncated-safetensors",
        lambda t, w, r, x: [
            "encode",
            str(x),
            "--run",
            str(damaged_run(r, w, "trunc", truncate)),
            "-o",
            str(w / "e.npy"),
        ],  # fmt: skip
        "model.safetensors is not a valid safetensors file",
    ),
    case(
        "pickled-safetensors",
        lambda t, w, r, x: [
            "encode",
            str(x),
            "--run",
            str(damaged_run(r, w, "pickle", pickle_weights)),
            "-o",
            str(w / "e.npy"),
        ],  # fmt: skip
        "model.safetensors is not a valid safetensors file",
    ),
    case(
        "wrong-shape-weights",
        lambda t, w, r, x: [
            "encode",
            str(x),
            "--run",
            str(damaged_run(r, w, "shape", wrong_shapes)),
            "-o",
            str(w / "e.npy"),
        ],  # fmt: skip
        "model.safetensors does not fit its config",
    ),
    case(
        "string-bool-in-config",
        lambda t, w, r, x: [
            "encode",
            str(x),
            "--run",
            str(damaged_run(r, w, "strbool", string_bool)),
            "-o",
            str(w / "e.npy"),
        ],  # fmt: skip
        "pooler_config.json: weighted='false' is invalid",
    ),
    case(
        "huge-config",
        lambda t, w, r, x: [
            "encode",
            str(x),
            "--run",
            str(damaged_run(r, w, "huge", huge_layers)),
            "-o",
            str(w / "e.npy"),
        ],  # fmt: skip
        "num_layers=1000000 is invalid",
    ),
    case(
        "json-parent-is-a-file",
        lambda t, w, r, x: ["models", "--json", str(x / "m.json")],
        "texts.txt",
    ),
    case(
        "output-is-a-folder",
        lambda t, w, r, x: ["encode", str(x), "--run", str(r), "-o", str(w / "folder.npy"), "--no-progress"],
        "folder.npy",
    ),
    case(
        "lr-inf",
        lambda t, w, r, x: ["train", *stress_args(t, w), "--lr", "inf", "--out", str(w / "lrinf")],
        "lr",
    ),
    case(
        "cache-dir-is-a-file",
        lambda t, w, r, x: ["cache", *stress_args(t, w)[:-3], "--cache-dir", str(x), "--no-progress"],
        "texts.txt",
    ),
    case(
        "task-option-unknown",
        lambda t, w, r, x: ["train", *stress_args(t, w), "--task-option", "bogus=1", "--out", str(w / "tb")],
        "bogus",
    ),
    case(
        "task-option-not-key-value",
        lambda t, w, r, x: ["train", *stress_args(t, w), "--task-option", "x"],
        "KEY=VALUE",
    ),
]


@pytest.mark.parametrize(("argv_of", "expected"), CASES)
def test_bad_input_gives_one_line(
    argv_of: Callable[[Path, Path, Path, Path], list[str]],
    expected: str,
    tiny: Path,
    work: Path,
    run_dir: Path,
    texts: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    line = one_line(argv_of(tiny, work, run_dir, texts), capsys)
    assert expected in line, line


# ---------------------------------------------------------------------------------------------- output folders
def test_read_only_out_folder_is_one_line(
    tiny: Path, work: Path, run_dir: Path, read_only: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = read_only / "run"
    line = one_line(
        ["train", *stress_args(tiny, work), "--hidden-dim", "8", "--epochs", "1", "--out", str(out)], capsys
    )
    assert str(read_only) in line and "permissions" in line, line


def test_json_into_read_only_folder_names_the_target_not_a_temp_file(
    read_only: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = one_line(["models", "--json", str(read_only / "m.json")], capsys)
    assert f"{read_only / 'm.json'}: Permission denied" in line, line


def test_encode_into_read_only_folder_names_the_output(
    run_dir: Path, texts: Path, read_only: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["encode", str(texts), "--run", str(run_dir), "-o", str(read_only / "e.npy"), "--no-progress"]
    line = one_line(argv, capsys)
    assert f"{read_only / 'e.npy'}: Permission denied" in line, line


def test_full_disk_is_one_line_naming_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """ENOSPC arrives at the final flush / fsync of a write, with no file name: glot names it."""

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    line = one_line(["models", "--json", str(tmp_path / "m.json")], capsys)
    assert str(tmp_path / "m.json") in line and "disk is full" in line, line
    assert not list(tmp_path.iterdir())  # nothing half-written left behind


def test_json_into_a_missing_folder_creates_it(tmp_path: Path) -> None:
    target = tmp_path / "new" / "deeper" / "m.json"
    assert main(["models", "--json", str(target)]) == 0
    assert {"minilm"} <= {m["alias"] for m in json.loads(target.read_text())}


# ---------------------------------------------------------------------------------------------- bugs
def test_a_library_bug_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    """A plain ValueError / TypeError from inside glot is a bug, not a user error: it must not be dressed up."""
    from glot.backbones import zoo

    def broken() -> list[object]:
        raise ValueError("internal invariant broken")

    monkeypatch.setattr(zoo, "list_models", broken)
    with pytest.raises(ValueError, match="internal invariant broken"):
        main(["models"])
    monkeypatch.setattr(zoo, "list_models", lambda: (_ for _ in ()).throw(TypeError("bad call")))
    with pytest.raises(TypeError, match="bad call"):
        main(["models"])


def test_a_missing_optional_package_is_one_line_a_missing_glot_module_is_a_bug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from glot.backbones import zoo

    def needs(name: str) -> Callable[[], list[object]]:
        def load() -> list[object]:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)

        return load

    monkeypatch.setattr(zoo, "list_models", needs("peft"))
    assert "No module named 'peft'; install the missing package" in one_line(["models"], capsys)
    monkeypatch.setattr(zoo, "list_models", needs("glot.gone"))
    with pytest.raises(ModuleNotFoundError):
        main(["models"])


def test_an_unrelated_os_error_keeps_its_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    from glot.backbones import zoo

    def broken() -> list[object]:
        raise ConnectionResetError(errno.ECONNRESET, "Connection reset by peer")

    monkeypatch.setattr(zoo, "list_models", broken)
    with pytest.raises(ConnectionResetError):
        main(["models"])


# ---------------------------------------------------------------------------------------------- real processes
def glot_process(*argv: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run([str(GLOT), *argv], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.parametrize("damage", ["truncated", "pickled"])
def test_console_script_damaged_pooler_is_one_line(
    run_dir: Path, work: Path, texts: Path, damage: str
) -> None:
    broken = damaged_run(run_dir, work, "trunc" if damage == "truncated" else "pickle",
                         truncate if damage == "truncated" else pickle_weights)  # fmt: skip
    proc = glot_process(
        "encode", str(texts), "--run", str(broken), "-o", str(work / "p.npy"), "--no-progress"
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "model.safetensors is not a valid safetensors file" in lines[0] and str(broken) in lines[0]
    assert not (work / "p.npy").exists()


def test_console_script_bad_arguments_are_one_line() -> None:
    for argv in (["frobnicate"], ["train", "--epochs", "many"], ["bench", "nope"]):
        proc = glot_process(*argv)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, (argv, proc.stderr)


def test_console_script_bug_prints_a_traceback(tmp_path: Path) -> None:
    """Through the real console script: an injected library bug exits 1 with Python's traceback."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(
        "import glot.backbones.zoo\n"
        "def _broken():\n    raise ValueError('injected bug')\n"
        "glot.backbones.zoo.list_models = _broken\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([str(GLOT), "models"], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1 and "Traceback (most recent call last)" in proc.stderr, proc.stderr
    assert "ValueError: injected bug" in proc.stderr and "glot: error" not in proc.stderr


def test_every_case_id_is_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids)) and len(ids) >= 20


def test_a_refused_pooler_option_leaves_no_run_folder(
    tiny: Path, work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = work / "stray"
    one_line(["train", *stress_args(tiny, work), "--num-layers", "1000000", "--out", str(out)], capsys)
    assert not out.exists()


def test_a_run_with_nothing_to_train_is_one_line_and_leaves_no_run_folder(
    tiny: Path, work: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Mean pooling (fixed) with the contrastive head's fixed temperature: no parameter at all. Refused before
    the run folder exists, naming both fixes; with a learnable temperature the same run trains."""
    pairs = work / "pairs.jsonl"
    pairs.write_text(
        "".join(json.dumps([f"alpha {w}", f"alpha {w} beta"]) + "\n" for w in "abcdefghijklmnop")
    )
    argv = ["train", "--model", str(tiny), "--task", "msmarco", "--task-option", f"path={pairs}", "--task-option",
            "eval_size=4", "--max-length", "16", "--cache-dir", str(work / "cache"), "--no-progress", "--pooler",
            "mean", "--epochs", "1", "--batch-size", "4"]  # fmt: skip
    line = one_line([*argv, "--out", str(work / "frozen")], capsys)
    assert "nothing to train" in line and "'mean'" in line and "learnable=true" in line, line
    assert not (work / "frozen").exists()
    assert main([*argv, "--head-option", "learnable=true", "--out", str(work / "learned")]) == 0
