"""The `vidrec` argument parser: subcommands, their flags and help, and the argument types."""

from __future__ import annotations

import argparse
import os
import typing

from vidrec.cli.batch import BATCH_EPILOG, add_batch_args
from vidrec.cli.loading import add_backend, add_precision


class _Parser(argparse.ArgumentParser):
    """argparse, with usage mistakes reported as one `error:` line like every other user error."""

    def error(self, message: str):
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


WEIGHTS_HELP = (
    f"folder holding pretrained weight files, or several separated by '{os.pathsep}' "
    "(else $VIDREC_WEIGHTS, then the cache)"
)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _pixels(text: str) -> int:
    """A frame size as `WIDTHxHEIGHT` (3840x2160) or a count of pixels."""
    try:
        parts = [int(x) for x in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) not in (1, 2) or min(parts) < 1:
        raise argparse.ArgumentTypeError(
            f"expected WIDTHxHEIGHT (e.g. 3840x2160) or a pixel count, got {text!r}"
        )
    return parts[0] * (parts[1] if len(parts) == 2 else 1)


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--device", default="auto", help="cpu, cuda, cuda:1 ... (default: CUDA when available, else CPU)"
    )


def build_parser() -> argparse.ArgumentParser:
    """The `vidrec` argument parser: one subcommand per job, every flag with its help."""
    parser = _Parser(prog="vidrec", description="Video action recognition: I3D, SlowFast, VideoMAE, MoViNet.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True)
    _synth_command(sub)
    _synth_ava_command(sub)
    _synth_spot_command(sub)
    _train_commands(sub)
    _reconstruct_command(sub)
    _eval_command(sub)
    _predict_command(sub)
    _extract_command(sub)
    _stream_command(sub)
    _detect_command(sub)
    _highlights_command(sub)
    _spot_command(sub)
    _serve_command(sub)
    _export_command(sub)
    _convert_command(sub)
    _two_stream_command(sub)
    _flow_command(sub)
    _ava_eval_command(sub)
    _track_eval_command(sub)
    _spot_eval_command(sub)
    _models_command(sub)
    _info_command(sub)
    _demo_command(sub)
    return parser


def _synth_command(sub) -> None:
    """`vidrec synth`."""
    p = sub.add_parser("synth", help="generate a labelled SynthMotion dataset")
    p.add_argument("out", help="output directory (videos, train/val/test.csv, classes.txt)")
    p.add_argument("--train", type=_count, default=240, help="training videos")
    p.add_argument("--val", type=_count, default=48, help="validation videos")
    p.add_argument("--test", type=_count, default=48, help="test videos")
    p.add_argument("--frames", type=_positive, default=16, help="frames per video")
    p.add_argument("--size", type=_positive, default=64, help="frame side in pixels")
    p.add_argument("--seed", type=int, default=0, help="the same seed makes the same videos")
    p.add_argument("--noise", type=float, default=0.0, help="std of pixel noise (0-255)")
    p.add_argument("--jitter", type=float, default=0.0, help="camera shake std in pixels")
    p.add_argument("--objects", type=_positive, default=3, help="at most this many objects (actor + still)")
    p.add_argument("--flat", action="store_true", help="flat background colour instead of a texture")
    p.add_argument(
        "--label",
        choices=("action", "shape", "objects"),
        default="action",
        help="label each video by its action (the task), its actor's shape or how many objects it "
        "shows (per-frame tasks, for pretraining 2D networks)",
    )
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="rendering processes")


def _synth_ava_command(sub) -> None:
    """`vidrec synth-ava`."""
    p = sub.add_parser("synth-ava", help="generate SynthMotion-AVA: several actors, boxes, AVA-format CSVs")
    p.add_argument("out", help="output directory (videos, train/val/test.csv, *_boxes.csv, labels.pbtxt)")
    p.add_argument("--train", type=_count, default=200, help="training videos")
    p.add_argument("--val", type=_count, default=40, help="validation videos")
    p.add_argument("--test", type=_count, default=40, help="test videos")
    p.add_argument(
        "--frames", type=_positive, default=32, help="frames per video (10 fps; keyframes each second)"
    )
    p.add_argument("--size", type=_positive, default=128, help="frame side in pixels")
    p.add_argument("--min-actors", type=_positive, default=2, help="fewest actors per video")
    p.add_argument("--max-actors", type=_positive, default=4, help="most actors per video")
    p.add_argument("--seed", type=int, default=0, help="the same seed makes the same videos")
    p.add_argument("--noise", type=float, default=0.0, help="std of pixel noise (0-255)")
    p.add_argument("--flat", action="store_true", help="flat background colour instead of a texture")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="rendering processes")


def _synth_spot_command(sub) -> None:
    """`vidrec synth-spot`."""
    p = sub.add_parser(
        "synth-spot", help="generate SynthMotion-Spot: long videos with timed events (bounce, collide, ...)"
    )
    p.add_argument(
        "out", help="output directory (videos, train/val/test.csv, soccernet/SPLIT/*/Labels-v2.json)"
    )
    p.add_argument("--train", type=_count, default=40, help="training videos")
    p.add_argument("--val", type=_count, default=10, help="validation videos")
    p.add_argument("--test", type=_count, default=20, help="test videos")
    p.add_argument("--min-seconds", type=float, default=30.0, help="shortest video (seconds)")
    p.add_argument("--max-seconds", type=float, default=120.0, help="longest video (seconds)")
    p.add_argument("--size", type=_positive, default=64, help="frame side in pixels (10 fps)")
    p.add_argument("--max-objects", type=_positive, default=4, help="most shapes on screen at once")
    p.add_argument("--seed", type=int, default=0, help="the same seed makes the same videos")
    p.add_argument("--noise", type=float, default=0.0, help="std of pixel noise (0-255)")
    p.add_argument("--flat", action="store_true", help="flat background colour instead of a texture")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="rendering processes")


def _train_commands(sub) -> None:
    """`vidrec train` and `vidrec pretrain`: a run config, or the quick-form flags."""
    for name, text in (
        ("train", "train or fine-tune a classifier (a YAML run config, or the quick flags)"),
        ("pretrain", "VideoMAE masked-autoencoder pretraining from a YAML run config"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("config", nargs="?", help="run config YAML (see configs/)")
        p.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a config value, e.g. optimizer.lr=0.01; a key without a section is a "
            "model option (drop_path=0.1 is model.options.drop_path=0.1)",
        )
        p.add_argument(
            "--resume",
            nargs="?",
            const="auto",
            help="continue the run in run.out: 'auto' (newest valid checkpoint; starts the run if it "
            "has none) or a checkpoint path",
        )
        p.add_argument(
            "--data", help="quick form: data.train (CSV, folder per class, or a directory with train.csv)"
        )
        p.add_argument("--model", help="quick form: an architecture, or weights to fine-tune (model.init)")
        p.add_argument("--out", help="quick form: run.out")
        p.add_argument("--epochs", type=int, help="quick form: schedule.epochs")
        p.add_argument("--batch-size", type=int, help="quick form: data.batch_size")
        p.add_argument("--lr", type=float, help="quick form: optimizer.lr")
        p.add_argument("--workers", type=int, help="quick form: data.workers")
        p.add_argument("--seed", type=int, help="quick form: run.seed")
        p.add_argument("--task", choices=("classification", "detection", "spotting"), help="quick form: task")
        p.add_argument(
            "--features",
            help="quick form, task spotting: spotting.features, the folder of cached features "
            "(vidrec extract --rate; missing ones are extracted into it with --extractor)",
        )
        p.add_argument(
            "--extractor", help="quick form, task spotting: spotting.extractor, the model whose features"
        )
        p.add_argument(
            "--freeze-backbone",
            action="store_true",
            help="quick form: model.freeze=backbone (train the classifier head alone: a linear probe)",
        )
        _add_preprocessing_flags(p)
        p.add_argument("--quiet", action="store_true", help="no progress bars or resolved config")
        _add_device(p)


def _reconstruct_command(sub) -> None:
    """`vidrec reconstruct`."""
    p = sub.add_parser("reconstruct", help="show what a VideoMAE pretraining model reconstructs (PNG)")
    p.add_argument(
        "model", help="a pretraining model (vidrec pretrain's run.out, or a transformers directory)"
    )
    p.add_argument("video", help="a video file (its first clip is shown)")
    p.add_argument(
        "--out",
        required=True,
        help="PNG: original, masked and reconstructed frames (and the decoder's normalised output)",
    )
    p.add_argument("--mask-ratio", type=float, help="share of tubelets hidden (default: the model's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the mask")
    _add_device(p)


def _eval_command(sub) -> None:
    """`vidrec eval`."""
    p = sub.add_parser("eval", help="evaluate a model on a labelled CSV (video-level, multi-view)")
    p.add_argument(
        "model", help="a model (directory, checkpoint, tag), or a run config YAML (its run.out and data.test)"
    )
    p.add_argument("--data", help="CSV of path,label (or a folder-per-class directory)")
    p.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="config override (with a YAML)"
    )
    p.add_argument(
        "--num-clips",
        type=_positive,
        help="temporal clips per video (default 1, or the config's eval.num_clips)",
    )
    p.add_argument("--num-crops", type=int, choices=(1, 3), help="spatial crops (default 1, or the config's)")
    p.add_argument("--batch-size", type=_positive, default=4, help="videos per batch")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="decoding processes")
    p.add_argument(
        "--flow-dir", help="two-stream models: precomputed flow (vidrec flow --out); else computed on the fly"
    )
    p.add_argument(
        "--report", help="write the full JSON report (per-class accuracy, confusion matrix, predictions)"
    )
    p.add_argument("--confusion", help="write the confusion matrix as a PNG")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    add_backend(p)
    add_precision(p)
    _add_device(p)


def _predict_command(sub) -> None:
    """`vidrec predict`."""
    p = sub.add_parser("predict", help="predict the action in video files", epilog=BATCH_EPILOG)
    p.add_argument("videos", nargs="*", help="video files, or live sources (recorded for --duration s first)")
    p.add_argument(
        "--model",
        default="movinet_a0_stream",
        help="model directory, checkpoint or pretrained name (default: movinet_a0_stream, Kinetics-600)",
    )
    p.add_argument("--weights", help=WEIGHTS_HELP)
    p.add_argument("--top-k", type=_positive, default=5, help="classes to report")
    p.add_argument(
        "--num-clips",
        type=_positive,
        help="clip models: uniform clips averaged (default 4); not for stream models",
    )
    p.add_argument("--num-crops", type=int, choices=(1, 3), help="clip models: crops per clip (default 1)")
    p.add_argument(
        "--flow-dir", help="two-stream models: precomputed flow (vidrec flow --out); else computed on the fly"
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="one JSON object per video: video, model, mode, num_clips, num_crops, frames, predictions",
    )
    _add_record(p, 10.0)
    _add_int8(p)
    add_backend(p)
    add_precision(p)
    _add_device(p)
    add_batch_args(p, required_out=False)


def _extract_command(sub) -> None:
    """`vidrec extract`."""
    p = sub.add_parser(
        "extract",
        help="pooled features (the vector the classifier reads) of many videos, to sharded Parquet",
        epilog=BATCH_EPILOG,
    )
    p.add_argument("videos", nargs="*", help="video files (or give --list)")
    p.add_argument(
        "--model", default="movinet_a0_stream", help="model directory, checkpoint or pretrained name"
    )
    p.add_argument("--weights", help=WEIGHTS_HELP)
    p.add_argument("--num-clips", type=_positive, help="uniform clips per video (default 4)")
    p.add_argument("--num-crops", type=int, choices=(1, 3), help="crops per clip (default 1)")
    p.add_argument(
        "--per-clip", action="store_true", help="one feature per view ('features') instead of their mean"
    )
    p.add_argument("--flow-dir", help="two-stream models: precomputed flow")
    p.add_argument(
        "--rate", type=float,
        help="a timeline instead: features every 1/RATE s ('times', 'features'), the input of an event "
        "spotter (a stream model's frames binned; a clip model's clips centred on each step)",
    )  # fmt: skip
    p.add_argument("--causal", action="store_true", help="with --rate, clip models: clips end at each step")
    p.add_argument("--json", action="store_true", help="print the run's summary as JSON")
    _add_int8(p)
    add_precision(p)
    _add_device(p)
    add_batch_args(p, required_out=True)


def _stream_command(sub) -> None:
    """`vidrec stream`."""
    p = sub.add_parser(
        "stream", help="watch a video as a live stream: running top-k, then the clip prediction"
    )
    p.add_argument(
        "video",
        help="a video file, or a live source: a URL (rtsp://, http://, udp://...), /dev/videoN, - (stdin)",
    )
    p.add_argument("--model", default="movinet_a0_stream", help="a stream model (default: movinet_a0_stream)")
    p.add_argument("--weights", help=WEIGHTS_HELP)
    p.add_argument("--every", type=float, default=1.0, help="seconds of video between reports")
    _add_live(p)
    p.add_argument("--top-k", type=_positive, default=5, help="classes to report")
    p.add_argument("--json", action="store_true", help="one JSON object per report")
    p.add_argument(
        "--window",
        type=float,
        help="pool the last SECONDS only: what happens now, not the average since the start",
    )
    p.add_argument("--segments", help="write action segments as JSON Lines (label, start, end, peak)")
    p.add_argument("--timeline", help="write a PNG of the scores and segments over time")
    _add_int8(p)
    add_backend(p)
    add_precision(p)
    _add_device(p)


def _detect_command(sub) -> None:
    """`vidrec detect`."""
    p = sub.add_parser(
        "detect", help="who does what: people found, tracked, and each one's actions recognised"
    )
    p.add_argument("video", help="a video file, or a live source (as vidrec stream)")
    p.add_argument("--out", help="write the video with boxes, track ids and actions drawn (mp4)")
    p.add_argument("--json", action="store_true", help="one JSON object per frame looked at")
    p.add_argument(
        "--model",
        default="movinet_a0_stream",
        help="per-person actions: a stream model (default: movinet_a0_stream) or an AVA detector (*_ava)",
    )
    p.add_argument(
        "--detector",
        default="ssd_mobilenet_v1.coco_uint8",
        help="person detector (default: SSD MobileNet v1, COCO)",
    )
    p.add_argument("--weights", help=WEIGHTS_HELP)
    p.add_argument(
        "--fps",
        type=float,
        default=5.0,
        help="frames per second looked at: people found and tracked (default 5); each person's "
        "actions at most this often, at the model's own rate (MoViNet: 5)",
    )
    p.add_argument(
        "--min-score",
        type=float,
        default=0.7,
        help="least person score that starts a track (default 0.7; from 0.4 a box only extends one)",
    )
    p.add_argument(
        "--tile",
        default="auto",
        help="tile side in px, 'off', or 'auto' (400 px when the short side >= 1000, else square tiles "
        "of the short side on a frame that is not square)",
    )
    p.add_argument(
        "--context",
        type=float,
        default=2.0,
        help="crop side / the person box's longer side (at most the frame's short side; default 2)",
    )
    p.add_argument(
        "--window",
        type=float,
        default=2.0,
        help="seconds of each person's crops pooled per score (0: since first seen)",
    )
    p.add_argument(
        "--boxes",
        help="people's boxes from an AVA-style CSV (video_id,sec,x1,y1,x2,y2,[action],score) "
        "instead of the detector; each look takes the nearest second's boxes",
    )
    p.add_argument("--video-id", help="the video's id in --boxes (default: the file name without extension)")
    p.add_argument("--segments", help="write each person's action segments as JSON Lines")
    p.add_argument("--timeline", help="write a PNG of each person's action segments over time")
    p.add_argument(
        "--mot", help="write the tracks as MOTChallenge rows (frame,id,x,y,w,h,score,-1,-1,-1) for track-eval"
    )
    _add_live(p)
    p.add_argument("--top-k", type=_positive, default=3, help="actions reported per person")
    p.add_argument(
        "--settle", type=float, default=1.0, help="seconds a person is followed before their action is named"
    )
    p.add_argument(
        "--min-action",
        type=float,
        default=0.3,
        help="least probability of a named action; below it a person does 'no action' (default 0.3)",
    )
    add_backend(p)
    add_precision(p)
    _add_device(p)


def _highlights_command(sub) -> None:
    """`vidrec highlights`."""
    p = sub.add_parser(
        "highlights", help="cut the best segments of some actions into one reel (mp4, with audio)"
    )
    p.add_argument("video", help="a video file, or a live source (recorded for --duration s first)")
    p.add_argument(
        "--out", required=True, help="the reel (mp4); OUT.segments.jsonl and OUT.timeline.png beside it"
    )
    p.add_argument("--labels", help="comma-separated actions to keep (default: any)")
    p.add_argument(
        "--events",
        help="cut around these events instead (vidrec spot --out: results_spotting.json, a CSV or a "
        "folder); no model runs; --top events by confidence, --pad s each side",
    )
    p.add_argument("--model", default="movinet_a0_stream", help="a stream model (default: movinet_a0_stream)")
    p.add_argument("--weights", help=WEIGHTS_HELP)
    p.add_argument("--top", type=_positive, default=5, help="segments in the reel, best peak first")
    p.add_argument("--pad", type=float, default=1.0, help="seconds added before and after each segment")
    p.add_argument("--window", type=float, default=2.0, help="seconds of frames pooled per score")
    p.add_argument("--every", type=float, default=0.5, help="seconds between scores")
    p.add_argument("--on", type=float, default=0.4, help="smoothed score that opens a segment")
    p.add_argument("--off", type=float, default=0.2, help="smoothed score below which it closes")
    p.add_argument("--json", action="store_true", help="print the reel's segments as JSON Lines")
    _add_record(p, 60.0)
    _add_device(p)


def _spot_command(sub) -> None:
    """`vidrec spot`."""
    p = sub.add_parser("spot", help="find events in time with a trained spotter (a run of task spotting)")
    p.add_argument("video", help="a video file, or a live source (URL, /dev/videoN, -) with a causal spotter")
    p.add_argument(
        "--model", required=True, help="the spotter: a vidrec train run of task spotting (run.out)"
    )
    p.add_argument("--weights", help=WEIGHTS_HELP)
    p.add_argument("--out", help="write the events: results_spotting.json (SoccerNet's), a .csv, or a folder")
    p.add_argument(
        "--nms", type=float, default=1.0, help="seconds: weaker peaks within nms/2 of an event drop"
    )
    p.add_argument("--threshold", type=float, default=0.01, help="events below this probability are dropped")
    p.add_argument("--json", action="store_true", help="one JSON object per event")
    _add_live(p)
    _add_device(p)


def _serve_command(sub) -> None:
    """`vidrec serve`."""
    p = sub.add_parser(
        "serve", help="an HTTP service and web page for recognition (pip install 'vidrec[serve]')"
    )
    p.add_argument(
        "--model", action="append", help="a model offered (repeat for several; the first is the default; "
        "default: movinet_a0_stream)",
    )  # fmt: skip
    p.add_argument(
        "--detector", default="ssd_mobilenet_v1.coco_uint8", help="person detector for detect jobs"
    )
    p.add_argument("--weights", help=WEIGHTS_HELP)
    add_backend(p)
    _add_device(p)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port to listen on (default 8000)")
    p.add_argument(
        "--token", help="bearer token required by the API (else $VIDREC_SERVE_TOKEN; needed off loopback)"
    )
    p.add_argument(
        "--allow-paths", action="append", help="a folder whose files clients may name (repeatable)"
    )
    p.add_argument(
        "--allow-schemes", default="rtsp,rtsps,http,https", help="live source URL schemes clients may give"
    )
    p.add_argument("--cors-origin", action="append", help="a web origin allowed to call the API (repeatable)")
    p.add_argument("--max-upload-mb", type=float, default=200.0, help="largest upload (MB)")
    p.add_argument("--max-seconds", type=float, default=600.0, help="longest uploaded video (s)")
    p.add_argument(
        "--max-pixels", type=_pixels, default=3840 * 2160, help="largest frame, WIDTHxHEIGHT (3840x2160)"
    )
    p.add_argument("--workers", type=_positive, default=1, help="inference threads")
    p.add_argument("--queue", type=_positive, default=4, help="jobs waiting before the service answers 503")
    p.add_argument("--work-dir", help="folder for uploads and outputs (default: a temporary one)")
    p.add_argument(
        "--log-level",
        default="info",
        choices=("critical", "error", "warning", "info", "debug"),
        help="uvicorn's",
    )


def _export_command(sub) -> None:
    """`vidrec export`."""
    p = sub.add_parser(
        "export",
        help="write a model as ONNX (dynamic batch) or a MoViNet step as TFLite, checked against PyTorch",
    )
    p.add_argument("model", help="model directory, checkpoint or pretrained name")
    p.add_argument("out", help="the .onnx or .tflite file to write")
    p.add_argument(
        "--format",
        choices=("onnx", "tflite"),
        default="onnx",
        help="onnx (any model), or tflite: a MoViNet's stream step, batch 1, for the TFLite runtime "
        "(vidrec[litert])",
    )
    p.add_argument("--weights", help=WEIGHTS_HELP)
    p.add_argument("--opset", type=int, help="ONNX opset (default: the exporter's)")
    p.add_argument(
        "--stream",
        action="store_true",
        help="stream models: export one step, its state as inputs and outputs (--format tflite always does)",
    )
    p.add_argument(
        "--no-check",
        dest="check",
        action="store_false",
        help="skip running it in ONNX Runtime against PyTorch",
    )


def _convert_command(sub) -> None:
    """`vidrec convert`."""
    p = sub.add_parser(
        "convert", help="write any loadable model (checkpoint, .tflite, hub name) as a vidrec directory"
    )
    p.add_argument("source", help="anything vidrec.load_model reads")
    p.add_argument("out", help="output directory")
    p.add_argument("--arch", help="architecture, where the checkpoint cannot tell")
    p.add_argument(
        "--format",
        default="vidrec",
        choices=("vidrec", "transformers"),
        help="vidrec (config.json + model.safetensors) or transformers (VideoMAE only)",
    )
    p.add_argument("--weights", help=WEIGHTS_HELP)


def _two_stream_command(sub) -> None:
    """`vidrec two-stream`."""
    p = sub.add_parser(
        "two-stream", help="combine an RGB and a flow model into a late-fusion two-stream model"
    )
    p.add_argument("--rgb", required=True, help="RGB model directory or checkpoint")
    p.add_argument("--flow", required=True, help="flow model directory or checkpoint")
    p.add_argument("--out", required=True, help="output directory (rgb/, flow/ and the fusion config)")
    p.add_argument(
        "--weights",
        type=float,
        nargs=2,
        default=(0.5, 0.5),
        metavar=("RGB", "FLOW"),
        help="fusion weights of the two streams' probabilities",
    )
    p.add_argument(
        "--flow-method", default="tvl1", choices=("tvl1", "dis"), help="for flow computed on the fly"
    )


def _flow_command(sub) -> None:
    """`vidrec flow`."""
    p = sub.add_parser(
        "flow", help="optical flow (TV-L1 or DIS) for a video or a dataset, for I3D's flow stream"
    )
    p.add_argument("source", help="a video, a dataset CSV, or a folder-per-class directory")
    p.add_argument("--out", required=True, help="output directory (flow/*.npz and manifest.csv)")
    p.add_argument(
        "--method", default="tvl1", choices=("tvl1", "dis"), help="TV-L1 (the paper's) or DIS (fast)"
    )
    p.add_argument("--short-side", type=int, default=256, help="resize frames like the RGB stream")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes")


def _ava_eval_command(sub) -> None:
    """`vidrec ava-eval`."""
    p = sub.add_parser("ava-eval", help="AVA frame-mAP at IoU 0.5 (the official ActivityNet evaluator's)")
    p.add_argument(
        "--gt", required=True, help="ground-truth CSV (video_id,sec,x1,y1,x2,y2,action_id,person_id)"
    )
    p.add_argument(
        "--detections", required=True, help="detections CSV (video_id,sec,x1,y1,x2,y2,action_id,score)"
    )
    p.add_argument("--labels", required=True, help="label map .pbtxt: the classes evaluated")
    p.add_argument("--excluded", help="excluded-timestamps CSV (video_id,sec)")
    p.add_argument("--json", action="store_true", help='print {"mAP": ..., "per_class": {...}, ...}')


def _track_eval_command(sub) -> None:
    """`vidrec track-eval`."""
    p = sub.add_parser(
        "track-eval", help="score tracks against MOTChallenge ground truth: HOTA, MOTA, IDF1 (as TrackEval)"
    )
    p.add_argument(
        "--gt", required=True, help="ground truth, MOTChallenge rows (frame,id,x,y,w,h,flag,class,...)"
    )
    p.add_argument(
        "--tracks", required=True, help="a tracker's rows (frame,id,x,y,w,h,score,...), e.g. detect --mot"
    )
    p.add_argument("--json", action="store_true", help="print every score as one JSON object")


def _spot_eval_command(sub) -> None:
    """`vidrec spot-eval`."""
    p = sub.add_parser(
        "spot-eval", help="score spotted events: average-mAP over time tolerances (SoccerNet's evaluator)"
    )
    p.add_argument(
        "--gt", required=True,
        help="ground-truth events: Labels-v2.json, a SoccerNet folder (GAME/Labels-v2.json) or a CSV "
        "(video,time,label[,track])",
    )  # fmt: skip
    p.add_argument(
        "--pred", required=True,
        help="predicted events: results_spotting.json, a folder of them (GAME/results_spotting.json) "
        "or a CSV with a confidence column",
    )  # fmt: skip
    p.add_argument(
        "--metric", default="tight",
        help="tight (tolerances 1-5 s), loose (5-60 s) or one tolerance in seconds (default: tight)",
    )  # fmt: skip
    p.add_argument(
        "--classes",
        help="the classes scored, in order: soccernet-v2 (its 17), a file (one per line) or a,b,c; "
        "a class without events scores 0 (default: the labels of --gt)",
    )
    p.add_argument("--json", action="store_true", help="print every score as one JSON object")


def _models_command(sub) -> None:
    """`vidrec models`."""
    sub.add_parser("models", help="list architectures and pretrained weights")


def _info_command(sub) -> None:
    """`vidrec info`."""
    p = sub.add_parser("info", help="video metadata (and which figures came from the header)")
    p.add_argument("videos", nargs="+", help="video files")


def _demo_command(sub) -> None:
    """`vidrec demo`."""
    p = sub.add_parser(
        "demo",
        help="the embedded default: a real clip through MoViNet, then synth -> train -> eval -> predict",
    )
    p.add_argument("--out", default="runs/demo", help="where the dataset and the trained model go")
    p.add_argument("--epochs", type=_positive, default=4, help="training epochs of the SynthMotion part")
    p.add_argument("--video", help="a real clip for the pretrained MoViNet-A0 Stream (Kinetics-600)")
    p.add_argument(
        "--weights",
        help="folder holding movinet_a0_int8.tflite (else $VIDREC_WEIGHTS, the cache, a download)",
    )
    _add_device(p)


def _add_live(p) -> None:
    p.add_argument(
        "--no-realtime",
        dest="realtime",
        action="store_false",
        help="live sources: process every frame (may fall behind) instead of the newest one",
    )
    p.add_argument(
        "--timeout", type=float, default=10.0, help="live sources: seconds without a frame = stalled"
    )


def _add_record(p, seconds: float) -> None:
    p.add_argument(
        "--duration",
        type=float,
        default=seconds,
        help=f"live sources: seconds recorded before the command runs on them (default {seconds:g})",
    )
    p.add_argument("--record", help="live sources: keep the recording at this path (Matroska)")
    p.add_argument("--timeout", type=float, default=10.0, help="live sources: seconds without data = stalled")


def _add_int8(p) -> None:
    p.add_argument(
        "--int8",
        action="store_true",
        help="compute as the int8 TFLite runtime does, bit for bit (models imported from int8 .tflite files)",
    )


def _version() -> str:
    from vidrec._version import __version__

    return f"vidrec {__version__}"


def _add_preprocessing_flags(p: argparse.ArgumentParser) -> None:
    """One flag per preprocessing field (quick form: data.FIELD), from the list the config uses."""
    from vidrec.train.config import PREPROCESSING_FIELDS, PREPROCESSING_TYPES

    for f in PREPROCESSING_FIELDS:
        flag, hint = "--" + f.name.replace("_", "-"), PREPROCESSING_TYPES[f.name]
        text = f"quick form: data.{f.name}: {f.metadata['help']} (default: the model's)"
        if hint is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
            continue
        args = typing.get_args(hint)
        base = (
            next((a for a in args if a is not type(None)), hint)
            if args and typing.get_origin(hint) is not tuple
            else hint
        )
        if typing.get_origin(base) is tuple:
            p.add_argument(flag, type=float, nargs=len(typing.get_args(base)), help=text)
        else:
            p.add_argument(flag, type=base, help=text)
