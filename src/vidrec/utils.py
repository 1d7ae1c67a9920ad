"""Small helpers shared across vidrec: atomic writes, video encoding, devices."""

from __future__ import annotations

import json
import os
import pickle
import secrets
from collections.abc import Callable
from fractions import Fraction

import av
import numpy as np
import torch

from vidrec.errors import ConfigError


def temp_beside(path: str) -> str:
    """A new empty temporary file in `path`'s folder (created if needed), with `path`'s extension.
    Created as open() would (0666 less the umask): mkstemp, and safetensors' save_file, make 0600
    files that leave models and results readable by their owner alone."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    base, ext = os.path.splitext(os.path.basename(path))
    tmp = os.path.join(directory, f".{base}.{os.getpid()}.{secrets.token_hex(4)}.tmp{ext}")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    return tmp


def atomic_write(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Call `write(tmp_path)` on a temporary file beside `path`, then rename it into place, so a
    crash never leaves a half-written file under the final name."""
    path = os.fspath(path)
    tmp = temp_beside(path)
    mode = os.stat(tmp).st_mode
    try:
        write(tmp)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write `text` to `path` atomically (temp file + rename)."""

    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(text)

    atomic_write(path, write)


# safetensors' names for torch dtypes, in the order it lays tensors out (then by name): the order
# fixes every tensor's offsets, so the header's length can be known before writing
_SAFETENSORS_DTYPES = {
    torch.uint64: "U64", torch.int64: "I64", torch.float64: "F64", torch.float32: "F32",
    torch.uint32: "U32", torch.int32: "I32", torch.bfloat16: "BF16", torch.float16: "F16",
    torch.uint16: "U16", torch.int16: "I16", torch.float8_e4m3fn: "F8_E4M3",
    torch.float8_e5m2: "F8_E5M2", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
}  # fmt: skip
_DTYPE_RANK = {dtype: rank for rank, dtype in enumerate(_SAFETENSORS_DTYPES)}
DATA_ALIGNMENT = 64  # bytes: what vectorised CPU kernels (oneDNN, MKL) align their operands to


def _safetensors_header_length(state: dict[str, torch.Tensor], metadata: dict[str, str]) -> int | None:
    """The length of the JSON header safetensors writes for `state` before its own padding (None
    for a dtype it is not known to lay out)."""
    if any(t.dtype not in _DTYPE_RANK for t in state.values()):
        return None
    header: dict = {"__metadata__": metadata}
    offset = 0
    for name in sorted(state, key=lambda k: (_DTYPE_RANK[state[k].dtype], k)):
        t = state[name]
        size = t.numel() * t.element_size()
        header[name] = {
            "dtype": _SAFETENSORS_DTYPES[t.dtype],
            "shape": list(t.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    return len(json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode())


def write_safetensors(
    path: str | os.PathLike, state: dict[str, torch.Tensor], metadata: dict[str, str]
) -> None:
    """`state` (contiguous CPU tensors) to a safetensors file at `path`, atomically, its data
    starting on a 64-byte boundary: the header is padded with spaces through a metadata entry (the
    format allows both). Memory-mapped from the file, a tensor then lies aligned whenever the sizes
    before it keep it so (all of a ViT's weights); `load_exact` copies the others."""
    from safetensors.torch import save_file

    metadata = {**metadata, "padding": ""}
    length = _safetensors_header_length(state, metadata)
    if length is not None:  # 8 length bytes + the header end on the boundary
        metadata["padding"] = " " * ((-8 - length) % DATA_ALIGNMENT)
    atomic_write(path, lambda tmp: save_file(state, tmp, metadata=metadata))


class VideoEncoder:
    """RGB frames `(H, W, 3)` uint8 encoded one at a time with PyAV (memory: one frame), the
    stream opened on the first frame; `close()` flushes. No atomicity: `VideoWriter` adds it."""

    def __init__(
        self,
        path: str,
        *,
        fps: float = 10,
        codec: str = "libx264",
        pix_fmt: str = "yuv420p",
        options: dict | None = None,
        fmt: str | None = None,
    ):
        self.container = av.open(path, mode="w", format=fmt)
        # PyAV takes an int or a Fraction: 28.58 fps becomes 2858/100 (within 1/1001 of it)
        self.rate = int(round(fps)) if float(fps).is_integer() else Fraction(fps).limit_denominator(1001)
        self.codec, self.pix_fmt, self.options = codec, pix_fmt, options
        self.stream = None

    def write(self, img: np.ndarray) -> None:
        """Encode one RGB frame `(H, W, 3)` uint8 (the first one sets the size)."""
        if self.stream is None:
            self.stream = self.container.add_stream(self.codec, rate=self.rate)
            self.stream.width, self.stream.height = img.shape[1], img.shape[0]
            self.stream.pix_fmt = self.pix_fmt
            if self.options:
                self.stream.options = self.options
        for packet in self.stream.encode(
            av.VideoFrame.from_ndarray(np.ascontiguousarray(img), format="rgb24")
        ):
            self.container.mux(packet)

    def close(self) -> None:
        """Flush the encoder and close the file."""
        if self.stream is not None:
            for packet in self.stream.encode():
                self.container.mux(packet)
        self.container.close()


def encode_video(path: str, frames: np.ndarray, **options) -> None:
    """Encode RGB frames `(T, H, W, 3)` uint8 with PyAV (no atomicity: see `write_video`);
    `options` as `VideoEncoder`'s."""
    encoder = VideoEncoder(path, **options)
    try:
        for img in frames:
            encoder.write(img)
    finally:
        encoder.close()


class VideoWriter:
    """An H.264 mp4 written frame by frame into a temporary file beside `path`, renamed onto
    `path` by `close()` (a crash leaves no half-written video under the name). Even sizes only
    (yuv420p): odd frames lose their last row or column."""

    def __init__(self, path: str | os.PathLike, *, fps: float, crf: int = 20):
        self.path = os.fspath(path)
        self.tmp = temp_beside(self.path)
        self.encoder = VideoEncoder(self.tmp, fps=fps, options={"crf": str(crf)})

    def write(self, img: np.ndarray) -> None:
        """Add one RGB frame `(H, W, 3)` uint8."""
        h, w = img.shape[0] // 2 * 2, img.shape[1] // 2 * 2
        self.encoder.write(img[:h, :w])

    def close(self) -> None:
        """Finish the video and rename it into place."""
        self.encoder.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        """Drop the temporary file (after an error)."""
        try:
            self.encoder.container.close()
        finally:
            if os.path.exists(self.tmp):
                os.remove(self.tmp)


def write_video(path: str | os.PathLike, frames: np.ndarray, *, fps: float = 10, crf: int = 18) -> None:
    """Write an H.264 mp4 atomically (temp file + rename)."""
    atomic_write(path, lambda tmp: encode_video(tmp, frames, fps=fps, options={"crf": str(crf)}))


class _ArraysOnly(pickle.Unpickler):
    """Unpickles dicts, lists, tuples, numbers, strings and numpy arrays, and refuses every other
    global: such a file can describe arrays but never name a function to call."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("_codecs", "encode"),  # how Python 3 writes bytes at protocol <= 2: str -> bytes, nothing else
    }

    def find_class(self, module: str, name: str):
        """The few numpy reconstructors arrays need; anything else raises UnpicklingError."""
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(
                f"refused to load {module}.{name}: only dicts and numpy arrays are allowed"
            )
        return super().find_class(module, name)


def scaled_gap(got, expected) -> float:
    """How far a runtime's output `got` is from PyTorch's `expected`, as vidrec's tolerance reads
    it: the largest absolute difference over the output's scale (its largest magnitude, at least
    1). A model with random weights can give logits of 2.5e5, where float32 rounding alone differs
    by 0.1 and 1e-4 absolute would refuse a correct export."""
    got, expected = np.asarray(got, dtype=np.float64), np.asarray(expected, dtype=np.float64)
    return float(np.abs(got - expected).max() / max(1.0, float(np.abs(expected).max())))


def load_arrays_pickle(path: str, *, encoding: str = "ASCII"):
    """A pickle that holds only containers, numbers, strings and numpy arrays (mmaction2's
    proposals, Caffe2 blobs from Python 2: `encoding="latin1"`), without running any code."""
    with open(path, "rb") as f:
        return _ArraysOnly(f, encoding=encoding).load()


def resolve_device(device: str | None) -> torch.device:
    """ "auto"/None: CUDA when available, else CPU; otherwise the device named, if this machine
    has it (a one-line `ConfigError` if not: an unknown name, no CUDA, a GPU index past the last)."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {device!r} (e.g. cpu, cuda, cuda:1, mps)") from None
    if chosen.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"--device {device}: no CUDA GPU here (use cpu)")
        if chosen.index is not None and chosen.index >= count:
            raise ConfigError(
                f"--device {device}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}"
            )
    if chosen.type == "mps" and not torch.backends.mps.is_available():
        raise ConfigError(f"--device {device}: MPS is not available here (use cpu)")
    return chosen


def state_fingerprint(module: torch.nn.Module, *extra: str) -> str:
    """A short hash of a module's state (every tensor's name and bytes) and of `extra` strings:
    the same weights give the same fingerprint, in any process."""
    import hashlib

    digest = hashlib.sha256(" ".join(extra).encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:32]
