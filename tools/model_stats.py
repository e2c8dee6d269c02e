"""Parameters and FLOPs of each module for both presets, and the factored Tucker fusion against the
literal algorithms A1 + A2 (time and peak memory, side by side in one run).

    python tools/model_stats.py [--json PATH] [--threads 2] [--repeats 5]

Needs the ``train`` extra (torch). Peak memory is measured as the growth of the peak resident set
size of a fresh worker process per variant, so each number includes everything that variant
allocated (inputs, the tensor X where it is built, intermediates).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import statistics
import time

import torch
from edge_emotion.train.fusion import TuckerFusion, tucker_fusion_literal, tucker_fusion_materialized
from edge_emotion.train.model import build_model, count_parameters
from torch.utils.flop_counter import FlopCounterMode

from edge_emotion.config import PRESETS


def module_inputs(model, batch: int = 1) -> dict[str, tuple[torch.Tensor, ...]]:
    p = model.preset
    m = p.model
    return {
        "visual_encoder": (torch.randn(batch, 3, p.visual.crop_size, p.visual.crop_size),),
        "audio_encoder": (torch.randn(batch, 1, p.audio.n_mels, p.audio.n_frames),),
        "fusion_head": (
            torch.randn(batch, m.time_steps, m.audio_dim),
            torch.randn(batch, m.time_steps, m.visual_dim),
            torch.ones(batch, m.time_steps),
            torch.ones(batch, m.time_steps),
        ),
    }


def module_stats() -> list[dict]:
    rows = []
    for name, preset in PRESETS.items():
        model = build_model(preset).eval()
        modules = {"visual_encoder": model.visual, "audio_encoder": model.audio, "fusion_head": model.fusion}
        for graph, inputs in module_inputs(model).items():
            counter = FlopCounterMode(display=False)
            with torch.no_grad(), counter:
                modules[graph](*inputs)
            rows.append(
                {
                    "preset": name,
                    "module": graph,
                    "parameters": count_parameters(modules[graph]),
                    "gflops_per_call": counter.get_total_flops() / 1e9,
                    "note": "per face frame" if graph == "visual_encoder" else "per window",
                }
            )
        frames = preset.video_frames
        rows.append(
            {
                "preset": name,
                "module": "per window, all frames encoded",
                "parameters": count_parameters(model),
                "gflops_per_call": sum(
                    r["gflops_per_call"] * (frames if r["module"] == "visual_encoder" else 1)
                    for r in rows
                    if r["preset"] == name
                ),
                "note": f"{frames} face frames + 1 audio window + fusion",
            }
        )
    return rows


def _tucker_worker(variant: str, shape: dict, repeats: int, threads: int, queue) -> None:
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    n, t, d_a, d_v, ranks = shape["batch"], shape["T"], shape["D_a"], shape["D_v"], tuple(shape["ranks"])
    layer = TuckerFusion(t, d_a, d_v, ranks)
    audio, visual = torch.randn(n, t, d_a), torch.randn(n, t, d_v)
    functions = {
        "factored": lambda: layer(audio, visual),
        "literal A1+A2 (loops)": lambda: tucker_fusion_literal(audio, visual, layer.U_T, layer.U_A, layer.U_V),
        "materialised A1+A2 (vectorised)": lambda: tucker_fusion_materialized(
            audio, visual, layer.U_T, layer.U_A, layer.U_V
        ),
    }
    fn = functions[variant]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with torch.no_grad():
        fn()  # warm-up
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    queue.put(
        {"variant": variant, "median_ms": 1000 * statistics.median(times), "peak_rss_growth_mb": (peak - before) / 1024}
    )


ALL_VARIANTS = ("factored", "materialised A1+A2 (vectorised)", "literal A1+A2 (loops)")


def tucker_benchmark(shape: dict, repeats: int, threads: int, variants=ALL_VARIANTS) -> list[dict]:
    ctx = mp.get_context("spawn")
    rows = []
    for variant in variants:
        queue = ctx.Queue()
        proc = ctx.Process(target=_tucker_worker, args=(variant, shape, repeats, threads, queue))
        proc.start()
        rows.append(queue.get())
        proc.join()
    base = rows[0]
    for row in rows:
        row["time_ratio_vs_factored"] = row["median_ms"] / base["median_ms"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", help="write the results here as JSON")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    stats = module_stats()
    print(
        f"machine: {platform.processor() or platform.machine()}, {mp.cpu_count()} cores, torch {torch.__version__}, "
        f"{args.threads} threads"
    )
    print(f"\n{'preset':<7} {'module':<32} {'params':>12} {'GFLOPs':>9}  note")
    for r in stats:
        print(f"{r['preset']:<7} {r['module']:<32} {r['parameters']:>12,} {r['gflops_per_call']:>9.3f}  {r['note']}")

    results = {"modules": stats, "tucker": []}
    # The paper's sizes (T=60, D_a=D_v=256, batch 8) with the paper preset's ranks, and the fusion
    # head's real input sizes (d_model + 1 for the appended constant).
    # Then larger feature sizes, to show how memory scales with D_a·D_v (the loop version is left
    # out there: it only adds Python overhead to the materialised one).
    for d in (256, 257, 512, 1024):
        shape = {"batch": 8, "T": 60, "D_a": d, "D_v": d, "ranks": list(PRESETS["paper"].model.ranks)}
        variants = ALL_VARIANTS if d <= 257 else ALL_VARIANTS[:2]
        rows = tucker_benchmark(shape, args.repeats, args.threads, variants)
        results["tucker"].append({"shape": shape, "rows": rows})
        print(f"\nTucker fusion, batch {shape['batch']}, T={shape['T']}, D_a=D_v={d}, ranks {tuple(shape['ranks'])}:")
        print(f"{'variant':<34} {'median ms':>10} {'peak RSS +MB':>13} {'time ratio':>11}")
        for r in rows:
            print(
                f"{r['variant']:<34} {r['median_ms']:>10.3f} {r['peak_rss_growth_mb']:>13.1f} "
                f"{r['time_ratio_vs_factored']:>10.1f}x"
            )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(results, fh, indent=2)


if __name__ == "__main__":
    main()
