"""``import glot`` stays cheap: the public API loads lazily (PEP 562), heavy libraries only on first use."""

from __future__ import annotations

import subprocess
import sys

import glot


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", f"import sys; {code}; print(' '.join(sorted(sys.modules)))"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return set(out.stdout.split())


def test_import_glot_loads_no_heavy_library() -> None:
    loaded = _modules_after("import glot")
    heavy = {"torch", "transformers", "torch_geometric", "datasets", "matplotlib", "sentence_transformers"}
    assert not heavy & loaded, f"import glot loaded {sorted(heavy & loaded)}"


def test_every_public_name_resolves() -> None:
    assert set(glot.__all__) == set(glot._EXPORTS) | {"__version__"}
    for name in glot.__all__:
        assert getattr(glot, name) is not None
    assert glot.build_pooler("mean", 8).out_dim == 8


def test_unknown_attribute_is_an_attribute_error() -> None:
    try:
        glot.not_a_name  # noqa: B018
    except AttributeError as err:
        assert "not_a_name" in str(err)
    else:
        raise AssertionError("glot.not_a_name did not raise AttributeError")
