"""How a model sees a dataset: penultimate-layer features of its images and a 2-D map of them.

`extract_features` is the one place features are computed: the registered model is cut just below
its classifier head (the last Dense layer) and run in batches on the card's preprocessing, giving
each image's feature vector and the model's own probabilities in one pass. `dataset_features`
adds a disk cache keyed by (dataset fingerprint, model file, sampled files); `sample_rows` draws a
stratified sample; `project_2d` reduces features to 2-D (UMAP, t-SNE or PCA) for the embedding map.
Label-error detection (`fer_core.evaluation.label_issues`) reuses the same features.
"""
from __future__ import annotations

import hashlib
import logging
import warnings
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.datasets import default_cache_dir
from ..data.fer_dataset import SPLITS, DataError, FerDataset
from ..base.files import atomic_write
from ..base.progress import ProgressFn

log = logging.getLogger(__name__)

DEFAULT_SAMPLE = 1000  # images on the Explorer's map: a few seconds of features on 2 CPU cores
MAX_SAMPLE = 5000
METHODS: dict[str, str] = {"umap": "UMAP", "tsne": "t-SNE", "pca": "PCA"}
SPLIT_CHOICES = ("all",) + SPLITS
_CACHE_VERSION = "1"
_FORWARDS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # Keras model → compiled feature pass


@dataclass
class Features:
    """Penultimate features and the model's probabilities for some rows of a dataset."""

    rows: np.ndarray  # indices into the dataset the features were computed for
    features: np.ndarray  # (N, D) float32
    probabilities: np.ndarray  # (N, K) float32 over `model_labels` (no test-time augmentation)
    model_id: str
    model_labels: tuple[str, ...]
    trained_on: dict = field(default_factory=dict)  # the model card's `dataset` section
    from_cache: bool = False

    def predictions(self) -> np.ndarray:
        """The model's top emotion for every row."""
        return np.asarray(self.model_labels)[self.probabilities.argmax(axis=1)]


def as_classifier(model=None, labels=None):
    """A `predict.Classifier` for a model id, `ModelInfo` or Classifier; None means the default model
    of `labels` (a dataset's classes), else the overall default."""
    from ..models import registry
    from ..inference.predict import Classifier

    if isinstance(model, Classifier):
        return model
    if model is None:
        model = default_feature_model(labels)
    info = model if isinstance(model, registry.ModelInfo) else registry.get_model(str(model))
    return Classifier(registry.load_keras_model(info), info)


def default_feature_model(labels=None):
    """The model whose features are used when none is named: the label set's default when it can give
    features, else (an ensemble or an export is the default) its most accurate single Keras model."""
    from ..models import registry

    default = registry.default_model(labels) or registry.resolve_model()
    if can_embed(default):
        return default
    singles = [i for i in registry.list_models() if i.labels == default.labels and can_embed(i)]
    if not singles:
        raise registry.RegistryError(f"the default model {default.id} has no single layer to take features from "
                                     "and no single Keras model shares its label set; pass --model ID")
    return max(singles, key=lambda i: (i.metrics("validation") or {}).get("accuracy") or 0.0)


def can_embed(info) -> bool:
    """Whether a registered model has penultimate features to take: a single Keras model, not an
    edge export (no layers) nor an ensemble (several heads averaged)."""
    return info.format == "keras" and not info.model_card.ensemble


def feature_model(model):
    """A Keras model from `model`'s input to [penultimate features | class outputs], concatenated
    into one float32 tensor so every backend's compiled forward pass returns a single array.

    The head is the last Dense layer; its input is the penultimate-layer representation (for our
    nets the globally pooled features after dropout, which is the identity at inference).
    """
    import keras

    if not isinstance(model, keras.Model):
        raise ValueError("features need a Keras model; edge exports (LiteRT/ONNX) have no layers to cut")
    dense = [layer for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    if not dense:
        raise ValueError(f"model {model.name!r} has no Dense classifier head to take features below "
                         "(an ensemble? pick one of its members)")
    features = dense[-1].input
    if len(features.shape) != 2:
        features = keras.layers.Flatten()(features)
    inputs = model.inputs[0] if len(model.inputs) == 1 else model.inputs
    return keras.Model(inputs, keras.layers.Concatenate(dtype="float32")([features, model.outputs[0]]))


def extract_features(classifier, images: np.ndarray, batch_size: int = 256,
                     progress: ProgressFn | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(features N×D, probabilities N×K) of uint8 faces, through the classifier's own preprocessing.

    Batches are zero-padded to `batch_size` so the compiled forward pass is traced once.
    """
    from ..inference.predict import compiled_forward
    from ..models.probabilities import as_probabilities

    forward = _FORWARDS.get(classifier.model)
    if forward is None:
        forward = _FORWARDS[classifier.model] = compiled_forward(feature_model(classifier.model))
    n, k = len(images), len(classifier.labels)
    feats, probs = [], []
    for start in range(0, n, batch_size):
        x = classifier.preprocessing.apply(images[start:start + batch_size])
        m = len(x)
        if m < batch_size and n > batch_size:
            x = np.concatenate([x, np.zeros((batch_size - m,) + x.shape[1:], np.float32)])
        out = np.asarray(forward(x), np.float32)[:m]
        feats.append(out[:, :-k])
        probs.append(as_probabilities(out[:, -k:]))
        if progress:
            done = min(start + batch_size, n)
            progress(done, n, f"features of {classifier.info.id}: {done:,} of {n:,} images")
    if not feats:
        raise ValueError("no images to compute features for")
    return np.concatenate(feats), np.concatenate(probs)


def sample_rows(dataset: FerDataset, split: str = "all", size: int = 0, seed: int = 0) -> np.ndarray:
    """Sorted row indices of `split` (or all splits), a stratified random sample of `size` when
    0 < size < the split's size: every (split, emotion) group keeps its share, at least one image."""
    if split not in SPLIT_CHOICES:
        raise DataError(f"unknown split {split!r}; use one of {', '.join(SPLIT_CHOICES)}")
    rows = np.arange(len(dataset)) if split == "all" else np.flatnonzero(dataset.splits == split)
    if len(rows) == 0:
        raise DataError(f"the dataset has no {split} images (it has {', '.join(dataset.split_names) or 'none'})")
    if size < 0:
        raise ValueError("the sample size must be positive (0 = every image)")
    if not size or size >= len(rows):
        return rows
    rng = np.random.default_rng(seed)
    groups = [rows[(dataset.splits[rows] == s) & (dataset.labels[rows] == k)]
              for s in np.unique(dataset.splits[rows]) for k in np.unique(dataset.labels[rows])]
    groups = [g for g in groups if len(g)]
    quota = np.array([max(1, round(size * len(g) / len(rows))) for g in groups])
    while quota.sum() > size and (quota > 1).any():  # rounding overshoot: trim the largest groups
        quota[np.argmax(quota)] -= 1
    return np.sort(np.concatenate([rng.choice(g, min(q, len(g)), replace=False) for g, q in zip(groups, quota)]))


def dataset_features(dataset: FerDataset, rows: np.ndarray | None = None, model=None, *, cache: bool = True,
                     cache_dir: Path | None = None, progress: ProgressFn | None = None) -> Features:
    """Features and probabilities of `model` (id, ModelInfo or Classifier; None = default) for
    `rows` of `dataset` (all rows when None), read from the disk cache when computed before.

    The cache key is the dataset fingerprint, the model (id and file stamp) and the sampled files;
    pass `cache=False` for data that must stay in memory (uploads).
    """
    classifier = as_classifier(model, dataset.classes)
    rows = np.arange(len(dataset)) if rows is None else np.asarray(rows, dtype=np.int64)
    path = _cache_file(dataset, rows, classifier, cache_dir) if cache else None
    trained_on = dict(classifier.info.card.get("dataset") or {})
    if path is not None and path.exists():
        try:
            with np.load(path, allow_pickle=False) as z:
                return Features(rows, z["features"], z["probabilities"], classifier.info.id,
                                classifier.labels, trained_on, from_cache=True)
        except Exception as err:  # noqa: BLE001 — a damaged cache file is recomputed, never fatal
            log.warning("recomputing features: the cache %s is unreadable (%s: %s)", path, type(err).__name__, err)
    feats, probs = extract_features(classifier, dataset.images[rows], progress=progress)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda tmp: np.savez(tmp, features=feats, probabilities=probs))
        except OSError as err:  # a read-only cache folder just means no cache
            log.debug("features not cached at %s: %s", path, err)
    return Features(rows, feats, probs, classifier.info.id, classifier.labels, trained_on)


def _cache_file(dataset: FerDataset, rows: np.ndarray, classifier, cache_dir: Path | None) -> Path:
    stat = classifier.info.model_file.stat()
    h = hashlib.sha1(f"{_CACHE_VERSION}|{dataset.fingerprint}|{classifier.info.id}|{stat.st_size}|"
                     f"{stat.st_mtime_ns}|{classifier.preprocessing}".encode())
    h.update("\n".join(dataset.files[rows].tolist()).encode())
    return (cache_dir or default_cache_dir()) / "features" / f"{dataset.fingerprint}-{h.hexdigest()[:16]}.npz"


def project_2d(features: np.ndarray, method: str = "umap", seed: int = 0) -> tuple[np.ndarray, str]:
    """2-D coordinates of feature vectors and the method used ("umap", "tsne" or "pca").

    Features are standardised (and PCA-reduced to 50 dimensions before UMAP/t-SNE); samples too
    small for a neighbourhood method fall back to PCA.
    """
    if method not in METHODS:
        raise ValueError(f"unknown projection {method!r}; use one of {', '.join(METHODS)}")
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # one BLAS/OpenMP thread: spinning threads crawl on a busy 2-core machine
        return _project(np.asarray(features, np.float64), method, seed)


def _project(features: np.ndarray, method: str, seed: int) -> tuple[np.ndarray, str]:
    """`project_2d` without the thread limit."""
    from sklearn.decomposition import PCA
    from sklearn.preprocessing import StandardScaler

    n = len(features)
    if n < 3:
        return np.zeros((n, 2), np.float32), "pca"
    x = StandardScaler().fit_transform(features)
    dims = min(x.shape[1], n)
    if method == "pca" or n < 20:
        coords = PCA(2, random_state=seed).fit_transform(x) if dims >= 2 else np.c_[x[:, :1], np.zeros(n)]
        return coords.astype(np.float32), "pca"
    if x.shape[1] > 50:
        x = PCA(min(50, n - 1), random_state=seed).fit_transform(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # umap/numba notices about threads and seeds
        if method == "tsne":
            from sklearn.manifold import TSNE

            coords = TSNE(2, perplexity=min(30.0, (n - 1) / 3), init="pca", random_state=seed).fit_transform(x)
        else:
            import umap

            coords = umap.UMAP(n_neighbors=min(15, n - 1), min_dist=0.1, random_state=seed,
                               n_jobs=1).fit_transform(x)
    return np.asarray(coords, np.float32), method


def embedding_frame(dataset: FerDataset, feats: Features, coords: np.ndarray, issues=None):
    """One row per mapped image: x, y, file, split, label, prediction, confidence and, when a
    `label_issues` ranking of the same rows is given, suggested label and "likely label error"."""
    import pandas as pd

    rows = feats.rows
    frame = pd.DataFrame({"x": coords[:, 0], "y": coords[:, 1], "row": rows, "file": dataset.files[rows],
                          "split": dataset.splits[rows], "label": dataset.label_names()[rows],
                          "prediction": feats.predictions(), "confidence": feats.probabilities.max(axis=1)})
    if issues is not None:
        found = issues.reindex(rows)
        frame["suggested"] = found["suggested_label"].fillna(frame["label"]).to_numpy()
        frame["likely label error"] = np.where(found["label_issue"].fillna(False).astype(bool), "yes", "no")
        frame["issue score"] = found["score"].to_numpy()
    return frame
