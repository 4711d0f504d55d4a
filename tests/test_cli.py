"""The CLI's shape: fast commands never import TensorFlow/Keras, every registered command is reachable,
TensorFlow's start-up chatter stays off the console, the package has no import circle and its import changes
no global state."""
from __future__ import annotations

import ast
import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fer_core import cli
from fer_core.base import quiet
from tests.fixtures import write_kaggle_layout

ROOT = Path(__file__).resolve().parents[1]
NO_TF = "import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None; "


def run_without_tensorflow(*argv, env=None):
    """`python -m fer_core ARGV` in a process where importing TensorFlow or Keras fails."""
    code = NO_TF + "from fer_core.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, env=env)


def test_help_lists_every_command_without_importing_tensorflow():
    done = run_without_tensorflow("--help")
    assert done.returncode == 0, done.stderr
    listing = " ".join(done.stdout.split())  # argparse wraps long help lines
    for name, (_, help_line) in cli.COMMANDS.items():
        assert f" {name} " in listing and " ".join(help_line.split()) in listing


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_command_prints_its_help(command, capsys):
    """argparse %-formats help text: a bare '%' in an option's help (e.g. "15 % margin") breaks --help."""
    with pytest.raises(SystemExit) as done:
        cli.main([command, "--help"])
    assert done.value.code == 0 and f"usage: python -m fer_core {command}" in " ".join(capsys.readouterr().out.split())


def test_models_and_data_run_without_tensorflow(tmp_path):
    done = run_without_tensorflow("models", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    assert isinstance(json.loads(done.stdout), list)
    write_kaggle_layout(tmp_path / "ds", {"happy": (3, 1, 1), "sad": (2, 1, 0)})  # 8 images
    done = run_without_tensorflow("data", "--data", str(tmp_path / "ds"), "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["n"] == 8
    done = run_without_tensorflow("data", "--data", str(tmp_path / "missing"))
    assert done.returncode == 2 and done.stderr.startswith("error: ") and "Traceback" not in done.stderr


@pytest.mark.parametrize("name", sorted(cli.COMMANDS))
def test_every_command_is_registered_by_its_module(name):
    parser = cli.build_parser(name)
    sub = next(a for a in parser._actions if a.dest == "command")
    assert sub.choices[name].get_default("func") is not None, f"{name}: {cli.COMMANDS[name][0]}.add_cli does not add it"


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["no-such-command"])
    assert exit_.value.code == 2 and "invalid choice" in capsys.readouterr().err


def test_tensorflow_start_up_chatter_is_silenced_but_real_errors_pass():
    code = ("import os, sys; from fer_core.base import quiet; quiet.install(); import keras; "
            "os.write(2, b'kept line\\n'); from fer_core.base.quiet import filtered_stderr\n"
            "with filtered_stderr():\n"
            "    os.write(2, b'I0000 port.cc:153] oneDNN custom operations are on.\\nreal error\\n')\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "oneDNN" not in done.stderr and "absl::InitializeLog" not in done.stderr and "cudart" not in done.stderr
    assert "kept line" in done.stderr and "real error" in done.stderr


def _imports(path: Path, top_level_only: bool) -> set[str]:
    """fer_core modules that `path` imports (at module level only, or anywhere)."""
    modules = {p.stem for p in path.parent.glob("*.py")}
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and (node.level == 1 or (node.module or "").startswith("fer_core")):
            parts = (node.module or "").split(".")
            name = parts[0] if node.level == 1 else (parts[1] if len(parts) > 1 else "")
            found |= {name} if name else {a.name for a in node.names}
    return (found & modules) - {path.stem}


def test_no_import_circle_and_nothing_imports_the_cli():
    files = sorted((ROOT / "fer_core").glob("*.py"))
    graph = {p.stem: _imports(p, top_level_only=True) for p in files}
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for dep in graph.get(node, ()):
            assert state.get(dep) != 1, f"import circle: {' → '.join(path + [dep])}"
            if dep not in state:
                visit(dep, path + [dep])
        state[node] = 2

    for name in graph:
        if name not in state:
            visit(name, [name])
    for p in files:  # the CLI sits on top: a stage importing it (even inside a function) closes a circle
        if p.stem not in ("cli", "__main__"):
            assert "cli" not in _imports(p, top_level_only=False), f"fer_core/{p.name} imports the CLI"


def test_package_import_is_light():
    code = ("import sys, fer_core; heavy = [m for m in ('tensorflow', 'keras', 'cv2', 'pandas', 'streamlit') "
            "if m in sys.modules]; print(heavy)")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr


def test_import_leaves_the_hosts_import_system_and_environment_alone():
    """A library changes no global state on import: no finder added to sys.meta_path, no environment variable set
    (#35). TensorFlow's log quieting is the entry points' job (cli.main, pages/common), not the package's."""
    code = ("import json, os, sys; hooks, env = list(sys.meta_path), dict(os.environ)\n"
            "import fer_core, fer_core.cli\n"
            "print(json.dumps({'hooks': [repr(f) for f in sys.meta_path if f not in hooks],\n"
            "                  'env': sorted(k for k in {*env, *os.environ} if env.get(k) != os.environ.get(k))}))")
    env = {k: v for k, v in os.environ.items() if k not in quiet.ENV_DEFAULTS}  # cli.main here may have set them
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == {"hooks": [], "env": []}


def test_every_stage_module_imports_without_keras_at_top_level():
    for name in {module for module, _ in cli.COMMANDS.values()}:  # train builds Keras models, inside `run` only
        code = NO_TF + f"import fer_core.{name}"
        done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"fer_core.{name} imports TensorFlow/Keras at import time: {done.stderr[-500:]}"
    assert importlib.import_module("fer_core.base.progress").stderr_progress
