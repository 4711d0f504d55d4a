"""Benchmark: photo inference — one-face classification, detect+classify per photo, Grad-CAM and occlusion per face.

    python -m bench.bench_predict [MODEL_ID]   # default: the default registered model, else fer_resvgg untrained

Baselines run in the same process on the same model, so the printed ratios compare across
machines: `model.predict` (Keras' general-purpose loop) and an eager `model(x)` call for one face,
and one-call-per-face for several faces. Targets on a 2-core CPU: one face ≤ 5 ms, Grad-CAM ≤ 150 ms.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import cv2  # noqa: E402
from skimage import data as skdata  # noqa: E402

import numpy as np  # noqa: E402

from fer_core.inference import gradcam  # noqa: E402
from fer_core.models import registry  # noqa: E402
from fer_core.models.ensemble_graph import member_models  # noqa: E402
from fer_core.inference.faces import detect_faces, get_detector  # noqa: E402
from fer_core.inference.framing import box_face_crop  # noqa: E402
from fer_core.base.labels import EMOTIONS  # noqa: E402
from fer_core.inference.loader import load_classifier  # noqa: E402
from fer_core.inference.predict import Classifier, analyze_image  # noqa: E402


def interleaved(fns: dict, rounds: int, warmup: int = 3) -> dict[str, tuple[float, float]]:
    """Median and best ms of each function, run in turn round after round, so background load on a
    shared machine hits every contender alike and the ratios stay fair."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return {name: (1000 * statistics.median(t), 1000 * min(t)) for name, t in times.items()}


def median_ms(fn, repeats: int = 30, warmup: int = 3) -> float:
    return interleaved({"fn": fn}, repeats, warmup)["fn"][0]


def classifier(model_id: str | None) -> Classifier:
    """A registered model, or an untrained fer_resvgg (≈1.2 M parameters, 48×48×1) of the same cost."""
    info = registry.get_model(model_id) if model_id else registry.default_model()
    if info is not None:
        return load_classifier(info)
    from fer_core.models.architectures import build

    model = build("fer_resvgg", len(EMOTIONS))
    card = {"id": "fer_resvgg (untrained)", "labels": list(EMOTIONS),
            "preprocessing": {"input_size": 48, "channels": 1, "scale": "unit"}}
    return Classifier(model, registry.ModelInfo(card["id"], Path("."), card))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", nargs="?", default=None,
                        help="registered model id (default: the default model, else fer_resvgg untrained)")
    clf = classifier(parser.parse_args().model)
    photo = skdata.astronaut()
    face, _ = box_face_crop(photo, detect_faces(photo, "haar")[0].box)
    x = clf.preprocessing.apply(face)
    print(f"model {clf.id}: {clf.model.count_params():,} parameters, input {clf.model.input_shape[1:]}; "
          f"{os.cpu_count()} CPU cores")

    print("\none face (preprocess + classify), median ms (best run in brackets)")
    one = interleaved({"Classifier.predict": lambda: clf.predict([face], tta="none"),
                       "Classifier.predict flip TTA": lambda: clf.predict([face], tta="flip"),
                       "Classifier.predict ten-crop TTA": lambda: clf.predict([face], tta="tencrop"),
                       "model.predict": lambda: clf.model.predict(x, verbose=0),
                       "eager model(x)": lambda: clf.model(x, training=False)}, rounds=40)
    ours = one["Classifier.predict"][0]
    for name, (med, best) in one.items():
        note = "   target ≤ 5 ms" if name == "Classifier.predict" else \
            f"   → {med / ours:5.1f}× Classifier.predict"
        print(f"  {name:32s}{med:8.2f}  ({best:6.2f}){note}")

    faces8 = [face] * 8
    eight = interleaved({"batched": lambda: clf.predict(faces8),
                         "one by one": lambda: [clf.predict([f]) for f in faces8]}, rounds=20)
    print(f"\n8 faces: one batched call {eight['batched'][0]:.2f} ms vs 8 calls {eight['one by one'][0]:.2f} ms "
          f"→ {eight['one by one'][0] / eight['batched'][0]:.1f}× faster batched")

    print("\ndetect + classify one photo, median ms")
    big = cv2.resize(photo, (2048, 2048), interpolation=cv2.INTER_CUBIC)
    for name in ("haar", "mtcnn"):
        start = time.perf_counter()
        get_detector(name)
        load = time.perf_counter() - start
        for label, image in (("512×512", photo), ("2048×2048", big)):
            n = len(analyze_image(image, clf, name).faces)
            ms = median_ms(lambda: analyze_image(image, clf, name), 5 if name == "mtcnn" else 10, warmup=1)
            detect_only = median_ms(lambda: detect_faces(image, name), 5 if name == "mtcnn" else 10, warmup=1)
            print(f"  {name:5s} {label:9s} {ms:8.1f}   (detection {detect_only:.1f}, {n} face)"
                  + (f"   detector load {load:.1f} s" if label == "512×512" else ""))

    print("\nGrad-CAM per face (default layer "
          f"{gradcam.default_layer(clf.model)!r}), median ms; first call builds and traces the gradient model")
    firsts = {}
    for method in gradcam.METHODS:
        start = time.perf_counter()
        gradcam.gradcam_face(clf, face, method=method)
        firsts[method] = 1000 * (time.perf_counter() - start)
    cams = interleaved({"classify": lambda: clf.predict([face]),
                        **{m: (lambda m=m: gradcam.gradcam_face(clf, face, method=m)) for m in gradcam.METHODS}},
                       rounds=40)
    for method in gradcam.METHODS:
        med, best = cams[method]
        target = "target ≤ 150 ms" if method in gradcam.GRADIENT_METHODS else "one batch of patch-hidden views"
        print(f"  {method:10s} {med:8.2f}  ({best:6.2f})   {target}; first call {firsts[method]:.0f} ms; "
              f"{med / cams['classify'][0]:.1f}× a classification")
    members = member_models(clf.model)
    if members:  # baseline, as ensembles used to run: an eager forward for the class, one step per member
        x = clf.preprocessing.apply(face)

        def per_member():
            cls = int(np.argmax(np.asarray(clf.model(x, training=False))[0]))
            return np.clip(np.mean([gradcam.gradcam(m, x, cls, size=face.shape[:2]) for m in members], axis=0), 0, 1)

        one_graph = lambda: gradcam.gradcam(clf.model, x, size=face.shape[:2])  # noqa: E731
        np.testing.assert_allclose(one_graph(), per_member(), atol=1e-5)
        runs = interleaved({"one graph": one_graph, "per member": per_member}, rounds=30)
        print(f"  ensemble of {len(members)}: compiled forward + one step for all members {runs['one graph'][0]:.1f} ms"
              f" vs eager forward + one step per member {runs['per member'][0]:.1f} ms "
              f"({runs['per member'][0] / runs['one graph'][0]:.2f}×)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
