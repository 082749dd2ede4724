"""Atomic writes: content, permissions like a plain open(), no temp files left behind on failure."""

from __future__ import annotations

import os

import pytest
import torch

from glot.errors import InputError
from glot.io import atomic_save_tensors, atomic_write_json, load_tensors, read_json


def test_json_and_tensors_round_trip_with_normal_permissions(tmp_path) -> None:
    mask = os.umask(0o022)
    try:
        atomic_write_json(tmp_path / "a.json", {"x": 1})
        atomic_save_tensors(tmp_path / "w.safetensors", {"t": torch.arange(3.0)})
        with open(tmp_path / "plain.txt", "w") as fh:  # what the same folder gives a plain open()
            fh.write("x")
    finally:
        os.umask(mask)
    assert read_json(tmp_path / "a.json") == {"x": 1}
    assert torch.equal(load_tensors(tmp_path / "w.safetensors")["t"], torch.arange(3.0))
    # compared with a plain file, not with 0o644: file systems and ACLs may set modes of their own
    plain = (tmp_path / "plain.txt").stat().st_mode & 0o777
    for name in ("a.json", "w.safetensors"):
        assert (tmp_path / name).stat().st_mode & 0o777 == plain


def test_failed_write_keeps_old_file_and_leaves_no_temp(tmp_path) -> None:
    atomic_write_json(tmp_path / "a.json", {"v": "old"})
    with pytest.raises(TypeError):
        atomic_write_json(tmp_path / "a.json", {"v": object()})  # not JSON-serialisable
    assert read_json(tmp_path / "a.json") == {"v": "old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_read_json_errors_name_the_file(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="missing.json"):
        read_json(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(InputError, match="bad.json is not valid JSON"):
        read_json(tmp_path / "bad.json")
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(InputError, match="binary.json is not valid JSON"):
        read_json(tmp_path / "binary.json")


def test_load_tensors_names_a_damaged_or_foreign_file(tmp_path) -> None:
    path = atomic_save_tensors(tmp_path / "w.safetensors", {"t": torch.arange(300.0)})
    path.write_bytes(path.read_bytes()[:200])  # truncated (a kill mid-copy, a full disk)
    with pytest.raises(InputError, match=r"w.safetensors is not a valid safetensors file \(truncated"):
        load_tensors(path)
    torch.save({"t": torch.arange(3.0)}, path)  # a pickle under the safetensors name: refused, not unpickled
    with pytest.raises(InputError, match="w.safetensors is not a valid safetensors file"):
        load_tensors(path)
