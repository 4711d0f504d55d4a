"""Batch scoring: every face in folders of photos, zips and videos → one Parquet/CSV row per face.

`expand_inputs` lists what to score (images, zip members, videos); `score_item` runs the same photo
pipeline as `predict` (`analyze_image`) on one of them; `run_batch` scores them in parallel threads
whose face crops are classified together by a `BatchingClassifier`, writes finished chunks as parts
(so an interrupted run resumes where it stopped) and lists unreadable files instead of failing.
With `ray_address`, the same `score_item` runs in Ray Data actors (`map_batches`, the model loaded
once per actor), on this machine or on a Ray cluster.
"""
from __future__ import annotations

import io
import json
import logging
import os
import queue
import shutil
import sys
import threading
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..inference.faces import DEFAULT_MIN_SIZE, DETECTORS
from ..base.limits import ArchiveBudget, LimitError, open_zip, read_file, read_member
from ..video.files import VIDEO_TYPES

IMAGE_TYPES: tuple[str, ...] = ("jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff")
DETECTOR_CHOICES: tuple[str, ...] = (*DETECTORS, "none")  # none: each image is one pre-cropped face
ROW_COLUMNS: tuple[str, ...] = ("file", "frame", "time", "face", "x", "y", "w", "h", "detector_score",
                                "whole_image", "label", "confidence", "model")
CHUNK = 256  # items per written part: the unit of resumption


# --- classifying crops from many threads in shared batches ------------------------------------
class _Job:
    __slots__ = ("x", "tta", "done", "result", "error")

    def __init__(self, x, tta):
        self.x, self.tta, self.done, self.result, self.error = x, tta, threading.Event(), None, None


class BatchingClassifier:
    """A `predict.Classifier` shared by many threads: crops that arrive while the model is busy are
    classified together in the next forward pass (one worker thread per model), so concurrent
    requests or images cost one batched call instead of many small ones, with no added wait.

    Everything but `predict` is the wrapped classifier's (`labels`, `id`, `resolve_tta`, `model` …).
    """

    def __init__(self, classifier, max_batch: int = 64):
        self.classifier = classifier
        self.max_batch = int(max_batch)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.calls = 0  # forward passes run (batches), for tests and benchmarks

    def __getattr__(self, name):
        return getattr(self.__dict__["classifier"], name)

    def predict(self, crops, tta=None) -> np.ndarray:
        """Class probabilities (N, K) for uint8 crops, computed in a batch shared with other callers."""
        x = self.classifier.preprocessing.apply(crops) if len(crops) else None
        if x is None:
            return np.zeros((0, len(self.classifier.labels)), np.float32)
        job = _Job(x, tta)
        with self._lock:
            queued = not self._closed
            if queued:
                self._ensure_worker()
                self._queue.put(job)
        if not queued:  # dropped by its owner (e.g. serve's model pool): classify here, no new thread
            return self.classifier.predict_preprocessed(x, tta=tta)
        job.done.wait()
        if job.error is not None:
            raise job.error
        return job.result

    def close(self) -> None:
        """Stop the worker thread (it also stops with the process); later calls classify in the caller's thread."""
        with self._lock:
            self._closed, thread, self._thread = True, self._thread, None
            if thread is not None:
                self._queue.put(None)  # after every queued job: they are all answered first
        if thread is not None:
            thread.join(timeout=10)

    def _ensure_worker(self) -> None:
        """Start the worker thread if it is not running (call with `_lock` held)."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._serve, name="fer-batcher", daemon=True)
            self._thread.start()

    def _serve(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            jobs, n = [job], len(job.x)
            while n < self.max_batch:  # take whatever else is already waiting, never wait for more
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                jobs.append(more)
                n += len(more.x)
            for tta in {j.tta for j in jobs}:
                self._run([j for j in jobs if j.tta == tta], tta)

    def _run(self, jobs: list[_Job], tta) -> None:
        try:
            probs = self.classifier.predict_preprocessed(np.concatenate([j.x for j in jobs]), tta=tta)
            self.calls += 1
            start = 0
            for j in jobs:
                j.result, start = probs[start:start + len(j.x)], start + len(j.x)
        except Exception as err:  # noqa: BLE001 — handed to the waiting callers, who raise it
            for j in jobs:
                j.error = err
        finally:
            for j in jobs:
                j.done.set()


# --- what to score ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Item:
    """One thing to score: an image file, an image inside a zip (`member`), or a video file.

    `file` is how results name it (the path as given, `archive.zip!inner/path.jpg` for zip members);
    `path` is the absolute file to open.
    """

    file: str
    path: str
    kind: str  # image | zip | video
    member: str = ""


def _ext(path) -> str:
    return Path(path).suffix.lower().lstrip(".")


def expand_inputs(inputs) -> tuple[list[Item], list[tuple[str, str]]]:
    """Images, zip members and videos under `inputs` (files or folders, recursively, sorted), and
    (file, reason) for inputs that could not be listed (missing, unreadable zip)."""
    items, problems = [], []
    for raw in inputs:
        path = Path(os.fspath(raw))
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and not any(
                part.startswith(".") for part in p.relative_to(path).parts))
            files = [p for p in files if _ext(p) in (*IMAGE_TYPES, *VIDEO_TYPES, "zip")]
        elif path.is_file():
            files = [path]
        else:
            problems.append((str(path), "does not exist"))
            continue
        for f in files:
            kind = "zip" if _ext(f) == "zip" else "video" if _ext(f) in VIDEO_TYPES else "image"
            if kind != "zip":
                items.append(Item(str(f), str(f.resolve()), kind))
                continue
            try:
                members, refused = _zip_members(f)
            except LimitError as err:
                problems.append((str(f), str(err)))
                continue
            except (zipfile.BadZipFile, OSError) as err:
                problems.append((str(f), f"not a readable zip: {err}"))
                continue
            items += [Item(f"{f}!{n}", str(f.resolve()), "zip", n) for n in members]
            problems += [(f"{f}!{n}", reason) for n, reason in refused]
    return items, problems


def _zip_members(path: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """The image members of a zip (sorted) and (member, reason) for those refused by their declared size,
    compression ratio or the archive's uncompressed budget (`fer_core.base.limits`), before anything is read."""
    budget = ArchiveBudget()
    members, refused = [], []
    with open_zip(path, str(path)) as zf:
        infos = sorted((i for i in zf.infolist() if not i.is_dir() and _ext(i.filename) in IMAGE_TYPES
                        and not any(p.startswith(".") or p == "__MACOSX" for p in i.filename.split("/"))),
                       key=lambda i: i.filename)
    for info in infos:
        reason = budget.admit(info)
        if reason:
            refused.append((info.filename, reason))
        else:
            members.append(info.filename)
    return members, refused


# --- scoring one item ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ScoreOptions:
    """How to score: detector (haar, mtcnn, or none = the whole image is one face), flip/ten-crop TTA
    (None = the model card's default), whole-image fallback, smallest face, every N-th video frame."""

    detector: str = "haar"
    tta: str | None = None
    whole_image: bool = False
    min_size: int = DEFAULT_MIN_SIZE
    every_nth_frame: int = 10

    def __post_init__(self):
        if self.detector not in DETECTOR_CHOICES:
            raise ValueError(f"unknown face detector {self.detector!r}; choose one of: {', '.join(DETECTOR_CHOICES)}")
        if int(self.min_size) < 1:
            raise ValueError("--min-size must be at least 1 pixel")
        if int(self.every_nth_frame) < 1:
            raise ValueError("--every-nth-frame must be 1 or more")


class WholeImageDetector:
    """A detector that finds nothing, so with the whole-image fallback every image is classified as
    one face: the `none` detector, for folders of pre-cropped faces such as FER2013's 48×48 images."""

    name = "none"
    window = None

    def detect(self, image_rgb, min_size: int = DEFAULT_MIN_SIZE) -> list:
        return []


_local = threading.local()


def detector_for(name: str):
    """The detector for this thread: a Haar cascade per thread (its own lock, so threads detect in
    parallel), the process-wide MTCNN, or the whole-image stand-in."""
    from ..inference import faces

    if name == "none":
        return WholeImageDetector()
    if name == "haar":
        if getattr(_local, "haar", None) is None:
            _local.haar = faces.HaarDetector()
        return _local.haar
    return faces.get_detector(name)


def _read_item_bytes(item: Item) -> bytes:
    """An image's bytes, read through a bounded stream (`fer_core.base.limits`): LimitError past the limit."""
    if item.kind != "zip":
        return read_file(item.path)
    cache = _local.__dict__.setdefault("zips", {})
    if item.path not in cache:  # one open ZipFile per thread and archive (its central directory read once)
        cache[item.path] = open_zip(item.path, item.path)
    return read_member(cache[item.path], item.member)


def face_rows(file: str, analysis, frame=None, time_s=None) -> list[dict]:
    """One flat row per face of an `ImageAnalysis`: file, frame/time, box, score, label, probabilities."""
    rows = []
    for i, face in enumerate(analysis.faces, start=1):
        d = face.to_dict()
        x, y, w, h = d["box"]
        rows.append({"file": file, "frame": frame, "time": time_s, "face": i, "x": x, "y": y, "w": w, "h": h,
                     "detector_score": d["detector_score"], "whole_image": bool(analysis.whole_image),
                     "label": d["label"], "confidence": d["confidence"], "model": analysis.model_id,
                     **d["probabilities"]})
    return rows


def score_item(item: Item, classifier, options: ScoreOptions) -> tuple[list[dict], str | None]:
    """Rows of every face in one item, and an error text when it could not be (fully) read.

    A video that breaks off keeps the rows of the frames decoded before the break.
    """
    from ..inference.images import ImageError, read_image
    from ..inference.predict import analyze_image

    kw = dict(detector=detector_for(options.detector), tta=options.tta, min_size=int(options.min_size),
              whole_image_if_no_face=options.whole_image or options.detector == "none")
    try:
        if item.kind == "video":
            return _score_video(item, classifier, options, kw)
        data = io.BytesIO(_read_item_bytes(item))
        data.name = Path(item.member or item.path).name  # named in read_image's errors
        analysis = analyze_image(read_image(data), classifier, **kw)
        return face_rows(item.file, analysis), None
    except (ImageError, ValueError, OSError, KeyError, zipfile.BadZipFile) as err:
        return [], str(err) or type(err).__name__


def _score_video(item: Item, classifier, options: ScoreOptions, kw: dict) -> tuple[list[dict], str | None]:
    from ..inference.predict import analyze_image
    from ..video.files import read_frames

    rows = []
    try:
        for frame in read_frames(item.path, every_n=int(options.every_nth_frame)):
            analysis = analyze_image(frame.rgb, classifier, **kw)
            rows += face_rows(item.file, analysis, frame.index, round(float(frame.time), 4))
    except ValueError as err:  # not a video, or decoding broke off: the frames before it are kept
        return rows, str(err)
    return rows, None


def score_many(items, classifier, options: ScoreOptions, workers: int) -> list[dict]:
    """`score_item` over items on `workers` threads: one {file, rows, error} result per item, in order."""
    def one(item):
        rows, error = score_item(item, classifier, options)
        return {"file": item.file, "rows": rows, "error": error}

    if workers <= 1 or len(items) <= 1:
        return [one(it) for it in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="fer-batch") as pool:
        return list(pool.map(one, items))


# --- results on disk, resumable ----------------------------------------------------------------
class ResultStore:
    """Results of a run: finished chunks are parts under `<out>.partial/` (each committed by its
    manifest, so a crash never leaves half a chunk counted); `finish` merges them into `out`.

    A rerun skips every file already in a committed part or in an existing `out`.
    """

    def __init__(self, out, labels, settings: dict):
        self.out = Path(out)
        if self.out.suffix.lower() not in (".parquet", ".csv"):
            raise ValueError(f"--out must end in .parquet or .csv, not {self.out.name!r}")
        self.labels = tuple(labels)
        self.partial = self.out.with_name(self.out.name + ".partial")
        self.settings = settings
        self._check_settings()
        self._n = len(list(self.partial.glob("part-*.json"))) if self.partial.is_dir() else 0

    def _check_settings(self) -> None:
        saved = self.partial / "settings.json"
        if saved.exists():
            old = json.loads(saved.read_text())
            if old != self.settings:
                diff = ", ".join(f"{k}: {old.get(k)!r} → {v!r}" for k, v in self.settings.items() if old.get(k) != v)
                raise ValueError(f"{self.partial} holds an unfinished run with other settings ({diff}); "
                                 "rerun with the same options to resume, or delete that folder")
        if self.out.exists():
            models = set(self._read(self.out)["model"].dropna().unique())
            if models and models != {self.settings["model"]}:
                raise ValueError(f"{self.out} holds results of model {', '.join(sorted(models))}; "
                                 f"choose another --out for model {self.settings['model']}")

    def lock(self) -> None:
        """Claim the output for this process (`<out>.partial/lock` holds its pid), so two runs never
        write the same parts; a lock left by a process that no longer runs is taken over."""
        self.partial.mkdir(parents=True, exist_ok=True)
        path = self.partial / "lock"
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            text = path.read_text().strip()
            pid = int(text) if text.isdigit() else 0
            if pid and pid != os.getpid() and _running(pid):
                raise ValueError(f"another batch run (pid {pid}) is writing {self.out}; "
                                 "wait for it or stop it") from None
            path.unlink(missing_ok=True)
            return self.lock()
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)

    def unlock(self) -> None:
        (self.partial / "lock").unlink(missing_ok=True)
        try:
            self.partial.rmdir()  # only when nothing was committed
        except OSError:
            pass

    def done(self) -> set[str]:
        """Files already scored (with or without faces) by earlier runs."""
        done: set[str] = set()
        if self.out.exists():
            done |= set(self._read(self.out)["file"].astype(str))
        for manifest in sorted(self.partial.glob("part-*.json")) if self.partial.is_dir() else []:
            done |= {r["file"] for r in json.loads(manifest.read_text())["items"] if r["error"] is None or r["faces"]}
        return done

    def add(self, results: list[dict]) -> None:
        """Commit one chunk: its face rows as a Parquet part, then its manifest (files, faces, errors)."""
        if not results:
            return
        self.partial.mkdir(parents=True, exist_ok=True)
        (self.partial / "settings.json").write_text(json.dumps(self.settings))
        self._n += 1
        stem = self.partial / f"part-{self._n:06d}"
        frame = normalize(pd.DataFrame([r for res in results for r in res["rows"]]), self.labels)
        frame.to_parquet(stem.with_suffix(".parquet.tmp"), index=False)
        os.replace(stem.with_suffix(".parquet.tmp"), stem.with_suffix(".parquet"))
        manifest = {"items": [{"file": r["file"], "faces": len(r["rows"]), "error": r["error"]} for r in results]}
        stem.with_suffix(".json.tmp").write_text(json.dumps(manifest))
        os.replace(stem.with_suffix(".json.tmp"), stem.with_suffix(".json"))

    def errors(self) -> list[tuple[str, str]]:
        """(file, reason) of every item of this run's parts that could not be (fully) read."""
        out = []
        for manifest in sorted(self.partial.glob("part-*.json")) if self.partial.is_dir() else []:
            out += [(r["file"], r["error"]) for r in json.loads(manifest.read_text())["items"] if r["error"]]
        return out

    def finish(self) -> pd.DataFrame:
        """Merge the earlier output and every committed part into `out` (sorted), drop the parts."""
        frames = [self._read(self.out)] if self.out.exists() else []
        for manifest in sorted(self.partial.glob("part-*.json")) if self.partial.is_dir() else []:
            frames.append(pd.read_parquet(manifest.with_name(manifest.name.replace(".json", ".parquet"))))
        frames = [f for f in frames if len(f)]
        table = normalize(pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(), self.labels)
        table = table.drop_duplicates(subset=["file", "frame", "face"], keep="last")
        table = table.sort_values(["file", "frame", "face"], na_position="first", kind="stable").reset_index(drop=True)
        tmp = self.out.with_name(self.out.name + ".tmp")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        if self.out.suffix.lower() == ".csv":
            table.to_csv(tmp, index=False)
        else:
            table.to_parquet(tmp, index=False)
        os.replace(tmp, self.out)
        shutil.rmtree(self.partial, ignore_errors=True)
        return table

    def _read(self, path: Path) -> pd.DataFrame:
        table = pd.read_csv(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
        return normalize(table, self.labels)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def normalize(table: pd.DataFrame, labels) -> pd.DataFrame:
    """Fixed columns and dtypes (also when empty), so every path writes the same table."""
    cols = [*ROW_COLUMNS, *labels]
    table = table.reindex(columns=cols)
    ints = {"frame": "Int64", "face": "int64", "x": "int64", "y": "int64", "w": "int64", "h": "int64"}
    floats = ["time", "detector_score", "confidence", *labels]
    table = table.astype({**ints, **{c: "float64" for c in floats}, "whole_image": "bool",
                          "file": "object", "label": "object", "model": "object"})
    return table


# --- running a batch ----------------------------------------------------------------------------
class _Meter:
    """Counts of a run (files, faces, unreadable) turned into `progress(done, total, message)` calls
    with a bar, the rate and the time left."""

    def __init__(self, total: int, progress):
        self.total, self.done, self.faces, self.errors = total, 0, 0, 0
        self.progress = progress
        self._start = time.perf_counter()

    def update(self, results: list[dict]) -> None:
        self.done += len(results)
        self.faces += sum(len(r["rows"]) for r in results)
        self.errors += sum(1 for r in results if r["error"])
        if self.progress is None or not self.total:
            return
        elapsed = time.perf_counter() - self._start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        eta = (self.total - self.done) / rate if rate > 0 else 0.0
        bar = "#" * (30 * self.done // self.total)
        self.progress(self.done, self.total,
                      f"[{bar:<30}] {self.done:,}/{self.total:,} files, {self.faces:,} faces, "
                      f"{self.errors} unreadable, "
                      f"{rate:.1f} files/s, ETA {int(eta // 60)}:{int(eta % 60):02d}")


@dataclass
class BatchResult:
    """What `run_batch` did: the merged table, files scored now / skipped as done, errors, seconds."""

    table: pd.DataFrame
    scored: int
    skipped: int
    errors: list[tuple[str, str]]
    seconds: float
    engine: str

    @property
    def files_per_second(self) -> float:
        return self.scored / self.seconds if self.seconds > 0 else 0.0


def run_batch(inputs, out, model=None, options: ScoreOptions | None = None, workers: int | None = None,
              ray_address: str | None = None, ray_actors: int | None = None, chunk: int = CHUNK,
              progress=None) -> BatchResult:
    """Score every face in `inputs` into `out` (.parquet or .csv), resuming an earlier run.

    Single machine: `workers` threads (default 2 per core) share one model through a
    `BatchingClassifier`. `ray_address` ("" or "local" = a local Ray instance, "auto", or
    "ray://host:10001"): Ray Data actors score instead, each loading the model once.
    `progress(done, total, message)` hears after every chunk (e.g. `progress.stderr_progress`).
    """
    from ..models.registry import RegistryError, default_model, get_model

    options = options or ScoreOptions()
    info = get_model(str(model)) if model else default_model()
    if info is None:
        raise RegistryError("no models are registered; train one with `python -m fer_core train ...`")
    items, problems = expand_inputs(inputs)
    if not items and not problems:
        raise ValueError(f"no images ({', '.join(IMAGE_TYPES)}), zips or videos found in: "
                         f"{', '.join(map(str, inputs))}")
    settings = {"model": info.id, **asdict(options)}
    store = ResultStore(out, info.labels, settings)
    store.lock()
    try:
        return _run(store, items, problems, info, options, workers, ray_address, ray_actors, chunk, progress)
    finally:
        store.unlock()


def _run(store, items, problems, info, options, workers, ray_address, ray_actors, chunk, progress) -> BatchResult:
    done = store.done()
    todo = [it for it in items if it.file not in done]
    meter = _Meter(len(todo), progress)
    start = time.perf_counter()
    if todo and ray_address is not None:
        engine = "ray"
        for results in _ray_results(todo, info, options, ray_address, ray_actors, chunk):
            store.add(results)
            meter.update(results)
    elif todo:
        engine = "threads"
        from ..inference.predict import Classifier

        clf = BatchingClassifier(Classifier.from_registry(info))
        workers = workers or 2 * (os.cpu_count() or 1)
        try:
            for i in range(0, len(todo), chunk):
                results = score_many(todo[i:i + chunk], clf, options, workers)
                store.add(results)
                meter.update(results)
        finally:
            clf.close()
    else:
        engine = "none"
    seconds = time.perf_counter() - start
    errors = problems + store.errors()
    table = store.finish()
    return BatchResult(table, len(todo), len(items) - len(todo), errors, seconds, engine)


# --- Ray ----------------------------------------------------------------------------------------
class _RayScorer:
    """A Ray Data actor: loads the model once, then scores batches of items (`score_many`)."""

    def __init__(self, model_path: str, options: dict, threads: int):
        _limit_tf_threads(threads)
        from ..inference.predict import Classifier

        self.classifier = BatchingClassifier(Classifier.from_registry(model_path))
        self.options = ScoreOptions(**options)
        self.threads = threads

    def __call__(self, batch: dict) -> dict:
        items = [Item(str(f), str(p), str(k), str(m))
                 for f, p, k, m in zip(batch["file"], batch["path"], batch["kind"], batch["member"])]
        results = score_many(items, self.classifier, self.options, self.threads)
        return {"file": [r["file"] for r in results],
                "rows": [json.dumps(r["rows"]) for r in results],
                "error": [r["error"] or "" for r in results]}


def _limit_tf_threads(n: int) -> None:
    """Keep each actor's TensorFlow to its share of cores (before TF starts its thread pools)."""
    try:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(max(1, n))
        tf.config.threading.set_inter_op_parallelism_threads(max(1, min(2, n)))
    except (ImportError, RuntimeError):
        pass  # another backend, or TF already running in this worker


def parse_ray_address(address) -> str | None:
    """`--ray` alone or "local" → None (start Ray here); "auto", "host:port" or "ray://host:port" as given."""
    text = (address or "").strip()
    if text in ("", "local"):
        return None
    if text == "auto" or text.startswith("ray://") or (":" in text and text.rsplit(":", 1)[1].isdigit()):
        return text
    raise ValueError(f"--ray {text!r} is not a Ray address: use auto, HOST:PORT or ray://HOST:10001 "
                     "(put --ray after the inputs so it does not take an input as its address)")


def _ray_results(items: list[Item], info, options: ScoreOptions, address: str, actors: int | None, chunk: int):
    """Score items with Ray Data; yields lists of {file, rows, error} as batches come back."""
    import ray

    from ..models.registry import default_models_dir

    started = not ray.is_initialized()
    if started:  # ship this fer_core to every worker (a cluster's nodes need its dependencies and the data)
        ray.init(address=parse_ray_address(address), include_dashboard=False, log_to_driver=False,
                 logging_level="WARNING", runtime_env={"py_modules": [str(Path(__file__).resolve().parents[1])]})
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # ours counts files; Ray Data's would interleave with it
        logging.getLogger("ray.data").setLevel(logging.WARNING)
        cpus = int(ray.cluster_resources().get("CPU", 1))
        n_actors = max(1, min(int(actors or cpus), len(items)))
        runtime_env = {"env_vars": {"FER_MODELS_DIR": str(default_models_dir())}}  # ensembles find their members
        blocks = max(1, min(len(items), 4 * n_actors))
        ds = ray.data.from_items([asdict(it) for it in items], override_num_blocks=blocks)
        scored = ds.map_batches(_RayScorer, batch_size=min(64, max(1, chunk)), batch_format="numpy",
                                fn_constructor_kwargs={"model_path": str(info.path), "options": asdict(options),
                                                       "threads": 2},
                                compute=ray.data.ActorPoolStrategy(size=n_actors), num_cpus=1,
                                runtime_env=runtime_env)
        pending: list[dict] = []
        for batch in scored.iter_batches(batch_size=None, batch_format="numpy"):
            pending += [{"file": str(f), "rows": json.loads(r), "error": str(e) or None}
                        for f, r, e in zip(batch["file"], batch["rows"], batch["error"])]
            if len(pending) >= chunk:
                yield pending
                pending = []
        if pending:
            yield pending
    finally:
        if started:
            ray.shutdown()


# --- CLI ----------------------------------------------------------------------------------------
def add_cli(subparsers) -> None:
    """`batch`: every face in folders, zips and videos → one Parquet/CSV row per face, resumable."""
    from ..models.tta import add_tta_argument

    p = subparsers.add_parser("batch", help="score every face in folders, zips and videos into Parquet/CSV")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders (recursive), .zip files, videos")
    p.add_argument("--out", required=True, help="results file: .parquet or .csv (rerun to resume)")
    p.add_argument("--model", help="registered model id or model folder (default: the default model)")
    p.add_argument("--detector", choices=DETECTOR_CHOICES, default="haar",
                   help="face detector; none = every image is one pre-cropped face (e.g. FER2013's 48×48)")
    p.add_argument("--min-size", type=int, default=DEFAULT_MIN_SIZE, help="smallest face side in pixels")
    add_tta_argument(p)
    p.add_argument("--whole-image", action="store_true",
                   help="classify the whole image as one face when none is detected")
    p.add_argument("--every-nth-frame", type=int, default=10, metavar="N", help="videos: score every N-th frame")
    p.add_argument("--workers", type=int, help="threads on this machine (default: 2 per core)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run on Ray Data: a local Ray instance, or the cluster at ADDRESS (auto, ray://HOST:10001)")
    p.add_argument("--ray-actors", type=int, help="Ray actors (default: one per CPU of the cluster)")
    p.set_defaults(func=_cmd_batch)


def _cmd_batch(args) -> int:
    if args.ray is not None:
        parse_ray_address(args.ray)  # a bad address fails before anything is loaded
    if args.workers is not None and args.workers < 1:
        raise ValueError("--workers must be 1 or more")
    options = ScoreOptions(args.detector, args.tta, args.whole_image, args.min_size, args.every_nth_frame)
    from ..base.progress import stderr_progress

    result = run_batch(args.inputs, args.out, args.model, options, args.workers, args.ray, args.ray_actors,
                       progress=stderr_progress)
    for file, reason in result.errors[:20]:
        print(f"  unreadable: {file}: {reason}", file=sys.stderr)
    if len(result.errors) > 20:
        print(f"  … {len(result.errors) - 20} more unreadable files", file=sys.stderr)
    if result.errors:
        errors_file = Path(args.out).with_name(Path(args.out).stem + ".errors.csv")
        pd.DataFrame(result.errors, columns=["file", "error"]).to_csv(errors_file, index=False)
        print(f"{len(result.errors)} unreadable file(s) listed in {errors_file}", file=sys.stderr)
    rate = (f" in {result.seconds:.1f} s ({result.files_per_second:.1f} files/s, {result.engine})"
            if result.scored else "")
    print(f"{result.scored:,} file(s) scored{rate}, {result.skipped:,} already done; "
          f"{len(result.table):,} face rows in {args.out}")
    return 0
