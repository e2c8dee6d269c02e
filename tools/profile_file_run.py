"""Where the time of ``edge-emotion run --video CLIP`` goes: end to end, and stage by stage.

    python tools/make_bench_clip.py SOURCE.mp4 /tmp/bench60.mp4
    python tools/profile_file_run.py /tmp/bench60.mp4 [--repeats 3] [--threads N] [--eager] [--json out.json]

Three measurements, each as wall-clock time and as CPU time (user + sys of the process, all its
threads; on a shared machine CPU time is the steadier of the two):

1. **End to end**: the CLI as a user runs it (``edge-emotion run --video CLIP``, results to
   /dev/null) in a fresh process, ``--repeats`` times (median), and the start-up alone (a fresh
   process that imports the CLI, loads the shipped model and creates the face detector). RTF is
   time / clip duration.
2. **One run in this process** (``Recognizer.analyze``, start-up excluded: the model and a face
   detector are loaded before it), recording what every
   stage receives: which frames the stream keeps, the windows' PCM, the graphs' inputs.
3. **Stages, each alone**, replayed on what it received in (2), so that stages which overlap in
   the run (the file is read on a thread of its own, MediaPipe and the runtime have their own
   threads) are not mixed up: video decode (every frame, no conversion), colour conversion (the
   kept frames), audio decode (+ resampling, chunking), face detection and crop (the kept frames),
   audio features (voice activity + log-mel per window), and the three graphs. The graphs alone
   are the physical floor. "Rest" is the run's CPU less the stages (the stream's Python, merging,
   hand-over between threads).

``--eager`` converts every decoded frame to RGB (as the file source did before conversion became
lazy) to show what the lazy conversion saves. ``--threads`` is passed to the runtime (default:
the runtime's own). Needs the shipped model (``edge_emotion/models/default``) or ``--model``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]

_CLI = "import sys; from edge_emotion.cli import main; main(sys.argv[1:])"
_STARTUP = (
    "import sys; from edge_emotion.cli import main; from edge_emotion.recognizer import Recognizer; "
    "r = Recognizer.from_bundle(sys.argv[1] or None, threads=int(sys.argv[2]) if sys.argv[2] else None, "
    "face_detector=sys.argv[3]); "
    "r._face_detector().close()"
)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def cpu_flags() -> str:
    """The CPU model and its vector extensions, from /proc/cpuinfo (Linux)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    model, flags = "", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and not model:
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    wanted = ["avx2", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "amx_tile"]
    return f"{model}, {os.cpu_count()} logical CPUs, " + " ".join(f for f in wanted if f in flags)


def _timed_child(args: list[str]) -> tuple[float, float]:
    """Run ``python -c ...`` in the repository root; (wall s, CPU s of the child)."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, *args], cwd=REPO_ROOT, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{' '.join(args[:2])}... exited with {proc.returncode}")
    return wall, usage.ru_utime + usage.ru_stime


def end_to_end(
    clip: Path,
    model: str | None,
    threads: int | None,
    repeats: int,
    detect_every: int = 1,
    face_detector: str = "auto",
) -> dict[str, Any]:
    cli = ["-c", _CLI, "run", "--video", str(clip), "--output", "jsonl", "--detect-every", str(detect_every)]
    cli += ["--face-detector", face_detector]
    if model:
        cli += ["--model", model]
    if threads:
        cli += ["--threads", str(threads)]
    runs = [_timed_child(cli) for _ in range(repeats)]
    starts = [_timed_child(["-c", _STARTUP, model or "", str(threads or ""), face_detector]) for _ in range(repeats)]
    return {
        "run_wall_s": [w for w, _ in runs],
        "run_cpu_s": [c for _, c in runs],
        "startup_wall_s": [w for w, _ in starts],
        "startup_cpu_s": [c for _, c in starts],
    }


class _Meter:
    """Wall and process-CPU seconds of a block, accumulated per stage name."""

    def __init__(self) -> None:
        self.stages: dict[str, dict[str, float]] = {}

    def add(self, name: str, wall: float, cpu: float, calls: int = 1) -> None:
        entry = self.stages.setdefault(name, {"calls": 0, "wall_s": 0.0, "cpu_s": 0.0})
        entry["calls"] += calls
        entry["wall_s"] += wall
        entry["cpu_s"] += cpu

    def time(self, name: str, fn: Callable, *args, **kwargs):
        w, c = time.perf_counter(), _cpu_s()
        try:
            return fn(*args, **kwargs)
        finally:
            self.add(name, time.perf_counter() - w, _cpu_s() - c)


def _recording(fn: Callable, record: list, copy: bool = True) -> Callable:
    def recorded(*args, **kwargs):
        record.append(tuple(a.copy() if copy and hasattr(a, "copy") else a for a in args))
        return fn(*args, **kwargs)

    return recorded


def in_process_run(
    clip: Path,
    model: str | None,
    threads: int | None,
    eager: bool,
    detect_every: int = 1,
    face_detector: str = "auto",
) -> dict[str, Any]:
    """One ``Recognizer.analyze`` of the clip in this process (start-up excluded), recording what
    each stage received so that the stages can be replayed one at a time."""
    import edge_emotion.stream as stream_module
    from edge_emotion.frontend import face as face_module
    from edge_emotion.recognizer import Recognizer
    from edge_emotion.sources import VideoFileSource, VideoFrame

    rec = Recognizer.from_bundle(model, threads=threads, detect_every=detect_every, face_detector=face_detector)
    rec._face_detector().close()  # the detector imported and loaded once: start-up, measured on its own
    recorded: dict[str, list] = {k: [] for k in ("encode_faces", "encode_audio", "fuse", "log_mel", "vad", "kept")}
    for method in ("encode_faces", "encode_audio", "fuse"):
        setattr(rec.model, method, _recording(getattr(rec.model, method), recorded[method]))
    originals = (
        stream_module.window_log_mel,
        stream_module.window_speech,
        face_module.FaceTracker.detect,
        VideoFileSource.__iter__,
    )
    stream_module.window_log_mel = _recording(originals[0], recorded["log_mel"])
    stream_module.window_speech = _recording(originals[1], recorded["vad"])
    detect = originals[2]

    def recording_detect(self, frame, timestamp_ms):
        recorded["kept"].append(int(timestamp_ms))
        return detect(self, frame, timestamp_ms)

    face_module.FaceTracker.detect = recording_detect
    if eager:  # convert every frame as it is decoded, as the file source did before conversion became lazy
        lazy_iter = originals[3]
        VideoFileSource.__iter__ = lambda self: (VideoFrame(f.image, f.timestamp_ms) for f in lazy_iter(self))
    try:
        wall0, cpu0 = time.perf_counter(), _cpu_s()
        results = list(rec.analyze(clip))
        wall, cpu = time.perf_counter() - wall0, _cpu_s() - cpu0
    finally:
        (
            stream_module.window_log_mel,
            stream_module.window_speech,
            face_module.FaceTracker.detect,
            VideoFileSource.__iter__,
        ) = originals
    return {"recognizer": rec, "recorded": recorded, "windows": len(results), "wall_s": wall, "cpu_s": cpu}


def isolated_stages(clip: Path, run: dict[str, Any], batch: int = 50) -> dict[str, dict[str, float]]:
    """Each stage alone, on what it received in ``run``: process CPU and wall of that stage only."""
    from edge_emotion.frontend.align import window_speech
    from edge_emotion.frontend.face import crop_face
    from edge_emotion.frontend.features import window_log_mel
    from edge_emotion.sources import AudioFileSource, VideoFileSource

    rec, recorded = run["recognizer"], run["recorded"]
    preset = rec.preset
    meter = _Meter()
    # video: decoding every frame without converting; then, in batches, the kept frames converted,
    # searched for a face and cropped (a fresh detector, as the stream's)
    n_frames = meter.time("video decode", lambda: sum(1 for _ in VideoFileSource(clip)))
    meter.stages["video decode"]["calls"] = n_frames
    kept = set(recorded["kept"])
    tracker = rec._face_detector()

    def process(frames) -> None:
        images = [meter.time("colour conversion", lambda f=f: f.image) for f in frames]
        for frame, image in zip(frames, images, strict=True):
            observation = meter.time("face detection", tracker.detect, image, frame.timestamp_ms)
            if observation.usable:
                meter.time("face crop", crop_face, image, observation.bbox, preset.visual)

    pending = []
    for frame in VideoFileSource(clip):
        if frame.timestamp_ms in kept:
            pending.append(frame)
            if len(pending) == batch:
                process(pending)
                pending = []
    process(pending)
    tracker.close()
    # audio: decoding, resampling and chunking; voice activity and log-mel of every window
    rate = preset.audio.sample_rate
    n_chunks = meter.time("audio decode", lambda: sum(1 for _ in AudioFileSource(clip, sample_rate=rate)))
    meter.stages["audio decode"]["calls"] = n_chunks
    for args in recorded["vad"]:
        meter.time("audio features", window_speech, *args)
    for args in recorded["log_mel"]:
        meter.time("audio features", window_log_mel, *args)
    meter.stages["audio features"]["calls"] = len(recorded["log_mel"])
    # the graphs alone on the inputs they received: the physical floor
    model = rec.model
    graphs = (("encode_faces", "visual encoder"), ("encode_audio", "audio encoder"), ("fuse", "fusion head"))
    for method, stage in graphs:
        fn = getattr(type(model), method).__get__(model)  # the unrecorded method
        for args in recorded[method]:
            meter.time(stage, fn, *args)
    return meter.stages


def clip_seconds(clip: Path) -> float:
    from edge_emotion.sources import open_media

    return open_media(clip).duration_ms / 1000.0


GRAPHS = ("visual encoder", "audio encoder", "fusion head")
ORDER = ("video decode", "colour conversion", "audio decode", "face detection", "face crop", "audio features", *GRAPHS)


def report(data: dict[str, Any]) -> str:
    duration = data["clip_s"]
    e2e, stages, run = data["end_to_end"], data["stages"], data["in_process"]
    med = statistics.median
    lines = [
        f"clip: {data['clip']} ({duration:.1f} s); CPU: {data['cpu']}",
        f"model: {data['model']}; runtime threads: {data['threads'] or 'default'}; "
        f"colour conversion: {'eager (every frame)' if data['eager'] else 'lazy (kept frames only)'}",
        f"load average (1/5/15 min) before: {' '.join(f'{x:.2f}' for x in data['load_before'])}, "
        f"after: {' '.join(f'{x:.2f}' for x in data['load_after'])} (other processes share the CPUs)",
        "",
        f"{'end to end, fresh processes (median of ' + str(len(e2e['run_wall_s'])) + ')':<46}"
        f"{'wall s':>8}{'RTF':>8}{'CPU s':>8}{'CPU RTF':>9}",
    ]
    rows = [
        ("edge-emotion run --video CLIP", med(e2e["run_wall_s"]), med(e2e["run_cpu_s"])),
        ("start-up (import, load model, face detector)", med(e2e["startup_wall_s"]), med(e2e["startup_cpu_s"])),
        ("Recognizer.analyze in one process", run["wall_s"], run["cpu_s"]),
    ]
    for label, w, c in rows:
        lines.append(f"{label:<46}{w:8.2f}{w / duration:8.4f}{c:8.2f}{c / duration:9.4f}")
    lines.append(
        f"runs: wall {', '.join(f'{w:.2f}' for w in e2e['run_wall_s'])} s; "
        f"CPU {', '.join(f'{c:.2f}' for c in e2e['run_cpu_s'])} s"
    )
    lines += [
        "",
        f"stages, each alone on what it received in the run ({run['windows']} windows, "
        f"{stages.get('colour conversion', {}).get('calls', 0)} frames converted)",
        f"{'stage':<22}{'calls':>7}{'wall s':>9}{'CPU s':>9}{'CPU RTF':>9}{'ms/call':>9}",
    ]
    total_c = 0.0
    for name in ORDER:
        if name not in stages:
            continue
        s = stages[name]
        total_c += s["cpu_s"]
        lines.append(
            f"{name:<22}{s['calls']:>7}{s['wall_s']:>9.3f}{s['cpu_s']:>9.3f}{s['cpu_s'] / duration:>9.4f}"
            f"{1000 * s['cpu_s'] / max(1, s['calls']):>9.3f}"
        )
    lines.append(f"{'stages together':<22}{'':>7}{'':>9}{total_c:>9.3f}{total_c / duration:>9.4f}")
    rest = run["cpu_s"] - total_c
    lines.append(
        f"{'rest of the run':<22}{'':>7}{'':>9}{rest:>9.3f}{rest / duration:>9.4f}"
        "   (stream, merge, reader thread: the in-process run's CPU less the stages)"
    )
    floor_w = sum(stages[g]["wall_s"] for g in GRAPHS if g in stages)
    floor_c = sum(stages[g]["cpu_s"] for g in GRAPHS if g in stages)
    lines.append(
        f"physical floor (the three graphs alone): wall {floor_w:.3f} s, CPU {floor_c:.3f} s, "
        f"RTF {floor_w / duration:.4f}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clip", type=Path, help="the clip (tools/make_bench_clip.py makes the 60-s one)")
    parser.add_argument("--model", default=None, help="a bundle directory (default: the shipped model)")
    parser.add_argument("--threads", type=int, default=None, help="runtime threads (default: the runtime's)")
    parser.add_argument("--repeats", type=int, default=3, help="end-to-end runs (median; default 3)")
    parser.add_argument("--eager", action="store_true", help="in-process run: convert every frame (the old source)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    parser.add_argument(
        "--detect-every", type=int, default=1, help="the face detector on one kept frame in N (run --detect-every)"
    )
    parser.add_argument(
        "--face-detector", default="auto", help="what runs the face detector (run --face-detector; default auto)"
    )
    args = parser.parse_args(argv)
    # as the CLI does (edge_emotion/cli/__init__.py), before numpy loads
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    sys.path.insert(0, str(REPO_ROOT))
    clip = args.clip.resolve()
    data: dict[str, Any] = {
        "clip": str(args.clip),
        "cpu": cpu_flags(),
        "threads": args.threads,
        "eager": args.eager,
        "detect_every": args.detect_every,
        "face_detector": args.face_detector,
    }
    data["clip_s"] = clip_seconds(clip)
    data["load_before"] = os.getloadavg()
    nan = [float("nan")]
    data["end_to_end"] = (
        end_to_end(clip, args.model, args.threads, args.repeats, args.detect_every, args.face_detector)
        if args.repeats
        else {"run_wall_s": nan, "run_cpu_s": nan, "startup_wall_s": nan, "startup_cpu_s": nan}
    )
    run = in_process_run(clip, args.model, args.threads, args.eager, args.detect_every, args.face_detector)
    data["model"] = repr(run["recognizer"].model)
    data["stages"] = isolated_stages(clip, run)
    data["in_process"] = {k: run[k] for k in ("windows", "wall_s", "cpu_s")}
    data["load_after"] = os.getloadavg()
    sys.stdout.write(report(data) + "\n")
    if args.json:
        args.json.write_text(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
