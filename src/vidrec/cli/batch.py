"""`vidrec predict --list ... --out DIR` and `vidrec extract`: many videos to sharded Parquet."""

from __future__ import annotations

import json
import os
import sys

from vidrec.errors import ConfigError

BATCH_EPILOG = (
    "Many videos: --list names a list file (.txt, .csv with a 'video' column), a folder or a glob; "
    "rows go to DIR/part-*.parquet, one per video with its 'error' if it failed. Re-running skips "
    "what is done; a killed run loses at most the batch in flight."
)


def add_batch_args(p, *, required_out: bool) -> None:
    """The flags of work over many videos."""
    p.add_argument(
        "--list", dest="video_list", metavar="LIST", help="a list file, a folder or a glob of videos"
    )
    p.add_argument(
        "--out", required=required_out, metavar="DIR", help="write sharded Parquet rows here (resumable)"
    )
    p.add_argument("--batch-size", type=int, default=8, help="videos per model batch (default 8)")
    p.add_argument(
        "--workers",
        type=int,
        default=min(4, os.cpu_count() or 1),
        help="decoding processes (default: min(4, CPUs); 0 decodes in this one)",
    )
    p.add_argument("--shard-size", type=int, default=1000, help="rows per Parquet file (default 1000)")
    p.add_argument("--retry-failed", action="store_true", help="redo the videos whose rows hold an error")
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="run on a Ray cluster (Ray Data): ADDRESS as ray.init takes it ('auto', 'ray://host:10001'); "
        "alone: a local Ray",
    )


def batch_videos(args) -> list[str]:
    """The videos of a batch run: the positional ones and those of --list."""
    from vidrec.recognize.batch import list_videos

    videos = list(args.videos)
    if args.video_list:
        videos += list_videos(args.video_list)
    if not videos:
        raise ConfigError("no videos: give video files or --list LIST (a list file, a folder or a glob)")
    return list(dict.fromkeys(videos))


def run_batch_command(args, task: str) -> int:
    """Predict or extract every video into --out; a summary on stderr (and stdout with --json).
    The videos are listed before the model loads: a wrong list fails at once."""
    from vidrec.cli.loading import inference_model
    from vidrec.recognize.batch import BatchOptions, run_batch
    from vidrec.utils import resolve_device

    videos = batch_videos(args)
    if not args.out:
        raise ConfigError("--list writes its rows to a folder: give --out DIR")
    device = resolve_device(args.device)
    model = inference_model(args, device)

    options = BatchOptions(
        task=task,
        top_k=getattr(args, "top_k", 5),
        num_clips=args.num_clips,
        num_crops=args.num_crops,
        per_clip=getattr(args, "per_clip", False),
        flow_dir=args.flow_dir,
        rate=getattr(args, "rate", None),
        causal=getattr(args, "causal", False),
    )
    summary = run_batch(
        model,
        videos,
        args.out,
        options=options,
        batch_size=args.batch_size,
        workers=args.workers,
        shard_size=args.shard_size,
        device=device,
        retry_failed=args.retry_failed,
        ray_address=args.ray,
    )
    print(
        f"{summary['out']}: {summary['videos']} videos, {summary['done_before']} done before, "
        f"{summary['processed']} now; {summary['failed']} failed (their rows hold the error); "
        f"{summary['shards']} shards",
        file=sys.stderr,
    )
    if summary["failed"] and summary["failed"] == summary["videos"]:
        print(f"every video failed; the first: {summary['first_error']}", file=sys.stderr)
    if getattr(args, "json", False):
        print(json.dumps(summary))
    return 0


def cmd_extract(args) -> int:
    """`vidrec extract VIDEO... | --list LIST --out DIR`: pooled features of every video."""
    return run_batch_command(args, "extract")


__all__ = ["BATCH_EPILOG", "add_batch_args", "batch_videos", "cmd_extract", "run_batch_command"]
