"""Count the imports that sit inside functions in a source tree (default: src/glot), by kind.

Usage: ``python tests/tools/count_imports.py [ROOT] [--list]``. Kinds: ``glot`` (our own modules),
``third-party`` and ``stdlib``. Imports under ``if TYPE_CHECKING:`` are not counted (they never run).
"""

from __future__ import annotations

import ast
import sys
from collections import Counter
from pathlib import Path


def _kind(node: ast.Import | ast.ImportFrom) -> str:
    if isinstance(node, ast.ImportFrom) and node.level:
        return "glot"
    name = node.names[0].name if isinstance(node, ast.Import) else (node.module or "")
    top = name.split(".")[0]
    if top == "glot":
        return "glot"
    return "stdlib" if top in sys.stdlib_module_names else "third-party"


def function_imports(path: Path) -> list[tuple[int, str, str]]:
    """(line, kind, statement) of every import inside a function body of ``path``."""
    found = []
    for func in ast.walk(ast.parse(path.read_text())):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for stmt in func.body:
            for node in ast.walk(stmt):  # nested blocks (if/try/with) of this function, not nested functions
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    found.append((node.lineno, _kind(node), ast.unparse(node)))
    return sorted(set(found))


def main(argv: list[str]) -> int:
    args = [a for a in argv if not a.startswith("--")]
    root = Path(args[0]) if args else Path(__file__).resolve().parents[2] / "src" / "glot"
    totals: Counter[str] = Counter()
    for path in sorted(root.rglob("*.py")):
        for line, kind, text in function_imports(path):
            totals[kind] += 1
            if "--list" in argv:
                print(f"{path.relative_to(root)}:{line}: [{kind}] {text}")
    print(
        " ".join(f"{k}={totals[k]}" for k in ("glot", "third-party", "stdlib")),
        f"total={sum(totals.values())}",
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
