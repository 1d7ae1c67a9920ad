"""The model a command runs: loaded by name, path or tag, then put in its inference form."""

from __future__ import annotations

from vidrec.errors import ConfigError


def inference_model(args, device):
    """The model to run: loaded, then its int8 form (--int8) or optimised for float inference."""
    from vidrec.deploy import optimize_for_inference, to_int8
    from vidrec.loader import load_model

    model = clip_model(load_model(args.model, device=device, weights_dir=args.weights))
    if getattr(args, "backend", "pytorch") == "onnxruntime":
        if args.int8:
            raise ConfigError("--int8 is a PyTorch form of the TFLite runtime; with onnxruntime leave it out")
        return on_backend(model, args)
    return to_int8(model) if args.int8 else optimize_for_inference(model)


def on_backend(model, args):
    """`model` as --backend says: itself (pytorch), or run by ONNX Runtime (exported once, kept
    in the cache folder's onnx/)."""
    if getattr(args, "backend", "pytorch") != "onnxruntime":
        return model
    import os

    from vidrec.deploy.ort import to_onnxruntime
    from vidrec.download import cache_dir

    return to_onnxruntime(model, cache=os.path.join(cache_dir(), "onnx"))


def add_backend(p) -> None:
    """--backend: who runs the model."""
    p.add_argument(
        "--backend",
        choices=("pytorch", "onnxruntime"),
        default="pytorch",
        help="run the model in PyTorch, or in ONNX Runtime (exported once and cached; vidrec[onnx])",
    )


def clip_model(model):
    """`model`, or a one-line error if it is the image detector (frames in, boxes out)."""
    from vidrec.models.ssd import SSDMobileNetV1

    if isinstance(model, SSDMobileNetV1):
        raise ConfigError(
            f"{model.arch} finds people and objects in frames (boxes out); it does not classify "
            f"clips: give a video model"
        )
    return model


__all__ = ["add_backend", "clip_model", "inference_model", "on_backend"]
