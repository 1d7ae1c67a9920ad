"""Action detection in the engine (`task: detection`): the AVA-style data of a run config, the
loss, and evaluation with the official frame-mAP (detections CSV, per-class AP table, a PNG).

Class ids of the label map are the model's outputs: id i is output i - 1, so a model trained on
AVA's 80 classes is scored on the 60 of `eval_labels`, as PySlowFast does."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw
from torch.utils.data import DataLoader
from tqdm import tqdm

from vidrec.data.ava import (
    ActionLabel,
    AvaBox,
    proposals_to_boxes,
    read_boxes,
    read_excluded,
    read_label_map,
    read_proposals,
    write_boxes,
)
from vidrec.data.ava_dataset import (
    Keyframe,
    KeyframeDataset,
    build_keyframes,
    collate_keyframes,
    find_videos,
)
from vidrec.distributed import Dist, gather_objects
from vidrec.errors import ConfigError
from vidrec.io import open_video
from vidrec.metrics.ava import frame_map
from vidrec.models.base import DetectionModel
from vidrec.train.config import RunConfig
from vidrec.utils import atomic_write, atomic_write_text

DETECTIONS_NAME = "detections.csv"
AP_TABLE_NAME = "ap_table.md"
REPORT_NAME = "test_report.json"
PICTURE_NAME = "detections.png"


@dataclass
class DetectionData:
    """A run's AVA-style splits: keyframes to train on, keyframes and ground truth to score."""

    labels: list[ActionLabel]  # the label map (model outputs: ids 1..num_classes)
    eval_labels: list[ActionLabel]  # the classes scored
    num_classes: int
    train: list[Keyframe]
    splits: dict[str, tuple[list[Keyframe], list[AvaBox]]]  # "val"/"test" -> (keyframes, ground truth)
    excluded: set[str]

    @property
    def class_names(self) -> list[str]:
        """The model's class names in output order (id i at i - 1; "class i" for ids not in the map)."""
        names = {lab.id: lab.name for lab in self.labels}
        return [names.get(i, f"class {i}") for i in range(1, self.num_classes + 1)]


def _gt_path(cfg: RunConfig, split: str) -> str | None:
    """data.<split>, or <split>.csv in data.train when that is a folder (as vidrec synth-ava writes)."""
    path = getattr(cfg.data, split)
    if path is not None and not os.path.isdir(path):
        return path
    folder = path or (cfg.data.train if cfg.data.train and os.path.isdir(cfg.data.train) else None)
    if folder is None:
        return None
    path = os.path.join(folder, f"{split}.csv")
    return path if os.path.exists(path) or split == "train" else None


def read_person_boxes(path: str) -> list[AvaBox]:
    """A person detector's boxes: an AVA-style CSV, or mmaction2's dense proposals `.pkl` (read by
    an unpickler that admits nothing but dicts and arrays)."""
    if path.endswith(".pkl"):
        return proposals_to_boxes(read_proposals(path))
    return read_boxes(path, kind="boxes")


def load_detection_data(cfg: RunConfig, *, log=tqdm.write, need_train: bool = True) -> DetectionData:
    """Keyframes and ground truth from `data.train/val/test` and the `detection:` section."""
    d = cfg.detection
    labels = read_label_map(d.labels)
    eval_labels = read_label_map(d.eval_labels) if d.eval_labels else labels
    num_classes = max(lab.id for lab in labels)
    unknown = sorted({lab.id for lab in eval_labels} - {lab.id for lab in labels})
    if unknown:
        raise ConfigError(f"detection.eval_labels has ids {unknown[:5]} that detection.labels lacks")
    videos = find_videos(d.videos)
    excluded = read_excluded(d.excluded) if d.excluded else set()
    common = dict(videos=videos, num_classes=num_classes, excluded=excluded)

    def keyframes(name: str, path: str, **options) -> list[Keyframe]:
        found, missing = build_keyframes(read_boxes(path, kind="gt"), **common, **options)
        if missing:
            log(
                f"{path}: {len(missing)} videos not under {d.videos} (e.g. {missing[0]}): "
                "their keyframes are skipped"
            )
        if not found:
            raise ConfigError(f"{path}: no {name} keyframe with a video under {d.videos}")
        return found

    train = []
    if need_train:
        path = _gt_path(cfg, "train")
        if path is None or not os.path.isfile(path):
            raise ConfigError(f"data.train: {path}: no ground-truth CSV")
        detected = [row for p in d.train_boxes for row in read_person_boxes(p)]
        train = keyframes(
            "training",
            path,
            detected=detected,
            use_groundtruth=d.train_gt_boxes,
            score_thresh=d.score_thresh,
            label_iou=d.label_iou,
        )
    splits = {}
    for split in ("val", "test"):
        path = _gt_path(cfg, split)
        if path is None:
            continue
        if d.test_boxes == "gt":
            found = keyframes(split, path)
        else:
            found = keyframes(
                split,
                path,
                detected=read_person_boxes(d.test_boxes),
                use_groundtruth=False,
                score_thresh=d.score_thresh,
            )
        splits[split] = (found, read_boxes(path, kind="gt"))
    return DetectionData(labels, eval_labels, num_classes, train, splits, excluded)


def keyframe_dataset(cfg: RunConfig, keyframes: list[Keyframe], prep, *, train: bool) -> KeyframeDataset:
    """The keyframe samples of a run: its clock (`detection.fps`, `start_sec`) and seed."""
    d = cfg.detection
    return KeyframeDataset(
        keyframes, prep=prep, train=train, fps=d.fps, start_sec=d.start_sec, seed=cfg.run.seed
    )


def detection_loss(net, batch: dict, device) -> tuple[torch.Tensor, int]:
    """BCE on the multi-label targets of every box (mean over boxes and classes, as PySlowFast)."""
    logits = net(batch["video"].to(device), batch["boxes"].to(device))
    return F.binary_cross_entropy_with_logits(logits.float(), batch["labels"].to(device)), len(logits)


@torch.no_grad()
def detect(
    model: DetectionModel,
    dataset: KeyframeDataset,
    *,
    batch_size: int = 4,
    workers: int = 0,
    device="cpu",
    dist: Dist = Dist(),
    progress: bool = True,
    desc: str = "detect",
) -> tuple[list[AvaBox], list[dict]]:
    """Every box of every keyframe scored for every class (official detection rows, normalised
    boxes), and the keyframes that could not be read."""
    shard = list(range(dist.rank, len(dataset), dist.world))
    loader = DataLoader(
        torch.utils.data.Subset(dataset, shard),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=collate_keyframes,
    )
    model.eval().to(device)
    rows, failed = [], []
    for batch in tqdm(loader, desc=desc, unit="batch", disable=not progress, leave=False):
        failed += [{"path": f.path, "reason": f.reason} for f in batch["failed"]]
        if batch["video"] is None:
            continue
        scores = torch.sigmoid(model(batch["video"].to(device), batch["boxes"].to(device)).float()).cpu()
        start = 0
        for i in batch["index"].tolist():
            k = dataset.keyframes[i]  # the dataset's own index (the Subset passes it through)
            for box, s in zip(k.boxes, scores[start : start + len(k.boxes)]):
                for c, value in enumerate(s.tolist()):
                    rows.append(AvaBox(k.video_id, k.sec, tuple(map(float, box)), c + 1, None, value))
            start += len(k.boxes)
    if dist.enabled:
        parts = gather_objects((rows, failed), dist)
        rows = [r for part, _ in parts for r in part]
        failed = [f for _, fails in parts for f in fails]
    return rows, failed


def evaluate_detection(
    model: DetectionModel,
    data: DetectionData,
    split: str,
    dataset: KeyframeDataset,
    *,
    out: str | None = None,
    **detect_options,
) -> dict:
    """Frame-mAP of `model` on a split; with `out`, also the detections CSV, the per-class AP
    table, the report JSON and a PNG of a few keyframes with their boxes."""
    keyframes, truth = data.splits[split]
    rows, failed = detect(model, dataset, **detect_options)
    result = frame_map(truth, rows, data.eval_labels, excluded=data.excluded)
    report = {**result.to_dict(), "num_keyframes": len(keyframes), "failed": failed}
    if out is not None and detect_options.get("dist", Dist()).main:
        os.makedirs(out, exist_ok=True)
        write_boxes(os.path.join(out, DETECTIONS_NAME), rows, kind="detections")
        atomic_write_text(os.path.join(out, AP_TABLE_NAME), ap_table(result, data.eval_labels))
        atomic_write_text(os.path.join(out, REPORT_NAME), json.dumps(report, indent=1) + "\n")
        draw_keyframes(
            keyframes[:6],
            rows,
            truth,
            data,
            os.path.join(out, PICTURE_NAME),
            fps=dataset.fps,
            start_sec=dataset.start_sec,
        )
    return report


def ap_table(result, labels: list[ActionLabel]) -> str:
    """Markdown: frame-mAP, each group's mean and each class's AP with its ground-truth count."""
    lines = [f"frame-mAP@0.5IOU: **{100 * result.mAP:.1f}** over {result.num_frames} keyframes", ""]
    if result.groups:
        lines += ["| group | mAP |", "|---|---|"]
        lines += [f"| {g} | {'n/a' if v != v else f'{100 * v:.1f}'} |" for g, v in result.groups.items()]
        lines.append("")
    lines += ["| id | class | AP | ground-truth boxes |", "|---|---|---|---|"]
    for lab in labels:
        ap = result.per_class[lab.name]
        shown = "n/a" if ap != ap else f"{100 * ap:.1f}"
        lines.append(f"| {lab.id} | {lab.name} | {shown} | {result.num_gt[lab.name]} |")
    return "\n".join(lines) + "\n"


def draw_keyframes(
    keyframes: list[Keyframe],
    rows: list[AvaBox],
    truth: list[AvaBox],
    data: DetectionData,
    png: str,
    *,
    fps: float | None,
    start_sec: float,
    threshold: float = 0.5,
) -> None:
    """Keyframes side by side: ground-truth boxes green with their actions, predicted actions
    (score >= threshold) red under each scored box."""
    names = data.class_names
    tiles = []
    for k in keyframes:
        with open_video(k.path, fps=fps or 30.0) as video:
            frame = video.get_frames(
                [min(len(video) - 1, round((k.sec - start_sec) * (fps or video.info.fps)))]
            )[0]
        scale = max(1, 256 // min(frame.shape[:2]))
        img = Image.fromarray(frame).resize((frame.shape[1] * scale, frame.shape[0] * scale), Image.NEAREST)
        draw, (w, h) = ImageDraw.Draw(img), img.size
        for r in truth:
            if (r.video_id, r.sec) == (k.video_id, k.sec):
                box = [r.box[0] * w, r.box[1] * h, r.box[2] * w, r.box[3] * h]
                draw.rectangle(box, outline=(0, 220, 0))
                draw.text((box[0] + 1, box[1] + 1), names[r.action_id - 1][:14], fill=(0, 220, 0))
        predicted: dict[tuple, list[str]] = {}
        for r in rows:
            if (r.video_id, r.sec) == (k.video_id, k.sec) and r.score >= threshold:
                predicted.setdefault(r.box, []).append(names[r.action_id - 1][:14])
        for box, found in predicted.items():
            px = [box[0] * w, box[1] * h, box[2] * w, box[3] * h]
            draw.rectangle(px, outline=(230, 30, 30))
            draw.text((px[0] + 1, px[3] + 1), ", ".join(found), fill=(230, 30, 30))
        tiles.append(np.asarray(img))
    if not tiles:
        return
    height = max(t.shape[0] for t in tiles)
    row = np.concatenate([np.pad(t, ((0, height - t.shape[0]), (0, 4), (0, 0))) for t in tiles], axis=1)
    atomic_write(png, lambda tmp: Image.fromarray(row).save(tmp, format="PNG"))


def evaluate_run(
    cfg: RunConfig,
    *,
    model_source: str | None = None,
    device="cpu",
    batch_size: int = 4,
    workers: int = 0,
    progress: bool = True,
) -> tuple[dict, str]:
    """`vidrec eval CONFIG` for task detection: the run's model (or `model_source`) on its test
    split (else val), with the detections CSV, AP table, report and PNG in `run.out/eval`."""
    from vidrec.models.loader import load_model

    data = load_detection_data(cfg, need_train=False)
    split = "test" if "test" in data.splits else "val" if "val" in data.splits else None
    if split is None:
        raise ConfigError("no data.test or data.val ground truth to evaluate on")
    model = load_model(model_source or cfg.run.out, device=device)
    if not isinstance(model, DetectionModel):
        raise ConfigError(f"{model_source or cfg.run.out} holds a {model.arch}, not an action detector")
    out = os.path.join(cfg.run.out, "eval")
    dataset = keyframe_dataset(cfg, data.splits[split][0], model.preprocessing, train=False)
    report = evaluate_detection(
        model,
        data,
        split,
        dataset,
        out=out,
        batch_size=batch_size,
        workers=workers,
        device=device,
        progress=progress,
        desc=split,
    )
    return {**report, "split": split}, out
