"""What segments add up to: per label (and per person) how many and how long, and the timeline
pictures (a whole frame's scores and segments; each person's segments in a lane of their own)."""

from __future__ import annotations

import numpy as np


def statistics(segments: list[dict]) -> dict:
    """Per label (and per track and label): how many segments and their total seconds."""
    by_label: dict[str, dict] = {}
    by_track: dict[str, dict] = {}
    for s in segments:
        length = s["end"] - s["start"]
        for table, key in ((by_label, s["label"]), (by_track, f"{s['track']}: {s['label']}")):
            entry = table.setdefault(key, {"count": 0, "seconds": 0.0})
            entry["count"] += 1
            entry["seconds"] = round(entry["seconds"] + length, 3)
    out = {"labels": dict(sorted(by_label.items(), key=lambda kv: -kv[1]["seconds"]))}
    if any(s["track"] is not None for s in segments):
        out["tracks"] = by_track
    return out


def plot_timeline(
    path: str, times: list[float], scores: np.ndarray, labels: list[str], segments: list[dict]
) -> None:
    """A PNG: the scores `(T, C)` of the labels that made segments over time, and the segments as
    bars (the best-scoring label alone when there are none)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vidrec.utils import atomic_write

    shown = sorted({s["label"] for s in segments}) or [labels[int(np.argmax(np.max(scores, 0)))]]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 5), sharex=True, height_ratios=[3, 1])
    for label in shown:
        top.plot(times, scores[:, labels.index(label)], label=label)
    top.set_ylabel("score")
    top.legend(fontsize=7, loc="upper right")
    for row, label in enumerate(shown):
        spans = [(s["start"], s["end"] - s["start"]) for s in segments if s["label"] == label]
        bottom.broken_barh(spans, (row - 0.4, 0.8))
    bottom.set_yticks(range(len(shown)), shown, fontsize=7)
    bottom.set_xlabel("time (s)")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


def plot_track_timeline(path: str, segments: list[dict], seen: dict[int, tuple[float, float]]) -> None:
    """A PNG with one lane per person (`seen`: id -> first and last time tracked, drawn grey):
    their action segments as bars, one colour per label, the label written on each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vidrec.utils import atomic_write

    ids = sorted(seen)
    labels = sorted({s["label"] for s in segments})
    colours = {label: plt.cm.tab10(i % 10) for i, label in enumerate(labels)}
    fig, ax = plt.subplots(figsize=(12, 1.2 + 0.4 * max(len(ids), 1)))
    for row, i in enumerate(ids):
        first, last = seen[i]
        ax.broken_barh([(first, max(last - first, 0.05))], (row - 0.1, 0.2), color="0.8")
        for s in (s for s in segments if s["track"] == i):
            ax.broken_barh(
                [(s["start"], s["end"] - s["start"])], (row - 0.35, 0.7), color=colours[s["label"]]
            )
            ax.text(s["start"], row, f" {s['label']}", va="center", fontsize=6, clip_on=True)
    ax.set_yticks(range(len(ids)), [f"person {i}" for i in ids], fontsize=7)
    ax.set_ylim(-0.6, max(len(ids), 1) - 0.4)
    ax.invert_yaxis()
    ax.set_xlabel("time (s)")
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[label]) for label in labels]
    if handles:
        ax.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1))  # beside the lanes
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)


__all__ = ["plot_timeline", "plot_track_timeline", "statistics"]
