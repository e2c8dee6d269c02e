"""Annotate a video offline: emotions per window as JSON lines, and an emotion-over-time plot.

    python examples/annotate_video.py clip.mp4 --plot emotions.png [--jsonl emotions.jsonl]

Needs matplotlib for the plot (``pip install matplotlib``).
"""

from __future__ import annotations

import argparse
import json

from edge_emotion.recognizer import Recognizer


def plot(results, labels, path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    times = [(r.t_start_ms + r.t_end_ms) / 2000 for r in results]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    for label in labels:
        top.plot(times, [r.scores.get(label, 0.0) for r in results], marker="o", label=label)
    top.set_ylabel("score")
    top.set_ylim(0, 1)
    top.legend(ncol=4, fontsize="small")
    top.set_title(title)
    for row, modality in enumerate(("audio", "video")):
        spans = [(r.t_start_ms / 1000, (r.t_end_ms - r.t_start_ms) / 1000) for r in results if modality in r.modalities]
        bottom.broken_barh(spans, (row - 0.4, 0.8), alpha=0.4)
    bottom.set_yticks([0, 1], ["speech", "face"])
    bottom.set_xlabel("time (s): window centres above, windows that used each modality below")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("video")
    parser.add_argument("--plot", default="emotions.png")
    parser.add_argument("--jsonl", help="also write the results here")
    parser.add_argument("--model", help="a bundle directory (default: the shipped model)")
    parser.add_argument("--hop-ms", type=int, default=500)
    args = parser.parse_args()

    recognizer = Recognizer.from_bundle(args.model, hop_ms=args.hop_ms)
    results = list(recognizer.analyze(args.video))
    for r in results:
        print(r)
    if args.jsonl:
        with open(args.jsonl, "w") as fh:
            for r in results:
                fh.write(json.dumps(r.to_dict()) + "\n")
    plot(results, recognizer.labels, args.plot, title=args.video)
    print(f"wrote {args.plot} ({len(results)} windows)")


if __name__ == "__main__":
    main()
