"""Re-quantize a bundle's OpenVINO INT8 format from the bundle's own FP32 graphs, and re-measure
its parity: for when the training checkpoint is not at hand (the shipped default bundle).

    python tools/requantize_openvino_int8.py --bundle edge_emotion/models/default --data ../shared/data

What ``edge-emotion export --int8`` does for ``openvino-int8`` (:mod:`edge_emotion.export.openvino_export`,
the same plan and NNCF call), with two differences it records in the manifest entry:

- the FP32 reference is the bundle's ``onnx`` graphs on ONNX Runtime instead of the PyTorch model
  (their own parity with PyTorch is in the manifest, quoted in the parity record's ``reference``);
- the calibration windows are rebuilt from ``--data`` as ``tools/train_default_model.py`` chose
  them: the speech of the shipped fold's training actors (RAVDESS actors 1-20 without the fold's
  test and validation actors, from the split ``edge_emotion.eval.splits.make_split`` makes with the
  edge config's folds, seed and validation speakers) plus FER2013 ``train.zip``, 128 of each
  spread over the sorted files (:func:`edge_emotion.export.calibration.load_calibration`).

The parity is measured on this machine; the record names its CPU features and the inference
precision OpenVINO used. The format entry is replaced in place (:func:`add_format`); the other
formats and the manifest's layout are left as they are. ``--dry-run`` measures without writing.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run from a checkout: import this checkout's edge_emotion
    sys.path.insert(0, str(REPO))

FORMAT = "openvino-int8"


def training_actors(data: Path, config_path: Path, fold: int) -> tuple[list[Path], list[str]]:
    """The RAVDESS speech files of ``fold``'s training actors, and the actors left out."""
    from edge_emotion.eval.datasets import get_dataset
    from edge_emotion.eval.splits import make_split

    config = tomllib.loads(config_path.read_text(encoding="utf-8"))
    samples = get_dataset("ravdess-audio", data / "ravdess").samples
    split = make_split(
        samples, "actor-kfold", fold, config.get("folds", 5), config.get("seed", 0), config.get("val_speakers", 2)
    )
    train = set(split.train)
    files = sorted(s.audio_path for s in samples if s.key in train)
    return files, sorted({*split.test_speakers, *split.val_speakers})


def calibration_dir(data: Path, files: list[Path], out: Path) -> Path:
    """Links to ``files`` plus FER2013's training zip, as ``tools/train_default_model.py`` builds it."""
    out.mkdir(parents=True, exist_ok=True)
    for path in files:
        (out / path.name).symlink_to(path.resolve())
    (out / "fer2013-train.zip").symlink_to((data / "fer2013" / "train.zip").resolve())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=REPO / "edge_emotion" / "models" / "default")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "edge.toml")
    parser.add_argument("--fold", type=int, default=0, help="the shipped fold (the manifest's split_protocol)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dry-run", action="store_true", help="measure, print the record, write nothing")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    from edge_emotion.export.bundle_writer import add_format, tool_versions
    from edge_emotion.export.calibration import load_calibration
    from edge_emotion.export.openvino_export import export
    from edge_emotion.export.parity import measure_parity
    from edge_emotion.export.reference import GraphReference

    from edge_emotion.model.bundle import Bundle
    from edge_emotion.model.formats import GRAPHS
    from edge_emotion.model.validation import check_parity

    bundle = Bundle.load(args.bundle)
    onnx_files = {g: bundle.graph_path("onnx", g) for g in GRAPHS}
    onnx_parity = bundle.format_info("onnx").get("parity", {}).get("end_to_end", {})
    reference = GraphReference(
        bundle.preset,
        onnx_files,
        description=(
            "onnx fp32 graphs of this bundle on onnxruntime (their parity with pytorch fp32 at export: labels agree "
            f"on {onnx_parity.get('label_agreement'):.0%}, logits within {onnx_parity.get('max_abs_diff_logits'):.2g})"
        ),
        short_name="onnx fp32",
        threads=args.threads,
    )
    speech, left_out = training_actors(args.data, args.config, args.fold)
    print(f"calibration speech: {len(speech)} files of the training actors (left out: {', '.join(left_out)})")
    with tempfile.TemporaryDirectory(prefix="requantize-") as work:
        work_dir = Path(work)
        calib = load_calibration(calibration_dir(args.data, speech, work_dir / "calib"), bundle.preset, 128, 128)
        files, metadata = export(reference, FORMAT, onnx_files, work_dir / FORMAT, calibration=calib)
        metadata["quantization"]["source"] = (
            "re-quantized from this bundle's onnx FP32 graphs (the training checkpoint was not at hand) by "
            "tools/requantize_openvino_int8.py"
        )
        parity = measure_parity(reference, files, "openvino", calib, threads=args.threads, precision="int8")
        validation = check_parity({"parity": parity}, "int8")
        print(json.dumps(parity["end_to_end"], indent=1))
        print(f"validation: {'passed' if validation.passed else 'FAILED'}: {validation.note}")
        if args.dry_run:
            return
        entry = add_format(bundle.root, FORMAT, files, {**metadata, "parity": parity, "tool_versions": tool_versions()})
        print(f"{bundle.root}: {FORMAT} replaced ({', '.join(entry['graphs'])})")


if __name__ == "__main__":
    main()
