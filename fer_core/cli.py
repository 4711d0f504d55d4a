"""`python -m fer_core <command>`: one CLI that mirrors the Python API.

Every command prints a clear one-line error and exits with status 2 on bad input or a missing optional
package (naming the extra to install), never a traceback. Only the module of the command being run is
imported, so `--help`, `models` and `data` start in about a second, without TensorFlow.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from .base import quiet
from .base.extras import MissingExtra, as_missing_extra
from .data.fer_dataset import DataError
from .models.card import RegistryError

USER_ERRORS = (DataError, RegistryError, FileNotFoundError, ValueError, MissingExtra)
# The extra a command needs beyond the core install (a command not listed runs on the core install, see README)
COMMAND_EXTRAS = {"data": "train", "train": "train", "distill": "train", "evaluate": "train", "ensemble": "train",
                  "robustness": "train", "export": "train", "label-issues": "train", "video": "video",
                  "serve": "serve", "batch": "batch"}

# Every command: its module under fer_core (e.g. "commands.train") whose `add_cli(subparsers)` registers it, and one
# line of help for the command list. To add a command, write `fer_core/commands/<name>.py` with `add_cli` and a thin
# `run(args)` (stage imports inside `run`, so no heavy imports at its top level) and add one line here.
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("commands.data", "load a dataset and print its counts and problems"),
    "train": ("commands.train", "train an architecture on a dataset and register it under models/"),
    "distill": ("commands.train", "train a fast network on a teacher model's probabilities (knowledge distillation)"),
    "evaluate": ("commands.evaluate", "score a registered model on a dataset split and save the results"),
    "models": ("commands.evaluate", "list registered models with their card summaries"),
    "predict": ("commands.predict", "detect faces in photos and classify their emotions"),
    "video": ("commands.video", "emotions over time in a video file (timeline CSV, annotated mp4)"),
    "ensemble": ("commands.ensemble", "register an ensemble of models (mean of their probabilities)"),
    "robustness": ("commands.robustness", "accuracy under blur, noise, low light, occlusion … saved in the card"),
    "card": ("commands.card", "a model's card as JSON, or as a model-card Markdown file (--markdown)"),
    "export": ("commands.export", "convert a model to LiteRT (TFLite) or ONNX, optionally quantized, and register it"),
    "serve": ("commands.serve", "serve predictions over HTTP: a REST API with OpenAPI docs"),
    "batch": ("commands.batch", "score every face in folders, zips and videos into Parquet/CSV (Ray optional)"),
    "label-issues": ("commands.label_issues", "rank files whose label is probably wrong (CSV for train --exclude)"),
}


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The CLI's parser. Only `command`'s module is imported and adds its full parser; the other
    commands get a light entry with their one-line help (enough for the command list and errors)."""
    parser = argparse.ArgumentParser(prog="python -m fer_core", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    if command in COMMANDS:
        module = importlib.import_module(f".{COMMANDS[command][0]}", __package__)
        module.add_cli(sub)
    for name, (_, help_line) in COMMANDS.items():
        if name not in sub.choices:
            sub.add_parser(name, help=help_line)
    return parser


def main(argv=None) -> int:
    """Run one command (`python -m fer_core`, the `fer-core` script); returns the exit status."""
    quiet.install()  # an entry point, before any command can import TensorFlow: keep its start-up log off the console
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv[:1] if not a.startswith("-")), None)
    try:
        args = build_parser(command).parse_args(argv)  # a command's module may import an optional package
    except ModuleNotFoundError as err:
        return _missing_extra(err, command)
    args.argv = argv  # recorded in model cards
    try:
        return args.func(args) or 0
    except USER_ERRORS as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:
        return _missing_extra(err, command)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into `head` and the like: stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


def _missing_extra(err: ModuleNotFoundError, command: str | None) -> int:
    """An optional package the command needs is not installed: one line naming the extra that has it (exit 2);
    any other missing module is a bug, raised as it is."""
    missing = as_missing_extra(err, f"`{command}`", COMMAND_EXTRAS.get(command or ""))
    if missing is None:
        raise err
    print(f"error: {missing}", file=sys.stderr)
    return 2
