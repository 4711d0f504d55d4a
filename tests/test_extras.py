"""A light core install and extras for the rest: the core dependencies hold no TensorFlow, `base.extras` knows which
extra installs each optional package (as pyproject lists them), and a feature whose package is missing says, in one
line and with exit code 2 on the CLI, which extra to install."""
from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fer_core.base import extras

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def _names(requirements) -> set[str]:
    return {re.split(r"[<>=\[ ;]", r, maxsplit=1)[0].lower() for r in requirements}


def test_the_core_install_has_no_tensorflow_and_each_extra_lists_its_packages():
    core = _names(PROJECT["dependencies"])
    assert core.isdisjoint({"tensorflow", "keras", "mtcnn", "scikit-learn", "pandas", "scikit-image"})
    assert {"numpy", "pillow", "opencv-python-headless", "ai-edge-litert"} <= core
    optional = PROJECT["optional-dependencies"]
    for extra, modules in extras.EXTRA_PACKAGES.items():
        listed = _names(optional[extra])
        for extra_ref in (r for r in optional[extra] if r.startswith("fer-core[")):  # fer-core[train,video]
            listed |= {n for e in extra_ref[9:-1].split(",") for n in _names(optional[e])}
        assert set(modules.values()) <= listed, f"extra {extra!r} lacks {set(modules.values()) - listed}"
    assert set(optional["all"][0][9:-1].split(",")) == set(optional) - {"all", "dev"}


def test_requirements_txt_still_installs_everything():
    pinned = _names(line for line in (ROOT / "requirements.txt").read_text().splitlines()
                    if line.strip() and not line.startswith("#"))
    wanted = _names(PROJECT["dependencies"]) | {n for e, reqs in PROJECT["optional-dependencies"].items()
                                                for n in _names(reqs) if n != "fer-core"}
    assert wanted <= pinned | {"ray"}, wanted - pinned  # ray is pinned as ray[data]


def test_require_names_the_extra_and_passes_other_errors_on():
    assert extras.require("json", "anything").dumps(1) == "1"
    with pytest.raises(extras.MissingExtra, match=r"^Grad-CAM needs TensorFlow: pip install 'fer-core\[train\]'$"):
        extras.require("tensorflow.no_such_module_here", "Grad-CAM")
    assert extras.missing_message("pandas", "`video`", "video") == "`video` needs pandas: pip install 'fer-core[video]'"
    assert extras.as_missing_extra(ModuleNotFoundError("x", name="not_an_extra"), "x") is None
    assert extras.as_missing_extra(ValueError("x"), "x") is None


BLOCK = ("import importlib.abc, sys\n"
         "class Block(importlib.abc.MetaPathFinder):\n"
         "    def find_spec(self, name, path, target=None):\n"
         "        if name.split('.')[0] in {blocked!r}:\n"
         "            raise ModuleNotFoundError(f'No module named {{name!r}}', name=name)\n"
         "sys.meta_path.insert(0, Block())\n"
         "from fer_core.cli import main; sys.exit(main(sys.argv[1:]))\n")


def run_blocked(blocked: tuple[str, ...], *argv, cwd=ROOT):
    return subprocess.run([sys.executable, "-c", BLOCK.format(blocked=blocked), *argv], cwd=cwd,
                          capture_output=True, text=True, timeout=300, env={**__import__("os").environ,
                                                                            "PYTHONPATH": str(ROOT)})


@pytest.mark.parametrize("blocked, argv, line", [
    (("fastapi",), ["serve", "--help"], "error: `serve` needs FastAPI: pip install 'fer-core[serve]'"),
    (("av", "pandas"), ["video", "clip.mp4"], "pip install 'fer-core[video]'"),
    (("tensorflow", "keras"), ["predict", "{photo}", "--gradcam", "{out}"],
     "error: Grad-CAM needs TensorFlow: pip install 'fer-core[train]'"),
    (("tensorflow", "keras", "mtcnn"), ["predict", "{photo}", "--detector", "mtcnn"],
     "error: the MTCNN face detector needs MTCNN: pip install 'fer-core[train]'"),
])
def test_the_cli_names_the_missing_extra_in_one_line(tmp_path, blocked, argv, line):
    photo = tmp_path / "face.png"
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(photo)
    argv = [a.format(photo=photo, out=tmp_path / "out") for a in argv]
    done = run_blocked(blocked, *argv, cwd=tmp_path)
    assert done.returncode == 2, done.stderr[-2000:]
    assert line in done.stderr and "Traceback" not in done.stderr
