"""What each `vidrec` subcommand does (`cmd_NAME(args) -> exit code`). Heavy imports stay inside
the commands, so `vidrec --help` and a mistyped flag answer at once."""

from __future__ import annotations

import json
import os
import sys

from vidrec.cli.loading import for_inference, inference_model
from vidrec.errors import ConfigError, VidrecError


def _run_config(args):
    """The YAML config with --set overrides, or one built from the quick flags."""
    from vidrec.train.config import PREPROCESSING_FIELDS, config_from_dict, load_config

    quick = {
        "data.train": args.data,
        "run.out": args.out,
        "schedule.epochs": args.epochs,
        "data.batch_size": args.batch_size,
        "optimizer.lr": args.lr,
        "data.workers": args.workers,
        "run.seed": args.seed,
        "model.freeze": "backbone" if args.freeze_backbone else None,
        "task": args.task,
        "spotting.features": args.features,
        "spotting.extractor": args.extractor,
        **{f"data.{f.name}": getattr(args, f.name) for f in PREPROCESSING_FIELDS},
    }
    sets = [
        f"{k}={json.dumps(list(v) if isinstance(v, tuple) else v)}" for k, v in quick.items() if v is not None
    ]
    sets += args.set
    if args.device != "auto":
        sets.append(f"run.device={args.device}")
    if args.model:
        from vidrec.models.registry import SPOTTER_BUILDERS, list_models

        named = args.model in list_models() or args.model in SPOTTER_BUILDERS
        sets.append(f"model.{'name' if named else 'init'}={args.model}")
    if args.config:
        return load_config(args.config, sets)
    if not (args.data and (args.model or args.task == "spotting") and args.out):
        raise ConfigError(f"give a run config (vidrec {args.command} CONFIG) or --data, --model and --out")
    defaults = {"schedule": {"warmup_epochs": 1.0}, "optimizer": {"grad_clip": 1.0}}
    return config_from_dict(defaults, sets)


def cmd_train(args) -> int:
    """`vidrec train` / `vidrec pretrain`: a run from a YAML config or the quick-form flags."""
    from vidrec.train.loop import train

    cfg = _run_config(args)
    metrics = train(cfg, pretrain=args.command == "pretrain", resume=args.resume, progress=not args.quiet)
    print(json.dumps({"out": cfg.run.out, **metrics}))
    return 0


def cmd_reconstruct(args) -> int:
    """`vidrec reconstruct MODEL VIDEO --out PNG`: what a VideoMAE pretraining model reconstructs."""
    from vidrec.recognize.reconstruct import reconstruct_video
    from vidrec.utils import resolve_device

    result = reconstruct_video(
        args.model,
        args.video,
        args.out,
        mask_ratio=args.mask_ratio,
        seed=args.seed,
        device=resolve_device(args.device),
    )
    print(json.dumps(result))
    return 0


def _eval_target(args):
    """(model source, data, views, report paths) from a model or a run config."""
    if not args.model.endswith((".yaml", ".yml")):
        if not args.data:
            raise ConfigError("--data is required (or pass a run config YAML)")
        return args.model, args.data, (args.num_clips or 1, args.num_crops or 1), args.report, args.confusion
    from vidrec.train.config import load_config
    from vidrec.train.setup import split_path

    cfg = load_config(args.model, args.set)
    data = args.data or split_path(cfg, "test") or split_path(cfg, "val")
    if data is None:
        raise ConfigError(f"{args.model}: no data.test or data.val to evaluate (or pass --data)")
    views = (args.num_clips or cfg.eval.num_clips, args.num_crops or cfg.eval.num_crops)
    return (
        cfg.run.out,
        data,
        views,
        args.report or os.path.join(cfg.run.out, "eval_report.json"),
        args.confusion or os.path.join(cfg.run.out, "confusion.png"),
    )


def cmd_eval(args) -> int:
    """`vidrec eval MODEL|CONFIG`: multi-view video-level metrics, a JSON report and a confusion PNG."""
    from vidrec.data.datasets import load_labelled
    from vidrec.distributed import device_for, init_distributed
    from vidrec.models.loader import load_model
    from vidrec.recognize.evaluate import evaluate
    from vidrec.utils import atomic_write_text, resolve_device

    if args.model.endswith((".yaml", ".yml")):
        from vidrec.train.config import load_config

        cfg = load_config(args.model, args.set)
        if cfg.task == "detection":
            return _eval_detection(cfg, args)
    source, data, (num_clips, num_crops), report_path, confusion_path = _eval_target(args)
    device = resolve_device(args.device)
    d = init_distributed(device)
    device = device_for(device, d)
    model = for_inference(load_model(source, device=device), args)
    records = load_labelled(data, classes=model.labels)
    result = evaluate(
        model,
        records,
        num_clips=num_clips,
        num_crops=num_crops,
        batch_size=args.batch_size,
        workers=args.workers,
        device=device,
        progress=not args.json and d.main,
        flow_dir=args.flow_dir,
        dist=d,
        details=bool(report_path or confusion_path),
    )
    if not d.main:
        return 0
    if report_path:
        atomic_write_text(report_path, json.dumps(result, indent=1) + "\n")
    if confusion_path and "confusion_matrix" in result:
        from vidrec.train.report import plot_confusion

        plot_confusion(result["confusion_matrix"], result["labels"], confusion_path)
    summary = {k: v for k, v in result.items() if k not in ("confusion_matrix", "predictions", "labels")}
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"videos {result['num_videos']}  views/video {result['num_views']}  top-1 {result['top1']:.2f}  "
            f"top-5 {result['top5']:.2f}  mean class acc {result['mean_class_acc']:.2f}"
        )
        for path in (report_path, confusion_path):
            if path:
                print(f"wrote {path}")
    for f in result["failed"]:
        print(f"error: {f['path']}: {f['reason']}", file=sys.stderr)
    return 1 if result["failed"] else 0


def _eval_detection(cfg, args) -> int:
    """`vidrec eval CONFIG` with task detection: frame-mAP, detections CSV, AP table, PNG."""
    from vidrec.train.ava import AP_TABLE_NAME, DETECTIONS_NAME, PICTURE_NAME, evaluate_run
    from vidrec.utils import resolve_device

    report, out = evaluate_run(
        cfg,
        device=resolve_device(args.device),
        batch_size=args.batch_size,
        workers=args.workers,
        progress=not args.json,
    )
    if args.json:
        print(json.dumps({k: report[k] for k in ("mAP", "groups", "per_class", "split", "num_keyframes")}))
    else:
        n, split = report["num_keyframes"], report["split"]
        print(f"frame-mAP@0.5IOU {100 * report['mAP']:.2f} on {n} {split} keyframes")
        for name in (DETECTIONS_NAME, AP_TABLE_NAME, PICTURE_NAME):
            print(f"wrote {os.path.join(out, name)}")
    for f in report["failed"]:
        print(f"error: {f['path']}: {f['reason']}", file=sys.stderr)
    return 1 if report["failed"] else 0


def cmd_predict(args) -> int:
    """`vidrec predict VIDEO...`: the top-k of each video (exit 1 if one could not be read)."""
    from vidrec.io.live import as_file, is_live_source
    from vidrec.recognize.predict import format_predictions, predict
    from vidrec.utils import resolve_device

    if args.video_list or args.out:  # many videos: sharded rows, resumable
        from vidrec.cli.batch import run_batch_command

        return run_batch_command(args, "predict")
    if not args.videos:
        raise ConfigError("no videos: give video files, or --list LIST --out DIR for many")
    live = [v for v in args.videos if is_live_source(v)]
    if args.record and len(live) != 1:
        raise ConfigError(f"--record keeps one live source's recording; {len(live)} live sources given")
    device = resolve_device(args.device)
    model = inference_model(args, device)
    status = 0
    for path in args.videos:
        try:
            with as_file(path, seconds=args.duration, timeout=args.timeout, keep=args.record) as file:
                result = predict(
                    model,
                    file,
                    top_k=args.top_k,
                    num_clips=args.num_clips,
                    num_crops=args.num_crops,
                    device=device,
                    flow_dir=args.flow_dir,
                )
            result["video"] = path
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


def cmd_convert(args) -> int:
    """`vidrec convert SOURCE OUT`: any loadable model written as a vidrec (or transformers) directory."""
    from vidrec.models.loader import load_model, save_model

    model = load_model(args.source, arch=args.arch, weights_dir=args.weights)
    save_model(model, args.out, format=args.format)
    print(
        f"{args.out}: {model.arch} ({sum(p.numel() for p in model.parameters()):,} parameters, "
        f"{model.num_classes} classes) from {args.source}"
    )
    return 0


def cmd_export(args) -> int:
    """`vidrec export MODEL OUT --format onnx`: the model as an ONNX graph (dynamic batch), then run
    in ONNX Runtime against PyTorch (`--no-check` skips it); `--format tflite`: a MoViNet's stream
    step for the TFLite runtime, checked there."""
    from vidrec.export.onnx import check_onnx, check_onnx_stream, export_onnx, export_onnx_stream
    from vidrec.models.loader import load_model

    model = load_model(args.model, weights_dir=args.weights)
    if args.format == "tflite":
        return _export_tflite(model, args)
    if args.stream:
        info = export_onnx_stream(model, args.out, opset=args.opset)
        frames = tuple(["N", *info["inputs"]["frames"][1:]])
        shapes = f"frames {frames} and {len(info['inputs']) - 1} state tensors"
    else:
        info = export_onnx(model, args.out, opset=args.opset)
        shapes = ", ".join(f"{name} {tuple(['N', *shape[1:]])}" for name, shape in info["inputs"].items())
    print(f"{args.out}: {model.arch} as ONNX opset {info['opset']}; inputs {shapes} (N: any batch)")
    if args.check:
        if args.stream:
            diff = check_onnx_stream(model, args.out)
            print(
                f"ONNX Runtime vs PyTorch, 4 steps with the state fed back: "
                f"difference {diff:.2e} of the output's scale"
            )
        else:
            diff = check_onnx(model, args.out)
            print(
                f"ONNX Runtime vs PyTorch on random inputs (batches 1 and 3): "
                f"difference {diff:.2e} of the output's scale"
            )
        if diff > 1e-4:
            raise ConfigError(
                f"{args.out}: ONNX Runtime differs from PyTorch by {diff:.2e} of the output's scale (> 1e-4)"
            )
    return 0


def _export_tflite(model, args) -> int:
    from vidrec.export.tflite import export_tflite_stream
    from vidrec.runtime.litert import check_tflite_stream

    if args.opset is not None:
        raise ConfigError("--opset is for ONNX; a TFLite export has none")
    info = export_tflite_stream(model, args.out)
    frame = info["inputs"]["frame"]
    print(
        f"{args.out}: {model.arch}'s stream step as TFLite; inputs frame {frame} (batch 1) "
        f"and {len(info['inputs']) - 1} state tensors (zeros to start; feed each output back)"
    )
    if args.check:
        diff = check_tflite_stream(model, args.out)
        print(
            f"TFLite runtime vs PyTorch, 4 steps with the state fed back: "
            f"difference {diff:.2e} of the output's scale"
        )
        if diff > 1e-4:
            raise ConfigError(
                f"{args.out}: the TFLite runtime differs from PyTorch by {diff:.2e} "
                "of the output's scale (> 1e-4)"
            )
    return 0


def cmd_models(args) -> int:
    """`vidrec models`: every architecture with its parameter count, and its pretrained weights."""
    import torch

    from vidrec.models.registry import IMAGE_BUILDERS, SPOTTER_BUILDERS, create_model, list_models
    from vidrec.models.weights import weights_for

    def count(name: str, **options) -> int:
        with torch.device("meta"):  # shapes only: no memory, no initialisation time
            return sum(p.numel() for p in create_model(name, **options).parameters())

    print(f"{'architecture':<30} {'parameters':>14}  pretrained weights (their parameters)")
    for name in [*list_models(), *IMAGE_BUILDERS, *SPOTTER_BUILDERS]:
        own = name.endswith(("_pretrain", "_ava")) or name in IMAGE_BUILDERS or name in SPOTTER_BUILDERS
        options = {} if own else {"num_classes": 400}
        tags = [f"{w.name} ({count(name, **w.model_options):,})" for w in weights_for(name)]
        print(f"{name:<30} {count(name, **options):>14,}  {', '.join(tags) or '-'}")
    print(
        "(classifiers counted with 400 classes; *_ava detectors with their own: 80 for AVA, 13 for"
        " SynthMotion-AVA; *_pretrain: encoder + decoder, no classifier; ssd_mobilenet_v1, the person"
        " detector: COCO's 90; spotter_*, event spotters: 5 classes on 480 features a step)"
    )
    return 0


def cmd_info(args) -> int:
    """`vidrec info VIDEO...`: each video's metadata as JSON (exit 1 if one could not be read)."""
    from vidrec.io import probe

    status = 0
    for path in args.videos:
        try:
            print(json.dumps(probe(path).to_dict()))
        except VidrecError as e:
            print(f"error: {e}", file=sys.stderr)
            status = 1
    return status


def cmd_ava_eval(args) -> int:
    """`vidrec ava-eval --gt --detections --labels [--excluded]`: the official AVA frame-mAP."""
    from vidrec.metrics.ava import frame_map_files

    result = frame_map_files(args.gt, args.detections, args.labels, excluded=args.excluded)
    if args.json:
        print(json.dumps(result.to_dict(), indent=1))
        return 0
    print(f"frame-mAP@0.5IOU: {result.mAP:.4f} ({result.num_frames} keyframes)")
    for group, value in result.groups.items():
        print(f"  {group}: {value:.4f}")
    width = max(map(len, result.per_class))
    for name, ap in result.per_class.items():
        shown = "no ground truth" if ap != ap else f"{ap:.4f}"
        print(f"  {name:<{width}}  {shown}  ({result.num_gt[name]} boxes)")
    return 0


def cmd_track_eval(args) -> int:
    """`vidrec track-eval --gt gt.txt --tracks tracks.txt [--json]`: HOTA, CLEAR MOT and IDF1."""
    from vidrec.metrics.tracking import score_files

    s = score_files(args.gt, args.tracks)
    if args.json:
        print(json.dumps(s.to_dict(), indent=1))
        return 0
    print(
        f"HOTA {s.HOTA:.3f} (DetA {s.DetA:.3f}, AssA {s.AssA:.3f}, LocA {s.LocA:.3f})  "
        f"MOTA {s.MOTA:.3f}  IDF1 {s.IDF1:.3f}  MOTP {s.MOTP:.3f}\n"
        f"precision {s.precision:.3f}  recall {s.recall:.3f}  FP {s.FP}  FN {s.FN}  ID switches {s.IDSW}  "
        f"fragmentations {s.Frag}\n"
        f"{s.gt_ids} people in the ground truth: {s.MT} mostly tracked, {s.PT} partly, {s.ML} mostly lost; "
        f"{s.tracker_ids} track ids, {s.tracker_boxes} boxes"
    )
    return 0


def cmd_spot_eval(args) -> int:
    """`vidrec spot-eval --gt --pred [--metric] [--classes] [--json]`: SoccerNet's average-mAP."""
    from vidrec.metrics.spotting import spotting_map_files

    s = spotting_map_files(args.gt, args.pred, classes=args.classes, metric=args.metric)
    if args.json:
        print(json.dumps(s.to_dict(), indent=1))
        return 0
    first, last = s.tolerances[0], s.tolerances[-1]
    span = f"{first:g}-{last:g} s" if len(s.tolerances) > 1 else f"{first:g} s"
    print(
        f"average-mAP {100 * s.a_mAP:.2f} (tolerances {span}; visible {100 * s.a_mAP_visible:.2f}, "
        f"unshown {100 * s.a_mAP_unshown:.2f}) over {len(s.videos)} videos, "
        f"{sum(s.num_events.values())} events, {s.num_predictions} predictions"
    )
    width = max(map(len, s.per_class))
    for name, value in s.per_class.items():
        print(f"  {name:<{width}}  {100 * value:6.2f}  ({s.num_events[name]} events)")
    return 0


def _check_output_dir(out: str) -> None:
    if os.path.exists(out) and not os.path.isdir(out):
        raise ConfigError(f"{out}: exists and is not a directory")


def cmd_synth(args) -> int:
    """`vidrec synth OUT`: a labelled SynthMotion dataset (videos and CSVs)."""
    from vidrec.data.synthetic import SynthConfig, generate_dataset

    _check_output_dir(args.out)
    cfg = SynthConfig(
        num_frames=args.frames,
        size=args.size,
        noise=args.noise,
        camera_jitter=args.jitter,
        max_objects=args.objects,
        texture=not args.flat,
    )
    stats = generate_dataset(
        args.out,
        counts={"train": args.train, "val": args.val, "test": args.test},
        cfg=cfg,
        seed=args.seed,
        workers=args.workers,
        label=args.label,
    )
    print(f"{args.out}: {stats['made']} videos made, {stats['kept']} kept")
    return 0


def cmd_synth_ava(args) -> int:
    """`vidrec synth-ava OUT`: SynthMotion-AVA (multi-actor videos, AVA-format CSVs, a label map)."""
    from vidrec.data.synthetic_ava import SynthAvaConfig, generate_ava_dataset

    _check_output_dir(args.out)
    cfg = SynthAvaConfig(
        size=args.size,
        num_frames=args.frames,
        min_actors=args.min_actors,
        max_actors=args.max_actors,
        noise=args.noise,
        texture=not args.flat,
    )
    stats = generate_ava_dataset(
        args.out,
        counts={"train": args.train, "val": args.val, "test": args.test},
        cfg=cfg,
        seed=args.seed,
        workers=args.workers,
    )
    print(f"{args.out}: {stats['made']} videos made, {stats['kept']} kept; keyframes at {cfg.keyframes} s")
    return 0


def cmd_synth_spot(args) -> int:
    """`vidrec synth-spot OUT`: SynthMotion-Spot (long videos, timed events in CSV and SoccerNet's layout)."""
    from vidrec.data.synthetic_spot import SynthSpotConfig, generate_spot_dataset

    _check_output_dir(args.out)
    cfg = SynthSpotConfig(
        min_seconds=args.min_seconds, max_seconds=args.max_seconds, size=args.size,
        max_objects=args.max_objects, noise=args.noise, texture=not args.flat,
    )  # fmt: skip
    counts = {"train": args.train, "val": args.val, "test": args.test}
    stats = generate_spot_dataset(args.out, counts=counts, cfg=cfg, seed=args.seed, workers=args.workers)
    print(
        f"{args.out}: {stats['made']} videos made, {stats['kept']} kept; events in SPLIT.csv and soccernet/"
    )
    return 0


def cmd_two_stream(args) -> int:
    """`vidrec two-stream`: an RGB and a flow model saved as one late-fusion model."""
    from vidrec.models.loader import load_model
    from vidrec.models.two_stream import TwoStream

    model = TwoStream(
        load_model(args.rgb), load_model(args.flow), weights=tuple(args.weights), flow_method=args.flow_method
    )
    model.save_pretrained(args.out)
    print(f"{args.out}: two-stream model (weights rgb {model.weights[0]:.2f}, flow {model.weights[1]:.2f})")
    return 0


def cmd_flow(args) -> int:
    """`vidrec flow SOURCE --out DIR`: optical flow for a video or a dataset (I3D's flow stream)."""
    from vidrec.data.datasets import VIDEO_EXTENSIONS, VideoRecord, load_annotations
    from vidrec.data.flow import extract_flow

    if args.source.lower().endswith(VIDEO_EXTENSIONS):
        records, classes = [VideoRecord(args.source, -1)], None
    else:
        records, classes = load_annotations(args.source)
    result = extract_flow(
        records,
        args.out,
        classes=classes,
        method=args.method,
        short_side=args.short_side,
        workers=args.workers,
    )
    print(f"{args.out}: {result['made']} computed, {result['kept']} kept, {result['failed']} failed")
    return 1 if result["failed"] else 0


def cmd_demo(args) -> int:
    """`vidrec demo`: the embedded default job (README's first command)."""
    from vidrec.demo import run_demo

    run_demo(out=args.out, epochs=args.epochs, device=args.device, video=args.video, weights_dir=args.weights)
    return 0
