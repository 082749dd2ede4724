"""`glot bench`: option splitting, script discovery, and the clear error without a checkout."""

from __future__ import annotations

import argparse

import pytest

from glot.cli import bench, main


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    bench.add_arguments(parser)
    return parser.parse_args(argv)


def test_split_options_takes_own_flags_and_forwards_the_rest(tmp_path) -> None:
    args = parse(["pooler", "--quick", "--json", str(tmp_path / "r.json"), "--", "--repeats", "20"])
    quick, json_path, rest = bench.split_options(args)
    assert quick is True and json_path == tmp_path / "r.json" and rest == ["--repeats", "20"]
    quick, json_path, rest = bench.split_options(parse(["long", "--threads", "1"]))
    assert quick is False and json_path is None and rest == ["--threads", "1"]


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
