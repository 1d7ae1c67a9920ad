"""Video-level evaluation with multi-view testing: N temporal clips x K spatial crops per video,
class probabilities averaged over the views, then top-1 / top-5 / mean class accuracy."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from vidrec.data.datasets import VideoClipDataset, VideoRecord, collate_clips
from vidrec.data.two_stream import TwoStreamDataset
from vidrec.distributed import Dist, gather_objects
from vidrec.metrics.classification import accuracy_metrics, confusion_matrix
from vidrec.models.base import ModelBase, TwoStreamModel

Views = torch.Tensor | tuple[torch.Tensor, ...]  # (B, V, C, T, H, W), or one such per input stream


def per_view(fn, views: Views, *, max_clips: int = 32) -> torch.Tensor:
    """`fn` on every view of `views` `(B, V, C, T, H, W)` (a tuple of them for a multi-input
    model), at most `max_clips` at a time -> `(B, V, ...)` float."""
    streams = views if isinstance(views, tuple) else (views,)
    b, v = streams[0].shape[:2]
    chunks = zip(*(s.flatten(0, 1).split(max_clips) for s in streams))  # (<=max_clips, C, T, H, W) each
    out = torch.cat([fn(chunk if isinstance(views, tuple) else chunk[0]) for chunk in chunks])
    return out.float().view(b, v, *out.shape[1:])


@torch.no_grad()
def video_scores(model: ModelBase, views: Views, *, max_clips: int = 32) -> torch.Tensor:
    """Views `(B, V, C, T, H, W)` (a tuple of them for a multi-input model) -> class
    probabilities averaged over the views `(B, num_classes)`."""
    return per_view(model, views, max_clips=max_clips).softmax(-1).mean(1)


def eval_dataset(
    model: ModelBase,
    records: list[VideoRecord],
    *,
    num_clips: int = 1,
    num_crops: int = 1,
    flow_dir: str | None = None,
) -> VideoClipDataset:
    """The test views a model needs: clips for one network, clips and flow for a two-stream one."""
    if isinstance(model, TwoStreamModel):
        return TwoStreamDataset(
            records,
            rgb_prep=model.rgb.preprocessing,
            flow_prep=model.flow.preprocessing,
            flow_method=model.flow_method,
            flow_short_side=model.flow_short_side,
            num_clips=num_clips,
            num_crops=num_crops,
            flow_dir=flow_dir,
        )
    return VideoClipDataset(
        records, prep=model.preprocessing, train=False, num_clips=num_clips, num_crops=num_crops
    )


def score_views(model: ModelBase, views: Views, device) -> torch.Tensor:
    """Video-level probabilities `(B, num_classes)` from a batch of views on `device`."""
    views = tuple(v.to(device) for v in views) if isinstance(views, (tuple, list)) else views.to(device)
    return video_scores(model, views)


def evaluate(
    model: ModelBase,
    records: list[VideoRecord],
    *,
    num_clips: int = 1,
    num_crops: int = 1,
    batch_size: int = 4,
    workers: int = 0,
    device: torch.device | str = "cpu",
    progress: bool = True,
    desc: str = "eval",
    flow_dir: str | None = None,
    dist: Dist = Dist(),
    details: bool = False,
) -> dict:
    """Evaluate on labelled records; broken videos are skipped and listed in `failed`.

    Under torchrun each rank scores every world-th video and the scores are gathered by index, so
    the metrics count each video exactly once. `details=True` adds per-class accuracy, the
    confusion matrix and each video's prediction."""
    shard = list(range(dist.rank, len(records), dist.world))
    dataset = eval_dataset(
        model, [records[i] for i in shard], num_clips=num_clips, num_crops=num_crops, flow_dir=flow_dir
    )
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate_clips)
    model.eval().to(device)
    found: dict[int, torch.Tensor] = {}
    failed = []
    for batch in tqdm(loader, desc=desc, unit="batch", disable=not progress, leave=False):
        failed += [{"path": f.path, "reason": f.reason} for f in batch["failed"]]
        if batch["video"] is not None:
            for i, s in zip(batch["index"].tolist(), score_views(model, batch["video"], device).cpu()):
                found[shard[i]] = s
    if dist.enabled:
        found_here, failed_here = found, failed
        found, failed = {}, []
        for part, fails in gather_objects((found_here, failed_here), dist):
            found.update(part)
            failed += fails
    order = sorted(found)
    scores = torch.stack([found[i] for i in order]) if order else torch.zeros(0, model.num_classes)
    labels = torch.tensor([records[i].label for i in order], dtype=torch.long)
    result = {
        **accuracy_metrics(scores, labels, model.num_classes),
        "num_videos": len(order),
        "num_views": num_clips * num_crops,
        "failed": failed,
    }
    if details and order:
        names = model.class_names
        matrix = confusion_matrix(scores, labels, model.num_classes)
        totals = matrix.sum(1)
        result["per_class_acc"] = {
            names[c]: 100.0 * matrix[c, c].item() / totals[c].item()
            for c in range(model.num_classes)
            if totals[c] > 0
        }
        result["confusion_matrix"] = matrix.tolist()
        result["labels"] = names
        result["predictions"] = [
            {"path": records[i].path, "label": records[i].label, "predicted": int(found[i].argmax())}
            for i in order
        ]
    return result
