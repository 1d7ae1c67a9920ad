"""Fine-tuning real pretrained weights on a few custom clips, as a new user does it: chunks of
real footage in a folder, one `vidrec train` command, the defaults."""

import json
import os

import av
import numpy as np
import pytest

from vidrec.cli import main
from vidrec.utils import write_video

# One real clip per class (../shared/videos); each is cut into 2.5 s chunks. With one source clip per
# class the split is by time: the first ~70% of each clip's chunks train, the rest validate.
SOURCES = {
    "shooting basketball": "basketball_shooting.mp4",
    "soccer": "soccer_match_wide.mp4",
    "flipping pancake": "flipping_a_pancake.mkv",
    "arm wrestling": "arm_wrestling.mp4",
}
CHUNK_SECONDS = 2.5
SHORT_SIDE = 180  # the chunks are stored small: MoViNet reads 172 px


def _frames(path: str) -> tuple[np.ndarray, float]:
    """Every frame, its short side resized to SHORT_SIDE by the decoder's scaler; and the fps."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        fps = float(stream.average_rate)
        frames = []
        for frame in container.decode(stream):
            scale = SHORT_SIDE / min(frame.width, frame.height)
            w, h = round(frame.width * scale / 2) * 2, round(frame.height * scale / 2) * 2
            frames.append(frame.reformat(width=w, height=h, format="rgb24").to_ndarray())
    return np.stack(frames), fps


@pytest.fixture(scope="module")
def sports(tmp_path_factory, shared_videos):
    root = tmp_path_factory.mktemp("sports")
    rows = {"train": [], "val": []}
    for label, name in SOURCES.items():
        frames, fps = _frames(os.path.join(shared_videos, name))
        n = round(CHUNK_SECONDS * fps)
        chunks = [frames[i : i + n] for i in range(0, len(frames) - n + 1, n)]
        train = max(1, round(0.7 * len(chunks)))
        for k, chunk in enumerate(chunks):
            path = root / f"{label.replace(' ', '_')}_{k}.mp4"
            write_video(path, chunk, fps=fps)
            rows["train" if k < train else "val"].append(f"{path.name},{label}")
    for split, lines in rows.items():
        (root / f"{split}.csv").write_text("path,label\n" + "\n".join(lines) + "\n")
    (root / "classes.txt").write_text("\n".join(SOURCES) + "\n")
    return root, {split: len(lines) for split, lines in rows.items()}


def _train(data, out, tflite, *extra) -> dict:
    args = f"train --data {data} --model {tflite} --out {out} --epochs 4 --batch-size 4 --lr 0.001"
    assert main([*args.split(), "--workers", "0", "--device", "cpu", "--quiet", *extra]) == 0
    rows = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    return [r for r in rows if "val_top1" in r][-1]


@pytest.mark.slow
def test_fine_tuning_pretrained_movinet_on_a_few_real_clips(sports, movinet_tflite, tmp_path):
    """The defaults (backbone lr x0.1, batch norms frozen, clips as long as the videos) keep the
    pretrained features: full fine-tuning matches a linear probe on them, far above chance."""
    import time

    data, counts = sports
    start = time.perf_counter()
    tuned = _train(data, tmp_path / "tuned", movinet_tflite)
    tuned_s = time.perf_counter() - start
    probe = _train(data, tmp_path / "probe", movinet_tflite, "--freeze-backbone")
    probe_s = time.perf_counter() - start - tuned_s
    config = json.load(open(tmp_path / "tuned" / "config.json"))
    print(
        f"\n{counts['train']} train / {counts['val']} val chunks of {CHUNK_SECONDS} s, 4 classes (chance 25%)"
        f"\nfine-tuned  val top-1 {tuned['val_top1']:.1f}%  mean class {tuned['val_mean_class_acc']:.1f}%  "
        f"train {tuned['train_top1']:.1f}%  ({tuned_s:.0f} s)"
        f"\nlinear probe val top-1 {probe['val_top1']:.1f}%  mean class {probe['val_mean_class_acc']:.1f}%  "
        f"train {probe['train_top1']:.1f}%  ({probe_s:.0f} s)"
        f"\nclip length {config['preprocessing']['num_frames']} frames at 5 fps"
    )
    assert config["preprocessing"]["num_frames"] == int(CHUNK_SECONDS * 5)  # from the data, not 50
    assert probe["val_top1"] >= 75.0 and probe["val_mean_class_acc"] >= 75.0
    assert tuned["val_top1"] >= probe["val_top1"] and tuned["val_mean_class_acc"] >= 75.0
