"""Helpers several test modules share (no test module imports another): tiny models, reference
names, commands, and checks that two runtimes agree."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

import vidrec
from vidrec.cli import main
from vidrec.data.preprocessing import Preprocessing

from conftest import randomize_bn


def tiny_stream_model():
    torch.manual_seed(0)
    model = vidrec.create_model("movinet_a0_stream", num_classes=3, dropout=0.0).eval()
    model.preprocessing = Preprocessing(
        num_frames=8, sampling_rate=1, target_fps=5.0, resize=32, crop_size=32
    )
    model.set_labels(["a", "b", "c"])
    return model


def randomized(module):
    torch.manual_seed(0)
    for p in module.parameters():
        p.data.normal_(0, 0.02)
    randomize_bn(module)
    return module.eval()


def pyslowfast_names(depths=(3, 4, 6, 3), pathways=2, fuse=True, nonlocal_blocks=None) -> list[str]:
    """PySlowFast's state-dict names for a ResNet SlowFast, written out from its naming scheme;
    `nonlocal_blocks` {stage: block indices} adds the Slow pathway's non-local blocks."""
    bn = ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    names = [f"s1.pathway{p}_stem.conv.weight" for p in range(pathways)]
    names += [f"s1.pathway{p}_stem.bn.{b}" for p in range(pathways) for b in bn]
    for stage, depth in zip(range(2, 6), depths):
        for p in range(pathways):
            for j in range(depth):
                res = f"s{stage}.pathway{p}_res{j}"
                if j == 0:
                    names += [f"{res}.branch1.weight"] + [f"{res}.branch1_bn.{b}" for b in bn]
                for part in "abc":
                    names += [f"{res}.branch2.{part}.weight"] + [f"{res}.branch2.{part}_bn.{b}" for b in bn]
                if p == 0 and j in (nonlocal_blocks or {}).get(stage, ()):
                    nl = f"s{stage}.pathway0_nonlocal{j}"
                    names += [
                        f"{nl}.{c}.{w}"
                        for c in ("conv_theta", "conv_phi", "conv_g", "conv_out")
                        for w in ("weight", "bias")
                    ]
                    names += [f"{nl}.bn.{b}" for b in bn]
    if fuse:
        for stage in range(1, 5):
            names += [f"s{stage}_fuse.conv_f2s.weight"] + [f"s{stage}_fuse.bn.{b}" for b in bn]
    return names + ["head.projection.weight", "head.projection.bias"]


def torchrun(nproc: int, port: int) -> list[str]:
    """The command prefix that starts `nproc` local processes (gloo on CPU)."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        str(nproc),
        "--master_port",
        str(port),
    ]


def run_checked(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(args, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc


def assert_same_stream(model, other, video) -> None:
    """`vidrec stream` of a 2.4 s video by both, whole-stream and 1 s windows: the same reports."""
    from vidrec.recognize.stream import stream_video

    for window in (None, 1.0):
        ours, theirs = (
            list(stream_video(m, video, every=1.0, window=window, probs=True)) for m in (model, other)
        )
        assert len(ours) == len(theirs) == 3  # at 1 s, at 2 s, the end (2.4 s)
        assert all((a["probs"] - b["probs"]).abs().max() <= 1e-5 for a, b in zip(ours, theirs))


def assert_same_predictions(model_dir, backend: str, tmp_path, capsys) -> None:
    """`vidrec predict` of a 2 s video with `model_dir` on PyTorch and on `backend`: the same labels,
    scores within 1e-5."""
    import numpy as np

    from vidrec.utils import write_video

    frames = np.random.default_rng(1).integers(0, 255, (20, 40, 48, 3), dtype=np.uint8)
    write_video(tmp_path / "v.mp4", frames, fps=10)
    outputs = {}
    for name in ("pytorch", backend):
        argv = ["predict", str(tmp_path / "v.mp4"), "--model", str(model_dir), "--json", "--backend", name]
        assert main(argv) == 0
        outputs[name] = json.loads(capsys.readouterr().out)["predictions"]
    ours, theirs = outputs["pytorch"], outputs[backend]
    assert [p["label"] for p in ours] == [p["label"] for p in theirs]
    assert max(abs(a["score"] - b["score"]) for a, b in zip(ours, theirs)) <= 1e-5


# Tiny settings keep every registered model fast here (depth, width); the rest run as built.
_RES = {"stage_depths": (1, 1, 1, 1), "width": 16}
TINY = {
    "tsn_small": {"width": 8},
    "i3d_small": {"width": 8},
    "i3d_r50": _RES,
    "slowfast_r50_4x16": _RES,
    "slowfast_r50_8x8": _RES,
    "slowfast_r101_8x8": _RES,
    "slowfast_r101_16x8": {**_RES, "res4_temporal_blocks": 0},
    "slow_r50_8x8": _RES,
    "fast_r50": _RES,
    **{
        f"videomae_{s}": {"depth": 1, "dim": 64, "num_heads": 2, "mlp_dim": 128, "patch_size": 8}
        for s in "sblhg"
    },
    **{
        f"videomae_{s}_pretrain": {
            "depth": 1,
            "dim": 64,
            "num_heads": 2,
            "mlp_dim": 128,
            "patch_size": 8,
            "decoder_dim": 32,
            "decoder_depth": 1,
            "decoder_heads": 2,
            "decoder_mlp_dim": 64,
        }
        for s in "sblg"
    },
}
TINY.update(
    {
        "slowfast_r50_ava": {"backbone_options": {**_RES, "res5_stride": 1, "res5_dilation": 2}},
        "slow_r50_ava": {"backbone_options": {**_RES, "res5_stride": 1, "res5_dilation": 2}},
        "slowfast_r101_ava": {  # its non-local block kept, after the second of two res4 blocks
            "backbone_options": {
                **_RES,
                "stage_depths": (1, 1, 2, 1),
                "res5_stride": 1,
                "res5_dilation": 2,
                "res4_temporal_blocks": 1,
                "slow_nonlocal": ((), (), (1,), ()),
                "nonlocal_pool": (2, 2, 2),
                "nonlocal_instantiation": "dot_product",
            }
        },  # fmt: skip
        "videomae_b_ava": {"backbone_options": {**TINY["videomae_b"], "use_mean_pooling": False}},
    }
)


def upload(path, name="clip.mp4"):
    """A multipart `file` field for the service's test client."""
    return {"file": (name, open(path, "rb"), "video/mp4")}


def events_of(client, job_id: str) -> list[tuple[str, dict]]:
    """Every (type, event) a service job sends over Server-Sent Events, to its end."""
    out = []
    with client.stream("GET", f"/v1/jobs/{job_id}/events") as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        kind = None
        for line in r.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                out.append((kind, json.loads(line[6:])))
    return out
