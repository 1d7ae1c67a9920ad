"""The predict session: one "result", the top-k of a video (a live source recorded for `duration`
seconds first), as `vidrec predict --json` prints it."""

from __future__ import annotations

from collections.abc import Iterator

from vidrec.io.live import as_file
from vidrec.models.base import ModelBase
from vidrec.recognize.predict import predict
from vidrec.sessions.options import PredictOptions


def predict_session(model: ModelBase, source: str, o: PredictOptions = PredictOptions()) -> Iterator[dict]:
    """The "result" of `model` on `source`."""
    with as_file(source, seconds=o.duration, timeout=o.timeout, keep=o.record) as path:
        result = predict(
            model, path, top_k=o.top_k, num_clips=o.num_clips, num_crops=o.num_crops, flow_dir=o.flow_dir
        )
    yield {"type": "result", **result, "video": source}


__all__ = ["predict_session"]
