"""The model a command runs: loaded by name, path or tag, then in the form its flags ask for, by
the session layer's `Models` (the service loads its models the same way)."""

from __future__ import annotations


def inference_of(args, device=None):
    """The `Inference` form the flags ask for: --backend, --precision, --int8, --device."""
    from vidrec.sessions import Inference
    from vidrec.utils import resolve_device

    return Inference(
        backend=getattr(args, "backend", "pytorch"),
        precision=getattr(args, "precision", "fp32"),
        int8=getattr(args, "int8", False),
        device=str(device if device is not None else resolve_device(getattr(args, "device", "auto"))),
    )


def command_models(args, device=None, **extra):
    """The `Models` of a command: its --model (and --detector), with --weights, in the form its
    flags ask for."""
    from vidrec.sessions import Models

    return Models([args.model], weights=args.weights, inference=inference_of(args, device), **extra)


def inference_model(args, device=None):
    """The video model a command runs, loaded and in its inference form; a stream model on another
    runtime leaves that runtime the cores (`share_cores`)."""
    from vidrec.sessions.models import share_cores

    model = command_models(args, device).get()
    share_cores(model)
    return model


def for_inference(model, args):
    """`model` (loaded already) in the form the flags ask for, or a one-line error if it is not a
    video model."""
    from vidrec.sessions.models import clip_model
    from vidrec.sessions.models import for_inference as to_form

    return to_form(clip_model(model), inference_of(args))


def add_precision(p) -> None:
    """--precision: float32, or bfloat16 autocast."""
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="bf16: bfloat16 autocast, several times faster on CPUs with native bf16 (avx512_bf16, amx)",
    )


def add_backend(p) -> None:
    """--backend: who runs the model."""
    p.add_argument(
        "--backend",
        choices=("pytorch", "onnxruntime", "litert"),
        default="pytorch",
        help="run the model in PyTorch, in ONNX Runtime (exported once and cached; vidrec[onnx]), or, "
        "for MoViNet streams, in the TFLite runtime (the fastest on CPU; vidrec[litert])",
    )


__all__ = [
    "add_backend",
    "add_precision",
    "command_models",
    "for_inference",
    "inference_model",
    "inference_of",
]
