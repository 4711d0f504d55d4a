"""`card`: a model's card as JSON, or as a model-card Markdown file, printed or written to a file."""
from __future__ import annotations

import json
from pathlib import Path


def add_cli(subparsers) -> None:
    """Add `card` to the fer_core CLI."""
    p = subparsers.add_parser("card", help="a model's card as JSON, or as a model-card Markdown file (--markdown)")
    p.add_argument("model", help="model id under models/ (see `models`) or a model folder")
    p.add_argument("--markdown", action="store_true", help="write a model card in Markdown (uses, data, "
                                                           "per-class results, weaknesses, robustness, caveats)")
    p.add_argument("--out", help="write to this file instead of printing")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..evaluation.model_card import model_card_markdown
    from ..models import registry

    info = registry.get_model(args.model)
    text = model_card_markdown(info) if args.markdown else json.dumps(info.card, indent=1) + "\n"
    if not args.out:
        print(text, end="")
        return 0
    out = Path(args.out)
    if out.is_dir():
        raise ValueError(f"--out {out} is a folder; give a file name such as {out / (info.id + '.md')}")
    if not out.parent.is_dir():
        raise FileNotFoundError(f"the folder {out.parent} does not exist")
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")
    return 0
