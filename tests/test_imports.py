"""``import glot`` stays cheap: the public API loads lazily (PEP 562), heavy libraries only on first use."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import glot
from glot.cli import COMMANDS


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


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_loads_no_torch_transformers_or_pyg(command: str) -> None:
    argv = [command, "--help"] if command else ["--help"]
    code = (
        "import contextlib, io\n"
        "from glot.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.suppress(SystemExit):\n"
        f"    main({argv!r})\n"
        "assert 'usage: glot' in out.getvalue(), out.getvalue()"
    )
    loaded = _modules_after(code)
    heavy = {
        "torch",
        "transformers",
        "torch_geometric",
        "datasets",
        "safetensors",
        "matplotlib",
        "peft",
        "mteb",
    }
    assert not heavy & loaded, f"glot {' '.join(argv)} loaded {sorted(heavy & loaded)}"


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


def test_pooling_imports_and_runs_without_transformers_datasets_matplotlib() -> None:
    # PyG's own __init__ imports transformers when it is installed (torch_geometric.llm, inside try/except),
    # so "without" is checked the honest way: block the three libraries and use the paper's code anyway.
    code = (
        "import sys\n"
        "for name in ('transformers', 'datasets', 'matplotlib'): sys.modules[name] = None\n"
        "import torch\n"
        "from glot.pooling.poolers import build_pooler\n"
        "pooler = build_pooler('glot', 8, tau=0.0, num_layers=1, hidden_dim=4)\n"
        "z = pooler(torch.randn(2, 5, 8), torch.ones(2, 5, dtype=torch.bool))\n"
        "assert z.shape == (2, pooler.out_dim) and bool(torch.isfinite(z).all())\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


@pytest.mark.parametrize(
    "old", ["glot.poolers", "glot.hub", "glot.taskcache", "glot.trainconfig", "glot._moved"]
)
def test_the_0_1_import_paths_are_gone(old: str) -> None:
    """0.2 moved them and their aliases said they go away in 0.3; 0.5 removed them (README, "Layout")."""
    import importlib

    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(old)


def test_glot_train_is_the_training_function() -> None:
    import glot.training.loop

    assert glot.train is glot.training.loop.train


def _top_level_imports(path: Path, module: str) -> set[str]:
    """glot modules imported at module level by ``path`` (function bodies and TYPE_CHECKING blocks excluded)."""
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    found: set[str] = set()

    def visit(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, (ast.If, ast.Try)):
                visit(
                    node.body
                    + getattr(node, "orelse", [])
                    + sum((h.body for h in getattr(node, "handlers", [])), [])
                )
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("glot"))
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(
                        package.split(".")[: len(package.split(".")) - node.level + 1]
                        + ([base] if base else [])
                    )
                if base.startswith("glot"):
                    found.add(base)
                    found.update(f"{base}.{a.name}" for a in node.names)

    visit(ast.parse(path.read_text()).body)
    return found


def test_no_module_level_import_cycle() -> None:
    root = Path(glot.__file__).parent
    modules = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph = {
        name: {m for m in _top_level_imports(p, name) if m in modules and m != name}
        for name, p in modules.items()
    }
    # importing a submodule first imports its parent packages
    for name in graph:
        graph[name] |= {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)} - {name}
    state: dict[str, int] = {}
    stack: list[str] = []

    def walk(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1 and not node.startswith(nxt + "."):
                cycle = stack[stack.index(nxt) :] + [nxt]
                raise AssertionError("module-level import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                walk(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name)


def _imports_anywhere(path: Path) -> set[str]:
    """glot modules ``path`` imports anywhere (function bodies too), except under TYPE_CHECKING (never runs)
    and in a module ``__getattr__`` (PEP 562: a lazy re-export of a documented name, resolved on first use)."""
    found: set[str] = set()
    skipped: set[int] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        skip = (isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)) or (
            isinstance(node, ast.FunctionDef) and node.name == "__getattr__"
        )
        if skip:
            skipped.update(id(inner) for inner in ast.walk(node))
        elif id(node) in skipped:
            continue
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("glot") and not node.level:
            found.add(node.module or "")
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("glot"))
    return found


def test_no_two_modules_import_each_other_even_inside_functions() -> None:
    # a function-level import that dodges a module-level cycle still ties the two modules together
    root = Path(glot.__file__).parent
    modules = {}
    for path in root.rglob("*.py"):
        parts = path.relative_to(root.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    graph = {name: _imports_anywhere(path) & set(modules) - {name} for name, path in modules.items()}
    mutual = sorted(
        f"{a} <-> {b}"
        for a in graph
        for b in graph[a]
        if a < b and a in graph[b] and not a.startswith(b + ".") and not b.startswith(a + ".")
    )
    assert not mutual, f"modules that import each other: {mutual}"
