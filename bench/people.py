"""Throughput of the who-does-what pipeline on a real clip, each stage against its peer in the same
run: the SSD person detector (vidrec float in PyTorch and in ONNX Runtime, vidrec on the file's
uint8 grids, the TFLite runtime on the same 300x300 frames), the tracker, one per-person MoViNet
step (both backends), and `people_actions` end to end on both backends (keyframes per second).
Medians of interleaved repeats.

    python bench/people.py [--video ../shared/videos/arm_wrestling.mp4] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np
import torch

from common import describe_machine, machine
from vidrec.deploy import on_uint8_grids
from vidrec.io import VideoReader
from vidrec.models.loader import load_model
from vidrec.people.detectors import SSDPersons
from vidrec.people.pipeline import PeopleConfig, people_actions
from vidrec.people.recognizers import TrackRecognizer, square_crop
from vidrec.people.tracker import Tracker
from vidrec.runtime.onnxruntime import to_onnxruntime

SHARED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared")


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--video", default=os.path.join(SHARED, "videos", "arm_wrestling.mp4"))
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--frames", type=int, default=10, help="frames per detector timing")
    args = p.parse_args(argv)
    print(f"machine: {describe_machine(machine())}", flush=True)  # beside every ratio
    weights = [
        os.path.join(SHARED, "weights", d)
        for d in ("ssd_mobilenet_v1_coco_quant", "movinet_a0_stream_int8_k600")
    ]
    os.environ.setdefault("VIDREC_WEIGHTS", os.pathsep.join(weights))
    from ai_edge_litert.interpreter import Interpreter

    ssd = load_model("ssd_mobilenet_v1.coco_uint8")
    grid = on_uint8_grids(ssd)
    ssd_ort = to_onnxruntime(ssd)
    runtime = Interpreter(
        model_path=os.path.join(weights[0], "ssd_mobilenet.tflite"), num_threads=torch.get_num_threads()
    )
    runtime.allocate_tensors()
    with VideoReader(args.video) as v:
        frames = v.get_frames(np.linspace(0, len(v) - 1, args.frames).astype(int))
    inputs = torch.stack([ssd._square(torch.from_numpy(f).permute(2, 0, 1).float(), 300) for f in frames])
    uint8 = inputs.permute(0, 2, 3, 1).to(torch.uint8).numpy()
    ssd.detect((inputs[:1] - 128) / 128)  # warm-up

    def tflite():
        for x in uint8:
            runtime.set_tensor(runtime.get_input_details()[0]["index"], x[None])
            runtime.invoke()

    stages = {
        "detector, TFLite runtime (uint8)": tflite,
        "detector, vidrec float": lambda: ssd.detect((inputs - 128) / 128),
        "detector, vidrec on uint8 grids": lambda: grid.detect((inputs - 128) / 128),
        "detector, vidrec in ONNX Runtime": lambda: ssd_ort.detect((inputs - 128) / 128),
    }
    times = {k: [] for k in stages}
    for _ in range(args.repeats):
        for name, fn in stages.items():
            times[name].append(timed(fn) / len(frames))
    detections = ssd.detect_frames(list(frames))
    boxes = [
        (d["boxes"][d["classes"] == 0].numpy() * 300, d["scores"][d["classes"] == 0].numpy())
        for d in detections
    ]

    def track():
        tracker = Tracker()
        for b, s in boxes:
            tracker.update(b, s)

    times["tracker (per frame)"] = [timed(track) / len(boxes) for _ in range(args.repeats)]
    movinet = load_model("movinet_a0_stream")
    backends = {"PyTorch": (ssd, movinet), "ONNX Runtime": (ssd_ort, to_onnxruntime(movinet))}
    crop = square_crop(frames[0], (50, 20, 200, 250), context=1.5, size=TrackRecognizer(movinet).size)
    for name, (_, model) in backends.items():
        recognizer = TrackRecognizer(model)
        recognizer.step(0, crop)
        times[f"MoViNet step, one person, {name}"] = [
            timed(lambda r=recognizer: r.step(0, crop)) for _ in range(args.repeats * 4)
        ]
    pipeline, looks = {}, 0
    for _ in range(2):  # interleaved; the faster of two runs of each
        for name, (detector, model) in backends.items():
            start = time.perf_counter()
            looks = sum(
                1
                for _ in people_actions(
                    args.video,
                    detector=SSDPersons(detector),
                    recognizer=TrackRecognizer(model),
                    config=PeopleConfig(fps=5),
                )
            )
            pipeline[name] = min(pipeline.get(name, float("inf")), time.perf_counter() - start)
    with VideoReader(args.video) as v:
        duration = float(v.timestamps[-1]) if len(v) else 0.0
    reference = statistics.median(times["detector, TFLite runtime (uint8)"])
    print(
        f"# Who does what: throughput on {os.path.basename(args.video)} ({torch.get_num_threads()} threads)\n"
    )
    print("| stage | ms per call | frames/s | vs TFLite detector |")
    print("|---|---|---|---|")
    for name, ts in times.items():
        m = statistics.median(ts)
        print(f"| {name} | {m * 1000:.1f} | {1 / m:.1f} | {reference / m:.2f}x |")
    for name, seconds in pipeline.items():
        print(
            f"\nPipeline on {name} (detector + tracker + MoViNet per person, decoding included): {looks} "
            f"looks at 5/s of a {duration:.1f} s clip in {seconds:.1f} s = {looks / seconds:.2f} keyframes/s "
            f"(real-time factor {duration / seconds:.2f})."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
