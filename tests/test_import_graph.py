"""fer_core's modules import one another without a cycle: a reader can start at the bottom (labels, progress,
runtimes) and read upwards. Every import counts, the ones inside functions too (they are how a module stays
light, not a licence to loop back)."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "fer_core"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE


def module_names() -> set[str]:
    return {p.stem for p in ROOT.glob("*.py") if p.stem not in ("__init__", "__main__")}


def _runtime_nodes(node: ast.AST):
    """Every node under `node` except the bodies of `if TYPE_CHECKING:` (imports for annotations only,
    never executed)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            yield from (n for part in child.orelse for n in [part, *_runtime_nodes(part)])
            continue
        yield child
        yield from _runtime_nodes(child)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The fer_core modules that `path` imports anywhere in its body: `from . import x`, `from .x import y`,
    `from fer_core.x import y`, `import fer_core.x`, `from fer_core import x` (module level or inside functions;
    not under `if TYPE_CHECKING:`)."""
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == PACKAGE and len(parts) > 1:
                    found.add(parts[1])
        elif isinstance(node, ast.ImportFrom):
            if node.level == 1:  # relative to fer_core (a flat package)
                base = node.module
            elif node.level == 0 and node.module and node.module.split(".")[0] == PACKAGE:
                base = node.module.partition(".")[2] or None
            else:
                continue
            if base:  # from .x import y / from fer_core.x import y
                found.add(base.split(".")[0])
            else:  # from . import x, y / from fer_core import x
                found.update(alias.name for alias in node.names)
    return found & modules


def import_graph() -> dict[str, set[str]]:
    modules = module_names()
    return {m: imported_modules(ROOT / f"{m}.py", modules) - {m} for m in sorted(modules)}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as [a, b, ..., a], or None (depth-first search, three colours)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def test_the_walker_sees_every_kind_of_import(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("from . import a, b\nfrom .c import x\nimport fer_core.d\nfrom fer_core.e import y\n"
                      "from fer_core import f\nimport numpy\n\ndef later():\n    from .g import z\n"
                      "if TYPE_CHECKING:\n    from .h import Info\n")
    assert imported_modules(source, set("abcdefgh")) == set("abcdefg")


def test_find_cycle_names_the_loop():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_fer_core_has_no_import_cycle():
    graph = import_graph()
    assert {"registry", "export", "evaluate", "predict"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle in fer_core: " + " → ".join(cycle)
