"""`vidrec` command line: synth, train, eval, predict, flow, two-stream, models, info, demo.

User errors (bad files, unknown names, bad settings) print one `error: ...` line and exit
non-zero; tracebacks are for bugs only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from vidrec.errors import ConfigError, VidrecError


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="cpu, cuda, cuda:1 ... (default: CUDA when available, else CPU)")


def _parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _overrides(pairs: list[str]) -> dict:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--set expects key=value, got '{pair}'")
        key, value = pair.split("=", 1)
        out[key.strip()] = _parse_value(value)
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vidrec", description="Video action recognition.")
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="generate a labelled SynthMotion dataset")
    p.add_argument("out")
    p.add_argument("--train", type=int, default=240)
    p.add_argument("--val", type=int, default=48)
    p.add_argument("--test", type=int, default=48)
    p.add_argument("--frames", type=int, default=16)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--noise", type=float, default=0.0, help="std of pixel noise (0-255)")
    p.add_argument("--jitter", type=float, default=0.0, help="camera shake std in pixels")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))

    p = sub.add_parser("train", help="train a model on a dataset")
    p.add_argument("--data", required=True, help="a directory with train.csv [val.csv], a folder-per-class directory, or a CSV")
    p.add_argument("--val", help="validation CSV (default: DATA/val.csv when present)")
    p.add_argument("--model", required=True, help="architecture name, or a model directory to fine-tune")
    p.add_argument("--out", required=True)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--warmup-epochs", type=float, default=1.0)
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--num-frames", type=int, help="frames per clip (default: the model's)")
    p.add_argument("--sampling-rate", type=int, help="frame stride (default: the model's)")
    p.add_argument("--target-fps", type=float, help="resample videos to this rate before sampling")
    p.add_argument("--resize", type=int, help="short side before cropping (default: the model's)")
    p.add_argument("--crop-size", type=int, help="input side (default: the model's)")
    p.add_argument("--no-flip", action="store_true", help="no horizontal flips (labels that depend on direction)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="model config override")
    p.add_argument("--quiet", action="store_true")
    _add_device(p)

    p = sub.add_parser("eval", help="evaluate a model on a labelled CSV (video-level, multi-view)")
    p.add_argument("model")
    p.add_argument("--data", required=True, help="CSV of path,label (or a folder-per-class directory)")
    p.add_argument("--num-clips", type=int, default=1)
    p.add_argument("--num-crops", type=int, default=1, choices=(1, 3))
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    p.add_argument("--flow-dir", help="two-stream models: precomputed flow (vidrec flow --out); else computed on the fly")
    p.add_argument("--json", action="store_true")
    _add_device(p)

    p = sub.add_parser("predict", help="predict the action in video files")
    p.add_argument("videos", nargs="+")
    p.add_argument("--model", help="model directory or pretrained name")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--num-clips", type=int, default=4)
    p.add_argument("--num-crops", type=int, default=1, choices=(1, 3))
    p.add_argument("--flow-dir", help="two-stream models: precomputed flow (vidrec flow --out); else computed on the fly")
    p.add_argument("--json", action="store_true")
    _add_device(p)

    p = sub.add_parser("two-stream", help="combine an RGB and a flow model into a late-fusion two-stream model")
    p.add_argument("--rgb", required=True, help="RGB model directory or checkpoint")
    p.add_argument("--flow", required=True, help="flow model directory or checkpoint")
    p.add_argument("--out", required=True)
    p.add_argument("--weights", type=float, nargs=2, default=(0.5, 0.5), metavar=("RGB", "FLOW"))
    p.add_argument("--flow-method", default="tvl1", choices=("tvl1", "dis"), help="for flow computed on the fly")

    p = sub.add_parser("flow", help="optical flow (TV-L1 or DIS) for a video or a dataset, for I3D's flow stream")
    p.add_argument("source", help="a video, a dataset CSV, or a folder-per-class directory")
    p.add_argument("--out", required=True)
    p.add_argument("--method", default="tvl1", choices=("tvl1", "dis"))
    p.add_argument("--short-side", type=int, default=256, help="resize frames like the RGB stream")
    p.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))

    sub.add_parser("models", help="list architectures and pretrained weights")

    p = sub.add_parser("info", help="video metadata (and which figures came from the header)")
    p.add_argument("videos", nargs="+")

    p = sub.add_parser("demo", help="the embedded default: synth -> train -> eval -> predict")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--epochs", type=int, default=6)
    _add_device(p)
    return parser


def _version() -> str:
    from vidrec import __version__

    return f"vidrec {__version__}"


def _train_data(args) -> tuple:
    from vidrec.data.datasets import load_annotations, load_csv

    data = args.data
    if args.val and not os.path.exists(args.val):
        raise ConfigError(f"{args.val}: no such validation file")
    if os.path.isdir(data) and os.path.exists(os.path.join(data, "train.csv")):
        train, classes = load_csv(os.path.join(data, "train.csv"))
        val_path = args.val or os.path.join(data, "val.csv")
    else:
        train, classes = load_annotations(data)
        val_path = args.val
    val = load_csv(val_path, classes=classes)[0] if val_path and os.path.exists(val_path) else None
    return train, val, classes


def cmd_train(args) -> int:
    import dataclasses

    from vidrec.engine.train import TrainSettings, train
    from vidrec.hub import load_model
    from vidrec.registry import create_model
    from vidrec.utils import resolve_device

    train_records, val_records, classes = _train_data(args)
    overrides = _overrides(args.set)
    if os.path.isdir(args.model):
        if overrides:
            raise ConfigError("--set applies to new architectures, not to a model directory")
        model = load_model(args.model)
        if model.num_classes != len(classes):
            print(f"re-initialising the classifier: {model.num_classes} -> {len(classes)} classes", file=sys.stderr)
            model.reset_classifier(len(classes))
    else:
        model = create_model(args.model, num_classes=len(classes), **overrides)
    prep_changes = {k: getattr(args, k) for k in ("num_frames", "sampling_rate", "target_fps", "resize", "crop_size")
                    if getattr(args, k) is not None}
    if args.no_flip:
        prep_changes["flip"] = False
    if "crop_size" in prep_changes and "resize" not in prep_changes:
        prep_changes["resize"] = max(model.preprocessing.resize, prep_changes["crop_size"])
    model.preprocessing = dataclasses.replace(model.preprocessing, **prep_changes)
    settings = TrainSettings(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                             warmup_epochs=args.warmup_epochs, workers=args.workers, seed=args.seed)
    metrics = train(model, train_records, classes=classes, out=args.out, settings=settings, val_records=val_records,
                    device=resolve_device(args.device), progress=not args.quiet)
    print(json.dumps({"out": args.out, **metrics}))
    return 0


def cmd_eval(args) -> int:
    from vidrec.data.datasets import load_annotations, load_csv
    from vidrec.engine.evaluate import evaluate
    from vidrec.hub import load_model
    from vidrec.models.layers import optimize_for_inference
    from vidrec.utils import resolve_device

    device = resolve_device(args.device)
    model = optimize_for_inference(load_model(args.model, device=device))
    if model.labels and os.path.isfile(args.data):  # read label names against the model's classes
        records, _ = load_csv(args.data, classes=model.labels)
    else:
        records, classes = load_annotations(args.data)
        if model.labels and set(classes) <= set(model.labels):  # folder names: follow the model's order
            index = {name: i for i, name in enumerate(model.labels)}
            records = [type(r)(r.path, index[classes[r.label]]) for r in records]
    result = evaluate(model, records, num_clips=args.num_clips, num_crops=args.num_crops, batch_size=args.batch_size,
                      workers=args.workers, device=device, progress=not args.json, flow_dir=args.flow_dir)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"videos {result['num_videos']}  views/video {result['num_views']}  top-1 {result['top1']:.2f}  "
              f"top-5 {result['top5']:.2f}  mean class acc {result['mean_class_acc']:.2f}")
    for f in result["failed"]:
        print(f"error: {f['path']}: {f['reason']}", file=sys.stderr)
    return 1 if result["failed"] else 0


def cmd_predict(args) -> int:
    from vidrec.engine.predict import predict
    from vidrec.hub import load_model
    from vidrec.models.layers import optimize_for_inference
    from vidrec.utils import resolve_device

    if not args.model:
        raise ConfigError("pass --model DIR_OR_NAME (a trained model directory or a pretrained name; see `vidrec models`)")
    device = resolve_device(args.device)
    model = optimize_for_inference(load_model(args.model, device=device))
    status = 0
    for path in args.videos:
        try:
            result = predict(model, path, top_k=args.top_k, num_clips=args.num_clips, num_crops=args.num_crops,
                             device=device, flow_dir=args.flow_dir)
        except VidrecError as e:
            message = str(e)
            print(f"error: {message if message.startswith(path) else f'{path}: {message}'}", file=sys.stderr)
            status = 1
            continue
        if args.json:
            print(json.dumps(result), flush=True)
        else:
            best = ", ".join(f"{p['label']} {p['score']:.3f}" for p in result["predictions"])
            print(f"{path}: {best}", flush=True)
    return status


def cmd_models(args) -> int:
    from vidrec.hub import WEIGHTS
    from vidrec.registry import create_model, list_models

    import torch

    print(f"{'architecture':<24} {'params (400 classes)':>20}  weights")
    for name in list_models():
        with torch.device("meta"):  # shapes only: no memory, no initialisation time
            params = sum(p.numel() for p in create_model(name, num_classes=400).parameters())
        tags = [k for k, w in WEIGHTS.items() if w.arch == name]
        print(f"{name:<24} {params:>20,}  {', '.join(tags) or '-'}")
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
    from vidrec.engine.two_stream import TwoStream
    from vidrec.hub import load_model

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

    run_demo(out=args.out, epochs=args.epochs, device=args.device)
    return 0


COMMANDS = {"synth": cmd_synth, "train": cmd_train, "eval": cmd_eval, "predict": cmd_predict, "flow": cmd_flow,
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
