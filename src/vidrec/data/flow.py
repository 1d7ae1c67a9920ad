"""Optical flow for I3D's flow stream: TV-L1 between consecutive frames as in the paper (DIS as a
fast option), values clipped to [-20, 20] pixels and stored as uint8, one compressed array per
video, listed in a manifest. The manifest is a dataset CSV: `VideoClipDataset` reads the arrays
(through `vidrec.io.FlowReader`) as 2-channel clips, in [-1, 1] after the flow models'
normalisation (mean 0.5, std 0.5 of uint8 / 255)."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from multiprocessing import Pool

import numpy as np
from tqdm import tqdm

from vidrec.data.datasets import VideoRecord
from vidrec.errors import ConfigError, VidrecError
from vidrec.io import open_video
from vidrec.utils import atomic_write, atomic_write_text

METHODS = ("tvl1", "dis")
BOUND = 20.0  # pixels: flow is clipped to [-BOUND, BOUND] before quantising, as in I3D
MANIFEST = "manifest.csv"


def _cv2():
    try:
        import cv2
    except ImportError:
        raise VidrecError(
            "optical flow needs OpenCV with contrib modules: pip install opencv-contrib-python-headless"
        ) from None
    return cv2


def flow_estimator(method: str):
    """An OpenCV optical-flow estimator: 'tvl1' (the paper's) or 'dis' (fast)."""
    cv2 = _cv2()
    if method == "tvl1":
        return cv2.optflow.DualTVL1OpticalFlow_create()
    if method == "dis":
        return cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    raise ConfigError(f"unknown flow method '{method}' (valid: {', '.join(METHODS)})")


def resize_short_side_np(frame: np.ndarray, size: int) -> np.ndarray:
    """An `(H, W, C)` frame resized so its short side is `size` (OpenCV, area interpolation)."""
    cv2 = _cv2()
    h, w = frame.shape[:2]
    scale = size / min(h, w)
    return cv2.resize(
        frame, (max(size, round(w * scale)), max(size, round(h * scale))), interpolation=cv2.INTER_AREA
    )


def quantize(flow: np.ndarray) -> np.ndarray:
    """float pixels -> uint8: [-20, 20] maps linearly onto [0, 255]."""
    return np.rint((np.clip(flow, -BOUND, BOUND) + BOUND) * (255.0 / (2 * BOUND))).astype(np.uint8)


def dequantize(q: np.ndarray) -> np.ndarray:
    """uint8 -> flow scaled to [-1, 1] (pixels / 20)."""
    return q.astype(np.float32) / 127.5 - 1.0


def video_flow(path: str, *, method: str = "tvl1", short_side: int = 256) -> np.ndarray:
    """Quantised flow between consecutive frames: `(T-1, H, W, 2)` uint8 (x, y), computed on
    grayscale frames resized to `short_side` like the RGB stream."""
    cv2 = _cv2()
    estimator = flow_estimator(method)
    out, previous = [], None
    with open_video(path) as video:
        for frame in video.iter_frames():
            gray = cv2.cvtColor(resize_short_side_np(frame, short_side), cv2.COLOR_RGB2GRAY)
            if previous is not None:
                out.append(quantize(estimator.calc(previous, gray, None)))
            previous = gray
    if not out:
        raise VidrecError(f"{path}: needs at least 2 frames for optical flow")
    return np.stack(out)


def flow_file_name(video_path: str) -> str:
    """Unique per source path (datasets reuse file names across class folders)."""
    stem = os.path.splitext(os.path.basename(video_path.rstrip("/")))[0]
    digest = hashlib.sha1(os.path.abspath(video_path).encode()).hexdigest()[:10]
    return f"{stem}-{digest}.npz"


@dataclass(frozen=True)
class _Job:
    video: str
    target: str
    method: str
    short_side: int


def _flow_job(job: _Job) -> tuple[str, str | None]:
    if os.path.exists(job.target):
        return "kept", None
    try:
        flow = video_flow(job.video, method=job.method, short_side=job.short_side)
    except VidrecError as e:
        return "failed", str(e)
    atomic_write(job.target, lambda tmp: np.savez_compressed(tmp, flow=flow))
    return "made", None


def extract_flow(
    records: list[VideoRecord],
    out: str,
    *,
    classes: list[str] | None = None,
    method: str = "tvl1",
    short_side: int = 256,
    workers: int = 1,
    progress: bool = True,
) -> dict:
    """Compute flow for every record into `out/flow/*.npz` and write `out/manifest.csv`
    (`path,label` of the flow files, usable as a dataset CSV). Resumable; broken videos are
    reported in the result and left out of the manifest."""
    if method not in METHODS:
        raise ConfigError(f"unknown flow method '{method}' (valid: {', '.join(METHODS)})")
    os.makedirs(os.path.join(out, "flow"), exist_ok=True)
    jobs = [
        _Job(r.path, os.path.join(out, "flow", flow_file_name(r.path)), method, short_side) for r in records
    ]
    stats, failed, rows = {"made": 0, "kept": 0, "failed": 0}, [], []
    bar = tqdm(total=len(jobs), desc=f"flow ({method})", unit="video", disable=not progress)
    with Pool(workers) if workers > 1 else _Serial() as pool:
        for record, job, (status, reason) in zip(records, jobs, pool.imap(_flow_job, jobs)):
            stats[status] += 1
            bar.update()
            if reason:
                failed.append((record.path, reason))
                tqdm.write(f"error: {reason}")
            else:
                rows.append((os.path.relpath(job.target, out), record.label, record.path))
    bar.close()
    lines = ["path,label,video"] + [
        f"{p},{classes[label] if classes and label >= 0 else label},{v}" for p, label, v in rows
    ]
    atomic_write_text(os.path.join(out, MANIFEST), "\n".join(lines) + "\n")
    if classes:
        atomic_write_text(os.path.join(out, "classes.txt"), "\n".join(classes) + "\n")
    return {**stats, "failed_videos": failed}


class _Serial:
    """Pool's imap in this process, for workers=1."""

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def imap(self, fn, items):
        return map(fn, items)


def read_manifest(path: str) -> tuple[list[VideoRecord], list[str]]:
    """A flow manifest is a dataset CSV whose paths are .npz flow files."""
    from vidrec.data.datasets import load_csv

    return load_csv(path)
