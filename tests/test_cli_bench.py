"""`glot bench`: option splitting, script discovery, the clear error without a checkout, and where results go
(a --quick run never overwrites the committed full-run results). Nothing here times anything."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from glot.cli import bench, main

SCRIPT_MODULES = ("common", "report", *(Path(f).stem for f, _ in bench.SCRIPTS.values()))


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    return parser.parse_args(argv)


def test_split_options_takes_own_flags_and_forwards_the_rest(tmp_path) -> None:
    args = parse(["pooler", "--quick", "--json", str(tmp_path / "r.json"), "--", "--repeats", "20"])
    opts = bench.split_options(args)
    assert opts.quick is True and opts.json == tmp_path / "r.json" and opts.script_args == ["--repeats", "20"]
    opts = bench.split_options(parse(["long", "--threads", "1", "--out", str(tmp_path)]))
    assert opts == (False, None, tmp_path, ["--threads", "1"])


def test_every_registered_script_exists_in_the_checkout() -> None:
    folder = bench.benchmarks_dir()
    for filename, _ in bench.SCRIPTS.values():
        assert (folder / filename).is_file(), filename


def test_missing_checkout_gives_one_line_error(monkeypatch, tmp_path, capsys) -> None:
    monkeypatch.setenv("GLOT_BENCHMARKS_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(bench, "__file__", str(tmp_path / "a" / "b" / "c" / "bench.py"))
    assert main(["bench", "pooler", "--quick"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "benchmarks/ folder" in err[0] and "GLOT_BENCHMARKS_DIR" in err[0]


def test_unknown_benchmark_is_rejected(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "nope"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.fixture()
def clean_modules(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """load_script registers the scripts under their bare names and puts their folder on sys.path: undo it."""
    monkeypatch.setattr(sys, "path", list(sys.path))
    yield
    for name in SCRIPT_MODULES:
        sys.modules.pop(name, None)


STUB = """
import argparse
from common import add_common_arguments
from report import write_results


def main(argv=None):
    parser = argparse.ArgumentParser()
    add_common_arguments(parser)
    args = parser.parse_args(argv)
    write_results("pooler", {"quick": args.quick}, "## stub", args)
    return 0
"""


@pytest.fixture()
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_modules: None) -> Path:
    """A benchmarks/ folder with the real common.py and report.py, a stub bench_pooler.py (it writes its result
    file through the real write_results without timing anything) and committed full-run results."""
    real = bench.benchmarks_dir()
    folder = tmp_path / "benchmarks"
    (folder / "results").mkdir(parents=True)
    for name in ("common.py", "report.py"):
        shutil.copy(real / name, folder / name)
    (folder / "bench_pooler.py").write_text(STUB)
    (folder / "results" / "pooler.json").write_text('{"committed": "full run"}\n')
    monkeypatch.setenv("GLOT_BENCHMARKS_DIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "scratch"))
    (tmp_path / "scratch").mkdir()
    return folder


def test_quick_run_never_overwrites_committed_results(checkout: Path, tmp_path: Path) -> None:
    committed = checkout / "results" / "pooler.json"
    before = committed.read_bytes()
    assert main(["bench", "pooler", "--quick", "--json", str(tmp_path / "copy.json")]) == 0
    assert committed.read_bytes() == before
    quick = tmp_path / "scratch" / "glot-bench-quick" / "pooler.json"
    assert quick.read_text() == (tmp_path / "copy.json").read_text()
    assert '"quick": true' in quick.read_text()
    assert main(["bench", "pooler", "--quick", "--out", str(tmp_path / "mine")]) == 0
    assert '"quick": true' in (tmp_path / "mine" / "pooler.json").read_text()
    assert committed.read_bytes() == before


def test_full_run_still_writes_the_committed_results(checkout: Path) -> None:
    assert main(["bench", "pooler"]) == 0
    assert '"quick": false' in (checkout / "results" / "pooler.json").read_text()


def test_quick_run_aimed_at_committed_results_is_refused(checkout: Path, capsys) -> None:
    before = (checkout / "results" / "pooler.json").read_bytes()
    assert main(["bench", "pooler", "--quick", "--out", str(checkout / "results")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "never go to" in err[0], err
    assert (checkout / "results" / "pooler.json").read_bytes() == before


@pytest.mark.parametrize("which", sorted(bench.SCRIPTS))
def test_every_real_script_sends_quick_results_to_scratch(which: str, clean_modules: None) -> None:
    """The real scripts' own argument parsing (no benchmark runs): --quick resolves away from results/."""
    folder = bench.benchmarks_dir()
    report = bench.load_script(folder, "report.py")
    module = bench.load_script(folder, bench.SCRIPTS[which][0])
    quick, full = module.parse_args(["--quick"]), module.parse_args([])
    assert report.check_out(full) == report.RESULTS_DIR
    assert report.check_out(quick) == Path(tempfile.gettempdir()) / report.QUICK_DIR_NAME
    assert report.check_out(quick) != report.RESULTS_DIR
