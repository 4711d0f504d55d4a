"""Benchmark: the fast default beside the ensemble and the plain network, in one process.

    python -m bench.bench_default [--labels 7class] [--data ../shared/datasets/fer2013] [--accuracy]

For each of the label set's default model (with its default inference), the most accurate model (the
ensemble, ten-crop) and the plain network (`fer_resvgg_7class`, no TTA):

- per-face latency: median of `Classifier.predict` on one face (the app's own path), 50 rounds;
- batch throughput: faces per second over one batch of `--faces` faces (default 256), median of 3 rounds;
  the three models take turns round after round, so background load hits each alike;
- cold `predict`: `python -m fer_core predict` of one 6-face photo as a fresh process (median of 2),
  and whether that process imported TensorFlow;
- accuracy on the validation split (PublicTest): from the model's card (a saved real evaluation), or
  measured now with `--accuracy` (needs the dataset; the ensemble takes minutes);
- the Image Prediction page in a fresh process (AppTest): the first 6-face photo, from opening the page
  to every result rendered with its defaults (explanations and compared models included).

Ratios are against the plain network, measured in the same run, so they hold on any machine.
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
PLAIN = {"7class": "fer_resvgg_7class", "4class": "fer_resvgg_4class"}
COLD_SCRIPT = ("import sys, contextlib, io\nfrom fer_core import cli\n"
               "with contextlib.redirect_stdout(io.StringIO()):\n"
               "    code = cli.main(['predict', sys.argv[1], '--model', sys.argv[2]])\n"
               "print(code, 'tensorflow' in sys.modules)\n")


def speeds(classifiers: dict, faces: np.ndarray) -> dict[str, tuple[float, float]]:
    """Per role: median ms for one face (50 rounds) and faces per second over one batch of `faces` (3 rounds),
    the contenders interleaved round after round so background load hits each alike."""
    from bench.bench_predict import interleaved

    one = interleaved({role: (lambda c=clf: c.predict(faces[:1])) for role, clf in classifiers.items()}, rounds=50)
    batch = interleaved({role: (lambda c=clf: c.predict(faces)) for role, clf in classifiers.items()}, rounds=3,
                        warmup=1)
    return {role: (one[role][0], 1000 * len(faces) / batch[role][0]) for role in classifiers}


def cold_predict(photo: Path, model_id: str, runs: int = 2) -> tuple[float, bool]:
    """Median wall seconds of a fresh `predict` process, and whether it imported TensorFlow."""
    times, imported = [], False
    for _ in range(runs):
        start = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", COLD_SCRIPT, str(photo), model_id], cwd=ROOT,
                             capture_output=True, text=True, check=True)
        times.append(time.perf_counter() - start)
        code, tf = out.stdout.split()[-2:]
        if code != "0":
            raise RuntimeError(f"predict failed: {out.stderr[-500:]}")
        imported |= tf == "True"
    return statistics.median(times), imported


PAGE_SCRIPT = """
import sys, time
from streamlit.testing.v1 import AppTest
start = time.perf_counter()
at = AppTest.from_file("pages/3_Image_Prediction.py", default_timeout=600)
at.run()
at.file_uploader(key="uploads").set_value(("six_faces.jpg", open(sys.argv[1], "rb").read(), "image/jpeg"))
at.run()
assert not at.exception, at.exception
faces = sum(str(h.value).startswith("Face ") for h in at.subheader)
print(time.perf_counter() - start, faces, "tensorflow" in sys.modules)
"""


def page_first_photo(photo: Path) -> tuple[float, int, bool]:
    """Seconds from a fresh process opening Image Prediction (its defaults) to the uploaded photo's
    results fully rendered — explanations and the compared models included — through Streamlit's AppTest;
    the faces shown; whether TensorFlow was imported."""
    out = subprocess.run([sys.executable, "-c", PAGE_SCRIPT, str(photo)], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    seconds, faces, tf = out.stdout.split()[-3:]
    return float(seconds), int(faces), tf == "True"


def accuracy(info, data: str | None) -> tuple[float | None, str]:
    if data:
        from fer_core.data.datasets import load_dataset
        from fer_core.evaluation.evaluate import evaluate_model

        result = evaluate_model(info, load_dataset(data), split="validation")
        return result["accuracy"], "measured now"
    saved = info.metrics("validation") or {}
    return saved.get("accuracy"), "card"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--labels", default="7class", choices=tuple(PLAIN))
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "datasets" / "fer2013"),
                        help="dataset for --accuracy and the test faces (default ../shared/datasets/fer2013)")
    parser.add_argument("--faces", type=int, default=256, help="faces per throughput batch (default 256)")
    parser.add_argument("--accuracy", action="store_true", help="measure validation accuracy now instead of "
                                                                "reading each card's saved evaluation")
    args = parser.parse_args()
    from PIL import Image

    from fer_core.models import registry
    from fer_core.models.roles import most_accurate
    from fer_core.data.datasets import load_dataset
    from fer_core.base.labels import parse_label_set
    from fer_core.inference.loader import load_classifier
    from fer_core.video.sample import group_photo

    labels = parse_label_set("all" if args.labels == "7class" else args.labels)
    infos = registry.list_models()
    same = [m for m in infos if set(m.labels) == set(labels) or (args.labels == "7class" and len(m.labels) == 7)]
    default = next(m for m in same if m.is_default())
    best = most_accurate(infos, default.labels)
    plain = registry.get_model(PLAIN[args.labels])
    faces = load_dataset(args.data).split("validation").images[:args.faces]
    with tempfile.TemporaryDirectory() as tmp:
        photo = Path(tmp) / "six_faces.jpg"
        Image.fromarray(group_photo(6)).save(photo, quality=92)
        roles = {"plain network (baseline)": plain, "default": default, "most accurate": best}
        classifiers = {role: load_classifier(info) for role, info in roles.items()}
        speed = speeds(classifiers, faces)
        rows = []
        for role, info in roles.items():
            acc, source = accuracy(info, args.data if args.accuracy else None)
            cold, tf = cold_predict(photo, info.id)
            rows.append((role, info.id, classifiers[role].default_tta, *speed[role], cold, tf, acc, source))
        page = page_first_photo(photo)
    base = rows[0]
    print(f"{args.labels}: default vs most accurate vs plain network, one process, "
          f"{__import__('os').cpu_count()} CPU(s)")
    width = max(36, *(len(row[1]) + 2 for row in rows))  # the model column fits the longest id
    print(f"  {'role':<26}{'model':<{width}}{'TTA':<9}{'ms/face':>9}{'faces/s':>9}{'cold predict s':>16}"
          f"{'TF?':>5}{'accuracy':>10}")
    for role, mid, tta, ms, fps, cold, tf, acc, source in rows:
        print(f"  {role:<26}{mid:<{width}}{tta:<9}{ms:>9.2f}{fps:>9.0f}{cold:>16.2f}{'yes' if tf else 'no':>5}"
              f"{acc if acc is not None else float('nan'):>10.4f}  ({source})")
    print(f"  Image Prediction, fresh process, first 6-face photo with the page's defaults: {page[0]:.1f} s "
          f"({page[1]} faces shown, TensorFlow {'imported' if page[2] else 'not imported'})")
    for role, _, _, ms, fps, cold, *_ in rows[1:]:
        print(f"  {role} / plain: latency ×{ms / base[3]:.2f}, throughput ×{fps / base[4]:.2f}, "
              f"cold predict ×{cold / base[5]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
