"""`export`: convert a registered model to LiteRT (TFLite) or ONNX, optionally quantized, and register the export."""
from __future__ import annotations

import json
import shlex

from ..training.export import DEFAULT_SAMPLE_SIZE, FORMATS, QUANTIZATIONS


def add_cli(subparsers) -> None:
    """`export`: convert a registered model to LiteRT or ONNX (optionally quantized) and register it."""
    p = subparsers.add_parser("export", help="convert a model to LiteRT (TFLite) or ONNX, optionally quantized")
    p.add_argument("--model", required=True, help="registered Keras model id (see `models`) or model folder")
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--quantize", choices=QUANTIZATIONS, default="none",
                   help="none (float32), float16, dynamic (int8 weights) or int8 (full integer, calibrated "
                        "on training images); default none")
    p.add_argument("--data", help="dataset for int8 calibration (default: the dataset in the model's card)")
    p.add_argument("--sample-size", type=int, default=DEFAULT_SAMPLE_SIZE,
                   help=f"training images for int8 calibration (default {DEFAULT_SAMPLE_SIZE})")
    p.add_argument("--id", help="registry id of the export (default <model>-<format>-<quantize>)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing export of the same id")
    p.add_argument("--note", help="a note stored in the export's card (e.g. why this quantization was shipped)")
    p.add_argument("--labels", help="narrow the model's head to a label set (e.g. 4class: happy, neutral, sad, "
                                    "surprise) — its probabilities restricted and renormalised")
    p.add_argument("--json", action="store_true", help="also print the export's card as JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    """Export and register the model, then print its size, quantization and calibration sample."""
    from ..training.export import export_model

    info = export_model(args.model, args.format, args.quantize, data=args.data, sample_size=args.sample_size,
                        out_id=args.id, overwrite=args.overwrite, note=args.note, labels=args.labels,
                        command="python -m fer_core " + shlex.join(args.argv))
    export = info.card["export"]
    sample = export.get("representative_sample")
    print(f"{info.id}: {info.model_file} ({export['file_size_bytes'] / 1e6:.2f} MB, "
          f"{export['size_ratio']:.0%} of {export['parent']}), {export['quantization_description']}")
    if sample:
        print(f"  calibrated on {sample['n']} training images of {sample['source']}: "
              + ", ".join(f"{e} {k}" for e, k in sample["per_class"].items()))
    print(f"  score it: python -m fer_core evaluate --model {info.id} --data DIR --split validation")
    if args.json:
        print(json.dumps(info.card))
    return 0
