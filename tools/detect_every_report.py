"""What running the face detector on one frame in N changes (``detect_every``), and what it saves.

    python tools/detect_every_report.py [--data ../shared/data] [--every 1 2 3 5] [--hop-ms 100]
        [--clip EXTRA.mp4 ...] [--model BUNDLE] [--json OUT.json]

For every real audio-video clip under ``--data`` (``ravdess/av``, ``crema-d/video``), the several-
people composites of ``tools/make_composite.py`` (built into a temporary folder, followed with
``--max-faces`` 2 or 4) and any ``--clip``, it runs ``Recognizer.analyze`` once per ``--every`` value,
windows every ``--hop-ms`` (100 ms: ten windows per second, so the short clips give enough windows),
and compares each result with ``detect_every=1`` (the detector on every frame, as training
preprocessed its clips), window by window and person by person:

- **label agreement**: the share of results with the same label;
- **max |Δp|**: the largest change of any class probability;
- **speaking agreement** (several people): the share of results with the same ``speaking`` flag;
- **CPU s**: the process's user + system time for the analysis (start-up excluded).

Prints a table per ``--every`` value and writes everything with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def _analyze(recognizer, clip: Path, hop_ms: int) -> tuple[list, float]:
    start = _cpu()
    results = list(recognizer.analyze(clip, hop_ms=hop_ms))
    return results, _cpu() - start


def _compare(reference: list, other: list) -> dict:
    """Match results by (window start, person) and compare them."""
    ref = {(r.t_start_ms, r.person): r for r in reference}
    got = {(r.t_start_ms, r.person): r for r in other}
    keys = sorted(set(ref) & set(got), key=lambda k: (k[0], -1 if k[1] is None else k[1]))
    same_label = sum(ref[k].label == got[k].label for k in keys)
    same_speaking = sum(ref[k].speaking == got[k].speaking for k in keys)
    max_dp = max((max(abs(ref[k].scores[c] - got[k].scores[c]) for c in ref[k].scores) for k in keys), default=0.0)
    return {
        "results": len(keys),
        "unmatched": len(set(ref) ^ set(got)),
        "same_label": same_label,
        "same_speaking": same_speaking,
        "max_abs_dp": max_dp,
    }


def _clips(data: Path, extra: list[Path], work: Path) -> list[tuple[str, Path, int]]:
    """(name, path, max_faces) of every clip to measure."""
    clips = []
    for folder, pattern in (("ravdess/av", "*.mp4"), ("crema-d/video", "*.flv")):
        clips += [(p.name, p, 1) for p in sorted((data / folder).glob(pattern))]
    if (data / "crema-d" / "video").is_dir() and (data / "ravdess" / "av").is_dir():
        sys.path.insert(0, str(REPO_ROOT / "tools"))
        from make_composite import make_layout, write_mp4

        for layout, faces in (("left-speaks", 2), ("speaker-leaves", 2), ("four", 4)):
            out = write_mp4(make_layout(layout, data), work / f"{layout}.mp4")
            clips.append((f"composite {layout}", out, faces))
    clips += [(p.name, p, 1) for p in extra]
    return clips


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--model", type=Path, default=None, help="a bundle (default: the shipped model)")
    parser.add_argument("--every", type=int, nargs="+", default=[1, 2, 3, 5])
    parser.add_argument("--hop-ms", type=int, default=100)
    parser.add_argument("--clip", type=Path, action="append", default=[], help="another clip (one person)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    from edge_emotion.recognizer import Recognizer

    everies = sorted(set(args.every) | {1})
    report: dict = {"hop_ms": args.hop_ms, "clips": {}}
    with tempfile.TemporaryDirectory() as tmp:
        clips = _clips(args.data, args.clip, Path(tmp))
        if not clips:
            sys.exit(f"no clips: nothing under {args.data}/ravdess/av or {args.data}/crema-d/video, and no --clip")
        for name, path, faces in clips:
            runs = {}
            for every in everies:
                with Recognizer.from_bundle(args.model, max_faces=faces, detect_every=every) as recognizer:
                    runs[every] = _analyze(recognizer, path, args.hop_ms)
            reference = runs[1][0]
            report["clips"][name] = {
                "max_faces": faces,
                **{
                    str(every): {**_compare(reference, results), "cpu_s": round(cpu, 3)}
                    for every, (results, cpu) in runs.items()
                },
            }
            print(f"{name}: " + ", ".join(f"N={e} {runs[e][1]:.2f} s" for e in everies), file=sys.stderr)

    print(f"\nwindows every {args.hop_ms} ms; each N against N = 1 (the detector on every kept frame)\n")
    print("| clip | faces | N | results | same label % | same speaking % | max abs dp | CPU s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    totals: dict[int, dict] = {}
    for name, clip in report["clips"].items():
        for every in everies:
            row = clip[str(every)]
            t = totals.setdefault(every, {"results": 0, "same_label": 0, "same_speaking": 0, "cpu_s": 0.0, "dp": 0.0})
            t["results"] += row["results"]
            t["same_label"] += row["same_label"]
            t["same_speaking"] += row["same_speaking"]
            t["cpu_s"] += row["cpu_s"]
            t["dp"] = max(t["dp"], row["max_abs_dp"])
            n = max(1, row["results"])
            print(
                f"| {name} | {clip['max_faces']} | {every} | {row['results']} | {100 * row['same_label'] / n:.1f} | "
                f"{100 * row['same_speaking'] / n:.1f} | {row['max_abs_dp']:.3f} | {row['cpu_s']:.2f} |"
            )
    print("\n| N | results | same label % | same speaking % | max abs dp | CPU s, all clips |")
    print("|---:|---:|---:|---:|---:|---:|")
    for every, t in totals.items():
        n = max(1, t["results"])
        print(
            f"| {every} | {t['results']} | {100 * t['same_label'] / n:.1f} | {100 * t['same_speaking'] / n:.1f} | "
            f"{t['dp']:.3f} | {t['cpu_s']:.2f} |"
        )
    report["totals"] = {str(k): v for k, v in totals.items()}
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
