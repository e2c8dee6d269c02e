"""Window-shift consistency of a bundle on real clips (edge_emotion/eval/window_shift.py).

    python tools/window_shift.py [--model BUNDLE] [--data ../shared/data] [--json OUT.json] [--limit N]

Sets measured:

- ``ravdess-audio-unseen``: RAVDESS speech audio (``ravdess/audio16k``) of the actors the model was
  *not* trained on: every RAVDESS actor outside the training speakers its manifest lists (or, for
  older bundles, derives from ``provenance.split_protocol``; edge_emotion/eval/provenance.py);
- ``av-clips``: the audio-video clips (``ravdess/av`` and ``crema-d/video``), audio and faces.

For each clip the windows start at 0, 100, ..., 900 ms; the clip's consistency is the share of them
labelled like the window at 0 ms. Prints a table and writes the numbers (per clip with --clips).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _sets(data: Path, ids) -> dict[str, list]:
    from edge_emotion.eval.datasets import get_dataset

    sets: dict[str, list] = {}
    ravdess = data / "ravdess" / "audio16k"
    if ravdess.is_dir():
        trained = ids.all_speakers() if ids is not None else frozenset()
        if ids is None:
            print("the model does not say which speakers trained it: measuring every RAVDESS actor", file=sys.stderr)
        index = get_dataset("ravdess-audio", ravdess)
        sets["ravdess-audio-unseen"] = [s for s in index.samples if s.speaker not in trained]
    av = []
    if (data / "ravdess" / "av").is_dir():
        av += get_dataset("ravdess", data / "ravdess" / "av").samples
    if (data / "crema-d" / "video").is_dir():
        av += get_dataset("crema-d", data / "crema-d" / "video").samples
    if av:
        sets["av-clips"] = av
    return sets


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", type=Path, default=None, help="bundle directory (default: the shipped one)")
    ap.add_argument("--backend", default="auto")
    ap.add_argument("--data", type=Path, default=REPO_ROOT.parent / "shared" / "data")
    ap.add_argument("--json", type=Path, default=None, help="write the report here")
    ap.add_argument("--limit", type=int, default=0, help="at most N clips per set (spread evenly; 0 = all)")
    ap.add_argument("--clips", action="store_true", help="include every clip's window labels in the JSON")
    args = ap.parse_args(argv)

    from edge_emotion.eval.datasets import limit_samples
    from edge_emotion.eval.evaluate import load_predictor
    from edge_emotion.eval.provenance import training_ids
    from edge_emotion.eval.window_shift import window_shift_consistency
    from edge_emotion.info import default_bundle_path

    model = args.model or default_bundle_path()
    if model is None or not Path(model).is_dir():
        print(f"no bundle at {model}", file=sys.stderr)
        return 2
    predictor = load_predictor(model, args.backend)
    ids = training_ids(predictor.bundle.manifest)
    report = {
        "model": str(model),
        "format": getattr(predictor, "format_key", None),
        "runtime": getattr(predictor, "backend_name", None),
        "training_speakers_source": ids.source if ids is not None else None,
        "sets": {},
    }
    for name, samples in _sets(args.data, ids).items():
        samples = limit_samples(list(samples), args.limit)
        start = time.time()
        result = window_shift_consistency(predictor, samples)
        report["sets"][name] = {
            **result.to_dict(with_clips=args.clips),
            "speakers": sorted({s.speaker for s in samples if s.speaker}),
            "seconds": round(time.time() - start, 1),
        }
        print(
            f"{name:<22} clips {result.n:4d}  consistency {result.mean:.3f}  "
            f"(shifted windows only {result.mean_shifted:.3f}; clips fully consistent {result.fully_consistent:.3f})"
        )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
