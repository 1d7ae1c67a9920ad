"""What a client may hand the service, checked before any work starts: an uploaded file (size
counted while it arrives, then sniffed by PyAV: a video stream that decodes, within the duration
and resolution limits), a live source URL (only the schemes the operator allows), or a path on the
server (only inside `--allow-paths` folders, after resolving links and `..`).

Each refusal is an `InputError` with the HTTP status and a one-line reason.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlsplit

from vidrec.errors import VidrecError
from vidrec.io import VideoReader, probe
from vidrec.io.live import is_live_source


class InputError(VidrecError):
    """A request the service refuses: `status` (4xx) and a one-line reason."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


@dataclass(frozen=True)
class Limits:
    """What one input may be."""

    max_bytes: int = 200 * 2**20  # an upload's size
    max_seconds: float = 600.0  # a file's duration
    max_pixels: int = 3840 * 2160  # width x height of a file's frames
    schemes: tuple[str, ...] = ("rtsp", "rtsps", "http", "https")  # live source URLs allowed
    allow_paths: tuple[str, ...] = ()  # folders whose files a client may name


class TooLarge(InputError):
    def __init__(self, limit: int):
        super().__init__(413, f"upload larger than the limit of {limit / 2**20:g} MB")


def check_video(path: str, limits: Limits) -> dict:
    """PyAV's view of a file, refused (415/422) unless it is a video within the limits whose
    first frame decodes. Returns its `probe` as a dict."""
    if os.path.getsize(path) == 0:
        raise InputError(400, "empty upload (0 bytes)")
    try:
        info = probe(path)
    except VidrecError as e:
        raise InputError(415, f"not a readable video: {_reason(e, path)}") from None
    if info.width * info.height > limits.max_pixels:
        raise InputError(
            422, f"{info.width}x{info.height} frames are over the limit of {limits.max_pixels:,} pixels"
        )
    if info.duration > limits.max_seconds:
        raise InputError(422, f"{info.duration:.1f} s is longer than the limit of {limits.max_seconds:g} s")
    try:
        with VideoReader(path) as video:
            video.get_frames([0])
    except VidrecError as e:
        raise InputError(422, f"the video does not decode: {_reason(e, path)}") from None
    return info.to_dict()


def _reason(error: Exception, path: str) -> str:
    """The error without the server's temporary path in it."""
    text = str(error)
    return text[len(path) :].lstrip(": ") if text.startswith(path) else text.replace(path, "the upload")


def check_source(url: str, limits: Limits) -> str:
    """A live source URL whose scheme the operator allows (403 otherwise)."""
    scheme = urlsplit(url).scheme.lower()
    if not is_live_source(url) or not scheme:
        raise InputError(400, f"not a stream URL: {url[:200]!r}")
    if scheme not in limits.schemes:
        allowed = ", ".join(limits.schemes) or "none"
        raise InputError(403, f"source scheme {scheme!r} is not allowed here (allowed: {allowed})")
    return url


def check_path(path: str, limits: Limits) -> str:
    """A server file inside an `allow_paths` folder, links and `..` resolved (403 otherwise)."""
    if not limits.allow_paths:
        raise InputError(403, "this service opens no server paths (start it with --allow-paths DIR)")
    real = os.path.realpath(path)
    for folder in limits.allow_paths:
        root = os.path.realpath(folder)
        if os.path.commonpath([root, real]) == root:
            if not os.path.isfile(real):
                raise InputError(404, f"no such file: {path}")
            return real
    raise InputError(403, f"{path} is outside the folders this service may read")


__all__ = ["InputError", "Limits", "TooLarge", "check_path", "check_source", "check_video"]
