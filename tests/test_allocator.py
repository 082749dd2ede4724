"""glot.allocator: when the CLI fixes glibc's malloc thresholds, and what it asks mallopt for."""

from __future__ import annotations

import pytest

import glot.allocator as allocator
from glot.cli import main


class FakeLibc:
    def __init__(self, answer: int = 1) -> None:
        self.calls: list[tuple[int, int]] = []
        self.answer = answer

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return self.answer


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(allocator, "_done", None)
    for name in ("GLOT_TUNE_MALLOC", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "LD_PRELOAD"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_tuning_sets_both_thresholds_once(fresh) -> None:
    libc = FakeLibc()
    said = allocator.tune_allocator(libc)
    assert said.startswith("tuned")
    assert libc.calls == [
        (allocator.M_MMAP_THRESHOLD, allocator.MMAP_THRESHOLD),
        (allocator.M_TRIM_THRESHOLD, allocator.TRIM_THRESHOLD),
    ]
    assert all(0 < value < 2**31 for _, value in libc.calls)  # mallopt takes a C int
    assert allocator.tune_allocator(FakeLibc()) == said  # idempotent: the second call does nothing


def test_a_refusal_is_reported_not_hidden(fresh) -> None:
    assert allocator.tune_allocator(FakeLibc(answer=0)) == "left alone: mallopt refused the values"


@pytest.mark.parametrize(
    "name,value,reason",
    [
        ("GLOT_TUNE_MALLOC", "0", "GLOT_TUNE_MALLOC=0"),
        ("GLOT_TUNE_MALLOC", "off", "GLOT_TUNE_MALLOC=off"),
        ("MALLOC_TRIM_THRESHOLD_", "131072", "MALLOC_TRIM_THRESHOLD_ is set"),
        ("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2", "LD_PRELOAD has jemalloc"),
    ],
)
def test_the_users_own_choice_is_left_alone(fresh, name: str, value: str, reason: str) -> None:
    fresh.setenv(name, value)
    libc = FakeLibc()
    assert allocator.tune_allocator(libc) == f"left alone: {reason}"
    assert libc.calls == []


def test_opting_in_explicitly_still_tunes(fresh) -> None:
    fresh.setenv("GLOT_TUNE_MALLOC", "1")
    assert allocator.tune_allocator(FakeLibc()).startswith("tuned")


def test_every_cli_command_runs_after_tuning_and_verbose_says_so(fresh, capsys) -> None:
    calls = []
    fresh.setattr(allocator, "tune_allocator", lambda: calls.append(1) or "tuned: (test)")
    assert main(["models", "--verbose"]) == 0
    assert calls == [1]
    assert "allocator tuned: (test)" in capsys.readouterr().err


def test_another_c_library_is_left_alone(fresh) -> None:
    fresh.setattr(allocator, "_libc", lambda: None)  # musl, macOS, Windows: no glibc mallopt
    assert allocator.tune_allocator() == "left alone: not glibc"
