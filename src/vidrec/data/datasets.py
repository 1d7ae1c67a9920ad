"""Annotation formats and the clip dataset.

- a CSV or list of `path,label` (or MMAction2's `path label`);
- Kinetics' own CSV (`label,youtube_id,time_start,time_end,split`; Kinetics-400/600/700), whose
  videos are found by name (`YOUTUBEID_000014_000024.mp4` or `YOUTUBEID.mp4`) under a folder;
- a folder per class;
- Something-Something V2's JSON: `labels.json` (template -> index) beside `train.json` /
  `validation.json` (`{"id", "template", "label", "placeholders"}` items), videos `ID.webm`.

The A broken video never stops training: the dataset returns a `Failed` record, the
collate function drops it, and the loop counts and reports it at the end of the epoch."""

from __future__ import annotations

import csv
import functools
import json
import os
import sys
from dataclasses import dataclass

import av
import numpy as np
import torch
from torch.utils.data import Dataset

from vidrec.data.preprocessing import Preprocessing
from vidrec.data.sampling import random_clip_indices, uniform_clip_indices
from vidrec.data.transforms import EvalTransform, TrainTransform, frames_to_clip
from vidrec.errors import ConfigError, VidrecError
from vidrec.io import open_video
from vidrec.io.cache import DecodedCache
from vidrec.io.video import VIDEO_EXTENSIONS


@dataclass(frozen=True)
class VideoRecord:
    """One labelled video: a file or a frame folder, and its class index."""

    path: str  # a video file or a directory of frames
    label: int  # class index; -1 when unlabelled (test splits)


@dataclass(frozen=True)
class Failed:
    """A sample that could not be loaded, carried through the DataLoader to be counted."""

    path: str
    reason: str


def _read_classes_file(path: str) -> list[str]:
    with open(path) as f:
        return [line.strip() for line in f if line.strip()]


def _split_row(line: str) -> list[str]:
    # "path,label" (Kinetics CSV) or "path label" (MMAction2 lists); paths may contain spaces in CSV.
    if "," in line:
        return next(csv.reader([line]))
    return line.rsplit(None, 1)


# Each split's file in a dataset folder, in the order they are looked for: ours, Kinetics' own
# (validate.csv) and Something-Something V2's (validation.json; its test.json has no labels).
SPLIT_FILES = {
    "train": ("train.csv", "train.json"),
    "val": ("val.csv", "validate.csv", "validation.json"),
    "test": ("test.csv",),
}
SSV2_VIDEO_FOLDERS = ("20bn-something-something-v2", "videos")  # beside labels.json, else its folder


def split_file(folder: str, split: str) -> str | None:
    """The annotation file of `split` ("train", "val", "test") in a dataset folder, if it has one."""
    for name in SPLIT_FILES[split]:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    return None


@functools.lru_cache(maxsize=4)
def _video_index(root: str) -> dict[str, str]:
    """Every video under `root` by file name without extension (the first found of a name); walked
    once for a dataset's train, val and test files (Kinetics-700: 650,000 videos). Read only."""
    found: dict[str, str] = {}
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            if name.lower().endswith(VIDEO_EXTENSIONS):
                found.setdefault(os.path.splitext(name)[0], os.path.join(folder, name))
    return found


def _load_kinetics(
    csv_path: str, rows: list[list[str]], classes: list[str] | None, videos: str | None
) -> tuple[list[VideoRecord], list[str]]:
    """Kinetics' own CSV (header `label,youtube_id,time_start,time_end,split`; test files have no
    label) with its videos found by name under `videos` (default: the CSV's folder). Videos that
    are not there (Kinetics loses some every year) are left out with one warning."""
    header = [c.strip().lower() for c in rows[0]]
    col = {name: j for j, name in enumerate(header)}
    for key in ("youtube_id", "time_start", "time_end"):
        if key not in col:
            raise ConfigError(
                f"{csv_path}: a Kinetics CSV needs a '{key}' column (header: {','.join(header)})"
            )
    rows = rows[1:]
    for n, row in enumerate(rows, 2):
        if len(row) != len(header):
            raise ConfigError(f"{csv_path}: line {n} has {len(row)} fields, the header {len(header)}")
    labels = [row[col["label"]].strip() for row in rows] if "label" in col else None
    if classes is None:
        beside = os.path.join(os.path.dirname(os.path.abspath(csv_path)), "classes.txt")
        classes = _read_classes_file(beside) if os.path.exists(beside) else sorted(set(labels or []))
    index = {name: i for i, name in enumerate(classes)}
    root = videos or os.path.dirname(os.path.abspath(csv_path))
    found, records, missing = _video_index(root), [], 0
    for n, row in enumerate(rows):
        youtube_id = row[col["youtube_id"]].strip()
        try:
            start, end = (int(float(row[col[k]])) for k in ("time_start", "time_end"))
        except ValueError:
            raise ConfigError(f"{csv_path}: line {n + 2}: time_start / time_end are not numbers") from None
        path = found.get(f"{youtube_id}_{start:06d}_{end:06d}") or found.get(youtube_id)
        if path is None:
            missing += 1
            continue
        label = -1
        if labels is not None:
            if labels[n] not in index:
                raise ConfigError(
                    f"{csv_path}: unknown label '{labels[n]}' (not in the {len(classes)} classes)"
                )
            label = index[labels[n]]
        records.append(VideoRecord(path, label))
    if missing:
        print(
            f"warning: {csv_path}: {missing} of {len(rows)} videos are not under {root} "
            "(YOUTUBEID_START_END.mp4 or YOUTUBEID.mp4): left out",
            file=sys.stderr,
        )
    return records, list(classes)


def load_csv(
    csv_path: str, *, classes: list[str] | None = None, videos: str | None = None
) -> tuple[list[VideoRecord], list[str]]:
    """Rows of `path,label` (label a class name or index); relative paths are relative to the CSV.
    Class names come from `classes`, else a `classes.txt` beside the CSV, else the sorted names.
    Kinetics' own CSV (a `youtube_id` column) finds its videos under `videos` (see _load_kinetics)."""
    if not os.path.isfile(csv_path):
        raise ConfigError(f"{csv_path}: no such annotation file")
    root = os.path.dirname(os.path.abspath(csv_path))
    with open(csv_path) as f:
        rows = [_split_row(line.strip()) for line in f if line.strip()]
    if rows and "youtube_id" in [c.strip().lower() for c in rows[0]]:
        return _load_kinetics(csv_path, rows, classes, videos)
    if rows and [c.strip().lower() for c in rows[0][:2]] == ["path", "label"]:
        rows = rows[1:]
    for n, row in enumerate(rows, 1):
        if len(row) < 2:
            raise ConfigError(f"{csv_path}: row {n} is not 'path,label': {row}")
    rows = [row[:2] for row in rows]  # extra columns (e.g. a flow manifest's source video) are ignored
    if classes is None and os.path.exists(os.path.join(root, "classes.txt")):
        classes = _read_classes_file(os.path.join(root, "classes.txt"))
    labels = [row[1].strip() for row in rows]
    numeric = all(lab.lstrip("-").isdigit() for lab in labels)
    if classes is None:
        classes = (
            [str(i) for i in range(max(map(int, labels)) + 1)] if numeric and labels else sorted(set(labels))
        )
    index = {name: i for i, name in enumerate(classes)}
    records = []
    for (path, _), lab in zip(rows, labels):
        if numeric:
            label = int(lab)
            if not -1 <= label < len(classes):
                raise ConfigError(f"{csv_path}: label {label} out of range for {len(classes)} classes")
        elif lab in index:
            label = index[lab]
        else:
            raise ConfigError(f"{csv_path}: unknown label '{lab}' (not in the {len(classes)} classes)")
        records.append(VideoRecord(os.path.join(root, path.strip()), label))
    return records, list(classes)


def load_folder(root: str) -> tuple[list[VideoRecord], list[str]]:
    """`root/CLASS/video.mp4` or `root/CLASS/VIDEO_ID/` (frame folders); classes sorted by name."""
    if not os.path.isdir(root):
        raise ConfigError(f"{root}: no such directory")
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    if not classes:
        raise ConfigError(f"{root}: no class folders")
    records = []
    for label, name in enumerate(classes):
        for entry in sorted(os.listdir(os.path.join(root, name))):
            path = os.path.join(root, name, entry)
            if os.path.isdir(path) or entry.lower().endswith(VIDEO_EXTENSIONS):
                records.append(VideoRecord(path, label))
    return records, classes


def load_ssv2(
    labels_json: str, split_json: str, video_dir: str, *, ext: str = ".webm"
) -> tuple[list[VideoRecord], list[str]]:
    """Something-Something V2: `labels.json` maps template -> index; a split file lists
    `{"id", "template", ...}`; videos are `video_dir/ID.webm` (or frame folders `video_dir/ID/`)."""
    with open(labels_json) as f:
        mapping = json.load(f)
    classes = [name for name, _ in sorted(mapping.items(), key=lambda kv: int(kv[1]))]
    index = {name: int(i) for name, i in mapping.items()}
    with open(split_json) as f:
        items = json.load(f)
    records = []
    for item in items:
        # The split files mark the objects with brackets: "Putting [something] on [something]".
        template = item.get("template", "").replace("[", "").replace("]", "")
        if template and template not in index:
            raise ConfigError(f"{split_json}: template '{template}' is not in {labels_json}")
        path = os.path.join(video_dir, str(item["id"]))
        if not os.path.isdir(path):
            path += ext
        records.append(VideoRecord(path, index[template] if template else -1))
    return records, classes


def load_ssv2_split(
    split_json: str, *, classes: list[str] | None = None, videos: str | None = None
) -> tuple[list[VideoRecord], list[str]]:
    """A Something-Something V2 split file with the `labels.json` beside it; videos under
    `videos`, else the first of SSV2_VIDEO_FOLDERS beside the JSON, else its own folder. With
    `classes` (a model's labels), the labels are indices into those."""
    folder = os.path.dirname(os.path.abspath(split_json))
    labels_json = os.path.join(folder, "labels.json")
    if not os.path.isfile(labels_json):
        raise ConfigError(
            f"{split_json}: no labels.json beside it (Something-Something V2's template -> index)"
        )
    if videos is None:
        videos = next(
            (p for p in (os.path.join(folder, d) for d in SSV2_VIDEO_FOLDERS) if os.path.isdir(p)), folder
        )
    try:
        records, own = load_ssv2(labels_json, split_json, videos)
    except (json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as e:
        raise ConfigError(
            f"{split_json}: not a Something-Something V2 split with {labels_json} ({e})"
        ) from None
    if classes is None or classes == own:
        return records, own
    return _relabel(records, own, classes, labels_json), list(classes)


def _relabel(
    records: list[VideoRecord], found: list[str], classes: list[str], source: str
) -> list[VideoRecord]:
    """`records` labelled by index into `found` (the source's class names), relabelled by index
    into `classes`; unlabelled ones (-1) stay so. Names not in `classes` fail in one line."""
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise ConfigError(f"{source}: classes {unknown[:5]} are not among the {len(classes)} labels expected")
    index = {name: i for i, name in enumerate(classes)}
    return [VideoRecord(r.path, index[found[r.label]] if r.label >= 0 else -1) for r in records]


def load_annotations(
    source: str, *, classes: list[str] | None = None, videos: str | None = None
) -> tuple[list[VideoRecord], list[str]]:
    """A CSV/TXT list (ours or Kinetics'), a Something-Something V2 JSON split, or a
    folder-per-class directory. `classes` fixes the label order (a CSV's or JSON's names are read
    against them); `videos` is where a Kinetics CSV's or an SSv2 split's videos are."""
    if os.path.isdir(source):
        return load_folder(source)
    if source.lower().endswith(".json"):
        return load_ssv2_split(source, classes=classes, videos=videos)
    return load_csv(source, classes=classes, videos=videos)


def load_labelled(source: str, *, classes: list[str] | None = None) -> list[VideoRecord]:
    """Labelled records whose labels index `classes` (a model's labels) when given: a CSV's label
    names are read against them, and a folder-per-class directory's folders are put in their
    order. Without `classes`, the source's own order."""
    if classes and os.path.isfile(source):
        return load_annotations(source, classes=classes)[0]
    records, found = load_annotations(source)
    return _relabel(records, found, classes, source) if classes else records


class VideoClipDataset(Dataset):
    """Clips for training (one random clip, augmented: `(C, T, H, W)`) or testing (every view:
    `(num_clips * num_crops, C, T, H, W)`), with the model's preprocessing."""

    def __init__(
        self,
        records: list[VideoRecord],
        *,
        prep: Preprocessing,
        train: bool,
        num_clips: int = 1,
        num_crops: int = 1,
        flip: bool | None = None,
        seed: int = 0,
        frames_fps: float = 30.0,
        cache: str | None = None,
        mirror: list[int | None] | None = None,
    ):
        self.records, self.prep, self.train = records, prep, train
        # Training with flips: label -> its class mirrored (vidrec.data.mirror; None: never flip).
        self.mirror = mirror if train and (prep.flip if flip is None else flip) else None
        self.cache = DecodedCache(cache, fps=frames_fps) if cache else None
        self.num_clips, self.seed, self.epoch, self.frames_fps = num_clips, seed, 0, frames_fps
        self.train_transform = TrainTransform(prep, flip=flip)
        self.eval_transform = EvalTransform(prep, num_crops=num_crops)

    def __len__(self) -> int:
        return len(self.records)

    def set_epoch(self, epoch: int) -> None:
        """Different random clips each epoch, reproducible for a seed and epoch."""
        self.epoch = epoch

    def __getitem__(self, i: int) -> dict | Failed:
        record, label, flip = self.records[i], self.records[i].label, None
        if self.mirror is not None and label >= 0 and self.mirror[label] != label:
            # a label naming a direction: flipped only with its mirrored class, which it becomes
            coin = np.random.default_rng([self.seed, self.epoch, i, 1]).random()
            flip = self.mirror[label] is not None and bool(coin < 0.5)
            label = self.mirror[label] if flip else label
        try:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            return {"video": self.load(record.path, rng=rng, flip=flip), "label": label, "index": i}
        except (VidrecError, OSError, av.FFmpegError) as e:
            return Failed(record.path, str(e).replace(record.path + ": ", ""))

    def open(self, path: str):
        """The frame source for a record (a video file or a frame folder; flow files in subclasses),
        through the decoded-frame cache when there is one."""
        return self.cache.open(path) if self.cache else open_video(path, fps=self.frames_fps)

    def load(self, path: str, *, rng: np.random.Generator, flip: bool | None = None) -> torch.Tensor:
        """The clip (training: flipped as `flip` says, None at random) or every test view of the
        video at `path`."""
        with self.open(path) as video:
            n, sampling = len(video), self.prep.sampling
            stamps = video.timestamps if sampling.target_fps else None
            if self.train:
                idx = random_clip_indices(n, sampling, rng=rng, timestamps=stamps)
                return self.train_transform(frames_to_clip(video.get_frames(idx)), rng, flip=flip)
            idx = uniform_clip_indices(n, sampling, num_clips=self.num_clips, timestamps=stamps)
            frames = video.get_frames(idx.reshape(-1))  # one decoding pass for every clip
        clips = frames.reshape(self.num_clips, self.prep.num_frames, *frames.shape[1:])
        views = [self.eval_transform(frames_to_clip(c)) for c in clips]  # each (K, C, T, h, w)
        return torch.cat(views)  # (N*K, C, T, h, w)


def collate_clips(items: list[dict | Failed]) -> dict:
    """Stack the samples that loaded; keep the failures for the epoch's report."""
    ok = [x for x in items if not isinstance(x, Failed)]
    if ok and isinstance(ok[0]["video"], tuple):  # one tensor per stream (two-stream models)
        video = tuple(torch.stack(streams) for streams in zip(*(x["video"] for x in ok)))
    else:
        video = torch.stack([x["video"] for x in ok]) if ok else None
    return {
        "video": video,
        "label": torch.tensor([x["label"] for x in ok], dtype=torch.long),
        "index": torch.tensor([x["index"] for x in ok], dtype=torch.long),
        "failed": [x for x in items if isinstance(x, Failed)],
    }
