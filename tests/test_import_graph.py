"""fer_core's packages are layers: a module imports only from its own package or from a layer below, so the
import graph has no cycle and a reader can start at `base` and read upwards. Every import counts, the ones
inside functions too (they are how a module stays light, not a licence to loop back), and the ones under
`if TYPE_CHECKING:`."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = "fer_core"
ROOT = Path(__file__).resolve().parents[1] / PACKAGE

# bottom to top; packages on one rank are siblings and may not import each other. "" is fer_core itself
# (api, cli, __main__): the top, which may import anything; `commands` (the CLI's command groups) sits beside it.
LAYERS = {"base": 0, "data": 1, "models": 2, "inference": 3, "evaluation": 4, "video": 4,
          "training": 5, "serving": 5, "commands": 6, "": 6}


def module_name(path: Path) -> str:
    """`fer_core/models/registry.py` → "models.registry"; a package's `__init__` is the package itself."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def module_files() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(ROOT.rglob("*.py")) if "__pycache__" not in p.parts}


def imported_modules(path: Path, here: str, modules: set[str]) -> set[str]:
    """The fer_core modules that the module `here` (at `path`) imports anywhere in its body, relative or
    absolute, at module level, inside functions or under `if TYPE_CHECKING:` (an import for annotations only
    still ties the two modules together: a reader, a type checker and a refactoring see the loop)."""
    package = here.split(".") if path.name == "__init__.py" else here.split(".")[:-1]
    package = [p for p in package if p]
    found = set()

    def add(dotted: str, names=()):
        for candidate in [f"{dotted}.{n}".strip(".") for n in names] + [dotted]:
            if candidate in modules:
                found.add(candidate)
                return

    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE:
                    add(alias.name.partition(".")[2])
        elif isinstance(node, ast.ImportFrom):
            names = [a.name for a in node.names]
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                dotted = ".".join(base + ([node.module] if node.module else []))
            elif node.module and node.module.split(".")[0] == PACKAGE:
                dotted = node.module.partition(".")[2]
            else:
                continue
            if node.module is None or dotted in {m.rpartition(".")[0] for m in modules} or dotted == "":
                for n in names:  # from . import x / from fer_core.models import registry
                    add(f"{dotted}.{n}".strip("."))
            else:
                add(dotted)
    return found - {here, ""}


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    return {m: imported_modules(p, m, set(files)) for m, p in files.items() if m}


def layer(module: str) -> str:
    return module.split(".")[0] if "." in module or module in LAYERS else ""


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
    (tmp_path / "pkg").mkdir()
    source = tmp_path / "pkg" / "m.py"
    source.write_text("from . import a, b\nfrom .c import x\nimport fer_core.other.d\nfrom fer_core.other.e import y\n"
                      "from fer_core.other import f\nfrom ..other import g\nimport numpy\n\ndef later():\n"
                      "    from .h import z\nif TYPE_CHECKING:\n    from .i import Info\n")
    modules = {"pkg.a", "pkg.b", "pkg.c", "other.d", "other.e", "other.f", "other.g", "pkg.h", "pkg.i"}
    assert imported_modules(source, "pkg.m", modules) == modules  # type-only imports count too


def test_find_cycle_names_the_loop():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_every_package_is_a_known_layer_and_says_its_role():
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")}
    assert packages == set(LAYERS) - {""}, "a package missing from LAYERS (or a layer without a package)"
    for name in packages:
        init = ROOT / name / "__init__.py"
        assert ast.get_docstring(ast.parse(init.read_text())), f"{name}/__init__ has no docstring"


def test_imports_only_go_down_the_layers():
    graph = import_graph()
    assert {"models.registry", "training.export", "evaluation.evaluate", "inference.predict"} <= set(graph)
    upward = [f"{m} → {d}" for m, deps in graph.items() for d in deps
              if layer(d) != layer(m) and LAYERS[layer(d)] >= LAYERS[layer(m)]]
    assert not upward, "imports that go up or sideways between layers: " + ", ".join(sorted(upward))


def test_fer_core_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle in fer_core: " + " → ".join(cycle)


def test_the_cli_sits_on_top():
    for module, deps in import_graph().items():  # a stage importing the CLI (even inside a function) closes a circle
        if module not in ("cli", "__main__"):
            assert "cli" not in deps, f"fer_core.{module} imports the CLI"


def test_the_wheel_ships_every_package():
    """pyproject's package discovery finds every layer (a plain `packages = ["fer_core"]` would ship none)."""
    import tomllib

    from setuptools import find_packages

    config = tomllib.loads((ROOT.parent / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]["find"]
    shipped = set(find_packages(str(ROOT.parent), include=config["include"]))
    on_disk = {".".join(p.parent.relative_to(ROOT.parent).parts) for p in ROOT.rglob("__init__.py")}
    assert on_disk <= shipped, f"packages the wheel leaves out: {sorted(on_disk - shipped)}"
