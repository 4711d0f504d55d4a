"""Loading a FER dataset from disk into one in-memory `FerDataset`, whatever its layout: the image-folder
layouts (`image_folders`) or `fer2013.csv` (`fer2013_csv`), in a folder or a `.zip`. A decoded copy is
cached on disk, keyed by a fingerprint of the files (`sources`), so reloading is instant. Also where
datasets are looked for by default, and the one folder a deployed dashboard may read from.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import numpy as np

from ..base.files import atomic_write
from ..base.progress import ProgressFn
from .fer2013_csv import load_csv
from .fer_dataset import SUPPORTED_LAYOUTS, DataError, FerDataset, Problem
from .image_folders import IMAGE_EXTENSIONS, label_entries, load_images
from .sources import Source, fingerprint

log = logging.getLogger(__name__)

_CACHE_VERSION = "2"  # format of the decoded cache files


def default_cache_dir() -> Path:
    """Where decoded datasets are cached: $FER_CACHE_DIR, else ~/.cache/fer_core."""
    return Path(os.environ.get("FER_CACHE_DIR", Path.home() / ".cache" / "fer_core"))


def default_data_dir() -> Path | None:
    """$FER_DATA_DIR, else ../shared/datasets/fer2013 beside the repo when it exists."""
    env = os.environ.get("FER_DATA_DIR")
    if env:
        return Path(env).expanduser()
    shared = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "fer2013"
    return shared if shared.exists() else None


def check_data_root(source: str) -> Path:
    """A dataset path typed into the dashboard, as the path to read. With $FER_DATA_ROOT set, only paths
    inside that folder are accepted (relative ones are taken from it; `..` and symbolic links are resolved
    first), so a deployed dashboard cannot be pointed at the rest of the server's files. DataError otherwise."""
    path = Path(source).expanduser()
    root = os.environ.get("FER_DATA_ROOT")
    if not root:
        return path
    root_path = Path(root).expanduser().resolve()
    resolved = (root_path / path).resolve()  # an absolute `path` replaces the root here
    if resolved != root_path and root_path not in resolved.parents:
        raise DataError(f"{source} is outside the data folder this server allows ($FER_DATA_ROOT); "
                        "enter a dataset path inside it or upload a zip")
    return resolved


def load_dataset(source, *, progress: ProgressFn | None = None, cache: bool = True,
                 cache_dir: Path | None = None) -> FerDataset:
    """Load a dataset folder, .zip (path or bytes) or fer2013.csv, using the on-disk cache when valid."""
    src = Source(source)
    if progress:
        progress(0, 1, f"listing {src.description}")
    entries = src.entries()
    fp = fingerprint(entries, src.key)
    cache_file = (cache_dir or default_cache_dir()) / "datasets" / f"{fp}.v{_CACHE_VERSION}.npz"
    if cache and cache_file.exists():
        try:
            ds = _read_cache(cache_file)
            ds.source = src.description
            if progress:
                progress(1, 1, f"loaded {len(ds):,} images from the cache")
            return ds
        except Exception as err:  # noqa: BLE001 — a damaged cache is rebuilt, never fatal
            log.warning("rebuilding the dataset: the cache %s is unreadable (%s: %s)",
                        cache_file, type(err).__name__, err)
    images = [e for e in entries if e.path.lower().endswith(IMAGE_EXTENSIONS)]
    labelled = label_entries(images)
    if labelled:
        ds = load_images(src, labelled, progress)
    else:
        csvs = [e for e in entries if e.path.lower().endswith(".csv")]
        if not csvs:
            raise DataError(_unrecognised(src.description, len(entries), len(images)))
        ds = load_csv(src, sorted(csvs, key=lambda e: ("fer2013" not in e.path.lower(), e.path))[0], progress)
    ds.source, ds.fingerprint = src.description, fp
    if cache:
        _write_cache(cache_file, ds)
    return ds


def _unrecognised(where: str, n_files: int, n_images: int) -> str:
    what = "is empty" if n_files == 0 else (
        f"has {n_images} images but none inside an emotion folder" if n_images else "has no images and no fer2013.csv")
    return f"{where} {what}. Supported layouts: " + "; ".join(SUPPORTED_LAYOUTS) + "."


def _write_cache(path: Path, ds: FerDataset) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"classes": ds.classes, "layout": ds.layout, "fingerprint": ds.fingerprint,
                "problems": [[p.file, p.reason] for p in ds.problems]}
        atomic_write(path, lambda tmp: np.savez(tmp, images=ds.images, labels=ds.labels, splits=ds.splits,
                                                files=ds.files, meta=np.array(json.dumps(meta))))
    except OSError as err:  # a read-only home just means no cache
        log.debug("dataset not cached at %s: %s", path, err)


def _read_cache(path: Path) -> FerDataset:
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
        return FerDataset(z["images"], z["labels"], z["splits"], z["files"], tuple(meta["classes"]),
                          layout=meta["layout"], fingerprint=meta["fingerprint"],
                          problems=[Problem(*p) for p in meta["problems"]], from_cache=True)


def download_fer2013() -> Path:
    """Download FER2013 (Kaggle `msambare/fer2013`) with kagglehub; needs network and Kaggle access."""
    try:
        import kagglehub
    except ImportError:
        raise DataError("kagglehub is not installed: pip install kagglehub") from None
    try:
        return Path(kagglehub.dataset_download("msambare/fer2013"))
    except Exception as err:
        raise DataError(f"could not download FER2013 with kagglehub ({err})") from None
