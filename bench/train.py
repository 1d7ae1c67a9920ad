"""Training throughput through the engine (`vidrec.train.loop.train`): clips/s and the share of
time spent waiting for data, at the papers' input sizes, batch 2, on the real Kinetics clips in
../shared/videos (decoded, sampled, jittered and cropped by the real pipeline).

    python bench/train.py [--steps 4] [--models slowfast_r50_8x8 videomae_b]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile

import torch

from common import describe_machine, machine
from vidrec.train.config import config_from_dict
from vidrec.train.loop import train

VIDEOS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "videos")
SETTINGS = {  # the K400 configs' inputs
    "slowfast_r50_8x8": {"num_frames": 32, "sampling_rate": 2, "resize": 256, "crop_size": 224},
    "videomae_b": {
        "num_frames": 16,
        "sampling_rate": 4,
        "resize": 256,
        "crop_size": 224,
        "train_crop": "resized",
    },
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--models", nargs="+", default=list(SETTINGS))
    args = ap.parse_args()
    torch.set_num_threads(2)
    print(f"machine: {describe_machine(machine())}", flush=True)  # beside every ratio
    clips = [
        os.path.abspath(os.path.join(VIDEOS, v)) for v in ("arm_wrestling.mp4", "flipping_a_pancake.mkv")
    ]
    with tempfile.TemporaryDirectory() as tmp:
        rows = [f"{clips[i % 2]},{i % 2}" for i in range(2 * (args.steps + 1))]
        with open(os.path.join(tmp, "train.csv"), "w") as f:
            f.write("\n".join(rows) + "\n")
        for name in args.models:
            cfg = config_from_dict(
                {
                    "model": {"name": name},
                    "data": {
                        "train": os.path.join(tmp, "train.csv"),
                        "batch_size": 2,
                        "workers": 2,
                        **SETTINGS[name],
                    },
                    "optimizer": {"name": "sgd" if name.startswith("slowfast") else "adamw", "lr": 1e-3},
                    "schedule": {"epochs": 1},
                    "run": {
                        "out": os.path.join(tmp, name),
                        "device": "cpu",
                        "log_every": 1,
                        "tensorboard": False,
                    },
                }
            )
            train(cfg, progress=False)
            steps = [
                json.loads(line)
                for line in open(os.path.join(tmp, name, "metrics.jsonl"))
                if '"loss"' in line
            ]
            steps = steps[1:]  # the first step pays for warm-up (allocations, worker start)
            rate = statistics.median(r["clips_per_s"] for r in steps)
            wait = statistics.median(r["data_wait_frac"] for r in steps)
            print(
                f"{name:<18} batch 2  {SETTINGS[name]['num_frames']}x{SETTINGS[name]['crop_size']}  "
                f"{rate:.3f} clips/s ({2 / rate:.1f} s/step)  data wait {100 * wait:.1f}% "
                f"(median of {len(steps)} steps)"
            )


if __name__ == "__main__":
    main()
