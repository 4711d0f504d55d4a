"""`predict`: detect faces in photos and classify their emotions, as tables or one JSON document, optionally
with explanation overlays (Grad-CAM, Grad-CAM++, occlusion)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..inference.faces import CROP_POLICIES, crop_help, DEFAULT_CROP, DEFAULT_DETECTOR, DEFAULT_MIN_SIZE, DETECTORS
from ..inference.gradcam import METHODS as EXPLAIN_METHODS
from ..models.tta import add_tta_argument


def add_cli(subparsers) -> None:
    """`predict`: faces, boxes and per-class probabilities for each photo (table or JSON)."""
    p = subparsers.add_parser("predict", help="detect faces in photos and classify their emotions")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="photo files (JPEG, PNG, WebP, BMP, GIF, TIFF)")
    p.add_argument("--model", help="registered model id or model folder (default: the default model)")
    p.add_argument("--detector", choices=DETECTORS, default=DEFAULT_DETECTOR)
    p.add_argument("--crop", choices=tuple(CROP_POLICIES), default=DEFAULT_CROP,
                   help=crop_help())
    p.add_argument("--min-size", type=int, default=DEFAULT_MIN_SIZE, help="smallest face side in pixels")
    add_tta_argument(p)
    p.add_argument("--whole-image", action=argparse.BooleanOptionalAction, default=None,
                   help="classify the whole image as one face when none is detected: always (--whole-image), "
                        "never (--no-whole-image); default: when it looks like a face crop itself (at most 160 px, "
                        "about square, as FER2013's 48×48 faces)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    p.add_argument("--gradcam", metavar="DIR", help="write Grad-CAM overlay PNGs of every face into DIR")
    p.add_argument("--gradcam-method", choices=EXPLAIN_METHODS, default="gradcam",
                   help="occlusion needs no gradients: it explains an edge export itself, even without its parent")
    p.set_defaults(func=run)


def run(args) -> int:
    """Analyse every photo: a table per photo (or one JSON document); exit status 2 if any could not be read."""
    from ..inference.images import ImageError, read_image
    from ..inference.loader import load_classifier
    from ..inference.predict import analyze_image, predictions_document
    from ..models.registry import resolve_model

    info = resolve_model(args.model)
    if args.min_size < 1:
        raise ValueError("--min-size must be at least 1 pixel")
    clf = load_classifier(info)
    out_dir = Path(args.gradcam) if args.gradcam else None
    if out_dir is not None:
        from ..inference.gradcam import GRADIENT_METHODS, default_layer, gradient_model

        if args.gradcam_method in GRADIENT_METHODS:  # a model that cannot be explained fails before any work
            default_layer(gradient_model(clf))
        out_dir.mkdir(parents=True, exist_ok=True)
    results, failed = [], 0
    for file in args.images:
        try:
            image = read_image(file)
            analysis = analyze_image(image, clf, args.detector, tta=args.tta, crop=args.crop,
                                     whole_image_if_no_face=args.whole_image, min_size=args.min_size)
        except ImageError as err:
            failed += 1
            print(f"error: {err}" if Path(file).name in str(err) else f"error: {file}: {err}", file=sys.stderr)
            results.append({"file": str(file), "error": str(err)})
            continue
        doc = {"file": str(file), **analysis.to_dict()}
        if out_dir is not None:
            doc["gradcam"] = _write_gradcams(out_dir, Path(file).stem, image, analysis, clf, args.gradcam_method)
        results.append(doc)
        if not args.json:
            _print_table(doc, clf.labels)
    if args.json:
        print(json.dumps(predictions_document(clf.id, clf.labels, args.detector, clf.resolve_tta(args.tta), results,
                                              args.crop), indent=1))
    return 2 if failed else 0


def _write_gradcams(out_dir: Path, stem: str, image, analysis, clf, method: str) -> list:
    """Per face an overlay PNG of its explanation heatmap, and one of the whole photo; returns their paths."""
    from ..inference.gradcam import gradcam_face, overlay, overlay_through
    from ..inference.images import encode_png

    written, photo = [], image
    for i, (face, crop) in enumerate(zip(analysis.faces, analysis.crops), start=1):
        heat = gradcam_face(clf, crop, method=method)
        path = out_dir / f"{stem}_face{i}_{face.label}_{method.replace('++', 'pp')}.png"
        path.write_bytes(encode_png(overlay(crop, heat)))
        written.append(str(path))
        photo = overlay_through(photo, heat, analysis.crop_matrices[i - 1], crop.shape)
    if analysis.faces:
        path = out_dir / f"{stem}_{method.replace('++', 'pp')}.png"
        path.write_bytes(encode_png(photo))
        written.append(str(path))
    return written


def _print_table(doc: dict, labels) -> None:
    """One photo's faces as a table: box, top label and confidence, and every label's probability."""
    faces = doc["faces"]
    how = "whole image classified as one face" if doc["whole_image"] else f"{len(faces)} face(s), {doc['detector']}"
    print(f"{doc['file']}: {how}, model {doc['model']}" + (f", {doc['tta']} TTA" if doc["tta"] != "none" else ""))
    if not faces:
        print("  no face found (try --detector mtcnn, a smaller --min-size, or --whole-image)")
        return
    short = [e[:7] for e in labels]
    print("  " + f"{'face':<5}{'box (x, y, w, h)':<24}{'top':<18}" + "".join(f"{s:>9}" for s in short))
    for i, f in enumerate(faces, start=1):
        top = f"{f['label']} {f['confidence']:.0%}"
        probs = "".join(f"{f['probabilities'][e]:>9.3f}" for e in labels)
        print("  " + f"{i:<5}{str(tuple(f['box'])):<24}{top:<18}" + probs)
