"""The results of a batch run on disk, resumable: committed parts under `<out>.partial/`, a lock so two
runs never write the same output, and the merge into one Parquet/CSV table with fixed columns and dtypes.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pandas as pd

from ..base.files import atomic_write

ROW_COLUMNS: tuple[str, ...] = ("file", "frame", "time", "face", "x", "y", "w", "h", "detector_score",
                                "whole_image", "label", "confidence", "model")


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
        atomic_write(stem.with_suffix(".parquet"), lambda tmp: frame.to_parquet(tmp, index=False))
        manifest = {"items": [{"file": r["file"], "faces": len(r["rows"]), "error": r["error"]} for r in results]}
        atomic_write(stem.with_suffix(".json"), json.dumps(manifest))

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
        self.out.parent.mkdir(parents=True, exist_ok=True)
        write = table.to_csv if self.out.suffix.lower() == ".csv" else table.to_parquet
        atomic_write(self.out, lambda tmp: write(tmp, index=False))
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
