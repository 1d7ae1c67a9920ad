"""The model a command runs: loaded by name, path or tag, then put in its inference form."""

from __future__ import annotations

from vidrec.errors import ConfigError


def inference_model(args, device):
    """The model a command runs: loaded, then in the form its flags ask for (`for_inference`)."""
    from vidrec.loader import load_model
    from vidrec.models.base import StreamingModel

    model = for_inference(clip_model(load_model(args.model, device=device, weights_dir=args.weights)), args)
    if getattr(model, "backend", "pytorch") != "pytorch" and isinstance(model, StreamingModel):
        import torch

        # A stream model's step runs in the other runtime on its own threads (opened above with
        # PyTorch's count), one frame at a time between PyTorch's resizing of the next: PyTorch's
        # OpenMP threads, spinning after each op, would take a core from the runtime's. One
        # PyTorch thread: `vidrec stream` 27-38% faster on litert, 14-20% on onnxruntime (2 cores).
        # Clip models decode first and run after: 2 threads stay a little faster for them.
        torch.set_num_threads(1)
    return model


def for_inference(model, args):
    """`model` in the form the flags ask for: --int8 (the TFLite runtime's arithmetic), --backend
    onnxruntime or litert (exported once, kept in the cache folder's onnx/ or tflite/), else
    PyTorch with batch norms folded, in float32 or, with --precision bf16, bfloat16 autocast."""
    from vidrec.deploy import optimize_for_inference, to_int8

    backend, precision = getattr(args, "backend", "pytorch"), getattr(args, "precision", "fp32")
    int8 = getattr(args, "int8", False)
    if backend != "pytorch":
        if int8 or precision != "fp32":
            raise ConfigError(
                f"--int8 and --precision are PyTorch forms; with --backend {backend} leave them out"
            )
        from vidrec.loader import on_litert, on_onnxruntime

        return on_onnxruntime(model) if backend == "onnxruntime" else on_litert(model)
    if int8:
        if precision != "fp32":
            raise ConfigError("--int8 computes as the int8 runtime does; --precision does not apply to it")
        return to_int8(model)
    model = optimize_for_inference(model)
    if precision == "bf16":
        from vidrec.deploy.precision import to_bfloat16

        return to_bfloat16(model)
    return model


def add_precision(p) -> None:
    """--precision: float32, or bfloat16 autocast."""
    p.add_argument(
        "--precision",
        choices=("fp32", "bf16"),
        default="fp32",
        help="bf16: bfloat16 autocast, 2-3.5x faster on CPUs with native bf16 (avx512_bf16, amx)",
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


def clip_model(model):
    """`model`, or a one-line error if it is the image detector (frames in, boxes out)."""
    from vidrec.models.ssd import SSDMobileNetV1

    if isinstance(model, SSDMobileNetV1):
        raise ConfigError(
            f"{model.arch} finds people and objects in frames (boxes out); it does not classify "
            f"clips: give a video model"
        )
    return model


__all__ = ["add_backend", "add_precision", "clip_model", "for_inference", "inference_model"]
