"""Event spotting on SynthMotion-Spot through vidrec's own commands: `vidrec synth-spot` makes the
data, `vidrec extract --rate` computes the frozen extractor's features once per clip placement
(centred for the two-sided spotter and the baseline, ending at each step for the causal one),
`vidrec train configs/spotter_conv_synthmotion_spot.yaml --resume auto` trains and tests each arm and
seed, and the test average-mAP is SoccerNet's (tight: 1-5 s, loose: 5-60 s):

    baseline   a per-step classifier (spotter_conv with no temporal layers: each step sees only its
               own features), its scores thresholded into segments as `vidrec stream --segments`
               does (vidrec.timeline.segments: on 0.4, off 0.2), an event at each segment's peak
    offline    spotter_conv: two-sided temporal convolutions, peaks with 1 s NMS
    causal     spotter_conv_causal on causal clips: each step sees its past only; `vidrec spot`'s
               live path on every test video measures the delay from event to report

One JSON record per (arm, seed) under results/spotting_runs/; results/spotting.md is written from
the records alone (`--table`). Resumable: features and runs continue where they stopped.

    python bench/spotting.py [--data data/synthmotion_spot] [--seeds 0 1 2]
    python bench/spotting.py --table

Cost on 2 cores: the data a minute; the features (70 videos, about 90 min of video, 4 steps/s)
tens of minutes per placement, once; each training run a few minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
import time

import numpy as np

from common import describe_machine, machine, mean_std, read_records, write_table

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
RUNS = os.path.join(ROOT, "results", "spotting_runs")
TABLE = os.path.join(ROOT, "results", "spotting.md")
CONFIG = os.path.relpath(os.path.join(ROOT, "configs", "spotter_conv_synthmotion_spot.yaml"))
DATA_ARGS = ["--train", "40", "--val", "10", "--test", "20", "--seed", "0"]
EXTRACTOR, RATE = "i3d_small.synthmotion", 4.0
# arm -> (what it is, its `vidrec train` settings, causal clips)
ARMS = {
    "baseline": ("per-step classifier, scores thresholded into segments", ["--set", "layers=0"], False),
    "offline": ("spotter_conv (two-sided), peaks with 1 s NMS", [], False),
    "causal": ("spotter_conv_causal on causal clips (live)", ["--model", "spotter_conv_causal"], True),
}


def vidrec(*args: str) -> list[str]:
    return [sys.executable, "-m", "vidrec", *args]


def features_dir(data: str, causal: bool) -> str:
    return os.path.join(data, f"features_i3d_small_4{'_causal' if causal else ''}")


def make_data_and_features(data: str) -> None:
    """The data, then both feature sets; the wall time of each set's extraction (its first,
    uninterrupted run) is kept in its folder as bench_seconds.json."""
    if not os.path.exists(os.path.join(data, "test.csv")):
        subprocess.run(vidrec("synth-spot", data, *DATA_ARGS), check=True)
    for causal in (False, True):
        out = features_dir(data, causal)
        fresh, t0 = not os.path.exists(out), time.perf_counter()
        for split in ("train", "val", "test"):
            command = ["extract", "--list", os.path.join(data, f"{split}.csv"), "--model", EXTRACTOR]
            command += ["--rate", str(RATE), "--out", out, "--workers", "0"]
            subprocess.run(vidrec(*command, *(["--causal"] if causal else [])), check=True)
        if fresh:
            with open(os.path.join(out, "bench_seconds.json"), "w") as f:
                json.dump({"seconds": time.perf_counter() - t0}, f)


def split_videos(data: str, split: str) -> list[str]:
    """The videos of a split's events CSV, as paths (as `vidrec extract --list` names them)."""
    from vidrec.io.events import read_events

    events = read_events(os.path.join(data, f"{split}.csv"))
    return sorted({os.path.normpath(os.path.join(data, e.video)) for e in events})


def extraction_seconds_per_video_min(data: str, causal: bool) -> float | None:
    """Wall seconds of a feature set's extraction per minute of video (None: not timed)."""
    path = os.path.join(features_dir(data, causal), "bench_seconds.json")
    if not os.path.exists(path):
        return None
    import vidrec

    with open(path) as f:
        seconds = json.load(f)["seconds"]
    videos = [v for split in ("train", "val", "test") for v in split_videos(data, split)]
    return 60 * seconds / sum(vidrec.io.probe(v).duration for v in videos)


def train_command(arm: str, seed: int, *, data: str, out: str) -> list[str]:
    sets = [f"data.train={data}", f"spotting.features={features_dir(data, ARMS[arm][2])}"]
    sets += [f"spotting.causal_features={str(ARMS[arm][2]).lower()}", f"run.out={out}", f"run.seed={seed}"]
    command = ["train", CONFIG, *[a for s in sets for a in ("--set", s)], *ARMS[arm][1], "--resume", "auto"]
    return vidrec(*command)


def baseline_events(run: str, data: str) -> list:
    """The baseline's events: its per-step scores on the test features, thresholded into segments
    as `vidrec stream --segments` does, an event at each segment's highest step."""
    import torch

    import vidrec
    from vidrec.io.events import Event
    from vidrec.io.shards import read_shards
    from vidrec.timeline.segments import SegmentConfig, Segmenter

    model = vidrec.load_model(run).eval()
    table = read_shards(features_dir(data, False), columns=["video", "times", "features"]).to_pylist()
    wanted = set(split_videos(data, "test"))
    config = SegmentConfig(smooth=1 / RATE, min_length=0.0)
    found = []
    for row in table:
        if row["video"] not in wanted:
            continue
        probs = model.probabilities(torch.tensor(row["features"]))[:, 1:]
        segmenter = Segmenter(model.class_names, config)
        segments = [s for t, p in zip(row["times"], probs) for s in segmenter.update(t, p)]
        segments += segmenter.finish(row["times"][-1])
        for s in segments:
            c = model.class_names.index(s["label"])
            inside = [(t, p[c]) for t, p in zip(row["times"], probs) if s["start"] <= t <= s["end"]]
            when, score = max(inside, key=lambda x: x[1]) if inside else (s["start"], s["peak"])
            found.append(Event(row["video"], float(when), s["label"], float(score)))
    return found


def score(found: list, data: str) -> dict:
    from vidrec.io.events import Event, read_events
    from vidrec.metrics.spotting import spotting_map

    gt = [
        Event(**{**e.__dict__, "video": os.path.normpath(os.path.join(data, e.video))})
        for e in read_events(os.path.join(data, "test.csv"))
    ]
    with open(os.path.join(data, "classes.txt")) as f:
        classes = f.read().split()
    return {m: 100 * spotting_map(gt, found, classes, metric=m).a_mAP for m in ("tight", "loose")}


def live_delays(run: str, data: str) -> dict:
    """`vidrec spot`'s causal path on every test video: each event's report time minus its time,
    and the wall seconds per minute of video (features and spotter, as the video plays)."""
    import vidrec
    from vidrec.recognize.spot import spot_events

    spotter, extractor = vidrec.load_model(run), vidrec.load_model(EXTRACTOR)
    delays, wall, seconds = [], 0.0, 0.0
    for path in split_videos(data, "test"):
        t0 = time.perf_counter()
        for event, at in spot_events(spotter, extractor, path):
            delays.append(at - event.time)
        wall += time.perf_counter() - t0
        seconds += vidrec.io.probe(path).duration
    return {"median_delay_s": float(np.median(delays)), "max_delay_s": float(np.max(delays)),
            "wall_s_per_video_min": 60 * wall / seconds}  # fmt: skip


def run_one(arm: str, seed: int, *, data: str, runs: str) -> dict:
    out = os.path.join(runs, arm, f"seed{seed}")
    command = train_command(arm, seed, data=data, out=out)
    printed = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout
    train_seconds = json.loads(printed.strip().splitlines()[-1])["train_seconds"]  # every session's
    record = {"arm": arm, "seed": seed, "command": shlex.join(["vidrec", *command[3:]])}
    if arm == "baseline":
        record.update(score(baseline_events(out, data), data))
    else:
        with open(os.path.join(out, "test_report.json")) as f:
            test = json.load(f)
        record.update(tight=100 * test["tight"]["a_mAP"], loose=100 * test["loose"]["a_mAP"])
    if arm == "causal":
        record["live"] = live_delays(out, data)
    record["extract_s_per_video_min"] = extraction_seconds_per_video_min(data, ARMS[arm][2])
    record.update(train_seconds=train_seconds, data=shlex.join(["vidrec", "synth-spot", data, *DATA_ARGS]))
    return {**record, "machine": machine()}


def table() -> str:
    records = read_records(RUNS)
    lines = [
        "# Event spotting on SynthMotion-Spot",
        "",
        "Written by `python bench/spotting.py --table` from the records in `results/spotting_runs/` "
        "(one per arm and seed; re-run with `python bench/spotting.py`). The data: "
        f"`vidrec synth-spot data/synthmotion_spot {' '.join(DATA_ARGS)}` (70 videos of 30-120 s, 5 event "
        f"classes). Features: `{EXTRACTOR}` frozen, {RATE:g} steps/s (`vidrec extract --rate`). "
        "Test average-mAP as SoccerNet's evaluator computes it (`vidrec spot-eval`): tight over "
        "tolerances of 1-5 s, loose over 5-60 s. Means ± sample standard deviations over seeds.",
        "",
        "| arm | what it is | seeds | tight a-mAP | loose a-mAP | training s |",
        "|---|---|---|---|---|---|",
    ]
    for arm, (what, _, _) in ARMS.items():
        runs = [r for r in records if r["arm"] == arm]
        if runs:
            lines.append(
                f"| {arm} | {what} | {', '.join(str(r['seed']) for r in runs)} | "
                f"{mean_std([r['tight'] for r in runs])} | {mean_std([r['loose'] for r in runs])} | "
                f"{mean_std([r['train_seconds'] for r in runs])} |"
            )
    extract = {
        a: [r["extract_s_per_video_min"] for r in records if r["arm"] == a] for a in ("offline", "causal")
    }
    extract = {k: [x for x in v if x is not None] for k, v in extract.items()}
    if extract["offline"] and extract["causal"]:
        lines += [
            "",
            f"Features, once: {mean_std(extract['offline'])} s (centred clips) and "
            f"{mean_std(extract['causal'])} s (causal clips) of wall time per minute of video; "
            "the spotters then train on them in the seconds above.",
        ]
    live = [r["live"] for r in records if "live" in r]
    if live:
        lines += [
            "",
            "The causal spotter as `vidrec spot` runs it live (each test video streamed through the "
            "extractor and the spotter, events reported when final): median delay from event to "
            f"report {mean_std([x['median_delay_s'] for x in live])} s, longest "
            f"{mean_std([x['max_delay_s'] for x in live])} s; "
            f"{mean_std([x['wall_s_per_video_min'] for x in live])} s of wall time per minute of video.",
        ]
    lines += ["", "Machines:", ""] + sorted({f"- {describe_machine(r['machine'])}" for r in records})
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--data", default="data/synthmotion_spot", help="made here by vidrec synth-spot if missing"
    )
    ap.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--runs", default="runs/spotting_bench", help="one folder per arm and seed")
    ap.add_argument("--table", action="store_true", help="only write the table from the records")
    args = ap.parse_args()
    if not args.table:
        make_data_and_features(args.data)
        os.makedirs(RUNS, exist_ok=True)
        for seed in args.seeds:
            for arm in args.arms:
                path = os.path.join(RUNS, f"{arm}_seed{seed}.json")
                if os.path.exists(path):
                    continue
                result = run_one(arm, seed, data=args.data, runs=args.runs)
                with open(path + ".tmp", "w") as f:
                    f.write(json.dumps(result, indent=1) + "\n")
                os.replace(path + ".tmp", path)
                print(
                    f"{arm} seed {seed}: tight {result['tight']:.1f} loose {result['loose']:.1f}", flush=True
                )
    write_table(TABLE, table())


if __name__ == "__main__":
    main()
