"""Model cards and the responsible-use statement, generated from the models' cards and one text file.

`docs/responsible_use.md` holds what no evaluation can measure (intended and unfit uses, the data,
the protocol, the scientific caveat, privacy); every number — per-class results, weaknesses,
results on other datasets, robustness — comes from the evaluations stored in `card.json`. The
Responsible Use page and `python -m fer_core card ID --markdown` both build on `model_card`.
"""
from __future__ import annotations

from pathlib import Path

from ..models import eval_datasets, registry

CHECKOUT_STATEMENT = Path(__file__).resolve().parents[2] / "docs" / "responsible_use.md"
PACKAGED_STATEMENT = Path(__file__).resolve().parents[1] / "docs" / "responsible_use.md"  # copied by setup.py
STATEMENT_FILE = CHECKOUT_STATEMENT if CHECKOUT_STATEMENT.is_file() else PACKAGED_STATEMENT
REPORT_SPLITS = ("test", "validation")  # the protocol's reporting split first, PublicTest as fallback


def statement_sections(path: Path | str = STATEMENT_FILE) -> dict[str, str]:
    """The `##` sections of the responsible-use text as {heading: Markdown body}, in file order."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise FileNotFoundError(f"the responsible-use text {path} is missing ({err.strerror})") from err
    sections: dict[str, str] = {}
    heading = None
    for line in text.splitlines():
        if line.startswith("## "):
            heading = line[3:].strip()
            sections[heading] = ""
        elif heading is not None:
            sections[heading] += line + "\n"
    return {h: body.strip() for h, body in sections.items()}


def reported_result(info: registry.ModelInfo) -> dict | None:
    """The evaluation a card reports: the home dataset's `test` result (PublicTest where the data has no
    PrivateTest, as its description says), else its `validation` result, else None."""
    return next((m for split in REPORT_SPLITS if (m := info.metrics(split)) and m.get("per_class")), None)


def duplicates_fact(infos) -> str | None:
    """One sentence on held-out images duplicated in Training, from the first card whose reported
    result measured it (all emotions counted), e.g. for the data section of the Responsible Use page."""
    for info in infos:
        result = reported_result(info) or {}
        clean = result.get("clean") or {}
        if clean.get("n") is not None and not result.get("skipped"):
            total = clean["n"] + clean["duplicates"]
            return (f"Measured here: {clean['duplicates']:,} of the {total:,} images of "
                    f"{result.get('split_description', result.get('split'))} have an exact or near duplicate in "
                    f"Training; without them {info.id} scores {clean['accuracy']:.3f} instead of "
                    f"{result['accuracy']:.3f}.")
    return None


def per_class_rows(result: dict) -> list[dict]:
    """Per-emotion precision, recall, F1 and support of one evaluation, with the emotion it is most
    often mistaken for and that mistake's share of the emotion's images."""
    labels, matrix = result["labels"], result.get("confusion_matrix")
    rows = []
    for i, emotion in enumerate(labels):
        scores = result["per_class"][emotion]
        row = {"emotion": emotion, "precision": scores["precision"], "recall": scores["recall"],
               "f1": scores["f1"], "support": scores["support"], "most often called": None, "share": None}
        if matrix and sum(matrix[i]):
            wrong = [(count, labels[j]) for j, count in enumerate(matrix[i]) if j != i]
            count, other = max(wrong) if wrong else (0, None)
            if count:
                row["most often called"], row["share"] = other, count / sum(matrix[i])
        rows.append(row)
    return rows


def weaknesses(result: dict, k: int = 3) -> list[str]:
    """Sentences on the `k` emotions a model recognises worst (lowest F1), from one evaluation."""
    rows = sorted(per_class_rows(result), key=lambda r: r["f1"])[:k]
    out = []
    for r in rows:
        text = (f"**{r['emotion']}**: F1 {r['f1']:.2f}, recall {r['recall']:.2f} on {r['support']:,} images")
        if r["most often called"]:
            text += f"; most often called *{r['most often called']}* ({r['share']:.0%} of its images)"
        out.append(text)
    return out


def model_card(info: registry.ModelInfo) -> dict:
    """Everything a model card shows, from the card alone: identity, training budget, the reported
    result with its per-class rows and weaknesses, results on other datasets, robustness summary."""
    from .leaderboard import training_budget, training_devices

    result = reported_result(info)
    training = info.card.get("training") or {}
    epochs, minutes = training_budget(training)
    others = [e for e in info.evaluations.values()
              if not eval_datasets.same_dataset(e.get("dataset") or {}, info.home_dataset())]
    return {"id": info.id, "name": info.name, "architecture": info.card.get("architecture", ""),
            "description": info.card.get("description", ""), "labels": list(info.labels),
            "params": info.card.get("params"), "default": info.is_default(),
            "trained_on": (info.card.get("dataset") or {}).get("source"), "epochs": epochs,
            "train_minutes": minutes, "devices": training_devices(training), "swa": training.get("swa"),
            "ensemble": info.card.get("ensemble"),
            "export": info.card.get("export"),
            "result": result, "per_class": per_class_rows(result) if result else [],
            "weaknesses": weaknesses(result) if result else [],
            "other_datasets": [{"dataset": eval_datasets.dataset_name(e.get("dataset") or {}),
                                "split": e.get("split_description", e.get("split")), "n": e.get("n"),
                                "accuracy": e.get("accuracy"), "macro_f1": e.get("macro_f1")} for e in others],
            "robustness": robustness_rows(info)}


def robustness_rows(info: registry.ModelInfo) -> list[dict]:
    """Clean accuracy and accuracy at the strongest severity per corruption, from the saved report."""
    from .robustness import report_of

    report = report_of(info)
    if not report:
        return []
    return [{"corruption": name, "what": curve["description"], "clean": curve["accuracy"][0],
             "worst": curve["accuracy"][-1], "worst level": f"{curve['parameter']} {_level(curve['level'][-1])}",
             "n": report["n"]} for name, curve in report["corruptions"].items()]


def _level(level) -> str:
    return " / ".join(f"{v:g}" for v in level) if isinstance(level, (list, tuple)) else f"{level:g}"


def _fmt(v, spec=".3f") -> str:
    return "–" if v is None else format(v, spec)


def _export_lines(export: dict, parent: dict | None) -> list[str]:
    """What an edge export is converted from, how much smaller it is and, where its evaluation measured it,
    how its accuracy compares with the parent's on the same images."""
    lines = [f"- Export of `{export.get('parent')}`: {export.get('format')}, {export.get('quantization')}, "
             f"{export.get('file_size_bytes', 0) / 1e6:.1f} MB ({export.get('size_ratio', 0):.0%} of the parent's "
             f"{export.get('parent_file_size_bytes', 0) / 1e6:.1f} MB)"]
    if parent and parent.get("accuracy") is not None:
        lines.append(f"- The parent's accuracy on the same images: {parent['accuracy']:.3f}"
                     + (f"; top labels agree on {parent['agreement']:.1%} of them" if parent.get("agreement") else ""))
    if export.get("note"):
        lines.append(f"- Note: {export['note']}")
    return lines


def model_card_markdown(info: registry.ModelInfo, statement: dict[str, str] | None = None) -> str:
    """A model card in Markdown: the card's numbers plus the responsible-use text."""
    card = model_card(info)
    statement = statement if statement is not None else statement_sections()
    lines = [f"# Model card: {card['name']} (`{card['id']}`)", ""]
    if card["description"]:
        lines += [card["description"], ""]
    lines += ["## Model", "",
              f"- Architecture: {card['architecture']}"
              + (f", {card['params']:,} parameters" if card["params"] else ""),
              f"- Emotions: {', '.join(card['labels'])}",
              f"- Training: {card['epochs']} epochs, {card['train_minutes']:.0f} minutes"
              + (f" on {card['trained_on']}" if card["trained_on"] else "")
              + (f" ({card['devices']})" if card["devices"] else "")]
    if (card["swa"] or {}).get("epochs"):
        epochs = card["swa"]["epochs"]
        lines.append(f"- Weights: the mean of epochs {epochs[0]}–{epochs[-1]} (stochastic weight averaging), "
                     "BatchNorm statistics recomputed on the training faces")
    if card["ensemble"]:
        members = card["ensemble"].get("members") if isinstance(card["ensemble"], dict) else card["ensemble"]
        lines.append(f"- Ensemble of: {', '.join(map(str, members or []))}")
    if card["export"]:
        lines += _export_lines(card["export"], (card["result"] or {}).get("parent_scores"))
    lines.append("")
    for heading in ("Intended uses", "Uses it is not fit for"):
        if heading in statement:
            lines += [f"## {heading}", "", statement[heading], ""]
    result = card["result"]
    lines += ["## Performance", ""]
    if result:
        clean = result.get("clean") or {}
        desc = result.get("dataset") or {}
        lines += [f"Measured on {result.get('split_description', result.get('split'))} of "
                  f"{eval_datasets.dataset_name(desc)} ({result['n']:,} images): accuracy {result['accuracy']:.3f}, "
                  f"macro-F1 {result['macro_f1']:.3f}"
                  + (f"; on the clean part (no duplicate in Training, {clean['n']:,} images) accuracy "
                     f"{clean['accuracy']:.3f}" if clean.get("n") else "") + ".", "",
                  "| emotion | precision | recall | F1 | images | most often called |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {r['emotion']} | {r['precision']:.3f} | {r['recall']:.3f} | {r['f1']:.3f} | {r['support']:,} | "
                  + (f"{r['most often called']} ({r['share']:.0%})" if r["most often called"] else "–") + " |"
                  for r in card["per_class"]]
        lines += ["", "### Weaknesses", "", *[f"- {w}" for w in card["weaknesses"]], ""]
    else:
        lines += ["Not evaluated yet: run `python -m fer_core evaluate --model "
                  f"{card['id']} --data DIR`.", ""]
    if card["other_datasets"]:
        lines += ["### Other datasets", "", "| dataset | split | images | accuracy | macro-F1 |",
                  "|---|---|---|---|---|"]
        lines += [f"| {o['dataset']} | {o['split']} | {o['n']:,} | {_fmt(o['accuracy'])} | {_fmt(o['macro_f1'])} |"
                  for o in card["other_datasets"]]
        lines.append("")
    if card["robustness"]:
        lines += ["### Robustness", "",
                  f"Accuracy on a fixed stratified subset of the validation split ({card['robustness'][0]['n']:,} "
                  "images), clean and at the strongest corruption tested:", "",
                  "| corruption | clean | strongest | at |", "|---|---|---|---|"]
        lines += [f"| {r['what']} | {r['clean']:.3f} | {r['worst']:.3f} | {r['worst level']} |"
                  for r in card["robustness"]]
        lines.append("")
    for heading in ("The data", "Evaluation protocol", "What a facial expression can and cannot tell", "Privacy"):
        if heading in statement:
            lines += [f"## {heading}", "", statement[heading], ""]
    return "\n".join(lines).rstrip() + "\n"
