"""Robustness report: a model's accuracy on the validation split under controlled image corruptions.

Edge cases the app meets in the wild — blur, sensor noise, low light, low contrast, JPEG artefacts,
small faces (low resolution), sunglasses or a face mask (occlusion) and tilted heads (rotation) — are
applied at four severities to one fixed, seeded, stratified subset of the validation split. Severity 0
is the untouched subset, scored once and shared by every corruption, so the clean point of each curve
is the clean score by construction. The report goes into the model's card (`robustness`, keyed by
the dataset's content id) and the Model Comparison page plots accuracy against severity.
"""
from __future__ import annotations

import time
from datetime import datetime, timezone

import numpy as np

from ..models import eval_datasets, registry
from ..data.datasets import load_dataset
from ..data.fer_dataset import FerDataset, resolve_split

DEFAULT_N = 1000
SEED = 0
SPLIT = "validation"  # choose = PublicTest: robustness is a property to compare models on, not a test score

# name: (what it simulates, parameter name, parameter per severity 1..4)
CORRUPTIONS: dict[str, tuple[str, str, tuple]] = {
    "blur": ("Gaussian blur (focus, motion)", "sigma px", (0.8, 1.5, 2.5, 4.0)),
    "noise": ("Gaussian sensor noise", "sigma grey levels", (10, 20, 35, 55)),
    "low_light": ("low light: gamma darkening and gain over the sensor's noise floor", "gamma / gain",
                  ((1.5, 0.7), (2.0, 0.5), (2.5, 0.35), (3.0, 0.22))),
    "low_contrast": ("low contrast around the face's mean, over the sensor's noise floor", "contrast factor",
                     (0.5, 0.3, 0.18, 0.1)),
    "jpeg": ("JPEG compression", "quality", (40, 20, 10, 5)),
    "low_resolution": ("small face: downscaled, then upscaled back", "pixels across", (24, 16, 12, 8)),
    "occlusion_eyes": ("sunglasses: a black band over the eyes", "band height (share of face)",
                       (0.12, 0.18, 0.24, 0.30)),
    "occlusion_mouth": ("face mask: a light patch over the mouth", "patch height (share of face)",
                        (0.12, 0.18, 0.24, 0.30)),
    "rotation": ("in-plane head tilt (random side)", "degrees", (10, 20, 30, 45)),
}
SEVERITIES = (0, 1, 2, 3, 4)
# A camera's noise floor stays when the light or the contrast drops. Without it, darkening and flattening
# are monotone maps that the models' histogram equalisation undoes almost exactly, which real dim or
# flat photos do not allow; so low light and low contrast add this much Gaussian noise (grey levels).
NOISE_FLOOR = 2.0


# ----------------------------------------------------------------------------- corruptions

def corrupt(images: np.ndarray, name: str, severity: int, seed: int = SEED) -> np.ndarray:
    """`images` (N×H×W uint8 grayscale faces) under corruption `name` at `severity` (0 = unchanged).

    Deterministic: random parts (noise, rotation side) come from `seed`, the corruption and the severity.
    """
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; use one of {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise ValueError(f"severity must be one of {', '.join(map(str, SEVERITIES))}")
    images = np.asarray(images, dtype=np.uint8)
    if severity == 0 or not len(images):
        return images.copy()
    level = CORRUPTIONS[name][2][severity - 1]
    rng = np.random.default_rng([seed, list(CORRUPTIONS).index(name), severity])
    out = _APPLY[name](images, level, rng)
    return np.clip(np.rint(out), 0, 255).astype(np.uint8) if out.dtype != np.uint8 else out


def _blur(images, sigma, rng):
    import cv2

    return np.stack([cv2.GaussianBlur(img, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT) for img in images])


def _noise(images, sigma, rng):
    return images.astype(np.float32) + rng.normal(0.0, sigma, images.shape).astype(np.float32)


def _low_light(images, level, rng):
    gamma, gain = level
    dark = 255.0 * gain * (images.astype(np.float32) / 255.0) ** gamma
    return dark + rng.normal(0.0, NOISE_FLOOR, images.shape).astype(np.float32)


def _low_contrast(images, factor, rng):
    x = images.astype(np.float32)
    mean = x.mean(axis=(1, 2), keepdims=True)
    return mean + (x - mean) * factor + rng.normal(0.0, NOISE_FLOOR, images.shape).astype(np.float32)


def _jpeg(images, quality, rng):
    import cv2

    out = []
    for img in images:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
        out.append(cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE))
    return np.stack(out)


def _low_resolution(images, pixels, rng):
    import cv2

    h, w = images.shape[1:3]
    return np.stack([cv2.resize(cv2.resize(img, (pixels, pixels), interpolation=cv2.INTER_AREA), (w, h),
                                interpolation=cv2.INTER_LINEAR) for img in images])


def _band(images, centre: float, height: float, left: float, right: float, value: int):
    out = images.copy()
    h, w = images.shape[1:3]
    top, bottom = int(round((centre - height / 2) * h)), int(round((centre + height / 2) * h))
    out[:, max(top, 0):min(bottom, h), int(round(left * w)):int(round(right * w))] = value
    return out


def _occlusion_eyes(images, height, rng):
    return _band(images, 0.38, height, 0.08, 0.92, 0)  # eyes sit about 38 % down a FER2013 crop


def _occlusion_mouth(images, height, rng):
    return _band(images, 0.80, height, 0.2, 0.8, 200)


def _rotation(images, degrees, rng):
    import cv2

    h, w = images.shape[1:3]
    signs = rng.choice([-1.0, 1.0], size=len(images))
    return np.stack([cv2.warpAffine(img, cv2.getRotationMatrix2D((w / 2 - 0.5, h / 2 - 0.5), s * degrees, 1.0),
                                    (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
                     for img, s in zip(images, signs)])


_APPLY = {"blur": _blur, "noise": _noise, "low_light": _low_light, "low_contrast": _low_contrast, "jpeg": _jpeg,
          "low_resolution": _low_resolution, "occlusion_eyes": _occlusion_eyes,
          "occlusion_mouth": _occlusion_mouth, "rotation": _rotation}


# ----------------------------------------------------------------------------- the report

def stratified_subset(dataset: FerDataset, labels, n: int = DEFAULT_N, seed: int = SEED, split: str = SPLIT):
    """A fixed, seeded sample of `split`'s images of `labels`, each emotion in its share of the split.

    Returns (images, y_true as indices into `labels`, files, split description). Taking all images when
    the split has at most `n`.
    """
    if n < 1:
        raise ValueError("--n must be at least 1")
    rows, description = resolve_split(dataset, split)
    names = rows.label_names()
    keep = np.flatnonzero(np.isin(names, list(labels)))
    if not len(keep):
        raise ValueError(f"the {description} images have none of the model's emotions ({', '.join(labels)}); "
                         f"the dataset has {', '.join(rows.classes)}")
    rng = np.random.default_rng(seed)
    if len(keep) > n:
        chosen = []
        counts = {e: int(np.sum(names[keep] == e)) for e in labels}
        quota = _largest_remainder({e: c * n / len(keep) for e, c in counts.items()}, n)
        for e in labels:
            members = keep[names[keep] == e]
            chosen.append(rng.choice(members, size=quota[e], replace=False) if quota[e] else members[:0])
        keep = np.sort(np.concatenate(chosen))
    index = {e: k for k, e in enumerate(labels)}
    y_true = np.array([index[e] for e in names[keep]], dtype=np.int64)
    return rows.images[keep], y_true, rows.files[keep], description


def _largest_remainder(shares: dict, total: int) -> dict:
    """Integer quotas summing to `total` that round `shares` fairly (largest remainders first)."""
    quota = {k: int(np.floor(v)) for k, v in shares.items()}
    for k in sorted(shares, key=lambda k: shares[k] - quota[k], reverse=True)[:total - sum(quota.values())]:
        quota[k] += 1
    return quota


def _scores(y_true, probabilities) -> dict:
    from .metrics import accuracy, log_loss, macro_f1

    y_pred = probabilities.argmax(axis=1)
    return {"accuracy": accuracy(y_true, y_pred), "macro_f1": macro_f1(y_true, y_pred),
            "log_loss": log_loss(y_true, probabilities)}


def robustness_report(info_or_id, dataset, n: int = DEFAULT_N, seed: int = SEED, *, model=None, tta=None,
                      corruptions=None, progress=None, save: bool = False) -> dict:
    """Score a registered model on a fixed stratified subset of the validation split under every
    corruption at every severity; with save=True store the report in the model's card."""
    from .scores import dataset_description
    from ..inference.predict import Classifier

    info = info_or_id if isinstance(info_or_id, registry.ModelInfo) else registry.get_model(str(info_or_id))
    if not isinstance(dataset, FerDataset):
        dataset = load_dataset(dataset, progress=progress)
    names = list(corruptions or CORRUPTIONS)
    unknown = [c for c in names if c not in CORRUPTIONS]
    if unknown:
        raise ValueError(f"unknown corruption {unknown[0]!r}; use one of {', '.join(CORRUPTIONS)}")
    started = time.perf_counter()
    images, y_true, files, description = stratified_subset(dataset, info.labels, n, seed)
    classifier = Classifier(model if model is not None else registry.load_model(info), info)
    tta = classifier.resolve_tta(tta)
    clean = _scores(y_true, classifier.predict(images, tta=tta))
    report = {"model": info.id, "dataset": dataset_description(dataset), "split": SPLIT,
              "split_description": description, "n": int(len(y_true)), "seed": seed,
              "subset": f"{len(y_true):,} images of the {description} split, a stratified random sample "
                        f"(seed {seed}) with each emotion in its share of the split",
              "per_class_n": {e: int(np.sum(y_true == k)) for k, e in enumerate(info.labels)},
              "tta": tta, "clean": clean, "corruptions": {}}
    steps, done = len(names) * (len(SEVERITIES) - 1), 0
    for name in names:
        what, parameter, levels = CORRUPTIONS[name]
        curve = {"description": what, "parameter": parameter, "severity": list(SEVERITIES),
                 "level": [None] + [list(v) if isinstance(v, tuple) else v for v in levels],
                 **{k: [v] for k, v in clean.items()}}  # severity 0 is the clean subset itself
        for severity in SEVERITIES[1:]:
            scores = _scores(y_true, classifier.predict(corrupt(images, name, severity, seed), tta=tta))
            for k, v in scores.items():
                curve[k].append(v)
            done += 1
            if progress:
                progress(done, steps, f"{info.id}: {name} severity {severity}")
        report["corruptions"][name] = curve
    from ..base.runtime import device_description

    report.update(evaluated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                  eval_seconds=round(time.perf_counter() - started, 2), device=device_description())
    if save:
        save_report(info, report)
    return report


def save_report(info: registry.ModelInfo, report: dict) -> None:
    """Store a report in the card under `robustness.<dataset content id>` (other datasets' reports kept)."""
    registry.save_card_section(info, "robustness", report["dataset"]["id"], report)


def report_of(info: registry.ModelInfo, dataset: dict | None = None) -> dict | None:
    """A model's saved robustness report on `dataset` (a selector; default its home dataset, else its
    newest report), or None."""
    reports = list((info.card.get("robustness") or {}).values())
    wanted = dataset if dataset is not None else info.home_dataset()
    found = [r for r in reports if eval_datasets.same_dataset(r.get("dataset") or {}, wanted)]
    found = found or (reports if dataset is None else [])
    return max(found, key=lambda r: str(r.get("evaluated_at") or "")) if found else None


def robustness_frame(infos, dataset: dict | None = None):
    """Long DataFrame (model, corruption, description, severity, level, accuracy, macro_f1, log_loss, n)
    of the saved reports on `dataset` (default: each model's home dataset)."""
    import pandas as pd

    rows = []
    for info in infos:
        report = report_of(info, dataset)
        for name, curve in ((report or {}).get("corruptions") or {}).items():
            for k, severity in enumerate(curve["severity"]):
                rows.append({"model": info.id, "corruption": name, "description": curve["description"],
                             "severity": severity, "level": _level_text(curve["level"][k]),
                             "accuracy": curve["accuracy"][k], "macro_f1": curve["macro_f1"][k],
                             "log_loss": curve["log_loss"][k], "n": report["n"]})
    return pd.DataFrame(rows, columns=["model", "corruption", "description", "severity", "level", "accuracy",
                                       "macro_f1", "log_loss", "n"])


def summary_frame(infos, dataset: dict | None = None):
    """One row per model and corruption: clean accuracy, accuracy at the worst severity and the drop."""
    frame = robustness_frame(infos, dataset)
    if frame.empty:
        return frame.assign(clean=[], worst=[], drop=[])[["model", "corruption", "clean", "worst", "drop"]]
    top = frame.groupby(["model", "corruption"], sort=False).agg(
        clean=("accuracy", "first"), worst=("accuracy", "last"), n=("n", "first")).reset_index()
    top["drop"] = top["clean"] - top["worst"]
    return top


def _level_text(level) -> str:
    if level is None:
        return "clean"
    if isinstance(level, (list, tuple)):
        return " / ".join(f"{v:g}" for v in level)
    return f"{level:g}"


def format_report(report: dict) -> str:
    """A readable text table: accuracy per corruption and severity."""
    lines = [f"{report['model']} on {report['subset']} of {report['dataset']['name']} "
             f"(TTA {report['tta']})",
             f"  clean: accuracy {report['clean']['accuracy']:.4f}   macro-F1 {report['clean']['macro_f1']:.4f}",
             "", f"  {'corruption':<16}" + "".join(f"{'sev ' + str(s):>10}" for s in SEVERITIES)]
    for name, curve in report["corruptions"].items():
        lines.append(f"  {name:<16}" + "".join(f"{a:>10.4f}" for a in curve["accuracy"]))
    return "\n".join(lines)
