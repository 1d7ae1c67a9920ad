"""Streaming MoViNet-A0 on this machine: vidrec (float32 PyTorch, and the same model run by ONNX
Runtime, `--backend onnxruntime`, or as its own float32 TFLite graph by the TFLite runtime,
`--backend litert`) against the TFLite runtime (ai-edge-litert, int8 with XNNPACK)
on the same preprocessed frames, each side's in its own layout made before the clock (vidrec's
(1, 3, 1, H, W) tensors, the runtime's contiguous HWC arrays), one frame per call as in a live
stream, measured in the same run with interleaved repeats, each after an untimed one; vidrec in
float32 and in its int8 mode (bit-exact with the runtime);
both TFLite graphs' `invoke()` alone too (the runtime's work, no state moved). Also the whole
`vidrec stream` path (decode + resize + model) on every backend, as the command runs it (on
onnxruntime and litert, PyTorch on one thread), and the real-time factors.

    python bench/movinet.py [--weights DIR] [--video PATH] [--repeats 5]
    python bench/movinet.py --table     # results/movinet.md from the records

Each run writes a record (every row's median seconds, the machine, the commit) to
results/movinet_runs/; results/movinet.md is written from the records alone: the ratios of each
run, grouped by machine (the ratios differ between CPUs: XNNPACK's int8 kernels gain more from
VNNI on some than its float32 ones from AVX-512 and AMX on others).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))

import vidrec  # noqa: E402
from common import by_cpu, describe_machine, machine, read_records  # noqa: E402
from vidrec.deploy import optimize_for_inference, to_int8  # noqa: E402
from vidrec.io import probe  # noqa: E402
from vidrec.models.download import cache_dir  # noqa: E402
from vidrec.recognize.stream import model_frames, stream_video  # noqa: E402
from vidrec.runtime.litert import (
    LiteRTStream,  # noqa: E402
    to_litert,  # noqa: E402
)
from vidrec.runtime.onnxruntime import to_onnxruntime  # noqa: E402
from vidrec.utils import atomic_write_text  # noqa: E402

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared")
RUNS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "results", "movinet_runs")
TABLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "results", "movinet.md")
REFERENCE = "TFLite int8 (XNNPACK), 1 frame/call"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weights", default=os.path.join(SHARED, "weights", "movinet_a0_stream_int8_k600"))
    parser.add_argument("--video", default=os.path.join(SHARED, "videos", "flipping_a_pancake.mkv"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--table", action="store_true", help="only write results/movinet.md from the records")
    args = parser.parse_args()
    if args.table:
        atomic_write_text(TABLE, table())
        print(f"wrote {TABLE}", file=sys.stderr)
        return
    torch.set_num_threads(args.threads)
    tflite = os.path.join(args.weights, "movinet_a0_int8.tflite")
    model = optimize_for_inference(vidrec.load_model(tflite))
    int8 = to_int8(vidrec.load_model(tflite))
    ort = to_onnxruntime(vidrec.load_model(tflite), cache=os.path.join(cache_dir(), "onnx"))
    litert = to_litert(vidrec.load_model(tflite), cache=os.path.join(cache_dir(), "tflite"))
    frames = [f for _, f in model_frames(args.video, model.preprocessing, fps=model.preprocessing.target_fps)]
    hwc = [np.ascontiguousarray(f[:, 0].permute(1, 2, 0).numpy()) for f in frames]  # its layout, made ahead
    runtime = LiteRTStream(tflite, num_threads=args.threads)
    litert_graph = litert.stepper.graph.interpreter

    # each side's inputs are made before the clock starts, as the runtime's HWC frames are (a
    # torch.cat per step woke PyTorch's OpenMP threads, whose spinning took a core from the
    # runtime's own threads: 0.2 ms a step on 2 cores)
    chunks = {
        n: [torch.cat(frames[i : i + n], dim=1)[None] for i in range(0, len(frames), n)] for n in (1, 5)
    }

    @torch.inference_mode()
    def run_vidrec(chunk: int, net=model) -> None:
        state = net.init_state(1)
        for clip in chunks[chunk]:
            _, state = net.step(clip, state)

    def run_tflite() -> None:
        runtime.reset()
        for frame in hwc:
            runtime.step(frame)

    runs = {
        "vidrec, 1 frame/step": lambda: run_vidrec(1),
        "vidrec, 5 frames/step": lambda: run_vidrec(5),
        "vidrec --int8, 1 frame/step": lambda: run_vidrec(1, int8),
        "vidrec ONNX Runtime, 1 frame/step": lambda: run_vidrec(1, ort),
        "vidrec LiteRT fp32, 1 frame/step": lambda: run_vidrec(1, litert),
        "TFLite int8 (XNNPACK), 1 frame/call": run_tflite,
        # the runtime's own work alone, no inputs or outputs moved: float32 against int8 in XNNPACK
        "vidrec LiteRT graph, invoke() only": lambda: [litert_graph.invoke() for _ in frames],
        "TFLite int8 file, invoke() only": lambda: [runtime.graph.interpreter.invoke() for _ in frames],
    }
    times = {name: [] for name in runs}
    for fn in runs.values():
        fn()  # warm-up
    for r in range(args.repeats):
        order = list(runs) if r % 2 == 0 else list(reversed(runs))
        for name in order:
            time.sleep(0.2)  # the previous run's idle threads (PyTorch's OpenMP spin) go quiet first
            runs[name]()  # and its weights back in the caches the other runs used, as in a stream
            t0 = time.perf_counter()
            runs[name]()
            times[name].append(time.perf_counter() - t0)

    end_to_end = {"pytorch": [], "onnxruntime": [], "litert": []}
    for _ in range(max(2, args.repeats // 2)):
        for backend, net in (("pytorch", model), ("onnxruntime", ort), ("litert", litert)):
            # as `vidrec stream` runs: on another runtime, PyTorch (left the resizing) on one thread
            torch.set_num_threads(args.threads if backend == "pytorch" else 1)
            time.sleep(0.2)
            t0 = time.perf_counter()
            list(stream_video(net, args.video, every=1.0))
            end_to_end[backend].append(time.perf_counter() - t0)
        torch.set_num_threads(args.threads)

    info = probe(args.video)
    n = len(frames)
    host = machine()
    record = {
        "video": os.path.basename(args.video),
        "frames": n,
        "repeats": args.repeats,
        "seconds": {name: statistics.median(ts) for name, ts in times.items()},
        "stream_seconds": {backend: statistics.median(ts) for backend, ts in end_to_end.items()},
        "video_seconds": info.duration,
        "machine": host,
    }
    os.makedirs(RUNS, exist_ok=True)
    stamp = host["date"].replace(":", "").replace("-", "")[:15]
    atomic_write_text(
        os.path.join(RUNS, f"{stamp}_{host['commit'][:8]}.json"), json.dumps(record, indent=1) + "\n"
    )
    atomic_write_text(TABLE, table())
    print(describe_machine(host))
    print(
        f"{os.path.basename(args.video)}: {n} frames at 5 fps "
        f"({info.duration:.1f} s, source {info.fps:.0f} fps), "
        f"{args.threads} threads, median of {args.repeats}"
    )
    ref = statistics.median(times["TFLite int8 (XNNPACK), 1 frame/call"])
    print(f"{'':38} {'frames/s':>9} {'vs TFLite':>9} {'x real time @5fps':>18} {'@source fps':>12}")
    for name, ts in times.items():
        fps = n / statistics.median(ts)
        print(
            f"{name:38} {fps:9.1f} {ref / statistics.median(ts):8.2f}x {fps / 5:17.1f}x "
            f"{fps / info.fps:11.1f}x"
        )
    for backend, ts in end_to_end.items():
        seconds = statistics.median(ts)
        print(
            f"{'vidrec stream --backend ' + backend:38} {n / seconds:9.1f} {'':>9} "
            f"{info.duration / seconds:17.1f}x  (seconds of video per second: "
            f"{info.num_frames / seconds:.0f} input frames/s)"
        )


def table() -> str:
    """results/movinet.md from the records: per machine, every run's frames a second and ratio to
    the int8 file, then the range of each ratio."""
    records = read_records(RUNS)
    out = [
        "# Streaming MoViNet-A0, one frame per call, against the official int8 TFLite file",
        "",
        "Written by `python bench/movinet.py --table` from the records in `results/movinet_runs/` "
        "(each made by `python bench/movinet.py`: the 51 frames of flipping_a_pancake.mkv at 5 fps, "
        "each side's inputs in its own layout made before the clock, interleaved repeats after an "
        "untimed one, medians). Ratios are against the TFLite runtime running the official int8 file "
        "in the same run; compare ratios, not frames a second, across runs.",
        "",
    ]
    by_machine = by_cpu(records)
    for key, runs in by_machine.items():
        names = list(runs[0]["seconds"])
        out += [
            f"## {key}",
            "",
            "| run (date, commit) | " + " | ".join(names) + " |",
            "|---|" + "---|" * len(names),
        ]
        for r in runs:
            ref = r["seconds"][REFERENCE]
            cells = [f"{r['frames'] / t:.0f}/s, {ref / t:.2f}x" for t in r["seconds"].values()]
            out.append(
                f"| {r['machine']['date'][:16]} {r['machine']['commit'][:8]} | " + " | ".join(cells) + " |"
            )
        ratios = {n: [r["seconds"][REFERENCE] / r["seconds"][n] for r in runs] for n in names}
        out += [
            "| range of the ratio | "
            + " | ".join(f"{min(v):.2f}-{max(v):.2f}x" for v in ratios.values())
            + " |",
            "",
            "vidrec's TFLite graph's `invoke()` against the official file's, the runtime's work alone: "
            + "-".join(
                f"{v:.2f}"
                for v in sorted(
                    r["seconds"]["TFLite int8 file, invoke() only"]
                    / r["seconds"]["vidrec LiteRT graph, invoke() only"]
                    for r in runs
                )[:: max(1, len(runs) - 1)]
            )
            + "x.",
            "",
            f"Machine of the last run: {describe_machine(runs[-1]['machine'])}.",
            "",
            "`vidrec stream` end to end (decode, resize, model) on each backend, seconds of video a second: "
            + "; ".join(
                f"{b} {runs[-1]['video_seconds'] / t:.1f}x real time"
                for b, t in runs[-1]["stream_seconds"].items()
            )
            + ".",
            "",
        ]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    main()
