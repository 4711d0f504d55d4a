"""Writers of model cards that cannot lose data: evaluate's and robustness' results written by two
processes at once are all kept, set-default keeps both, and weights and card are replaced together
(a crash leaves either the old pair or, once finished by the next reader, the new one)."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from fer_core.models import card_store, registry

ROOT = Path(__file__).resolve().parents[1]
N = 40  # writes per process: enough that unlocked writers lose updates or collide on a shared temp name


def make_model(root: Path, model_id: str = "m", labels=("happy", "sad"), default: bool = False) -> Path:
    """A registered model of a placeholder weights file and a small card (no TensorFlow needed)."""
    folder = root / model_id
    folder.mkdir(parents=True)
    (folder / registry.MODEL_FILE).write_bytes(b"weights v1")
    registry.write_card(folder, {"id": model_id, "labels": list(labels), "default": default,
                                 "history": list(range(500))})
    return folder


WRITER = textwrap.dedent("""
    import sys
    from fer_core.models import registry
    from fer_core.evaluation import robustness
    kind, n = sys.argv[1], int(sys.argv[2])
    info = registry.get_model("m")
    for i in range(n):
        if kind == "evaluate":  # what evaluate.save_evaluation stores in the card
            registry.save_metrics(info, "validation", {"dataset": {"id": f"ds{i}", "name": f"d{i}"}, "accuracy": i})
        else:  # what `robustness` stores
            robustness.save_report(info, {"dataset": {"id": f"ds{i}"}, "corruptions": {}})
""")


def run_writers(models_dir: Path, *kinds: str) -> list[subprocess.CompletedProcess]:
    env = {**os.environ, "FER_MODELS_DIR": str(models_dir), "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, kind, str(N)], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for kind in kinds]
    return [subprocess.CompletedProcess(p.args, p.wait(timeout=120), *p.communicate()) for p in procs]


def test_concurrent_evaluate_and_robustness_keep_every_result(tmp_path):
    folder = make_model(tmp_path)
    for done in run_writers(tmp_path, "evaluate", "robustness"):
        assert done.returncode == 0, done.stderr
    card = registry.read_card(folder)
    assert sorted(card["evaluations"]) == sorted(f"ds{i}/validation" for i in range(N))
    assert sorted(card["robustness"]) == sorted(f"ds{i}" for i in range(N))
    assert card["history"] == list(range(500))
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".partial")]  # no temp left behind


def test_set_default_and_set_tta_at_once_keep_both(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    make_model(tmp_path, "a", default=True)
    make_model(tmp_path, "b")
    with ThreadPoolExecutor(2) as pool:
        jobs = [pool.submit(registry.set_default, "b", tmp_path)] + [
            pool.submit(registry.set_default_tta, "b", mode, tmp_path) for mode in ("flip", "tencrop", "flip")]
        [j.result() for j in jobs]
    b = registry.get_model("b", tmp_path)
    assert b.is_default() and b.card["inference"]["tta"] in ("flip", "tencrop")
    assert not registry.get_model("a", tmp_path).is_default()


def test_weights_and_card_are_replaced_together(tmp_path, monkeypatch):
    folder = make_model(tmp_path)
    new_card = {"id": "m", "labels": ["happy", "sad"], "version": 2}

    def crash(path):  # the writer dies while saving the weights: the old model stays whole
        path.write_bytes(b"half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        registry.save_model_files(folder, new_card, crash)
    assert (folder / registry.MODEL_FILE).read_bytes() == b"weights v1" and "version" not in registry.read_card(folder)
    assert not [p for p in folder.iterdir() if p.name.startswith(".partial")]

    real_replace, calls = os.replace, []

    def dies_after_first_move(src, dst):  # the process dies between moving the weights and the card
        calls.append(Path(dst).name)
        if Path(dst).name == registry.CARD_FILE:
            raise SystemExit("killed")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", dies_after_first_move)
    with pytest.raises(SystemExit):
        registry.save_model_files(folder, new_card, lambda p: p.write_bytes(b"weights v2"))
    monkeypatch.setattr(os, "replace", real_replace)
    assert (folder / registry.COMMIT_FILE).exists()  # new weights, old card: only until the next read
    assert registry.read_card(folder)["version"] == 2  # the reader finishes the commit
    assert (folder / registry.MODEL_FILE).read_bytes() == b"weights v2"
    assert not (folder / registry.COMMIT_FILE).exists()


def test_card_cache_rereads_only_changed_cards(tmp_path, monkeypatch):
    folder = make_model(tmp_path)
    cache = registry.CardCache()
    reads = []
    real = card_store.read_card
    monkeypatch.setattr(card_store, "read_card", lambda f: reads.append(f) or real(f))
    first = [m.card for m in registry.list_models(tmp_path, cards=cache)]
    again = [m.card for m in registry.list_models(tmp_path, cards=cache)]
    assert len(reads) == 1 and first[0] is again[0]
    registry.update_card(folder, lambda card: card.__setitem__("name", "renamed"))
    assert registry.list_models(tmp_path, cards=cache)[0].name == "renamed" and len(reads) == 3
