"""Per-person actions a user can trust, measured on the shared real clips against who the actors
are (bench/data/people_actions.csv, annotated by looking at frames): `vidrec detect` with its
defaults, and per look of each tracked person, whether the action named (`named_action`: once the
person is settled and the action confident) is right, wrong or "no action"; how many other tracks
(spectators, false alarms) carry a named action; and the look rate per backend. One JSON record
per clip and backend under results/people_actions_runs/; results/people_actions.md from the
records alone (`--table`).

    python bench/people_actions.py [--table]
    python bench/people_actions.py --sweep     # other crop contexts and pooling windows (ONNX Runtime)

`--sweep` runs the same measure with `--context` 1.5-3 and `--window` 2, 4 and 0 (since first
seen) on ONNX Runtime (records in results/people_actions_runs/sweep/): what those two settings
trade between the two clips.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time

import numpy as np
import torch
from torchvision.ops import box_iou

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import describe_machine, machine, read_records  # noqa: E402
from vidrec.utils import atomic_write_text  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared")
ANNOTATIONS = os.path.join(HERE, "data", "people_actions.csv")
RUNS = os.path.join(HERE, "..", "results", "people_actions_runs")
TABLE = os.path.join(HERE, "..", "results", "people_actions.md")
SWEEP = {"context": (1.5, 2.0, 2.5, 3.0), "window": (2.0, 4.0, 0.0)}
BACKENDS = (
    "pytorch",
    "onnxruntime",
    "litert",
)  # litert: the detector's official file, MoViNet's converted step


def annotations() -> dict[str, list[dict]]:
    with open(ANNOTATIONS) as f:
        rows = list(csv.DictReader(line for line in f if not line.startswith("#")))
    out: dict[str, list[dict]] = {}
    for r in rows:
        region = np.array([float(r[k]) for k in ("x1", "y1", "x2", "y2")])
        out.setdefault(r["video"], []).append({
            "start": float(r["start"]), "end": float(r["end"]), "region": region,
            "min_iou": float(r["min_iou"]), "who": r["who"], "labels": set(r["labels"].split("|")),
        })  # fmt: skip
    return out


def actor_of(box, time: float, actors: list[dict]) -> dict | None:
    for a in actors:
        overlap = float(
            box_iou(torch.tensor([box]), torch.tensor(a["region"][None], dtype=torch.float32))[0, 0]
        )
        if a["start"] <= time <= a["end"] and overlap >= a["min_iou"]:
            return a
    return None


def measure(video: str, actors: list[dict], backend: str, weights: str, changes: dict | None = None) -> dict:
    """`vidrec detect VIDEO` with its defaults (but `changes`) on `backend`: every actor look's
    verdict, the other tracks, the look rate (models loaded before the clock starts)."""
    from vidrec.sessions import DetectOptions
    from vidrec.sessions.detect import detect_session
    from vidrec.sessions.models import Inference, Models

    models = Models(["movinet_a0_stream"], weights=weights, inference=Inference(backend=backend))
    models.get()
    models.detector()
    looks, others, labels, keyframes = [], {}, {}, 0
    start = time.perf_counter()
    options = DetectOptions(**(changes or {}))
    for event in detect_session(models, os.path.join(SHARED, "videos", video), options):
        if event["type"] == "result":
            found, people = event["found"], event["people"]
        if event["type"] != "people":
            continue
        keyframes += 1
        for t in event["tracks"]:
            actor, named = actor_of(t["box"], event["time"], actors), t["action"]
            if actor is None:
                others[t["id"]] = others.get(t["id"], False) or named is not None
                if named is not None:
                    labels[named["label"]] = labels.get(named["label"], 0) + 1
                continue
            verdict = "none" if named is None else "right" if named["label"] in actor["labels"] else "wrong"
            looks.append({
                "time": event["time"], "id": t["id"], "who": actor["who"], "verdict": verdict,
                "named": named and named["label"], "top1": t["actions"][0],
            })  # fmt: skip
    return {
        "video": video, "backend": backend, "changes": changes or {}, "found": found,
        "seconds": time.perf_counter() - start,
        "keyframes": keyframes, "people": len(people), "actor_looks": looks, "other_tracks": len(others),
        "other_tracks_named": sum(others.values()), "other_labels": labels,
    }  # fmt: skip


def shares(looks: list[dict]) -> dict[str, float]:
    return {v: sum(x["verdict"] == v for x in looks) / len(looks) for v in ("right", "none", "wrong")}


def sweep_table() -> list[str]:
    """The settings tried (`--sweep`), from their records."""
    records = read_records(os.path.join(RUNS, "sweep"))
    if not records:
        return []
    out = [
        "## Other crop contexts and pooling windows (`python bench/people_actions.py --sweep`)",
        "",
        "ONNX Runtime; every other setting at its default. "
        f"Machine: {describe_machine(records[0]['machine'])}.",
        "Each cell: named right / no action / named wrong, over the actor's looks.",
        "",
    ]
    actors = list(dict.fromkeys((r["video"], x["who"]) for r in records for x in r["actor_looks"]))
    out += [
        "| `--context` | `--window` | " + " | ".join(f"{v}: {who}" for v, who in actors) + " |",
        "|---|---|" + "---|" * len(actors),
    ]
    settings = sorted({(r["changes"]["context"], r["changes"]["window"]) for r in records})
    for context, window in settings:
        cells = []
        for video, who in actors:
            r = next(
                r
                for r in records
                if r["video"] == video
                and (r["changes"]["context"], r["changes"]["window"]) == (context, window)
            )
            share = shares([x for x in r["actor_looks"] if x["who"] == who])
            cells.append(f"{share['right']:.0%} / {share['none']:.0%} / {share['wrong']:.0%}")
        out.append(
            f"| {context:g} | {window:g}{' (since first seen)' if not window else ''} | "
            + " | ".join(cells)
            + " |"
        )
    return out + [""]


def table() -> str:
    """results/people_actions.md from the records."""
    records = read_records(RUNS)
    out = [
        "# Per-person actions on real clips, against who the actors are",
        "",
        "Written by `python bench/people_actions.py --table` from the records in "
        "`results/people_actions_runs/` (made by `python bench/people_actions.py`). `vidrec detect CLIP` "
        "with its defaults (5 looks a second, MoViNet-A0 Stream on each person's crops, an action named "
        "once the person has been followed for 1 s and its probability reaches 0.3). Who the actors are "
        "was annotated by looking at frames: `bench/data/people_actions.csv`. A small set: two clips, "
        "three actors.",
        "",
    ]
    if records:
        out += [f"Machine: {describe_machine(records[0]['machine'])}.", ""]
    out += [
        "| clip | actor | looks | named right | no action | named wrong | other tracks named |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in (r for r in records if r["backend"] == BACKENDS[0]):
        for who in dict.fromkeys(x["who"] for x in r["actor_looks"]):
            mine = [x for x in r["actor_looks"] if x["who"] == who]
            share = shares(mine)
            wrong = sorted({x["named"] for x in mine if x["verdict"] == "wrong"})
            out.append(
                f"| {r['video']} | {who} | {len(mine)} | {share['right']:.0%} | {share['none']:.0%} | "
                f"{share['wrong']:.0%}{' (' + ', '.join(wrong) + ')' if wrong else ''} | "
                f"{r['other_tracks_named']} of {r['other_tracks']}"
                f"{' (' + ', '.join(r['other_labels']) + ')' if r['other_labels'] else ''} |"
            )
    out += [
        "",
        "Looks are the frames looked at while the actor was tracked; an actor not tracked in a look "
        "(missed by the detector, or before a middling-scored track is confirmed) has no look there.",
        "",
        "## Look rate per backend (detector, tracker and MoViNet per person, decoding included)",
        "",
        "| clip | backend | looks | seconds | looks per second | real-time factor |",
        "|---|---|---|---|---|---|",
    ]
    for r in records:
        rate = r["keyframes"] / r["seconds"]
        cells = [
            r["video"],
            r["backend"],
            r["keyframes"],
            f"{r['seconds']:.1f}",
            f"{rate:.1f}",
            f"{rate / 5:.2f}",
        ]
        out.append("| " + " | ".join(map(str, cells)) + " |")
    out += ["", "Real-time factor: looks per second over the 5 a second the clip asks for.", ""]
    return "\n".join(out + sweep_table()) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    weights = ("ssd_mobilenet_v1_coco_quant", "movinet_a0_stream_int8_k600")
    p.add_argument("--weights", default=os.pathsep.join(os.path.join(SHARED, "weights", w) for w in weights))
    p.add_argument("--force", action="store_true", help="redo runs whose record exists")
    p.add_argument(
        "--table", action="store_true", help="only write results/people_actions.md from the records"
    )
    p.add_argument("--sweep", action="store_true", help="other contexts and windows on ONNX Runtime instead")
    args = p.parse_args(argv)
    if args.sweep and not args.table:
        host = machine()
        for video, actors in annotations().items():
            for context in SWEEP["context"]:
                for window in SWEEP["window"]:
                    name = f"{video.split('.')[0]}__context_{context:g}__window_{window:g}.json"
                    path = os.path.join(RUNS, "sweep", name)
                    if os.path.exists(path) and not args.force:
                        continue
                    changes = {"context": context, "window": window}
                    record = {**measure(video, actors, "onnxruntime", args.weights, changes), "machine": host}
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    atomic_write_text(path, json.dumps(record, indent=1) + "\n")
                    print(f"{name}: {shares(record['actor_looks'])}", file=sys.stderr)
    elif not args.table:
        host = machine()
        print(describe_machine(host), file=sys.stderr)
        for video, actors in annotations().items():
            for backend in BACKENDS:
                path = os.path.join(RUNS, f"{video.split('.')[0]}__{backend}.json")
                if os.path.exists(path) and not args.force:
                    continue
                record = {**measure(video, actors, backend, args.weights), "machine": host}
                os.makedirs(RUNS, exist_ok=True)
                atomic_write_text(path, json.dumps(record, indent=1) + "\n")
                print(f"{video} {backend}: {len(record['actor_looks'])} actor looks", file=sys.stderr)
    atomic_write_text(TABLE, table())
    print(f"wrote {TABLE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
