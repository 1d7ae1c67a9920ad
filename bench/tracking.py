"""People tracking scored against human ground truth (MOTChallenge): every detector setting and
every tracker on the same detections, HOTA / MOTA / IDF1 by `vidrec.metrics.tracking` (equal to
TrackEval's and motmetrics', tests/test_track_eval.py), and speed; then `vidrec detect` itself
with its defaults on every frame, end to end. One JSON record per run (scores, settings, the
machine, the commit) under results/tracking_runs/SEQUENCE/; results/tracking.md is written from
the records alone (`--table`). A run whose record exists is skipped (`--force` redoes it).

    python bench/tracking.py                      # TUD-Campus from ../shared/videos/mot
    python bench/tracking.py --video V --gt gt.txt --name SEQ   # any MOTChallenge sequence
    python bench/tracking.py --scale 0.5          # the same people at half size (small people)
    python bench/tracking.py --speed              # `vidrec detect` end to end, 768x576 at 10 fps
    python bench/tracking.py --table              # results/tracking.md from the records

`--scale 0.5` shows each frame at half size in the top-left of a black frame of the same size (the
ground truth's boxes halved), written as an H.264 file first: people half as tall, as in a wider
shot, with the real sequence's human annotation.

`--speed` times the whole `vidrec detect SCENE --fps 10 --backend B` command (a new process:
imports, models loaded, every frame looked at, per-person actions), as a user runs it, on each
backend, interleaved, median of `--repeats`: the scene is TUD-Campus resized to 768x576 and shown
at 10 fps, played forward then backward to 795 frames (79.5 s), the size, rate and length of a
surveillance square with 6-8 people in view. It is for speed only (no ground truth is scored on
it). Records in results/detect_speed_runs/.

The library trackers (roboflow `trackers`: SORT, ByteTrack, OC-SORT, BoT-SORT) run where that
package imports (the test install puts it beside vidrec without its opencv-python: see the
Makefile); otherwise their rows are left out and the table says so.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import describe_machine, machine, read_records  # noqa: E402
from vidrec.io.mot import MOTRows, read_mot  # noqa: E402
from vidrec.metrics.tracking import box_iou_xywh, score_tracks  # noqa: E402
from vidrec.utils import atomic_write_text  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared")
RUNS = os.path.join(HERE, "..", "results", "tracking_runs")
TABLE = os.path.join(HERE, "..", "results", "tracking.md")
SPEED_RUNS = os.path.join(HERE, "..", "results", "detect_speed_runs")
SCENE = {"size": (768, 576), "fps": 10, "frames": 795}  # a 768x576 10 fps square, 79.5 s
BACKENDS = ("pytorch", "onnxruntime", "litert")
THRESHOLDS = (0.4, 0.5, 0.6, 0.7)  # detection scores at which recall and precision are reported
SHOWN = ("HOTA", "DetA", "AssA", "MOTA", "IDF1", "precision", "recall", "IDSW", "FP", "FN")

# vidrec's tracker: its defaults, and each change from them that the table is asked about
VIDREC_TRACKERS = {
    "vidrec (defaults)": {},
    "vidrec, weak round off (low = high)": {"low": 0.7},
    "vidrec, weak boxes at IoU 0.3": {"low_iou": 0.3},
    "vidrec, tracks start at 0.5": {"high": 0.5},
    "vidrec, reported from the 2nd hit": {"min_hits": 2},
    "vidrec, lost after 0.2 s": {"lost": 0.2},
    "vidrec, no tentative tracks (start = high)": {"start": 0.7},
    "vidrec, no camera-motion compensation": {"camera_motion": False},
}
LIBRARY_TRACKERS = ("SORTTracker", "ByteTrackTracker", "OCSORTTracker", "BoTSORTTracker")


def frames_of(video: str) -> tuple[list[np.ndarray], float]:
    from vidrec.io.video import VideoReader

    with VideoReader(video) as v:
        return [rgb for _, rgb in v.indexed_frames()], v.info.fps


def detector_settings(width: int, height: int) -> dict[str, tuple]:
    """Name -> (tile side, fit): the whole frame only, square tiles of the short side, and
    `vidrec detect`'s automatic tiles (those first, then sized to the people found)."""
    from vidrec.sessions import DetectOptions

    auto, fit = DetectOptions().tile_for(width, height), DetectOptions().fit_for(width, height)
    settings = {"whole frame": (None, None)}
    if auto:
        settings[f"tiles of {auto} px"] = (auto, None)
    if fit:
        settings[f"auto (tiles of {auto or 'off'} px, then sized to the people)"] = (auto, fit)
    return settings


def detect_all(frames, tile, fit, weights: str | None):
    """Every box the detector scores >= 0.1 (the trackers take what they want), and seconds per frame."""
    from vidrec.models.loader import load_model
    from vidrec.people.detectors import SSDPersons

    model = load_model("ssd_mobilenet_v1.coco_uint8", weights_dir=weights)
    finder = SSDPersons(model, min_score=0.1, tile=tile, fit=fit)
    SSDPersons(model, min_score=0.1, tile=tile)(frames[0][None])  # warm-up (the fitted one starts fresh)
    start = time.perf_counter()
    found = [finder(f[None])[0] for f in frames]
    return found, (time.perf_counter() - start) / len(frames)


def detection_scores(found, gt: MOTRows) -> dict:
    """Per score threshold: recall, precision and mean IoU of the boxes matched at IoU >= 0.5
    (one-to-one, Hungarian), the detector alone."""
    out = {}
    for threshold in THRESHOLDS:
        tp = fp = 0
        ious: list[float] = []
        for i, p in enumerate(found):
            b = p.boxes[p.scores >= threshold]
            sim = box_iou_xywh(
                gt.boxes[gt.frames == i + 1], np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], 1)
            )
            r, c = linear_sum_assignment(-sim)
            ok = sim[r, c] >= 0.5
            tp, fp = tp + int(ok.sum()), fp + len(b) - int(ok.sum())
            ious += sim[r, c][ok].tolist()
        out[str(threshold)] = {
            "recall": tp / max(1, len(gt)),
            "precision": tp / max(1, tp + fp),
            "mean_iou": float(np.mean(ious)) if ious else 0.0,
        }
    return out


def rows_of(out: list[list[float]]) -> MOTRows:
    a = np.array(out, dtype=np.float64).reshape(-1, 7)
    return MOTRows(a[:, 0].astype(np.int64), a[:, 1].astype(np.int64), a[:, 2:6], a[:, 6], -np.ones(len(a)))


def run_vidrec(found, frames, fps: float, changes: dict) -> tuple[MOTRows, float]:
    """vidrec's tracker as `vidrec detect` runs it (camera motion from the frames, unless
    `camera_motion` is False in `changes`), with the other `changes` to its config."""
    from vidrec.people.motion import CameraMotion
    from vidrec.people.tracker import Tracker, TrackerConfig

    changes = dict(changes)
    motion = CameraMotion() if changes.pop("camera_motion", True) else None
    tracker, out = Tracker(TrackerConfig(**changes), fps=fps), []
    start = time.perf_counter()
    for i, p in enumerate(found):
        shift = motion(frames[i]) if motion is not None else None
        for t in tracker.update(p.boxes, p.scores, shift=shift):
            b = t.box
            out.append([i + 1, t.id, b[0], b[1], b[2] - b[0], b[3] - b[1], t.score])
    return rows_of(out), (time.perf_counter() - start) / len(found)


def run_library(name: str, found, frames, fps: float, min_score: float) -> tuple[MOTRows, float]:
    """A roboflow tracker with its defaults (at the sequence's frame rate), fed the boxes scored
    >= `min_score`, as vidrec's tracker is; BoT-SORT's camera-motion compensation sees each frame."""
    import supervision as sv
    import trackers

    tracker, out = getattr(trackers, name)(frame_rate=fps), []
    start = time.perf_counter()
    for i, p in enumerate(found):
        keep = p.scores >= min_score
        d = sv.Detections(
            xyxy=p.boxes[keep].astype(np.float32),
            confidence=p.scores[keep].astype(np.float32),
            class_id=np.zeros(int(keep.sum()), int),
        )
        r = (
            tracker.update(d, frame=np.ascontiguousarray(frames[i][..., ::-1]))
            if "BoT" in name
            else tracker.update(d)
        )
        conf = r.confidence if r.confidence is not None else np.ones(len(r))
        for b, tid, c in zip(r.xyxy, r.tracker_id, conf):
            if tid >= 0:
                out.append([i + 1, int(tid), b[0], b[1], b[2] - b[0], b[3] - b[1], float(c)])
    return rows_of(out), (time.perf_counter() - start) / len(found)


def library_available() -> str | None:
    """None if roboflow's trackers import, else why not."""
    try:
        import supervision  # noqa: F401
        import trackers  # noqa: F401
    except Exception as e:  # noqa: BLE001 - any failure to import means: not available here
        return f"{type(e).__name__}: {e}"
    return None


def run_detect(video: str, gt: MOTRows, fps: float, weights: str | None, folder: str) -> dict:
    """`vidrec detect VIDEO --fps RATE --mot` with every other setting at its default."""
    from vidrec.sessions import DetectOptions
    from vidrec.sessions.detect import detect_session
    from vidrec.sessions.models import Models

    mot = os.path.join(folder, "detect_tracks.txt")
    options = DetectOptions(fps=fps, mot=mot)
    models = Models(["movinet_a0_stream"], weights=weights)
    models.get()
    models.detector()
    start = time.perf_counter()
    for event in detect_session(models, video, options):
        if event["type"] == "result":
            found = event["found"]
    seconds = time.perf_counter() - start
    scores = score_tracks(gt, read_mot(mot)).to_dict()
    os.remove(mot)
    return {
        "options": {"fps": fps, "min_score": options.min_score, "tile": options.tile},
        "found": found,
        "scores": scores,
        "seconds": seconds,
    }


def write(path: str, record: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    atomic_write_text(path, json.dumps(record, indent=1) + "\n")


def file_name(text: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in text).strip("_").lower()


def shrunk(video: str, gt: MOTRows, scale: float, folder: str) -> tuple[str, MOTRows]:
    """The sequence at `scale` in the top-left of black frames of its size (an H.264 file in
    `folder`), and its ground truth scaled alike."""
    from PIL import Image

    from vidrec.utils import write_video

    frames, fps = frames_of(video)
    h, w = frames[0].shape[:2]
    out = np.zeros((len(frames), h, w, 3), np.uint8)
    for i, f in enumerate(frames):
        small = np.asarray(Image.fromarray(f).resize((round(w * scale), round(h * scale)), Image.BILINEAR))
        out[i, : small.shape[0], : small.shape[1]] = small
    path = os.path.join(folder, "shrunk.mp4")
    write_video(path, out, fps=fps)
    return path, MOTRows(gt.frames, gt.ids, gt.boxes * scale, gt.conf, gt.classes)


def measure(args) -> None:
    """Every run of the sequence whose record is missing (all with `--force`)."""
    with tempfile.TemporaryDirectory(prefix="vidrec-tracking-") as scratch:  # the shrunk video's
        gt = read_mot(args.gt)
        if args.scale != 1:
            args.video, gt = shrunk(args.video, gt, args.scale, scratch)
            args.name = f"{args.name} at {args.scale:g} scale"
        measure_sequence(args, gt)


def measure_sequence(args, gt: MOTRows) -> None:
    frames, fps = frames_of(args.video)
    folder = os.path.join(args.runs, file_name(args.name))
    about = {"sequence": args.name, "frames": len(frames), "fps": fps, "size": list(frames[0].shape[1::-1])}
    host = machine()
    print(describe_machine(host), file=sys.stderr)
    missing = library_available()
    for detector, (tile, fit) in detector_settings(*frames[0].shape[1::-1]).items():
        path = os.path.join(folder, f"detector__{file_name(detector)}.json")
        wanted = [
            n
            for n in [*VIDREC_TRACKERS, *LIBRARY_TRACKERS]
            if args.force
            or not os.path.exists(os.path.join(folder, f"{file_name(detector)}__{file_name(n)}.json"))
        ]
        if not wanted and os.path.exists(path):
            continue
        found, per_frame = detect_all(frames, tile, fit, args.weights)
        write(
            path,
            {
                **about,
                "detector": detector,
                "tile": tile,
                "seconds_per_frame": per_frame,
                "detection": detection_scores(found, gt),
                "machine": host,
            },
        )
        for name in wanted:
            if name in LIBRARY_TRACKERS:
                if missing:
                    print(f"{name}: not run ({missing})", file=sys.stderr)
                    continue
                rows, tracker_time = run_library(name, found, frames, fps, min_score=0.4)
                settings = {"library": "trackers (roboflow)", "defaults": True, "min_score": 0.4}
            else:
                rows, tracker_time = run_vidrec(found, frames, fps, VIDREC_TRACKERS[name])
                settings = {"changes": VIDREC_TRACKERS[name]}
            scores = score_tracks(gt, rows).to_dict()
            write(
                os.path.join(folder, f"{file_name(detector)}__{file_name(name)}.json"),
                {
                    **about,
                    "detector": detector,
                    "tracker": name,
                    "settings": settings,
                    "scores": scores,
                    "seconds_per_frame": {"detector": per_frame, "tracker": tracker_time},
                    "machine": host,
                },
            )
            print(
                f"{detector:28s} {name:40s} " + "  ".join(f"{k} {scores[k]:.3f}" for k in SHOWN[:5]),
                file=sys.stderr,
            )
    path = os.path.join(folder, "vidrec_detect.json")
    if args.force or not os.path.exists(path):
        result = run_detect(args.video, gt, fps, args.weights, folder)
        write(path, {**about, **result, "machine": host})


def speed_scene(video: str, folder: str) -> str:
    """The sequence resized to `SCENE`'s size, shown at its rate, forward then backward to its
    length (an H.264 file in `folder`)."""
    from PIL import Image

    from vidrec.utils import write_video

    frames, _ = frames_of(video)
    frames = [np.asarray(Image.fromarray(f).resize(SCENE["size"], Image.BILINEAR)) for f in frames]
    order: list[int] = []
    while len(order) < SCENE["frames"]:
        order += list(range(len(frames))) + list(range(len(frames) - 2, 0, -1))
    path = os.path.join(folder, "scene.mp4")
    write_video(path, np.stack([frames[i] for i in order[: SCENE["frames"]]]), fps=SCENE["fps"])
    return path


def detect_command(scene: str, backend: str, weights: str) -> tuple[float, list[dict]]:
    """Seconds the whole `vidrec detect` command took, and its per-look reports."""
    command = [sys.executable, "-m", "vidrec", "detect", scene, "--fps", str(SCENE["fps"])]
    command += ["--backend", backend, "--weights", weights, "--json"]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {done.stderr.strip().splitlines()[-1:]}")
    return seconds, [json.loads(line) for line in done.stdout.splitlines()]


def measure_speed(args) -> None:
    """`detect_command` on every backend whose record is missing (all with `--force`),
    interleaved, `--repeats` times each."""
    wanted = [
        b for b in BACKENDS if args.force or not os.path.exists(os.path.join(args.speed_runs, f"{b}.json"))
    ]
    if not wanted:
        return
    host = machine()
    print(describe_machine(host), file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="vidrec-speed-") as scratch:
        scene = speed_scene(args.video, scratch)
        times: dict[str, list[float]] = {b: [] for b in wanted}
        looks: dict[str, list[dict]] = {}
        for _ in range(args.repeats):
            for backend in wanted:
                seconds, looks[backend] = detect_command(scene, backend, args.weights)
                times[backend].append(seconds)
                print(f"{backend:12s} {seconds:.1f} s", file=sys.stderr)
    video_seconds = SCENE["frames"] / SCENE["fps"]
    for backend in wanted:
        people = [len(r["tracks"]) for r in looks[backend]]
        seconds = statistics.median(times[backend])
        write(
            os.path.join(args.speed_runs, f"{backend}.json"),
            {
                "scene": f"{args.name} at {SCENE['size'][0]}x{SCENE['size'][1]}, {SCENE['fps']} fps, "
                f"forward and back to {SCENE['frames']} frames",
                "command": f"vidrec detect SCENE --fps {SCENE['fps']} --backend {backend} --json",
                "backend": backend,
                "seconds": times[backend],
                "median_seconds": seconds,
                "video_seconds": video_seconds,
                "realtime": video_seconds / seconds,
                "looks": len(looks[backend]),
                "people_per_look": {"mean": float(np.mean(people)), "max": int(max(people))},
                "machine": host,
            },
        )


def speed_table(runs: str) -> list[str]:
    """The speed section of results/tracking.md, from the records in `runs`."""
    records = read_records(runs)
    if not records:
        return []
    records.sort(key=lambda r: BACKENDS.index(r["backend"]) if r["backend"] in BACKENDS else 99)
    first = records[0]
    out = [
        "## Speed: `vidrec detect` on every frame of a 768x576, 10 fps scene",
        "",
        f"{first['scene']} (`python bench/tracking.py --speed`): the whole command, from a new process "
        "to its last look (imports and models loaded included), median of "
        f"{len(first['seconds'])} interleaved runs. Machine: {describe_machine(first['machine'])}.",
        "",
        "| backend | seconds for " + f"{first['video_seconds']:g} s of video | x real time | ms per look | "
        "people per look (mean / max) |",
        "|---|---|---|---|---|",
    ]
    for r in records:
        out.append(
            f"| {r['backend']} | {r['median_seconds']:.1f} | {r['realtime']:.2f} | "
            f"{1000 * r['median_seconds'] / r['looks']:.1f} | {r['people_per_look']['mean']:.1f} / "
            f"{r['people_per_look']['max']} |"
        )
    return out + [""]


def fmt(value) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def table(runs: str = RUNS, speed_runs: str = SPEED_RUNS) -> str:
    """results/tracking.md from the records."""
    out = [
        "# People tracking against human ground truth",
        "",
        "Written by `python bench/tracking.py --table` from the records in `results/tracking_runs/` "
        "(each made by `python bench/tracking.py`, with its machine and commit). Scores as TrackEval "
        "defines them (`vidrec track-eval`); HOTA, DetA and AssA are means over IoU 0.05-0.95, MOTA and "
        "IDF1 at IoU 0.5.",
        "",
    ]
    for folder in sorted(glob.glob(os.path.join(runs, "*"))):
        records = read_records(folder)
        if not records:
            continue
        first = records[0]
        out += [
            f"## {first['sequence']}: {first['frames']} frames, {first['size'][0]}x{first['size'][1]}, "
            f"{first['fps']:g} fps",
            "",
            f"Machine: {describe_machine(first['machine'])}.",
            "",
        ]
        detect = next((r for r in records if "options" in r), None)
        if detect:
            s, o = detect["scores"], detect["options"]
            video_seconds = first["frames"] / first["fps"]
            out += [
                f"**`vidrec detect` with its defaults** (every frame: `--fps {o['fps']:g}`; tracks start at "
                f"{o['min_score']}, tile {o['tile']}: {detect['found']}): HOTA {s['HOTA']:.3f} (DetA "
                f"{s['DetA']:.3f}, AssA {s['AssA']:.3f}), MOTA {s['MOTA']:.3f}, IDF1 {s['IDF1']:.3f}, "
                f"precision {s['precision']:.3f}, recall {s['recall']:.3f}, {s['IDSW']} ID switches; "
                f"{detect['seconds']:.1f} s "
                f"for {video_seconds:.1f} s of video, models loaded (real-time factor "
                f"{video_seconds / detect['seconds']:.2f}, per-person actions included).",
                "",
            ]
        out += [
            "### The detector alone",
            "",
            "| detector setting | ms per frame | "
            + " | ".join(f"recall / precision / IoU at {t}" for t in THRESHOLDS)
            + " |",
            "|---|---|" + "---|" * len(THRESHOLDS),
        ]
        for r in (r for r in records if "detection" in r):
            cells = [
                f"{d['recall']:.3f} / {d['precision']:.3f} / {d['mean_iou']:.3f}"
                for d in r["detection"].values()
            ]
            out.append(
                f"| {r['detector']} | {1000 * r['seconds_per_frame']:.1f} | " + " | ".join(cells) + " |"
            )
        out += [
            "",
            "Recall and precision of the boxes scored at least the threshold, matched one-to-one at IoU "
            ">= 0.5; IoU: their mean overlap with the true box (localisation).",
            "",
            "### Trackers on the same detections",
            "",
            "| detector setting | tracker | " + " | ".join(SHOWN) + " | ms per frame (tracker) |",
            "|---|---|" + "---|" * (len(SHOWN) + 1),
        ]
        tracked = sorted((r for r in records if "tracker" in r), key=lambda r: -r["scores"]["HOTA"])
        for r in tracked:
            cells = [fmt(r["scores"][k]) for k in SHOWN]
            out.append(
                f"| {r['detector']} | {r['tracker']} | "
                + " | ".join(cells)
                + f" | {1000 * r['seconds_per_frame']['tracker']:.2f} |"
            )
        if not any(r["tracker"] in LIBRARY_TRACKERS for r in tracked):
            out += ["", "roboflow's trackers were not installed when these records were made."]
        out += [
            "",
            "Library trackers run with their own defaults at the sequence's frame rate, fed the boxes "
            "scored >= 0.4 (what vidrec's tracker is fed); BoT-SORT compensates camera motion from the "
            "frames.",
            "",
        ]
    return "\n".join(out + speed_table(speed_runs)) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--video", default=os.path.join(SHARED, "videos", "mot", "TUD-Campus", "video.mp4"))
    p.add_argument("--gt", default=os.path.join(SHARED, "videos", "mot", "TUD-Campus", "gt.txt"))
    p.add_argument("--name", default="TUD-Campus", help="the sequence's name in the records")
    p.add_argument(
        "--weights",
        default=os.pathsep.join(
            os.path.join(SHARED, "weights", w)
            for w in ("ssd_mobilenet_v1_coco_quant", "movinet_a0_stream_int8_k600")
        ),
    )
    p.add_argument("--scale", type=float, default=1.0, help="show the sequence at this size (small people)")
    p.add_argument("--runs", default=RUNS)
    p.add_argument("--force", action="store_true", help="redo runs whose record exists")
    p.add_argument("--table", action="store_true", help="only write results/tracking.md from the records")
    p.add_argument(
        "--speed", action="store_true", help="time `vidrec detect` on a 768x576 10 fps scene instead"
    )
    p.add_argument("--speed-runs", default=SPEED_RUNS)
    p.add_argument("--repeats", type=int, default=3, help="--speed: runs per backend (the median is kept)")
    args = p.parse_args(argv)
    if args.speed and not args.table:
        measure_speed(args)
    elif not args.table:
        measure(args)
    # the committed table from the committed records; records kept elsewhere get their table there
    out = (
        TABLE
        if os.path.abspath(args.runs) == os.path.abspath(RUNS)
        else os.path.join(args.runs, "tracking.md")
    )
    atomic_write_text(out, table(args.runs, args.speed_runs))
    print(f"wrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
