"""AVA-style keyframe samples: a clip centred on a keyframe, the people's boxes on it and their
multi-label targets, with PySlowFast's sampling and transforms.

    keyframe (video_id, sec) -> centre frame (sec - start_sec) * fps
      clip: num_frames x sampling_rate frames centred on it, clamped to the video (PySlowFast)
      train: short side jittered in [resize, 1.25 resize], random crop_size square, flip; boxes
             moved with the pixels and clipped
      test:  the whole frame, short side test_crop_size (or resize); boxes scaled
    boxes: ground truth, plus (training) a person detector's boxes scored >= a threshold, labelled
           with the actions of the ground-truth box they overlap by IoU >= label_iou (else none)
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import av
import numpy as np
import torch
from torch.utils.data import Dataset

from vidrec.data.ava import AvaBox, box_iou
from vidrec.data.datasets import VIDEO_EXTENSIONS, Failed
from vidrec.data.preprocessing import Preprocessing
from vidrec.data.transforms import frames_to_clip, normalize, resize_short_side
from vidrec.errors import ConfigError, VidrecError
from vidrec.io import open_video
from vidrec.io.frames import IMAGE_EXTENSIONS


@dataclass(frozen=True)
class Keyframe:
    """One training or test sample: a keyframe of a video and the boxes on it."""

    path: str  # the video file
    video_id: str
    sec: int
    boxes: np.ndarray  # (K, 4) normalised x1, y1, x2, y2
    labels: np.ndarray  # (K, num_classes) float multi-hot (all zero: a box with no action)
    scores: np.ndarray  # (K,) detector scores (1 for ground truth)


def find_videos(folder: str) -> dict[str, str]:
    """video_id -> path, for every video file under `folder` (id: the name without extension) and
    every folder of frame images (id: the folder's name; PySlowFast's AVA frames/VIDEO_ID/*.jpg)."""
    if not os.path.isdir(folder):
        raise ConfigError(f"{folder}: no such video folder")
    found = {}
    for root, _, files in os.walk(folder):
        if root != folder and any(f.lower().endswith(IMAGE_EXTENSIONS) for f in files):
            found.setdefault(os.path.basename(root), root)
            continue
        for name in sorted(files):
            stem, ext = os.path.splitext(name)
            if ext.lower() in VIDEO_EXTENSIONS:
                found.setdefault(stem, os.path.join(root, name))
    return found


def build_keyframes(
    groundtruth: list[AvaBox],
    *,
    videos: dict[str, str],
    num_classes: int,
    detected: list[AvaBox] = (),
    use_groundtruth: bool = True,
    score_thresh: float = 0.8,
    label_iou: float = 0.9,
    excluded: set[str] = frozenset(),
) -> tuple[list[Keyframe], list[str]]:
    """Keyframes of every (video, sec) in `groundtruth` (and in `detected`), and the video ids
    that have no file (their keyframes are left out). Ground-truth rows of one person (same box)
    merge into one multi-hot row; detected boxes scored below `score_thresh` are dropped."""
    people: dict[str, dict[tuple, np.ndarray]] = {}
    for r in groundtruth:
        if r.key in excluded:
            continue
        if not 1 <= r.action_id <= num_classes:
            raise ConfigError(
                f"action id {r.action_id} of {r.key} is outside the label map's 1..{num_classes}"
            )
        row = people.setdefault(r.key, {}).setdefault(r.box, np.zeros(num_classes, np.float32))
        row[r.action_id - 1] = 1.0
    proposals: dict[str, list[AvaBox]] = {}
    for r in detected:
        if r.key not in excluded and (r.score is None or r.score >= score_thresh):
            proposals.setdefault(r.key, []).append(r)
    keys = dict.fromkeys([*people, *proposals])  # first-seen order
    out, missing = [], set()
    for key in keys:
        video_id, sec = key.rsplit(",", 1)
        if video_id not in videos:
            missing.add(video_id)
            continue
        truth = people.get(key, {})
        gt_boxes = np.array(list(truth), np.float32).reshape(-1, 4)
        gt_labels = np.array(list(truth.values()), np.float32).reshape(-1, num_classes)
        boxes = [gt_boxes] if use_groundtruth else []
        labels = [gt_labels] if use_groundtruth else []
        scores = [np.ones(len(gt_boxes), np.float32)] if use_groundtruth else []
        det = proposals.get(key, [])
        if det:
            det_boxes = np.array([r.box for r in det], np.float32)
            det_labels = np.zeros((len(det), num_classes), np.float32)
            if len(gt_boxes):
                with np.errstate(invalid="ignore", divide="ignore"):  # zero-area boxes: NaN, never a match
                    iou = box_iou(det_boxes, gt_boxes)
                best = iou.argmax(1)
                hit = iou[np.arange(len(det)), best] >= label_iou
                det_labels[hit] = gt_labels[best[hit]]
            boxes.append(det_boxes)
            labels.append(det_labels)
            scores.append(np.array([1.0 if r.score is None else r.score for r in det], np.float32))
        if boxes and sum(len(b) for b in boxes):
            out.append(
                Keyframe(
                    videos[video_id],
                    video_id,
                    int(sec),
                    np.concatenate(boxes),
                    np.concatenate(labels),
                    np.concatenate(scores),
                )
            )
    return out, sorted(missing)


def keyframe_indices(
    center: int, *, num_frames: int, sampling_rate: int, num_video_frames: int
) -> np.ndarray:
    """PySlowFast's `get_sequence`: `num_frames` indices `sampling_rate` apart, from
    `center - num_frames * sampling_rate // 2`, clamped to the video."""
    half = num_frames * sampling_rate // 2
    seq = np.arange(center - half, center + half, sampling_rate)[:num_frames]
    return np.clip(seq, 0, num_video_frames - 1)


def transform_clip_and_boxes(
    clip: torch.Tensor,
    boxes: np.ndarray,
    prep: Preprocessing,
    *,
    train: bool,
    rng: np.random.Generator | None,
) -> tuple[torch.Tensor, np.ndarray]:
    """uint8 `(C, T, H, W)` and normalised boxes -> the model's float clip and boxes in its pixels."""
    h, w = clip.shape[-2:]
    boxes = boxes * np.array([w, h, w, h], np.float32)
    if train:
        clip = resize_short_side(clip, int(rng.integers(prep.resize, round(prep.resize * 1.25) + 1)))
    else:
        clip = resize_short_side(clip, prep.test_crop_size or prep.resize)
    nh, nw = clip.shape[-2:]
    boxes = boxes * np.array([nw / w, nh / h, nw / w, nh / h], np.float32)
    if train:
        size = prep.crop_size
        top, left = int(rng.integers(0, nh - size + 1)), int(rng.integers(0, nw - size + 1))
        clip = clip[..., top : top + size, left : left + size]
        boxes = boxes - np.array([left, top, left, top], np.float32)
        nh = nw = size
        if prep.flip and rng.random() < 0.5:
            clip = clip.flip(-1)
            boxes = np.stack([nw - boxes[:, 2], boxes[:, 1], nw - boxes[:, 0], boxes[:, 3]], axis=1)
    boxes = np.clip(boxes, 0, [nw - 1, nh - 1, nw - 1, nh - 1]).astype(np.float32)  # clip_boxes_to_image
    return normalize(clip, prep.mean, prep.std, centering=prep.centering), boxes


class KeyframeDataset(Dataset):
    """Keyframe samples: `{"video": (C, T, H, W), "boxes": (K, 4) pixels, "labels": (K, classes),
    "scores", "key": (video_id, sec), "index"}`; a video that cannot be read gives `Failed`."""

    def __init__(
        self,
        keyframes: list[Keyframe],
        *,
        prep: Preprocessing,
        train: bool,
        fps: float | None = None,
        start_sec: float = 0.0,
        seed: int = 0,
    ):
        self.keyframes, self.prep, self.train = keyframes, prep, train
        self.fps, self.start_sec, self.seed, self.epoch = fps, start_sec, seed, 0

    def __len__(self) -> int:
        return len(self.keyframes)

    def set_epoch(self, epoch: int) -> None:
        """Other random crops and flips each epoch, reproducible for a seed and epoch."""
        self.epoch = epoch

    def __getitem__(self, i: int) -> dict | Failed:
        k = self.keyframes[i]
        try:
            with open_video(k.path, fps=self.fps or 30.0) as video:  # frame folders: at `fps`
                fps = self.fps or video.info.fps
                center = round((k.sec - self.start_sec) * fps)
                if not 0 <= center < len(video):
                    raise VidrecError(
                        f"keyframe {k.sec} s is frame {center}, outside its {len(video)} frames"
                    )
                p = self.prep
                idx = keyframe_indices(
                    center,
                    num_frames=p.num_frames,
                    sampling_rate=p.sampling_rate,
                    num_video_frames=len(video),
                )
                clip = frames_to_clip(video.get_frames(idx))
            rng = np.random.default_rng([self.seed, self.epoch, i]) if self.train else None
            clip, boxes = transform_clip_and_boxes(clip, k.boxes, p, train=self.train, rng=rng)
        except (VidrecError, OSError, av.FFmpegError) as e:
            return Failed(k.path, str(e).replace(k.path + ": ", ""))
        return {
            "video": clip,
            "boxes": torch.from_numpy(boxes),
            "labels": torch.from_numpy(k.labels),
            "scores": torch.from_numpy(k.scores),
            "key": (k.video_id, k.sec),
            "index": i,
        }


def collate_keyframes(items: list[dict | Failed]) -> dict:
    """Clips stacked (padded at the bottom and right to the largest in the batch: test frames keep
    their aspect ratio), boxes as `(K, 5)` rows led by their clip's index in the batch."""
    ok = [x for x in items if not isinstance(x, Failed)]
    failed = [x for x in items if isinstance(x, Failed)]
    if not ok:
        return {"video": None, "failed": failed}
    h = max(x["video"].shape[-2] for x in ok)
    w = max(x["video"].shape[-1] for x in ok)
    video = torch.zeros(len(ok), *ok[0]["video"].shape[:2], h, w)
    for b, x in enumerate(ok):
        video[b, ..., : x["video"].shape[-2], : x["video"].shape[-1]] = x["video"]
    boxes = torch.cat(
        [torch.cat([torch.full((len(x["boxes"]), 1), float(b)), x["boxes"]], 1) for b, x in enumerate(ok)]
    )
    return {
        "video": video,
        "boxes": boxes,  # (K, 5)
        "labels": torch.cat([x["labels"] for x in ok]),  # (K, classes)
        "scores": torch.cat([x["scores"] for x in ok]),
        "keys": [x["key"] for x in ok],
        "index": torch.tensor([x["index"] for x in ok], dtype=torch.long),
        "failed": failed,
    }
