"""Drawing what the pipeline found: each track's box, id and named action on the frame."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

_COLOURS = [(230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180)]


def draw_tracks(image: np.ndarray, tracks: list[dict]) -> np.ndarray:
    """The frame with each track's box, id and named action (if any) drawn (one colour per id)."""
    out = Image.fromarray(image)
    draw = ImageDraw.Draw(out)
    width = max(2, image.shape[1] // 400)
    for t in tracks:
        colour = _COLOURS[t["id"] % len(_COLOURS)]
        x1, y1, x2, y2 = t["box"]
        draw.rectangle([x1, y1, x2, y2], outline=colour, width=width)
        best = t.get("action")
        text = f"{t['id']}" + (f" {best['label']} {best['score']:.2f}" if best else "")
        left, top, right, bottom = draw.textbbox((0, 0), text)
        tall = bottom - top + 4
        y = y1 - tall if y1 >= tall else y1  # above the box, or inside it at the frame's top edge
        draw.rectangle([x1, y, x1 + right - left + 4, y + tall], fill=colour)
        draw.text((x1 + 2, y + 1), text, fill=(0, 0, 0))
    return np.asarray(out)


__all__ = ["draw_tracks"]
