"""Many videos: `vidrec predict --list` and `vidrec extract --list` in videos/s with 1 and 2
processes (decoding in the model's process, `--workers 0`, or in one more, `--workers 1`), and a
run killed half-way (SIGKILL) then resumed. Each command runs as a user would run it, in its own
process; the same command again on the finished folder gives its start-up (import, model, list,
skipping every row), which is taken off for the steady rate.

    python bench/batch.py [--videos 960] [--real 5] [--model i3d_small.synthmotion] [--ray]

Videos: SynthMotion test videos made here (64 px, 16 frames) and, with --real K, the three real
Kinetics-style clips of ../shared/videos (720p and 960x480, 10 s) K times each.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time

from common import describe_machine, machine

SHARED_VIDEOS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "videos")
REAL = ("arm_wrestling.mp4", "basketball_shooting.mp4", "flipping_a_pancake.mkv")


def vidrec(*args: str, **kwargs) -> subprocess.Popen:
    """`vidrec ARGS` in its own process (and process group, to kill it with its workers)."""
    return subprocess.Popen(
        [sys.executable, "-m", "vidrec", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kwargs,
    )


def timed(args: list[str]) -> tuple[float, str]:
    """Seconds `vidrec ARGS` took, and its summary line; exits on failure."""
    t0 = time.perf_counter()
    proc = vidrec(*args)
    out, err = proc.communicate()
    seconds = time.perf_counter() - t0
    if proc.returncode:
        sys.exit(f"vidrec {' '.join(args)} failed:\n{err[-2000:]}")
    return seconds, err.strip().splitlines()[-1].split(": ", 1)[-1]  # the summary, less the folder


def journaled(out: str) -> int:
    """Rows kept so far in the journal (they go to a shard once 1000 have gathered)."""
    path = os.path.join(out, "_pending.jsonl")
    if not os.path.exists(path):
        return 0
    with open(path, "rb") as f:
        return f.read().count(b"\n")


def same_predictions(a: str, b: str) -> str:
    """How two finished `predict` folders compare: the same videos, errors and labels, and the
    largest score difference (batches are cut differently after a resume)."""
    from vidrec.io.shards import read_shards

    rows = [{r["video"]: r for r in read_shards(out).to_pylist()} for out in (a, b)]
    if rows[0].keys() != rows[1].keys():
        return "DIFFERENT videos"
    worst = 0.0
    for video, first in rows[0].items():
        second = rows[1][video]
        labels = [[p["label"] for p in r["predictions"] or []] for r in (first, second)]
        if first["error"] != second["error"] or labels[0] != labels[1]:
            return f"DIFFERENT for {video}"
        scores = zip(first["predictions"] or [], second["predictions"] or [])
        worst = max([worst, *(abs(p["score"] - q["score"]) for p, q in scores)])
    return f"the uninterrupted run's labels for every video, scores within {worst:.1e}"


def kill_and_resume(task_args: list[str], out: str, videos: int) -> dict:
    """Start, SIGKILL once half the rows are journaled, run again: what each run did, and the time."""
    t0 = time.perf_counter()
    proc = vidrec(*task_args)
    while journaled(out) < videos // 2:
        if proc.poll() is not None:
            sys.exit(f"the run ended before half its rows: {proc.communicate()[1][-2000:]}")
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    first = time.perf_counter() - t0
    kept = journaled(out)
    second, summary = timed(task_args)
    return {"killed_after_s": first, "rows_kept": kept, "resume_s": second, "summary": summary}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=960, help="SynthMotion videos to make")
    parser.add_argument("--real", type=int, default=0, help="also the three real clips, this many times each")
    parser.add_argument("--model", default="i3d_small.synthmotion")
    parser.add_argument("--ray", action="store_true", help="also --ray (a local Ray the command starts)")
    args = parser.parse_args()
    print(f"machine: {describe_machine(machine())}", flush=True)  # beside every ratio
    work = tempfile.mkdtemp(prefix="vidrec-batch-bench-")
    data = os.path.join(work, "synth")
    synth = ["synth", data, "--train", "0", "--val", "0", "--test", str(args.videos)]
    subprocess.run([sys.executable, "-m", "vidrec", *synth], check=True, capture_output=True)
    lists = {f"SynthMotion, {args.videos} videos (64 px, 16 frames)": os.path.join(data, "test.csv")}
    if args.real:
        real = os.path.join(work, "real.txt")
        with open(real, "w") as f:
            for i in range(args.real):
                for name in REAL:  # each copy its own path, as distinct videos
                    source = os.path.abspath(os.path.join(SHARED_VIDEOS, name))
                    os.symlink(source, os.path.join(work, f"{i}_{name}"))
                    f.write(f"{i}_{name}\n")
        lists[f"real clips, {args.real * len(REAL)} videos (720p and 960x480, 10 s)"] = real

    print(f"{os.cpu_count()} CPUs; model {args.model}; each figure includes the command's start-up")
    head = ("task", "processes", "seconds", "videos/s", "start-up", "steady")
    print(f"{'videos':48} {head[0]:8}", *(f"{h:>9}" for h in head[1:]))
    for k, (title, listing) in enumerate(lists.items()):
        n = sum(1 for _ in open(listing)) - (1 if listing.endswith(".csv") else 0)
        runs = [(task, workers, []) for task in ("predict", "extract") for workers in (0, 1)]
        if args.ray:
            runs += [(task, "ray", ["--ray"]) for task in ("predict", "extract")]
        for task, workers, extra in runs:
            out = os.path.join(work, f"{task}-{workers}-{k}")
            flags = extra or ["--workers", str(workers)]
            task_args = [task, "--list", listing, "--out", out, "--model", args.model, *flags]
            seconds, _ = timed(task_args)
            startup, _ = timed(task_args)  # the finished folder: start-up and skipping only
            processes = "Ray" if workers == "ray" else str(workers + 1)
            print(
                f"{title:48} {task:8} {processes:>9} {seconds:8.1f} {n / seconds:9.1f} {startup:8.1f}s "
                f"{n / max(seconds - startup, 1e-9):8.1f}"
            )
        # a run killed half-way, then the same command again
        out = os.path.join(work, f"killed-{k}")
        task_args = ["predict", "--list", listing, "--out", out, "--model", args.model, "--workers", "1"]
        got = kill_and_resume(task_args, out, n)
        print(
            f"  killed after {got['killed_after_s']:.1f} s with {got['rows_kept']} of {n} rows journaled; "
            f"the same command again took {got['resume_s']:.1f} s: {got['summary']}; "
            + same_predictions(out, os.path.join(work, f"predict-1-{k}"))
        )
    print(f"(work folder: {work})")


if __name__ == "__main__":
    main()
