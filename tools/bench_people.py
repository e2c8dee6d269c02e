"""Cost of following several people: real-time factor of the stream on a composite of real clips
with 1, 2 and 4 faces in view (``tools/make_composite.py``), each run with ``max_faces`` equal to
the faces in view.

    python tools/bench_people.py --data ../shared/data

Prints one row per case: wall-clock RTF (seconds of processing per second of media) and the
CPU time per second of media (user + system, all threads, with the decoder process's when the file
is decoded in one, also shown alone), so that runs on a shared machine can be told apart from runs
on an idle one. The composite is written to a temporary
directory and removed afterwards.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
import tempfile
import time
from pathlib import Path


def _make_composite():
    spec = importlib.util.spec_from_file_location("make_composite", Path(__file__).with_name("make_composite.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_composite"] = module
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="the real data folder")
    parser.add_argument("--repeats", type=int, default=3, help="runs per case; the fastest is reported")
    parser.add_argument("--threads", type=int, default=None, help="graph threads (default: the SDK's)")
    parser.add_argument("--detect-every", type=int, default=1, help="the face detector on one kept frame in N")
    parser.add_argument("--face-detector", default="auto", help="what runs the face detector (run --face-detector)")
    parser.add_argument("--model", type=Path, default=None, help="a bundle directory (default: the shipped model)")
    parser.add_argument("--file-decoder", default="auto", help="where the file is decoded (run --file-decoder)")
    args = parser.parse_args(argv)
    # as the command line does (edge_emotion/cli/__init__.py), before numpy loads: a second OpenBLAS
    # thread would spin between windows
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

    from edge_emotion.recognizer import Recognizer

    mc = _make_composite()
    with tempfile.TemporaryDirectory() as tmp:
        alone = mc.load_panel([args.data / p for p in mc.CREMA_1001], 360, 16000)
        cases = {
            1: mc.write_mp4(mc.compose([alone], alone, grid=(1, 1)), Path(tmp) / "one.mp4"),
            2: mc.write_mp4(mc.make_layout("left-speaks", args.data), Path(tmp) / "two.mp4"),
            4: mc.write_mp4(mc.make_layout("four", args.data), Path(tmp) / "four.mp4"),
        }
        print(f"{'faces':>5} {'media s':>8} {'results':>7} {'RTF wall':>9} {'CPU s/s':>8} {'of which decoder':>16}")
        for faces, path in cases.items():
            with Recognizer.from_bundle(
                args.model,
                max_faces=faces,
                threads=args.threads,
                detect_every=args.detect_every,
                face_detector=args.face_detector,
                file_decoder=args.file_decoder,
            ) as recognizer:
                list(recognizer.analyze(path))  # warm-up: model load, detector, caches
                best = None
                for _ in range(args.repeats):
                    decoder = _decoder_cpu_s(recognizer)
                    wall, cpu = time.perf_counter(), time.process_time()
                    results = list(recognizer.analyze(path))
                    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                    decoder = _decoder_cpu_s(recognizer) - decoder
                    if best is None or wall < best[0]:
                        best = (wall, cpu + decoder, decoder, len(results))
            wall, cpu, decoder, n = best
            media_s = max(r.t_end_ms for r in results) / 1000  # the windows reach the clip's end
            rates = f"{wall / media_s:>9.3f} {cpu / media_s:>8.3f} {decoder / media_s:>16.3f}"
            print(f"{faces:>5} {media_s:>8.2f} {n:>7} {rates}")


def _decoder_cpu_s(recognizer) -> float:
    """CPU seconds (user + system) the recognizer's decoder process has used so far (0 without one;
    Linux: read from /proc)."""
    decoder = getattr(recognizer, "_decoder", None)
    if decoder is None:
        return 0.0
    try:
        fields = Path(f"/proc/{decoder.pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


if __name__ == "__main__":
    main()
