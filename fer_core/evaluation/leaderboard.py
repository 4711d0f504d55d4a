"""The comparison tables of saved results, read from model cards without running any model: the
leaderboard on one dataset, each model's summary (size, training budget, devices), the datasets evaluated,
scores against the FER+ crowd, results on other datasets, training histories, per-class scores and
reliability bins."""
from __future__ import annotations

from ..base.labels import EMOTIONS
from ..base.runtime import short_device_name
from ..models import eval_datasets, registry
from ..models.roles import label_source
from .defaults import learned_from
from .metrics import accuracy_interval


def _training_runs(training: dict) -> list[dict]:
    """Every run a model's weights cost: its own, its `--init-from` ancestors' and an ensemble's members',
    each counted once even where members share an ancestor."""
    runs: dict[tuple, dict] = {}

    def walk(record: dict) -> None:
        while record:
            stamp = record.get("finished_at")  # a run is identified by its command and finish time
            runs.setdefault((record.get("command"), stamp) if stamp else (id(record),), record)
            for member in record.get("members") or []:
                walk(member)
            record = record.get("init_from") or {}

    walk(training)
    return list(runs.values())


def training_budget(training: dict) -> tuple[int, float]:
    """Epochs and wall-clock minutes a model's weights cost, ancestors and members included, so a
    fine-tuned model or an ensemble is not made to look cheaper than it was."""
    runs = _training_runs(training)
    return (sum(int(r.get("epochs_run") or 0) for r in runs),
            round(sum(float(r.get("wall_time_s") or 0.0) for r in runs) / 60, 1))


def training_devices(training: dict) -> str:
    """Where those runs trained, briefly ("CPU", "1× GPU (NVIDIA H200)", or both joined by " + "), so
    minutes on a GPU are not read as CPU minutes."""
    names: list[str] = []
    for run in _training_runs(training):
        for device in str(run.get("device") or "").split(" then "):
            short = short_device_name(device)
            if short and short not in names:
                names.append(short)
    return " + ".join(names)


def model_summary(info: registry.ModelInfo) -> dict:
    """One registry row: identity, label set, size, training budget and saved accuracies of a model (against
    FER2013's labels on validation and test, and against the FER+ crowd majority on validation)."""
    size = info.card.get("file_size_bytes") or (info.model_file.stat().st_size if info.model_file.exists() else 0)
    val, test = info.metrics("validation") or {}, info.metrics("test") or {}
    training = info.card.get("training") or {}
    epochs, minutes = training_budget(training)
    return {"id": info.id, "name": info.name, "architecture": info.card.get("architecture", ""),
            "labels": list(info.labels), "label_set": info.label_set, "params": info.card.get("params"),
            "size_mb": round(size / 1e6, 2), "default": info.is_default(), "epochs": epochs,
            "train_minutes": minutes, "devices": training_devices(training),
            "validation_accuracy": val.get("accuracy"), "test_accuracy": test.get("accuracy"),
            "validation_ferplus_accuracy": (val.get("ferplus") or {}).get("accuracy")}  # the crowd's labels


def is_evaluated(info: registry.ModelInfo, split: str, dataset: dict | None = None) -> bool:
    """Whether the card holds a full `evaluate_model` result for `split` of `dataset` (default: home dataset)."""
    return {"accuracy", "confusion_matrix", "per_class", "reliability", "labels"} <= set(
        info.metrics(split, dataset) or {})


def leaderboard(infos, split: str, dataset: dict | None = None, photos: str | None = None):
    """DataFrame of the saved evaluations on `split` of one dataset (a selector from `dataset_choices`;
    default each model's home dataset), best accuracy first; unevaluated models last. "real photos" is the
    accuracy through the default photo pipeline on the photo dataset `photos` (a content id; default the one
    most models were measured on), blank where not measured."""
    import pandas as pd

    from .photo_store import default_pipeline, photo_datasets, photo_result

    photos = photos or next((g["id"] for g in photo_datasets(infos)), None)
    rows = []
    for info in infos:
        m = info.metrics(split, dataset) or {}
        clean = m.get("clean") or {}
        s = model_summary(info)
        rows.append({"model": info.id, "architecture": s["architecture"], "params": s["params"],
                     "size MB": s["size_mb"], "epochs": s["epochs"], "train min": s["train_minutes"],
                     "trained on": s["devices"], "labels learned": learned_from(info, short=True),
                     "accuracy": m.get("accuracy"), **_interval_columns(m),
                     "FER+ accuracy": (m.get("ferplus") or {}).get("accuracy"),  # on the model's own emotions
                     "FER+ faces": (m.get("ferplus") or {}).get("n"),
                     "clean accuracy": clean.get("accuracy"),
                     "real photos": (photo_result(info, photos, default_pipeline()) or {}).get("accuracy"),
                     "macro-F1": m.get("macro_f1"),
                     "log-loss": m.get("log_loss"), "ECE": m.get("ece"),
                     "latency ms/face": m.get("latency_ms_per_face"), "images": m.get("n"),
                     "TTA": m.get("tta"), "evaluated on": m.get("split_description", "not evaluated")})
    frame = pd.DataFrame(rows, columns=["model", "architecture", "params", "size MB", "epochs", "train min",
                                        "trained on", "labels learned", "accuracy", "CI low", "CI high",
                                        "FER+ accuracy", "FER+ faces",
                                        "clean accuracy", "real photos", "macro-F1",
                                        "log-loss", "ECE", "latency ms/face", "images", "TTA", "evaluated on"])
    return frame.sort_values("accuracy", ascending=False, na_position="last", kind="stable").reset_index(drop=True)


def photo_frame(infos, dataset_id: str):
    """DataFrame of every saved photo-pipeline result on one photo dataset: model, pipeline, face found,
    accuracy (no face = wrong), accuracy on the faces found, 5-class recall, macro-F1, ms per photo, photos."""
    import pandas as pd

    from .photo_store import photo_result, pipelines

    rows = [{"model": info.id, "pipeline": key, "face found": r.get("face_found"), "accuracy": r.get("accuracy"),
             "accuracy on found": r.get("accuracy_found"), "5-class recall": r.get("five_class_recall"),
             "macro-F1": r.get("macro_f1"), "ms/photo": r.get("ms_per_photo"), "photos": r.get("n"),
             "TTA": r.get("tta")}
            for info in infos for key in pipelines(info, dataset_id) if (r := photo_result(info, dataset_id, key))]
    columns = ["model", "pipeline", "face found", "accuracy", "accuracy on found", "5-class recall", "macro-F1",
               "ms/photo", "photos", "TTA"]
    return pd.DataFrame(rows, columns=columns)


def _interval_columns(metrics: dict) -> dict:
    if metrics.get("accuracy") is None or not metrics.get("n"):
        return {"CI low": None, "CI high": None}
    low, high = accuracy_interval(metrics["accuracy"], metrics["n"])
    return {"CI low": low, "CI high": high}


def dataset_choices(infos, split: str | None = None) -> list[dict]:
    """The datasets the models were evaluated on (on `split` when given), as selectors for `leaderboard`
    with a `label` and the `models` evaluated there; the most-evaluated first (ties: the one a default
    model was evaluated on), so the first is the leaderboard's default. Results saved before datasets
    had content ids join the same-named dataset."""
    groups: list[dict] = []
    entries = [(info, e) for info in infos for e in info.evaluations.values()
               if split is None or e.get("split") == split]
    for info, e in sorted(entries, key=lambda pair: not ((pair[1].get("dataset") or {}).get("id"))):
        desc = e.get("dataset") or {}
        group = next((g for g in groups if eval_datasets.same_dataset(desc, g)), None)
        if group is None:
            group = {**eval_datasets.dataset_selector(desc), "source": desc.get("source"),
                     "n_images": desc.get("n_images"), "models": []}
            groups.append(group)
        if info.id not in group["models"]:
            group["models"].append(info.id)
    homes = [i.home_dataset() for i in infos]
    groups.sort(key=lambda g: (-len(g["models"]), -sum(eval_datasets.same_dataset(h, g) for h in homes)))
    for g in groups:
        size = f"{g['n_images']:,} images, " if g.get("n_images") else ""
        ident = f"id {g['id'][:8]}" if g["id"] else "recorded before dataset ids"
        g["label"] = f"{g['name']} ({size}{ident}; {len(g['models'])} model{'s' * (len(g['models']) != 1)})"
    return groups


def crowd_frame(infos, split: str, dataset: dict | None = None):
    """DataFrame of every model's saved score against the FER+ majority on `split` of `dataset`, across
    label sets, in the 7-class view (an 8-class model's contempt answers read as disgust) so FER+ and
    FER2013 models sit side by side; FER2013 accuracy beside it. Best FER+ accuracy first."""
    import pandas as pd

    rows = []
    for info in infos:
        m = info.metrics(split, dataset) or {}
        crowd = m.get("ferplus") or {}
        if not crowd.get("n"):
            continue
        seven = crowd.get("seven_class") or (crowd if set(info.labels) == set(EMOTIONS) else {})
        trained = label_source(info)
        rows.append({"model": info.id, "labels": info.label_set, "trained on labels": trained,
                     "FER+ accuracy (7-class view)": seven.get("accuracy"), "faces": seven.get("n"),
                     "FER+ accuracy (own emotions)": crowd.get("accuracy"), "own faces": crowd.get("n"),
                     "FER2013 accuracy": m.get("accuracy"), "TTA": m.get("tta")})
    columns = ["model", "labels", "trained on labels", "FER+ accuracy (7-class view)", "faces",
               "FER+ accuracy (own emotions)", "own faces", "FER2013 accuracy", "TTA"]
    return pd.DataFrame(rows, columns=columns).sort_values("FER+ accuracy (7-class view)", ascending=False,
                                                          kind="stable").reset_index(drop=True)


def cross_dataset_frame(infos, dataset: dict | None = None):
    """DataFrame of every saved result on a dataset other than `dataset` (a selector; None = all
    datasets): model, dataset name and id, split, images, accuracy, macro-F1, clean accuracy, date."""
    import pandas as pd

    rows = []
    for info in infos:
        for e in info.evaluations.values():
            desc = e.get("dataset") or {}
            if dataset is not None and eval_datasets.same_dataset(desc, dataset):
                continue
            rows.append({"model": info.id, "dataset": eval_datasets.dataset_name(desc),
                         "dataset id": (desc.get("id") or "")[:8], "split": e.get("split_description", e.get("split")),
                         "images": e.get("n"), "skipped": e.get("skipped"), "accuracy": e.get("accuracy"),
                         "macro-F1": e.get("macro_f1"), "clean accuracy": (e.get("clean") or {}).get("accuracy"),
                         "source": desc.get("source"), "evaluated at": e.get("evaluated_at")})
    columns = ["model", "dataset", "dataset id", "split", "images", "skipped", "accuracy", "macro-F1",
               "clean accuracy", "source", "evaluated at"]
    return pd.DataFrame(rows, columns=columns).sort_values(["model", "dataset", "split"], kind="stable") \
        .reset_index(drop=True)


SWA_PHASE = "SWA mean (validation)"


def history_frame(infos):
    """Long DataFrame (model, epoch, metric, phase, value) of every model's training history. A run that
    ships averaged weights (SWA) adds its mean's validation accuracy as a level line over the epochs it
    averaged, since no single epoch's curve shows what ships."""
    import pandas as pd

    rows = []
    for info in infos:
        training = info.card.get("training", {})
        for key, values in training.get("history", {}).items():
            metric = key.removeprefix("val_")
            if metric not in ("accuracy", "loss"):
                continue
            phase = "validation" if key.startswith("val_") else "train"
            rows += [{"model": info.id, "epoch": e + 1, "metric": metric, "phase": phase, "value": v}
                     for e, v in enumerate(values)]
        swa = training.get("swa") or {}
        if swa.get("epochs") and swa.get("val_accuracy") is not None:
            rows += [{"model": info.id, "epoch": e, "metric": "accuracy", "phase": SWA_PHASE,
                      "value": swa["val_accuracy"]} for e in (swa["epochs"][0], swa["epochs"][-1])]
    return pd.DataFrame(rows, columns=["model", "epoch", "metric", "phase", "value"])


def per_class_frame(infos, split: str, dataset: dict | None = None):
    """Long DataFrame (model, emotion, precision, recall, f1, support) of saved evaluations."""
    import pandas as pd

    rows = [{"model": info.id, "emotion": emotion, **scores} for info in infos
            for emotion, scores in ((info.metrics(split, dataset) or {}).get("per_class") or {}).items()]
    return pd.DataFrame(rows, columns=["model", "emotion", "precision", "recall", "f1", "support"])


def reliability_frame(infos, split: str, dataset: dict | None = None):
    """Long DataFrame (model, lower, upper, count, confidence, accuracy) of non-empty reliability bins."""
    import pandas as pd

    rows = [{"model": info.id, **b} for info in infos
            for b in ((info.metrics(split, dataset) or {}).get("reliability") or []) if b.get("count")]
    return pd.DataFrame(rows, columns=["model", "lower", "upper", "count", "confidence", "accuracy"])
