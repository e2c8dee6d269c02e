"""Where the time of ``edge-emotion run --video CLIP`` goes: end to end, and stage by stage.

    python tools/make_bench_clip.py SOURCE.mp4 /tmp/bench60.mp4
    python tools/profile_file_run.py /tmp/bench60.mp4 [--repeats 3] [--threads N] [--eager] [--json out.json]

Three measurements, each reported as wall-clock time and as CPU time (user + sys of the process,
all its threads; on a shared machine CPU time is the steadier of the two):

1. **End to end**: the CLI as a user runs it (``edge-emotion run --video CLIP``, results to
   /dev/null) in a fresh process, ``--repeats`` times (median), and the start-up alone (a fresh
   process that imports the CLI, loads the shipped model and creates the face detector). RTF is
   time / clip duration.
2. **Stages**, in one process (``Recognizer.analyze``, start-up excluded): every stage is wrapped
   with a timer: video decode (demux + decode + the file source), colour conversion, audio decode
   (+ resampling, chunking), face detection, face crop, audio features (voice activity + log-mel),
   the visual and audio encoders, the fusion head; "rest" is what no stage covers (the stream's
   Python, merging the sources). A stage's CPU is the process's CPU while it ran, so work that
   other threads do meanwhile (FFmpeg's decoder threads) counts in the stage it overlaps.
3. **The physical floor**: the inputs the three graphs received in (2) are replayed through them
   back to back, nothing else running: the graphs' compute alone. Face detection (MediaPipe's
   own graph) and the decoder are reported beside it, from their isolated runs.

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
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]

_CLI = "import sys; from edge_emotion.cli import main; main(sys.argv[1:])"
_STARTUP = (
    "import sys; from edge_emotion.cli import main; from edge_emotion.recognizer import Recognizer; "
    "r = Recognizer.from_bundle(sys.argv[1] or None, threads=int(sys.argv[2]) if sys.argv[2] else None); "
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


def end_to_end(clip: Path, model: str | None, threads: int | None, repeats: int) -> dict[str, Any]:
    cli = ["-c", _CLI, "run", "--video", str(clip), "--output", "jsonl"]
    if model:
        cli += ["--model", model]
    if threads:
        cli += ["--threads", str(threads)]
    runs = [_timed_child(cli) for _ in range(repeats)]
    starts = [_timed_child(["-c", _STARTUP, model or "", str(threads or "")]) for _ in range(repeats)]
    return {
        "run_wall_s": [w for w, _ in runs],
        "run_cpu_s": [c for _, c in runs],
        "startup_wall_s": [w for w, _ in starts],
        "startup_cpu_s": [c for _, c in starts],
    }


class Stages:
    """Accumulates the wall and process-CPU time of named stages."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.calls: dict[str, int] = {}

    def add(self, name: str, wall: float, cpu: float) -> None:
        self.wall[name] = self.wall.get(name, 0.0) + wall
        self.cpu[name] = self.cpu.get(name, 0.0) + cpu
        self.calls[name] = self.calls.get(name, 0) + 1

    def wrap(self, name: str, fn: Callable, record: list | None = None) -> Callable:
        def timed(*args, **kwargs):
            if record is not None:
                record.append(tuple(a.copy() for a in args))
            w, c = time.perf_counter(), _cpu_s()
            try:
                return fn(*args, **kwargs)
            finally:
                self.add(name, time.perf_counter() - w, _cpu_s() - c)

        return timed

    def iterate(self, name: str, items: Iterable) -> Iterator:
        iterator = iter(items)
        while True:
            w, c = time.perf_counter(), _cpu_s()
            try:
                item = next(iterator)
            except StopIteration:
                self.add(name, time.perf_counter() - w, _cpu_s() - c)
                return
            self.add(name, time.perf_counter() - w, _cpu_s() - c)
            yield item


class _Timed:
    """An iterable whose iteration is timed as one stage."""

    def __init__(self, stages: Stages, name: str, source: Iterable):
        self._stages, self._name, self._source = stages, name, source

    def __iter__(self) -> Iterator:
        return self._stages.iterate(self._name, self._source)


def stage_breakdown(clip: Path, model: str | None, threads: int | None, eager: bool) -> dict[str, Any]:
    import edge_emotion.sources as sources
    import edge_emotion.sources.files as files
    import edge_emotion.stream as stream_module
    from edge_emotion.frontend import face as face_module
    from edge_emotion.recognizer import Recognizer

    stages = Stages()
    rec = Recognizer.from_bundle(model, threads=threads)
    recorded: dict[str, list] = {"encode_faces": [], "encode_audio": [], "fuse": []}
    graph_stage = {"encode_faces": "visual encoder", "encode_audio": "audio encoder", "fuse": "fusion head"}
    for method, stage in graph_stage.items():
        setattr(rec.model, method, stages.wrap(stage, getattr(rec.model, method), recorded[method]))
    files.video_frame_to_rgb = stages.wrap("colour conversion", files.video_frame_to_rgb)
    face_module.FaceTracker.detect = stages.wrap("face detection", face_module.FaceTracker.detect)
    face_module.crop_face = stages.wrap("face crop", face_module.crop_face)
    stream_module.window_log_mel = stages.wrap("audio features", stream_module.window_log_mel)
    stream_module.speech_frames = stages.wrap("audio features", stream_module.speech_frames)
    open_media = sources.open_media

    def timed_open_media(*args, **kwargs):
        media = open_media(*args, **kwargs)
        if media.video is not None:
            video = media.video
            if eager:  # convert every frame as it is decoded, as the file source did before
                video = _EagerFrames(video)
            media.video = _Timed(stages, "video decode", video)
        if media.audio is not None:
            media.audio = _Timed(stages, "audio decode", media.audio)
        return media

    sources.open_media = timed_open_media
    wall0, cpu0 = time.perf_counter(), _cpu_s()
    results = list(rec.analyze(clip))
    wall, cpu = time.perf_counter() - wall0, _cpu_s() - cpu0
    sources.open_media = open_media
    converted = stages.calls.get("colour conversion", 0)
    if eager:  # the conversion happened inside the decode stage's next(): take it out of there
        stages.wall["video decode"] -= stages.wall.get("colour conversion", 0.0)
        stages.cpu["video decode"] -= stages.cpu.get("colour conversion", 0.0)

    # the physical floor: the graphs' compute alone, on the inputs they received
    floor: dict[str, dict[str, float]] = {}
    for method, stage in graph_stage.items():
        fn = getattr(type(rec.model), method).__get__(rec.model)  # the unwrapped method
        w, c = time.perf_counter(), _cpu_s()
        for args in recorded[method]:
            fn(*args)
        floor[stage] = {"calls": len(recorded[method]), "wall_s": time.perf_counter() - w, "cpu_s": _cpu_s() - c}
    return {
        "windows": len(results),
        "frames_converted": converted,
        "model": repr(rec.model),
        "run_wall_s": wall,
        "run_cpu_s": cpu,
        "stages": {
            k: {"calls": stages.calls[k], "wall_s": stages.wall[k], "cpu_s": stages.cpu[k]} for k in stages.wall
        },
        "floor": floor,
    }


class _EagerFrames:
    """The video source with every frame converted as it is decoded."""

    def __init__(self, video):
        self._video = video

    def __iter__(self):
        for frame in self._video:
            frame.image  # noqa: B018 - converting is the point
            yield frame


def decode_alone(clip: Path, sample_rate: int) -> dict[str, dict[str, float]]:
    """The file's video (decode only, no conversion) and audio (decode, resample, chunk) alone."""
    from edge_emotion.sources import AudioFileSource, VideoFileSource

    out = {}
    w, c = time.perf_counter(), _cpu_s()
    n = sum(1 for _ in VideoFileSource(clip))
    out["video decode"] = {"calls": n, "wall_s": time.perf_counter() - w, "cpu_s": _cpu_s() - c}
    w, c = time.perf_counter(), _cpu_s()
    n = sum(1 for _ in AudioFileSource(clip, sample_rate=sample_rate))
    out["audio decode"] = {"calls": n, "wall_s": time.perf_counter() - w, "cpu_s": _cpu_s() - c}
    return out


def clip_seconds(clip: Path) -> float:
    from edge_emotion.sources import open_media

    return open_media(clip).duration_ms / 1000.0


def report(data: dict[str, Any]) -> str:
    duration = data["clip_s"]
    e2e, st = data["end_to_end"], data["stages"]
    med = statistics.median
    lines = [
        f"clip: {data['clip']} ({duration:.1f} s); CPU: {data['cpu']}",
        f"model: {st['model']}; threads: {data['threads'] or 'runtime default'}; "
        f"conversion: {'eager (every frame)' if data['eager'] else 'lazy'}",
        "",
        f"end to end (fresh processes, median of {len(e2e['run_wall_s'])})      wall s   RTF     CPU s   CPU RTF",
    ]
    for label, wk, ck in (("edge-emotion run --video CLIP", "run_wall_s", "run_cpu_s"),
                          ("  of which start-up (import, load, detector)", "startup_wall_s", "startup_cpu_s")):
        w, c = med(e2e[wk]), med(e2e[ck])
        lines.append(f"{label:<48}{w:7.2f} {w / duration:7.4f} {c:7.2f} {c / duration:8.4f}")
    lines.append(f"  all runs: wall {', '.join(f'{w:.2f}' for w in e2e['run_wall_s'])} s; "
                 f"CPU {', '.join(f'{c:.2f}' for c in e2e['run_cpu_s'])} s")
    lines += ["", f"stages of one run in this process ({st['windows']} windows, {st['frames_converted']} frames "
              "converted)", f"{'stage':<22}{'calls':>7}{'wall s':>9}{'CPU s':>9}{'CPU RTF':>9}"]
    total_w = total_c = 0.0
    for name, s in sorted(st["stages"].items(), key=lambda kv: -kv[1]["cpu_s"]):
        total_w += s["wall_s"]
        total_c += s["cpu_s"]
        lines.append(f"{name:<22}{s['calls']:>7}{s['wall_s']:>9.3f}{s['cpu_s']:>9.3f}{s['cpu_s'] / duration:>9.4f}")
    rest_w, rest_c = st["run_wall_s"] - total_w, st["run_cpu_s"] - total_c
    lines.append(f"{'rest (stream, merge)':<22}{'':>7}{rest_w:>9.3f}{rest_c:>9.3f}{rest_c / duration:>9.4f}")
    lines.append(f"{'total':<22}{'':>7}{st['run_wall_s']:>9.3f}{st['run_cpu_s']:>9.3f}"
                 f"{st['run_cpu_s'] / duration:>9.4f}")
    lines += ["", "physical floor: the graphs alone on the inputs they received", f"{'graph':<22}{'calls':>7}"
              f"{'wall s':>9}{'CPU s':>9}"]
    fw = fc = 0.0
    for name, s in st["floor"].items():
        fw += s["wall_s"]
        fc += s["cpu_s"]
        lines.append(f"{name:<22}{s['calls']:>7}{s['wall_s']:>9.3f}{s['cpu_s']:>9.3f}")
    lines.append(f"{'graphs together':<22}{'':>7}{fw:>9.3f}{fc:>9.3f}   RTF {fw / duration:.4f} wall, "
                 f"{fc / duration:.4f} CPU")
    lines += ["", "decoding alone (no colour conversion)"]
    for name, s in data["decode_alone"].items():
        lines.append(f"{name:<22}{s['calls']:>7}{s['wall_s']:>9.3f}{s['cpu_s']:>9.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clip", type=Path, help="the clip (tools/make_bench_clip.py makes the 60-s one)")
    parser.add_argument("--model", default=None, help="a bundle directory (default: the shipped model)")
    parser.add_argument("--threads", type=int, default=None, help="runtime threads (default: the runtime's)")
    parser.add_argument("--repeats", type=int, default=3, help="end-to-end runs (median; default 3)")
    parser.add_argument("--eager", action="store_true", help="convert every frame (the old file source)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))
    data: dict[str, Any] = {"clip": str(args.clip), "cpu": cpu_flags(), "threads": args.threads, "eager": args.eager}
    data["clip_s"] = clip_seconds(args.clip)
    data["end_to_end"] = end_to_end(args.clip.resolve(), args.model, args.threads, args.repeats) if args.repeats else {
        "run_wall_s": [float("nan")], "run_cpu_s": [float("nan")], "startup_wall_s": [float("nan")],
        "startup_cpu_s": [float("nan")]}
    data["stages"] = stage_breakdown(args.clip, args.model, args.threads, args.eager)
    from edge_emotion.recognizer import Recognizer  # already loaded: only the preset's rate is needed

    rate = Recognizer.from_bundle(args.model, threads=args.threads).preset.audio.sample_rate
    data["decode_alone"] = decode_alone(args.clip, rate)
    sys.stdout.write(report(data) + "\n")
    if args.json:
        args.json.write_text(json.dumps(data, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
