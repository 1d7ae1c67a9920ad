"""`vidrec` command line: synth, train, pretrain, reconstruct, eval, predict, stream, convert, flow,
two-stream, models, info, demo.

User errors (bad files, unknown names, bad settings) print one `error: ...` line and exit
non-zero; tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import typing

from vidrec.errors import ConfigError, VidrecError


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: CUDA when available, else CPU)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vidrec", description="Video action recognition.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="generate a labelled SynthMotion dataset")
    p.add_argument("out", help="output directory (videos, train/val/test.csv, classes.txt)")
    p.add_argument("--train", type=int, default=240, help="training videos")
    p.add_argument("--val", type=int, default=48, help="validation videos")
    p.add_argument("--test", type=int, default=48, help="test videos")
    p.add_argument("--frames", type=int, default=16, help="frames per video")
    p.add_argument("--size", type=int, default=64, help="frame side in pixels")
    p.add_argument("--seed", type=int, default=0, help="the same seed makes the same videos")
    p.add_argument("--noise", type=float, default=0.0, help="std of pixel noise (0-255)")
    p.add_argument("--jitter", type=float, default=0.0, help="camera shake std in pixels")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="rendering processes")

    for name, text in (("train", "train or fine-tune a classifier (a YAML run config, or the quick flags)"),
                       ("pretrain", "VideoMAE masked-autoencoder pretraining from a YAML run config")):
        p = sub.add_parser(name, help=text)
        p.add_argument("config", nargs="?", help="run config YAML (see configs/)")
        p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a config value, e.g. optimizer.lr=0.01; a key without a section is a "
                            "model option (drop_path=0.1 is model.options.drop_path=0.1)")
        p.add_argument("--resume", nargs="?", const="auto",
                       help="continue the run in run.out: 'auto' (newest valid checkpoint) or a checkpoint path")
        p.add_argument("--data", help="quick form: data.train (CSV, folder per class, or a directory with train.csv)")
        p.add_argument("--model", help="quick form: an architecture, or weights to fine-tune (model.init)")
        p.add_argument("--out", help="quick form: run.out")
        p.add_argument("--epochs", type=int, help="quick form: schedule.epochs")
        p.add_argument("--batch-size", type=int, help="quick form: data.batch_size")
        p.add_argument("--lr", type=float, help="quick form: optimizer.lr")
        p.add_argument("--workers", type=int, help="quick form: data.workers")
        p.add_argument("--seed", type=int, help="quick form: run.seed")
        _add_preprocessing_flags(p)
        p.add_argument("--quiet", action="store_true", help="no progress bars or resolved config")
        _add_device(p)

    p = sub.add_parser("reconstruct", help="show what a VideoMAE pretraining model reconstructs (PNG)")
    p.add_argument("model", help="a pretraining model (vidrec pretrain's run.out, or a transformers directory)")
    p.add_argument("video", help="a video file (its first clip is shown)")
    p.add_argument("--out", required=True, help="PNG: original, masked and reconstructed frames")
    p.add_argument("--mask-ratio", type=float, help="share of tubelets hidden (default: the model's)")
    p.add_argument("--seed", type=int, default=0, help="seed of the mask")
    _add_device(p)

    p = sub.add_parser("eval", help="evaluate a model on a labelled CSV (video-level, multi-view)")
    p.add_argument("model", help="a model (directory, checkpoint, tag), or a run config YAML (its run.out and data.test)")
    p.add_argument("--data", help="CSV of path,label (or a folder-per-class directory)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override (with a YAML)")
    p.add_argument("--num-clips", type=int, help="temporal clips per video (default 1, or the config's eval.num_clips)")
    p.add_argument("--num-crops", type=int, choices=(1, 3), help="spatial crops (default 1, or the config's)")
    p.add_argument("--batch-size", type=int, default=4, help="videos per batch")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="decoding processes")
    p.add_argument("--flow-dir", help="two-stream models: precomputed flow (vidrec flow --out); else computed on the fly")
    p.add_argument("--report", help="write the full JSON report (per-class accuracy, confusion matrix, predictions)")
    p.add_argument("--confusion", help="write the confusion matrix as a PNG")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON object")
    _add_device(p)

    p = sub.add_parser("predict", help="predict the action in video files")
    p.add_argument("videos", nargs="+", help="video files")
    p.add_argument("--model", default="movinet_a0_stream",
                   help="model directory, checkpoint or pretrained name (default: movinet_a0_stream, Kinetics-600)")
    p.add_argument("--weights", help="folder holding pretrained weight files (else $VIDREC_WEIGHTS, then the cache)")
    p.add_argument("--top-k", type=int, default=5, help="classes to report")
    p.add_argument("--num-clips", type=int, help="clip models: uniform clips averaged (default 4); not for stream models")
    p.add_argument("--num-crops", type=int, choices=(1, 3), help="clip models: crops per clip (default 1)")
    p.add_argument("--flow-dir", help="two-stream models: precomputed flow (vidrec flow --out); else computed on the fly")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per video: video, model, mode, num_clips, num_crops, frames, predictions")
    _add_int8(p)
    _add_device(p)

    p = sub.add_parser("stream", help="watch a video as a live stream: running top-k, then the clip prediction")
    p.add_argument("video", help="a video file")
    p.add_argument("--model", default="movinet_a0_stream", help="a stream model (default: movinet_a0_stream)")
    p.add_argument("--weights", help="folder holding pretrained weight files (else $VIDREC_WEIGHTS, then the cache)")
    p.add_argument("--every", type=float, default=1.0, help="seconds of video between reports")
    p.add_argument("--top-k", type=int, default=5, help="classes to report")
    p.add_argument("--json", action="store_true", help="one JSON object per report")
    _add_int8(p)
    _add_device(p)

    p = sub.add_parser("convert", help="write any loadable model (checkpoint, .tflite, hub name) as a vidrec directory")
    p.add_argument("source", help="anything vidrec.load_model reads")
    p.add_argument("out", help="output directory")
    p.add_argument("--arch", help="architecture, where the checkpoint cannot tell")
    p.add_argument("--format", default="vidrec", choices=("vidrec", "transformers"),
                   help="vidrec (config.json + model.safetensors) or transformers (VideoMAE only)")
    p.add_argument("--weights", help="folder holding pretrained weight files")

    p = sub.add_parser("two-stream", help="combine an RGB and a flow model into a late-fusion two-stream model")
    p.add_argument("--rgb", required=True, help="RGB model directory or checkpoint")
    p.add_argument("--flow", required=True, help="flow model directory or checkpoint")
    p.add_argument("--out", required=True, help="output directory (rgb/, flow/ and the fusion config)")
    p.add_argument("--weights", type=float, nargs=2, default=(0.5, 0.5), metavar=("RGB", "FLOW"),
                   help="fusion weights of the two streams' probabilities")
    p.add_argument("--flow-method", default="tvl1", choices=("tvl1", "dis"), help="for flow computed on the fly")

    p = sub.add_parser("flow", help="optical flow (TV-L1 or DIS) for a video or a dataset, for I3D's flow stream")
    p.add_argument("source", help="a video, a dataset CSV, or a folder-per-class directory")
    p.add_argument("--out", required=True, help="output directory (flow/*.npz and manifest.csv)")
    p.add_argument("--method", default="tvl1", choices=("tvl1", "dis"), help="TV-L1 (the paper's) or DIS (fast)")
    p.add_argument("--short-side", type=int, default=256, help="resize frames like the RGB stream")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="processes")

    sub.add_parser("models", help="list architectures and pretrained weights")

    p = sub.add_parser("info", help="video metadata (and which figures came from the header)")
    p.add_argument("videos", nargs="+", help="video files")

    p = sub.add_parser("demo", help="the embedded default: a real clip through MoViNet, then synth -> train -> eval -> predict")
    p.add_argument("--out", default="runs/demo", help="where the dataset and the trained model go")
    p.add_argument("--epochs", type=int, default=6, help="training epochs of the SynthMotion part")
    p.add_argument("--video", help="a real clip for the pretrained MoViNet-A0 Stream (Kinetics-600)")
    p.add_argument("--weights", help="folder holding movinet_a0_int8.tflite (else $VIDREC_WEIGHTS, the cache, a download)")
    _add_device(p)
    return parser


def _version() -> str:
    from vidrec._version import __version__

    return f"vidrec {__version__}"


def _add_preprocessing_flags(p: argparse.ArgumentParser) -> None:
    """One flag per preprocessing field (quick form: data.FIELD), from the list the config uses."""
    from vidrec.config import PREPROCESSING_FIELDS, _PREP_HINTS

    for f in PREPROCESSING_FIELDS:
        flag, hint = "--" + f.name.replace("_", "-"), _PREP_HINTS[f.name]
        text = f"quick form: data.{f.name}: {f.metadata['help']} (default: the model's)"
        if hint is bool:
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=text)
            continue
        args = typing.get_args(hint)
        base = next((a for a in args if a is not type(None)), hint) if args and typing.get_origin(hint) is not tuple else hint
        if typing.get_origin(base) is tuple:
            p.add_argument(flag, type=float, nargs=len(typing.get_args(base)), help=text)
        else:
            p.add_argument(flag, type=base, help=text)


def _run_config(args):
    """The YAML config with --set overrides, or one built from the quick flags."""
    from vidrec.config import config_from_dict, load_config

    from vidrec.config import PREPROCESSING_FIELDS

    quick = {"data.train": args.data, "run.out": args.out, "schedule.epochs": args.epochs,
             "data.batch_size": args.batch_size, "optimizer.lr": args.lr, "data.workers": args.workers,
             "run.seed": args.seed, **{f"data.{f.name}": getattr(args, f.name) for f in PREPROCESSING_FIELDS}}
    sets = [f"{k}={json.dumps(list(v) if isinstance(v, tuple) else v)}" for k, v in quick.items() if v is not None]
    sets += [s if "." in s.split("=", 1)[0] else f"model.options.{s}" for s in args.set]
    if args.device != "auto":
        sets.append(f"run.device={args.device}")
    if args.model:
        from vidrec.registry import list_models

        sets.append(f"model.{'name' if args.model in list_models() else 'init'}={args.model}")
    if args.config:
        return load_config(args.config, sets)
    if not (args.data and args.model and args.out):
        raise ConfigError(f"give a run config (vidrec {args.command} CONFIG) or --data, --model and --out")
    defaults = {"schedule": {"warmup_epochs": 1.0}, "optimizer": {"grad_clip": 1.0}}
    return config_from_dict(defaults, sets)


def cmd_train(args) -> int:
    from vidrec.engine.train import train

    cfg = _run_config(args)
    metrics = train(cfg, pretrain=args.command == "pretrain", resume=args.resume, progress=not args.quiet)
    print(json.dumps({"out": cfg.run.out, **metrics}))
    return 0


def cmd_reconstruct(args) -> int:
    from vidrec.engine.reconstruct import reconstruct_video

    from vidrec.utils import resolve_device

    result = reconstruct_video(args.model, args.video, args.out, mask_ratio=args.mask_ratio, seed=args.seed,
                               device=resolve_device(args.device))
    print(json.dumps(result))
    return 0


def _eval_target(args):
    """(model source, data, views, report paths) from a model or a run config."""
    if not args.model.endswith((".yaml", ".yml")):
        if not args.data:
            raise ConfigError("--data is required (or pass a run config YAML)")
        return args.model, args.data, (args.num_clips or 1, args.num_crops or 1), args.report, args.confusion
    from vidrec.config import load_config
    from vidrec.engine.setup import split_path

    cfg = load_config(args.model, args.set)
    data = args.data or split_path(cfg, "test") or split_path(cfg, "val")
    if data is None:
        raise ConfigError(f"{args.model}: no data.test or data.val to evaluate (or pass --data)")
    views = (args.num_clips or cfg.eval.num_clips, args.num_crops or cfg.eval.num_crops)
    return (cfg.run.out, data, views, args.report or os.path.join(cfg.run.out, "eval_report.json"),
            args.confusion or os.path.join(cfg.run.out, "confusion.png"))


def cmd_eval(args) -> int:
    from vidrec.data.datasets import load_labelled
    from vidrec.deploy import optimize_for_inference
    from vidrec.engine.distributed import device_for, init_distributed
    from vidrec.engine.evaluate import evaluate
    from vidrec.loader import load_model
    from vidrec.utils import atomic_write_text, resolve_device

    source, data, (num_clips, num_crops), report_path, confusion_path = _eval_target(args)
    device = resolve_device(args.device)
    d = init_distributed(device)
    device = device_for(device, d)
    model = optimize_for_inference(load_model(source, device=device))
    records = load_labelled(data, classes=model.labels)
    result = evaluate(model, records, num_clips=num_clips, num_crops=num_crops, batch_size=args.batch_size,
                      workers=args.workers, device=device, progress=not args.json and d.main, flow_dir=args.flow_dir,
                      dist=d, details=bool(report_path or confusion_path))
    if not d.main:
        return 0
    if report_path:
        atomic_write_text(report_path, json.dumps(result, indent=1) + "\n")
    if confusion_path and "confusion_matrix" in result:
        from vidrec.engine.report import plot_confusion

        plot_confusion(result["confusion_matrix"], result["labels"], confusion_path)
    summary = {k: v for k, v in result.items() if k not in ("confusion_matrix", "predictions", "labels")}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"videos {result['num_videos']}  views/video {result['num_views']}  top-1 {result['top1']:.2f}  "
              f"top-5 {result['top5']:.2f}  mean class acc {result['mean_class_acc']:.2f}")
        for path in (report_path, confusion_path):
            if path:
                print(f"wrote {path}")
    for f in result["failed"]:
        print(f"error: {f['path']}: {f['reason']}", file=sys.stderr)
    return 1 if result["failed"] else 0


def _add_int8(p) -> None:
    p.add_argument("--int8", action="store_true",
                   help="compute as the int8 TFLite runtime does, bit for bit (models imported from int8 .tflite files)")


def _inference_model(args, device):
    """The model to run: loaded, then its int8 form (--int8) or optimised for float inference."""
    from vidrec.deploy import optimize_for_inference, to_int8
    from vidrec.loader import load_model

    model = load_model(args.model, device=device, weights_dir=args.weights)
    return to_int8(model) if args.int8 else optimize_for_inference(model)


def cmd_predict(args) -> int:
    from vidrec.engine.predict import format_predictions, predict
    from vidrec.utils import resolve_device

    device = resolve_device(args.device)
    model = _inference_model(args, device)
    status = 0
    for path in args.videos:
        try:
            result = predict(model, path, top_k=args.top_k, num_clips=args.num_clips, num_crops=args.num_crops,
                             device=device, flow_dir=args.flow_dir)
        except ConfigError:
            raise  # a setting that cannot apply: one error for the whole command
        except VidrecError as e:
            message = str(e)
            print(f"error: {message if message.startswith(path) else f'{path}: {message}'}", file=sys.stderr)
            status = 1
            continue
        if args.json:
            print(json.dumps(result), flush=True)
        else:
            best = format_predictions(result["predictions"])
            print(f"{path}: {best}", flush=True)
    return status


def cmd_stream(args) -> int:
    import time

    from vidrec.engine.predict import format_predictions
    from vidrec.engine.stream import stream_video
    from vidrec.utils import resolve_device

    device = resolve_device(args.device)
    model = _inference_model(args, device)
    start = time.perf_counter()
    for report in stream_video(model, args.video, every=args.every, top_k=args.top_k, device=device):
        if args.json:
            print(json.dumps(report), flush=True)
            continue
        best = format_predictions(report["predictions"])
        if report.get("final"):
            took = time.perf_counter() - start
            print(f"{args.video}: {best}\n  ({report['frames']} frames = {report['time']:.1f} s of video at "
                  f"{model.preprocessing.target_fps:g} fps, processed in {took:.1f} s)", flush=True)
        else:
            print(f"{report['time']:7.1f} s  {best}", flush=True)
    return 0


def cmd_convert(args) -> int:
    from vidrec.loader import load_model, save_model

    model = load_model(args.source, arch=args.arch, weights_dir=args.weights)
    save_model(model, args.out, format=args.format)
    print(f"{args.out}: {model.arch} ({sum(p.numel() for p in model.parameters()):,} parameters, "
          f"{model.num_classes} classes) from {args.source}")
    return 0


def cmd_models(args) -> int:
    import torch

    from vidrec.registry import create_model, list_models
    from vidrec.weights import weights_for

    def count(name: str, **options) -> int:
        with torch.device("meta"):  # shapes only: no memory, no initialisation time
            return sum(p.numel() for p in create_model(name, **options).parameters())

    print(f"{'architecture':<24} {'params (400 classes)':>20}  pretrained weights (their parameters)")
    for name in list_models():
        options = {} if name.endswith("_pretrain") else {"num_classes": 400}
        tags = [f"{w.name} ({count(name, **w.model_options):,})" for w in weights_for(name)]
        print(f"{name:<24} {count(name, **options):>20,}  {', '.join(tags) or '-'}")
    return 0


def cmd_info(args) -> int:
    from vidrec.io import probe

    status = 0
    for path in args.videos:
        try:
            print(json.dumps(probe(path).to_dict()))
        except VidrecError as e:
            print(f"error: {e}", file=sys.stderr)
            status = 1
    return status


def cmd_synth(args) -> int:
    from vidrec.data.synthetic import SynthConfig, generate_dataset

    cfg = SynthConfig(num_frames=args.frames, size=args.size, noise=args.noise, camera_jitter=args.jitter)
    stats = generate_dataset(args.out, counts={"train": args.train, "val": args.val, "test": args.test}, cfg=cfg,
                             seed=args.seed, workers=args.workers)
    print(f"{args.out}: {stats['made']} videos made, {stats['kept']} kept")
    return 0


def cmd_two_stream(args) -> int:
    from vidrec.loader import load_model
    from vidrec.models.two_stream import TwoStream

    model = TwoStream(load_model(args.rgb), load_model(args.flow), weights=tuple(args.weights),
                      flow_method=args.flow_method)
    model.save_pretrained(args.out)
    print(f"{args.out}: two-stream model (weights rgb {model.weights[0]:.2f}, flow {model.weights[1]:.2f})")
    return 0


def cmd_flow(args) -> int:
    from vidrec.data.datasets import VIDEO_EXTENSIONS, VideoRecord, load_annotations
    from vidrec.data.flow import extract_flow

    if args.source.lower().endswith(VIDEO_EXTENSIONS):
        records, classes = [VideoRecord(args.source, -1)], None
    else:
        records, classes = load_annotations(args.source)
    result = extract_flow(records, args.out, classes=classes, method=args.method, short_side=args.short_side,
                          workers=args.workers)
    print(f"{args.out}: {result['made']} computed, {result['kept']} kept, {result['failed']} failed")
    return 1 if result["failed"] else 0


def cmd_demo(args) -> int:
    from vidrec.demo import run_demo

    run_demo(out=args.out, epochs=args.epochs, device=args.device, video=args.video, weights_dir=args.weights)
    return 0


COMMANDS = {"synth": cmd_synth, "train": cmd_train, "pretrain": cmd_train, "reconstruct": cmd_reconstruct, "eval": cmd_eval, "predict": cmd_predict, "stream": cmd_stream,
            "convert": cmd_convert, "flow": cmd_flow,
            "two-stream": cmd_two_stream,
            "models": cmd_models, "info": cmd_info, "demo": cmd_demo}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except VidrecError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
