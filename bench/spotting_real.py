"""Event spotting on real footage, as small as it is: the three jump shots of
`../shared/videos/basketball_shooting.mp4` (19 s, one player in a gym), annotated by looking at
every frame around each shot (28.58 fps): the release is the midpoint between the last frame with
the ball on the fingertips and the first with it clear of them, at 1.10, 9.19 and 16.08 s
(`results/annotations/basketball_shooting_shots.csv`).

Leave one shot out: the clip is cut into three parts of one shot each (0-5.5, 5.5-13, 13-19.2 s,
`vidrec.timeline.highlights.cut_reel`); for each part, a spotter (`vidrec train --task spotting`)
learns "shot" from the two others on MoViNet-A0's stream features (the official int8 K600
weights, 4 steps/s), then finds events in the held-out part, and in the two real clips with no
shot (`arm_wrestling.mp4`, `flipping_a_pancake.mkv`): false alarms. One record per held-out part
under results/spotting_real_runs/; results/spotting_real.md is written from them (`--table`).

    python bench/spotting_real.py [--work runs/spotting_real]
    python bench/spotting_real.py --table

Cost on 2 cores: a few minutes. Three training events: this shows what the pipeline does on real
footage, not how well it generalises.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys

from common import describe_machine, machine, read_records, write_table

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
SHARED = os.path.join(ROOT, "..", "shared")
RUNS = os.path.join(ROOT, "results", "spotting_real_runs")
TABLE = os.path.join(ROOT, "results", "spotting_real.md")
ANNOTATIONS = os.path.join(ROOT, "results", "annotations", "basketball_shooting_shots.csv")
VIDEO = os.path.join(SHARED, "videos", "basketball_shooting.mp4")
NEGATIVES = [os.path.join(SHARED, "videos", n) for n in ("arm_wrestling.mp4", "flipping_a_pancake.mkv")]
EXTRACTOR = os.path.join(SHARED, "weights", "movinet_a0_stream_int8_k600", "movinet_a0_int8.tflite")
PARTS = [(0.0, 5.5), (5.5, 13.0), (13.0, 19.2)]
CONFIDENT = 0.5  # a found event at least this sure counts as a detection (false alarm or hit)


def vidrec(*args: str) -> list[str]:
    return [sys.executable, "-m", "vidrec", *args]


def make_parts(work: str) -> list[str]:
    """The three one-shot parts as videos, and one events CSV per part (times within the part)."""
    from vidrec.io.events import Event, read_events, write_events
    from vidrec.timeline.highlights import cut_reel

    shots = read_events(ANNOTATIONS)
    paths = []
    for k, (start, end) in enumerate(PARTS):
        path = os.path.join(work, f"part{k}.mp4")
        if not os.path.exists(path):
            cut_reel(VIDEO, [(start, end)], path)
        mine = [
            Event(f"part{k}.mp4", round(e.time - start, 3), e.label) for e in shots if start <= e.time < end
        ]
        write_events(mine, os.path.join(work, f"part{k}.csv"))
        paths.append(path)
    return paths


def fold(k: int, work: str) -> dict:
    """Train on the parts other than k, test on part k and on the clips without shots."""
    from vidrec.io.events import read_events, write_events

    out = os.path.join(work, f"fold{k}")
    train = os.path.join(work, f"train{k}.csv")
    others = [e for j in range(len(PARTS)) if j != k for e in read_events(os.path.join(work, f"part{j}.csv"))]
    write_events(others, train)
    sets = [f"data.test={os.path.join(work, f'part{k}.csv')}", "spotting.rate=4", "spotting.window=5",
            "spotting.threshold=0.05", "schedule.epochs=60", "data.workers=0", "run.tensorboard=false",
            f"run.seed={k}"]  # fmt: skip
    command = ["train", "--task", "spotting", "--data", train, "--features", os.path.join(work, "features")]
    command += ["--extractor", EXTRACTOR, "--out", out, "--resume", "auto", "--quiet"]
    command += [a for s in sets for a in ("--set", s)]
    subprocess.run(vidrec(*command), check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(out, "test_report.json")) as f:
        report = json.load(f)
    found = [e for e in read_events(os.path.join(out, "test_events.csv"))]
    truth = [e.time for e in read_events(os.path.join(work, f"part{k}.csv"))]
    best = max(found, key=lambda e: e.confidence) if found else None
    alarms = {}
    for negative in NEGATIVES:
        printed = subprocess.run(
            vidrec("spot", negative, "--model", out, "--json", "--threshold", str(CONFIDENT)),
            check=True, stdout=subprocess.PIPE, text=True,
        ).stdout  # fmt: skip
        alarms[os.path.basename(negative)] = len(printed.splitlines())
    return {
        "fold": k,
        "part_s": list(PARTS[k]),
        "shot_s": truth,
        "best_event": None if best is None else {"time": best.time, "confidence": best.confidence},
        "confident_events": len([e for e in found if e.confidence >= CONFIDENT]),
        "tight": 100 * report["tight"]["a_mAP"],
        "loose": 100 * report["loose"]["a_mAP"],
        "false_alarms": alarms,
        "command": shlex.join(["vidrec", *command]),
        "machine": machine(),
    }


def table() -> str:
    records = sorted(read_records(RUNS), key=lambda r: r["fold"])
    lines = [
        "# Event spotting on real footage: three basketball shots",
        "",
        "Written by `python bench/spotting_real.py --table` from the records in "
        "`results/spotting_real_runs/` (re-run with `python bench/spotting_real.py`, a few minutes). "
        "The events: the release of each jump shot in `../shared/videos/basketball_shooting.mp4`, "
        "annotated frame by frame (`results/annotations/basketball_shooting_shots.csv`). Each row "
        "holds one shot out: the spotter learns from the other two parts of the clip (two events) on "
        "MoViNet-A0's stream features, then finds events in the held-out part; false alarms are "
        f"events of confidence >= {CONFIDENT} in two real clips without shots. Three training "
        "events: this shows the pipeline on real footage, not how well it generalises.",
        "",
        "| held out (s) | shot at (s) | its most confident event (s, confidence) | events >= "
        f"{CONFIDENT} in the part | tight a-mAP | loose a-mAP | false alarms (arm wrestling, pancake) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in records:
        start, best = r["part_s"][0], r["best_event"]  # times in the whole clip
        shown = "none" if best is None else f"{start + best['time']:.2f}, {best['confidence']:.2f}"
        alarms = ", ".join(str(v) for v in r["false_alarms"].values())
        lines.append(
            f"| {start:g}-{r['part_s'][1]:g} | {', '.join(f'{start + t:.2f}' for t in r['shot_s'])} | "
            f"{shown} | {r['confident_events']} | {r['tight']:.1f} | {r['loose']:.1f} | {alarms} |"
        )
    lines += ["", "Machines:", ""] + sorted({f"- {describe_machine(r['machine'])}" for r in records})
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--work", default="runs/spotting_real", help="the parts, features and runs")
    ap.add_argument("--table", action="store_true", help="only write the table from the records")
    args = ap.parse_args()
    if not args.table:
        if not os.path.exists(EXTRACTOR) or not os.path.exists(VIDEO):
            sys.exit(f"needs {EXTRACTOR} and {VIDEO} (../shared)")
        os.makedirs(args.work, exist_ok=True)
        os.makedirs(RUNS, exist_ok=True)
        make_parts(args.work)
        for k in range(len(PARTS)):
            path = os.path.join(RUNS, f"fold{k}.json")
            if not os.path.exists(path):
                record = fold(k, args.work)
                with open(path + ".tmp", "w") as f:
                    f.write(json.dumps(record, indent=1) + "\n")
                os.replace(path + ".tmp", path)
                print(f"held out {PARTS[k]}: best {record['best_event']}, alarms {record['false_alarms']}")
    write_table(TABLE, table())


if __name__ == "__main__":
    main()
