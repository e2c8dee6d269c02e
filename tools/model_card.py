"""Print the model card's tables (markdown) from the measured results, so the README quotes numbers
exactly as they were measured.

    python tools/model_card.py --bundle edge_emotion/models/default --baselines runs/baselines/baselines.json \\
        [--peer runs/peer/baselines.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--baselines", type=Path, required=True)
    parser.add_argument("--peer", type=Path, help="baselines.json of a run with --bundle (our visual branch + fer)")
    args = parser.parse_args()
    manifest = json.loads((args.bundle / "manifest.json").read_text())
    metrics = manifest["provenance"]["metrics"]
    base = json.loads(args.baselines.read_text())

    cv = metrics["ravdess_audio_only_actor_kfold"]
    print("### Audio only, RAVDESS actors 1–20, speaker-independent 5-fold (4 unseen actors per fold)\n")
    print("| model | WA % | UA % | UA per fold % |")
    print("|---|---:|---:|---|")
    per_fold = " / ".join(pct(f["unweighted_accuracy"]) for f in cv["folds"])
    print(
        f"| **edge-emotion** (audio encoder + fusion head, video masked) | **{pct(cv['weighted_accuracy_mean'])}** ± "
        f"{pct(cv['weighted_accuracy_std'])} | **{pct(cv['unweighted_accuracy_mean'])}** ± "
        f"{pct(cv['unweighted_accuracy_std'])} | {per_fold} |"
    )
    summary = base["audio"]["summary"]
    for name in ("selected by inner CV", "mfcc / rbf-svm", "mfcc / logreg"):
        row = summary[name]
        print(
            f"| classical: {name} | {pct(row['wa']['mean'])} ± {pct(row['wa']['std'])} | {pct(row['ua']['mean'])} ± "
            f"{pct(row['ua']['std'])} | {' / '.join(pct(x) for x in row['ua_per_fold'])} |"
        )
    print()

    shipped = metrics["shipped_model"]
    face = base["face"]["models"]
    print("### Faces only, FER2013 public test (3,589 images)\n")
    print("| model | accuracy % | UA % | size | ms per face |")
    print("|---|---:|---:|---:|---:|")
    fer = shipped["fer2013_public_test"]
    peer_ours = None
    if args.peer:
        peer = json.loads(args.peer.read_text())["peer"]
        peer_ours = peer.get("ours")
    size = f"{peer_ours['visual_encoder_size_bytes'] / 1000:.0f} KB (encoder)" if peer_ours else "–"
    lat = f"{peer_ours['latency_visual_encoder']['median_ms']:.2f} (encoder)" if peer_ours else "–"
    print(
        f"| **edge-emotion** visual encoder + fusion head (audio masked), shipped bundle | "
        f"**{pct(fer['weighted_accuracy'])}** | {pct(fer['unweighted_accuracy'])} | {size} | {lat} |"
    )
    for name in ("pixels+hog / logreg", "hog / logreg"):
        row = face[name]
        print(f"| classical: {name} | {pct(row['wa'])} | {pct(row['ua'])} | | |")
    if args.peer:
        f = peer["fer"]
        lat = f"{f['latency_per_face']['median_ms']:.2f}"
        print(
            f"| peer: `fer` mini-Xception (tflite on OpenVINO) | {pct(f['wa'])} | {pct(f['ua'])} | "
            f"{f['size_bytes'] / 1000:.0f} KB | {lat} |"
        )
    print()

    print("### Audio-visual, the real AV clips in ../shared/data (a handful: anecdotes, not statistics)\n")
    print("| clips | n | WA % | speaker seen in training? |")
    print("|---|---:|---:|---|")
    for name in ("crema_d_av_clips", "ravdess_av_clips", "ravdess_audio_unseen_actors"):
        r = shipped[name]
        print(
            f"| {name} | {r.get('n')} | {pct(r.get('weighted_accuracy'))} | "
            f"{'yes' if r.get('speaker_seen_in_training') else 'no'} |"
        )


if __name__ == "__main__":
    main()
