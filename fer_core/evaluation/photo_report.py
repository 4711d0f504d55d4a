"""The text report of photo-pipeline evaluations (`evaluate --photos`): what was measured, one row per
pipeline (detector/crop) with its face-found rate, accuracies, 5-class recall, macro-F1 and time per photo,
then the recall of each emotion under each pipeline."""
from __future__ import annotations

from .photos import FIVE_CLASS


def format_photo_report(results: list[dict]) -> str:
    """A readable report of one or more `evaluate_photos` results of one model on one photo folder."""
    import pandas as pd

    first = results[0]
    desc = first["dataset"]
    split = f"{desc['split']} split, " if desc.get("split") else ""
    limit = f", at most {desc['limit_per_class']} per emotion" if desc.get("limit_per_class") else ""
    lines = [f"{first['model']} on {desc['name']} ({desc['source']}; {split}{desc['n_photos']:,} photos{limit}; "
             f"content id {desc['id']}), TTA {first['tta']}",
             f"  scored {first['n']:,} photos: " + ", ".join(f"{e} {n:,}" for e, n in first["photos_by_class"].items())]
    if first["skipped"]:
        lines.append(f"  skipped {first['skipped']:,} photos of emotions the model does not have ("
                     + ", ".join(f"{e} {n:,}" for e, n in first["skipped_by_class"].items()) + ")")
    if first["unreadable"]:
        named = ", ".join(f for f, _ in first["unreadable_files"][:3])
        lines.append(f"  left out {first['unreadable']:,} unreadable files (e.g. {named})")
    table = pd.DataFrame([{"pipeline": f"{r['detector']}/{r['crop']}", "face found": _percent(r["face_found"]),
                           "accuracy": _num(r["accuracy"]), "accuracy on found": _num(r["accuracy_found"]),
                           "5-class recall": _num(r["five_class_recall"]), "macro-F1": _num(r["macro_f1"]),
                           "ms/photo": _num(r["ms_per_photo"], ".1f")} for r in results])
    recall = pd.DataFrame({"photos": first["photos_by_class"],
                           **{f"{r['detector']}/{r['crop']}": {e: _num(s["recall"], ".3f")
                                                               for e, s in r["per_class"].items()} for r in results}})
    five = first["five_class_emotions"]
    lines += ["", table.to_string(index=False), "",
              "Recall per emotion (a photo with no face found counts as wrong):", recall.to_string(), "",
              f"5-class recall: mean recall over {', '.join(five)}"
              + ("" if tuple(five) == FIVE_CLASS else f" (of {', '.join(FIVE_CLASS)}: the ones the model and photos "
                                                      "have)")
              + f". Accuracy counts a photo without a face as wrong; ms/photo is detection, framing and "
              f"classification (not the disk read) on {first['device']}."]
    return "\n".join(lines)


def _num(value, spec: str = ".4f") -> str:
    return "-" if value is None else format(value, spec)


def _percent(value) -> str:
    return "-" if value is None else f"{value:.1%}"
