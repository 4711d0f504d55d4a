"""Knowledge distillation: one fast network learns to answer like a slow, accurate teacher.

Each training batch carries the hard label and the teacher's distribution side by side
(`pack_targets`), and `DistillationLoss` mixes cross-entropy on the label with the temperature-scaled
KL divergence to the teacher (Hinton et al., 2015). The teacher answers in one of two ways:

- `cached` (default): it classifies every clean training face once, with its own default test-time
  augmentation, and the answers are kept in the run folder. Cheap (one pass, about one epoch with the
  ten-crop ensemble), but every augmented copy of a face gets the clean face's answer, and a teacher
  that fitted its training faces answers them almost with their labels (the ensemble agrees with 88 %).
- `per-batch`: it classifies each augmented batch the student sees, so both see the same view
  ("consistent teaching", Beyer et al., 2022), and augmented views draw less overconfident answers.
  That costs a teacher forward pass per step: use a fast teacher (an int8 export, no TTA).
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..base.files import atomic_write
from ..models import registry
from ..models.probabilities import softmax
from ..inference.predict import Classifier
from ..base.progress import ProgressFn, stderr_progress

TEACHER_FILE = "teacher.npz"  # the cached teacher probabilities, in the run folder


def soften(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """The teacher's distribution at `temperature`: softmax(log p / T), i.e. p^(1/T) renormalised."""
    return softmax(np.log(np.clip(probabilities.astype(np.float64), 1e-12, 1.0)) / temperature, axis=1).astype(
        np.float32)


def pack_targets(labels: np.ndarray, teacher: np.ndarray | None, num_classes: int) -> np.ndarray:
    """Per face [one-hot label | teacher distribution] (N × 2K); without a teacher (validation), the
    one-hot label stands in for both halves."""
    hard = np.eye(num_classes, dtype=np.float32)[labels]
    return np.concatenate([hard, hard if teacher is None else teacher.astype(np.float32)], axis=1)


def teacher_fingerprint(teacher: registry.ModelInfo, tta: str) -> str:
    """What identifies a teacher's answers: its id, model file contents and TTA mode."""
    digest = hashlib.sha256(f"{teacher.id}|{tta}|".encode())
    with open(teacher.model_file, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def teacher_record(teacher: registry.ModelInfo, tta: str) -> dict:
    """Which teacher answered and how, as a run keeps it: id, TTA mode, file fingerprint, its labels."""
    return {"id": teacher.id, "tta": tta, "fingerprint": teacher_fingerprint(teacher, tta),
            "labels": list(teacher.labels)}


def teacher_probabilities(teacher_id: str, faces: np.ndarray, files: np.ndarray, run_dir: Path, *,
                          tta: str | None = None, batch_size: int = 512,
                          progress: ProgressFn | None = None) -> tuple[np.ndarray, dict]:
    """The teacher's class probabilities for uint8 `faces` (with its default TTA unless `tta`), read
    from `run_dir/teacher.npz` when that cache holds the same teacher, TTA and files, else computed and
    cached (so `--resume` never pays for them twice). Returns (N × K probabilities, a record for the card)."""
    info = registry.get_model(teacher_id)
    clf = Classifier.from_registry(info)
    mode = clf.resolve_tta(tta)
    record = teacher_record(info, mode)
    cache = run_dir / TEACHER_FILE
    if cache.exists():
        with np.load(cache, allow_pickle=False) as saved:
            if str(saved["fingerprint"]) == record["fingerprint"] and np.array_equal(saved["files"], files.astype(str)):
                return saved["probabilities"].astype(np.float32), {**record, "cached": True}
    out = []
    for start in range(0, len(faces), batch_size):
        out.append(clf.predict(faces[start:start + batch_size], tta=mode))
        if progress:
            progress(min(start + batch_size, len(faces)), len(faces), f"teacher {info.id}: {start + batch_size} faces")
    probs = np.concatenate(out) if out else np.zeros((0, len(info.labels)), np.float32)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write(cache, lambda tmp: np.savez(tmp, probabilities=probs.astype(np.float32), files=files.astype(str),
                                             fingerprint=np.array(record["fingerprint"])))
    return probs, {**record, "cached": False}


def align_labels(teacher_labels, student_labels) -> list[int]:
    """Column indices that put a teacher's classes in the student's order (the student's label set must
    be the teacher's or a subset of it; the kept columns are renormalised by the caller)."""
    missing = [c for c in student_labels if c not in teacher_labels]
    if missing:
        raise ValueError(f"the teacher does not predict {', '.join(missing)}; distil a label set it covers")
    return [list(teacher_labels).index(c) for c in student_labels]


def distillation_record(config, teacher: dict) -> dict:
    """What a student's card says of its teaching: the teacher, its inference, the loss mix, and how
    the teacher's answers were obtained."""
    return {"teacher": config.teacher, "teacher_tta": teacher.get("tta", config.teacher_tta or "card default"),
            "teacher_fingerprint": teacher.get("fingerprint"),
            "teacher_agreement_with_training_labels": teacher.get("agreement_with_labels"),
            "temperature": config.temperature, "alpha": config.alpha,
            "loss": f"{1 - config.alpha:g} × cross-entropy(label, smoothing {config.label_smoothing:g}) + "
                    f"{config.alpha:g} × T² × KL(teacher_T ‖ student_T), T = {config.temperature:g}",
            "teacher_outputs": TEACHER_OUTPUTS_RECORD[config.teacher_outputs]}


TEACHER_OUTPUTS_RECORD = {  # what a card says of each `--teacher-outputs` mode
    "cached": "cached: the teacher classified each clean training face once (with its TTA); augmented copies "
              "share that target, since per-batch teaching would cost the teacher's forward passes on every step",
    "per-batch": "per-batch: the teacher classified every augmented batch the student trained on (the same "
                 "views, consistent teaching), at the cost of its forward pass on each step",
}


def distillation_targets(config, labels, faces: np.ndarray, train_rows, val_rows, run_dir: Path, pre):
    """(train targets, validation targets, teacher record, per-batch teacher) for a distillation run; all
    None otherwise. Cached: the teacher answers once per training face (kept in the run folder), its
    classes put in the student's order, renormalised and softened at the run's temperature. Per-batch:
    the targets' teacher half is a placeholder that `batch_teacher`'s function replaces on every batch."""
    if not config.teacher:
        return None, None, None, None
    val_targets = pack_targets(val_rows.labels, None, len(labels))
    if config.teacher_outputs == "per-batch":
        teach, record = batch_teacher(config, labels, pre)
        return pack_targets(train_rows.labels, None, len(labels)), val_targets, record, teach
    import keras

    print(f"Teacher {config.teacher}: classifying {len(faces):,} training faces (cached in the run folder)",
          flush=True)
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy("float32")  # the teacher answers as it was evaluated, not in bf16
    try:
        probs, record = teacher_probabilities(config.teacher, faces, train_rows.files, run_dir,
                                              tta=config.teacher_tta or None, progress=stderr_progress)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    probs = _in_student_order(probs, record["labels"], labels)
    record["agreement_with_labels"] = round(float((probs.argmax(1) == train_rows.labels).mean()), 4)
    return pack_targets(train_rows.labels, soften(probs, config.temperature), len(labels)), val_targets, record, None


def _in_student_order(probs: np.ndarray, teacher_labels, student_labels) -> np.ndarray:
    """The teacher's probabilities restricted to the student's classes, in its order, renormalised."""
    probs = probs[:, align_labels(teacher_labels, student_labels)]
    return probs / np.maximum(probs.sum(axis=1, keepdims=True), 1e-12)


def batch_teacher(config, labels, pre):
    """(teach, record): `teach` maps a batch of augmented faces (float 0–255, N×S×S×1, as the student's input
    pipeline holds them before scaling) to the teacher's softened distribution in the student's class order
    (N×K float32), with `--teacher-tta` (default none). The teacher must see faces prepared as the student's
    (same size and equalisation); its own scaling and channels are applied here."""
    info = registry.get_model(config.teacher)
    clf = Classifier.from_registry(info)
    theirs = clf.preprocessing
    if (theirs.input_size, theirs.equalize) != (pre.input_size, pre.equalize):
        raise ValueError(f"teacher {info.id!r} expects {theirs.input_size}-px faces (equalised: {theirs.equalize}); "
                         f"the student's are {pre.input_size}-px (equalised: {pre.equalize}): per-batch teaching "
                         "needs the same face preparation (use --teacher-outputs cached)")
    mode = clf.resolve_tta(config.teacher_tta or "none")
    align_labels(info.labels, labels)  # fails now, not mid-epoch, if the teacher lacks one of the student's classes

    def teach(faces: np.ndarray) -> np.ndarray:
        probs = clf.predict_preprocessed(theirs.to_input(np.asarray(faces)[..., 0]), tta=mode)
        return soften(_in_student_order(probs, info.labels, labels), config.temperature)

    record = teacher_record(info, mode)
    print(f"Teacher {info.id} ({mode}) answers every augmented batch", flush=True)
    return teach, record
