"""The model a command runs: loaded by name, path or tag, then put in its inference form."""

from __future__ import annotations

from vidrec.errors import ConfigError


def inference_model(args, device):
    """The model to run: loaded, then its int8 form (--int8) or optimised for float inference."""
    from vidrec.deploy import optimize_for_inference, to_int8
    from vidrec.loader import load_model

    model = clip_model(load_model(args.model, device=device, weights_dir=args.weights))
    return to_int8(model) if args.int8 else optimize_for_inference(model)


def clip_model(model):
    """`model`, or a one-line error if it is the image detector (frames in, boxes out)."""
    from vidrec.models.ssd import SSDMobileNetV1

    if isinstance(model, SSDMobileNetV1):
        raise ConfigError(
            f"{model.arch} finds people and objects in frames (boxes out); it does not classify "
            f"clips: give a video model"
        )
    return model


__all__ = ["clip_model", "inference_model"]
