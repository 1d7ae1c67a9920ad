"""The embedded default job. First a real pretrained model on real footage: MoViNet-A0 Stream
(Kinetics-600) streams a clip, when its weights are on this machine (else it says how to get them).
Then the training loop end to end: make a small SynthMotion set, train a 3D CNN (i3d_small) and
its order-less 2D control (tsn_small) on it, evaluate both and predict one test video. No download
needed; a few minutes on a CPU."""

from __future__ import annotations

import json
import os
import time

from vidrec.data.datasets import load_csv
from vidrec.data.synthetic import SynthConfig, generate_dataset, reversal_pair_accuracy
from vidrec.errors import VidrecError
from vidrec.models.loader import load_model
from vidrec.recognize.predict import format_predictions, predict
from vidrec.train.checkpoint import CheckpointManager
from vidrec.train.config import config_from_dict
from vidrec.train.loop import train
from vidrec.train.report import TEST_REPORT_NAME
from vidrec.utils import resolve_device


def real_clip_demo(video: str | None, weights_dir: str | None, device) -> dict | None:
    """MoViNet-A0 Stream on a real clip, reported every 2 s of video as a live stream would be."""
    from vidrec.recognize.stream import stream_video

    print("[0/4] MoViNet-A0 Stream, Kinetics-600, on real footage")
    if not video or not os.path.exists(video):
        print("      skipped: no real clip given (vidrec demo --video CLIP.mp4)")
        return None
    try:
        model = load_model("movinet_a0_stream", device=device, weights_dir=weights_dir)
    except VidrecError as e:
        print(f"      skipped: {e}")
        return None
    start = time.perf_counter()
    for report in stream_video(model, video, every=2.0, top_k=3, device=device):
        best = format_predictions(report["predictions"])
        when = "final" if report.get("final") else f"{report['time']:4.0f} s"
        print(f"      {when}  {best}")
    print(
        f"      {report['frames']} frames ({report['time']:.1f} s of {os.path.basename(video)}) in "
        f"{time.perf_counter() - start:.1f} s"
    )
    return report


# The demo's SynthMotion: the easy form (flat background, the actor alone) at 32 px, so that a
# temporal model learns it in about two minutes on 2 CPU cores; the full set (textures, still
# distractors, 64 px) takes longer: configs/i3d_small_synth.yaml.
DEMO_SYNTH = SynthConfig(num_frames=16, size=32, max_objects=1, texture=False)
DEMO_COUNTS = {"train": 1440, "val": 120, "test": 240}
DEMO_DATA = {"resize": 32, "crop_size": 28, "batch_size": 16, "flip": False, "centering": "clip"}
# (architecture, what it is, model options, data options): both at width 16; TSN takes 8 frames
# spread over the video (its usual segments), which halves its time and loses nothing it can use.
DEMO_MODELS = (
    ("i3d_small", "3D CNN: tsn_small's CNN inflated, 3x3x3 kernels", {"width": 16}, {}),
    (
        "tsn_small",
        "the same 2D CNN on each frame, averaged over time: the no-motion control",
        {"width": 16},
        {"num_frames": 8, "sampling_rate": 2},
    ),
)


def _train_one(
    name: str, data: str, out: str, *, model: dict, data_options: dict, epochs: int, device, seed: int
) -> dict:
    cfg = config_from_dict(
        {
            "model": {"name": name, "options": model},
            "data": {"train": data, "workers": min(2, os.cpu_count() or 1), **DEMO_DATA, **data_options},
            "optimizer": {"name": "adamw", "lr": 2e-3, "weight_decay": 0.05, "grad_clip": 1.0},
            "schedule": {"epochs": epochs, "warmup_epochs": 0.3},
            "run": {"out": out, "device": str(device), "tensorboard": False, "seed": seed},
        }
    )
    resume = "auto" if CheckpointManager(os.path.join(out, "checkpoints")).exists() else None
    start = time.perf_counter()
    result = train(cfg, resume=resume)
    return {**result, "train_seconds": time.perf_counter() - start}


def run_demo(
    *,
    out: str = "runs/demo",
    epochs: int = 4,
    device: str = "auto",
    video: str | None = None,
    weights_dir: str | None = None,
) -> dict:
    """The embedded default job: MoViNet on a real clip, then SynthMotion -> train a 3D CNN and
    its 2D control -> evaluate both -> predict."""
    t0 = time.perf_counter()
    device = resolve_device(device)
    real = real_clip_demo(video, weights_dir, device)
    data = os.path.join(out, "synthmotion")
    print(
        f"[1/4] SynthMotion, easy form: 12 motion classes, 16 frames of 32x32, flat background, one "
        f"object -> {data}"
    )
    generate_dataset(data, counts=DEMO_COUNTS, cfg=DEMO_SYNTH, seed=0, workers=min(2, os.cpu_count() or 1))
    test_records, classes = load_csv(os.path.join(data, "test.csv"))
    results = {}
    for i, (name, what, options, data_options) in enumerate(DEMO_MODELS):
        model_dir = os.path.join(out, name)
        print(f"[2/4] training {name} ({what}) for {epochs} epochs on {device} -> {model_dir}")
        results[name] = _train_one(
            name,
            data,
            model_dir,
            model=options,
            data_options=data_options,
            epochs=epochs,
            device=device,
            seed=i,
        )
    print(f"[3/4] test split, {len(test_records)} videos (chance 8.3%):")
    for name, *_ in DEMO_MODELS:
        with open(os.path.join(out, name, TEST_REPORT_NAME)) as f:  # written by train(), with confusion.png
            test = json.load(f)
        r = results[name]
        results[name]["reversal_pair_acc"] = reversal_pair_accuracy(test["confusion_matrix"])
        print(
            f"      {name:<10} top-1 {r['test_top1']:5.1f}%  "
            f"mean class acc {r['test_mean_class_acc']:5.1f}%  "
            f"within time-reversal pairs {results[name]['reversal_pair_acc']:5.1f}%  "
            f"trained in {r['train_seconds']:.0f} s"
        )
    print(
        f"      confusion matrices and learning curves: {out}/*/confusion.png, {out}/*/curves.png\n"
        "      tsn_small cannot tell a video from its time reversal (left/right, approach/recede, ...):\n"
        "      it averages frames without order. i3d_small's kernels span time, so it can."
    )
    best = DEMO_MODELS[0][0]
    model = load_model(os.path.join(out, best), device=device)
    video = test_records[0]
    print(f"[4/4] {best} predicts {video.path} (true label: {classes[video.label]})")
    pred = predict(model, video.path, top_k=3, device=device)
    for p in pred["predictions"]:
        print(f"      {p['label']:<26} {p['score']:.3f}")
    print(f"done in {time.perf_counter() - t0:.0f} s; try: vidrec predict {video.path} --model {out}/{best}")
    return {
        "eval": {
            name: {k.removeprefix("test_"): v for k, v in r.items() if k.startswith("test_")}
            | {"reversal_pair_acc": r["reversal_pair_acc"], "train_seconds": r["train_seconds"]}
            for name, r in results.items()
        },
        "prediction": pred,
        "real_clip": real,
    }
