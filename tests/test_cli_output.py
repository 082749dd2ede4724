"""What the CLI prints: no progress-bar lines when piped, --quiet prints only the result table, --verbose shows
bars even when piped, every command takes --quiet/--verbose/--no-progress, `glot models` has a legend and keeps
model ids whole (real subprocesses where the output must not be a terminal)."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from io import StringIO
from pathlib import Path

import pytest

import glot
from glot import progress
from glot.cli import COMMANDS, _command_parser, main

sys.path.insert(0, str(Path(__file__).parent))
from tiny_models import make_tiny_bert  # noqa: E402

BAR_MARKS = ("\r", "it/s", "%|", "epoch/s", "text/s", "Loading weights")
TABLE_CHARS = "┏┃┡│└"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("models") / "bert")


def _compare(tiny: Path, work: Path, *extra: str) -> list[str]:
    return ["compare", "--model", str(tiny), "--task-option", "seq_len=16", "--n-train", "40", "--n-eval", "16",
            "--max-length", "12", "--poolers", "mean,glot", "--epochs", "2", "--cache-dir", str(work / "cache"),
            "--out", str(work / "out"), *extra]  # fmt: skip


def _glot_to_file(argv: list[str], log: Path, **env: str) -> int:
    """Run a real `glot` process with stdout and stderr both going to ``log`` (a file: not a terminal)."""
    full_env = dict(os.environ, PYTHONPATH=str(Path(glot.__file__).parents[1]), HF_HUB_OFFLINE="1", **env)
    script = Path(sys.executable).with_name("glot")
    with log.open("w") as out:
        return subprocess.run(
            [str(script), *argv], env=full_env, stdout=out, stderr=subprocess.STDOUT
        ).returncode


def test_piped_compare_log_has_no_progress_bar_lines(tiny: Path, tmp_path: Path) -> None:
    log = tmp_path / "log"
    assert _glot_to_file(_compare(tiny, tmp_path), log) == 0, log.read_text()[-3000:]
    text = log.read_text()
    assert "│ glot" in text and "│ mean" in text  # the result table is there
    for mark in BAR_MARKS:
        assert mark not in text, (mark, text[-3000:])
    assert len(text.splitlines()) < 25  # a table, a verdict, the "wrote" line and a few notes


def test_quiet_prints_only_the_final_table(tiny: Path, tmp_path: Path) -> None:
    log = tmp_path / "log"
    assert _glot_to_file(_compare(tiny, tmp_path, "--quiet"), log) == 0, log.read_text()[-3000:]
    lines = log.read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("┏"))
    assert "Stress test on" in " ".join(lines[:start])  # the title, wrapped over the table's width
    assert all(line[:1] in TABLE_CHARS for line in lines[start:]), lines
    rows = [line.split("│")[1].strip() for line in lines if line.startswith("│")]
    assert rows == ["mean", "glot"]
    assert (tmp_path / "out" / "results.json").is_file()  # quiet prints less, it still writes everything


def test_verbose_shows_bars_even_when_piped(
    tiny: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(_compare(tiny, tmp_path, "--verbose")) == 0
    err = capsys.readouterr().err  # captured by pytest: not a terminal
    assert "%|" in err and "epoch/s" in err and "caching states" in err
    assert main(_compare(tiny, tmp_path, "--verbose", "--no-progress", "--overwrite")) == 0
    assert "%|" not in capsys.readouterr().err  # --no-progress wins


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_command_has_quiet_verbose_and_no_progress(command: str) -> None:
    parser, _ = _command_parser(command)
    for option in ("--quiet", "-q", "--verbose", "-v", "--no-progress"):
        assert option in parser._option_string_actions, (command, option)


def test_quiet_and_verbose_together_is_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["models", "--quiet", "--verbose"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--verbose" in err[0] and "--quiet" in err[0]


def test_bars_draw_only_on_a_terminal_and_the_mode_is_restored() -> None:
    class Terminal(StringIO):
        def isatty(self) -> bool:
            return True

    def drawn(stream: StringIO) -> str:
        for _ in progress.tqdm(range(3), file=stream, desc="work"):
            pass
        return stream.getvalue()

    assert drawn(StringIO()) == ""  # a file / pipe: nothing
    assert "work" in drawn(Terminal())
    with progress.output("verbose"):
        assert "work" in drawn(StringIO())
        assert progress.tqdm(range(2), file=StringIO(), disable=True).disable  # progress=False still wins
    with progress.output("normal", progress=False):
        assert drawn(Terminal()) == ""
    assert drawn(StringIO()) == "" and progress.verbosity() == "normal"


def test_warnings_become_one_log_line_and_the_level_decides(capsys: pytest.CaptureFixture[str]) -> None:
    def warn_both() -> None:
        ours = str(Path(glot.__file__).parent / "cache" / "task.py")
        warnings.warn_explicit("texts were cut", UserWarning, ours, 1, module="glot.cache.task")
        warnings.warn_explicit("old api", FutureWarning, "/lib/torch/x.py", 2, module="torch.x")

    with progress.output("normal"):
        warn_both()
    assert capsys.readouterr().err.splitlines() == ["glot: warning: texts were cut"]
    with progress.output("quiet"):
        warn_both()
        progress.log.info("cache reused")
    assert capsys.readouterr().err == ""
    with progress.output("verbose"):
        warn_both()
    err = capsys.readouterr().err
    assert "texts were cut" in err and "FutureWarning from /lib/torch/x.py:2: old api" in err


def test_models_has_a_ready_legend_and_whole_ids_when_piped(tmp_path: Path) -> None:
    from glot.backbones import zoo

    ids = [m.hf_id for m in zoo.list_models()]
    log = tmp_path / "log"
    assert _glot_to_file(["models"], log) == 0
    text = log.read_text()
    assert "ready: yes = " in text and "installed = " in text and "no = " in text
    assert all(hf_id in text for hf_id in ids) and "…" not in text
    assert _glot_to_file(["models"], log, COLUMNS="80") == 0
    narrow = log.read_text()
    table = [line for line in narrow.splitlines() if not line.startswith(("  to install", "Pooling default"))]
    assert "…" not in narrow and max(len(line) for line in table) <= 80  # commands stay unwrapped (copyable)
    assert _glot_to_file(["models", "--quiet"], log) == 0
    assert "to install" not in log.read_text() and "ready: yes = " in log.read_text()


def test_cli_warn_and_note_follow_the_level(capsys: pytest.CaptureFixture[str]) -> None:
    from glot.cli.common import note, warn

    with progress.output("normal"):
        warn("3 of 9 texts were cut")
        note("wrote x.json")
    captured = capsys.readouterr()
    assert captured.err == "glot: warning: 3 of 9 texts were cut\n" and captured.out == "wrote x.json\n"
    with progress.output("quiet"):
        warn("3 of 9 texts were cut")
        note("wrote x.json")
    assert capsys.readouterr() == ("", "")


def test_python_api_loads_a_model_without_bars_when_piped(tiny: Path) -> None:
    """Not only the CLI: FrozenBackbone.from_pretrained in a script piped to a file prints no transformers bar,
    and the embedding still works."""
    code = (
        "import glot\n"
        f"b = glot.FrozenBackbone.from_pretrained({str(tiny)!r})\n"
        "e = glot.Encoder(b, glot.build_pooler('mean', b.hidden_size))\n"
        "print(e.encode(['a short text'], progress=True).shape)\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip().startswith("(1, ")
    assert "Loading weights" not in out.stderr and "\r" not in out.stderr and "it/s" not in out.stderr
