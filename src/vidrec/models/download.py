"""Getting weight files onto this machine: the files vidrec ships (`package://`), the cache,
`--weights` folders, checked downloads (https or the Hugging Face hub), all verified by sha256."""

from __future__ import annotations

import hashlib
import os

import torch

from vidrec.errors import VidrecError
from vidrec.models.weights import WeightEntry
from vidrec.utils import atomic_write

PACKAGE_SCHEME = "package://"
PACKAGED_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pretrained")


def cache_dir() -> str:
    """`$VIDREC_CACHE`, else `~/.cache/vidrec`."""
    return os.environ.get("VIDREC_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "vidrec"))


def sha256_of(path: str) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def fetch_weights(entry: WeightEntry, *, weights_dir: str | None = None) -> str:
    """Path of `entry`'s file: in `weights_dir`, `$VIDREC_WEIGHTS`, the cache, or downloaded into
    the cache (checked against its sha256). Offline and absent: one message saying where to put it.
    `package://NAME` files ship inside vidrec (`vidrec/models/pretrained/NAME`) and are never downloaded;
    `URL#MEMBER` is a file inside the zip archive at URL."""
    if entry.url.startswith(PACKAGE_SCHEME):
        path = os.path.join(PACKAGED_DIR, entry.url[len(PACKAGE_SCHEME) :])
        if not os.path.exists(path):
            raise VidrecError(f"weights '{entry.name}' should ship with vidrec at {path}; reinstall vidrec")
        _check_sha256(path, entry)
        return path
    for d in weight_folders(weights_dir):
        path = os.path.join(d, entry.filename)
        if os.path.exists(path):
            _check_sha256(path, entry)
            return path
    target = os.path.join(cache_dir(), entry.filename)
    try:
        if entry.url.startswith("hf://"):
            from huggingface_hub import hf_hub_download

            repo_id, filename = entry.url[len("hf://") :].rsplit("/", 1)
            downloaded = hf_hub_download(repo_id, filename)
            atomic_write(target, lambda tmp: _copy(downloaded, tmp))
        elif "#" in entry.url:
            url, member = entry.url.split("#", 1)
            atomic_write(target, lambda tmp: _download_member(url, member, tmp))
        else:
            atomic_write(target, lambda tmp: torch.hub.download_url_to_file(entry.url, tmp, progress=True))
    except Exception as e:
        raise VidrecError(
            f"weights '{entry.name}' are not on this machine and could not be downloaded from {entry.url} "
            f"({type(e).__name__}); put {entry.filename} in {cache_dir()} or a folder named by "
            f"VIDREC_WEIGHTS / --weights (several folders: separate them with '{os.pathsep}')"
        ) from None
    if entry.sha256 and sha256_of(target) != entry.sha256:
        os.remove(target)
        raise VidrecError(f"{entry.url}: downloaded file does not match its sha256; removed it")
    return target


def weight_folders(weights_dir: str | None = None) -> list[str]:
    """Where weight files are looked for, in order: `weights_dir`, then `$VIDREC_WEIGHTS` (each may
    name several folders separated by os.pathsep), then the cache."""
    folders = []
    for value in (weights_dir, os.environ.get("VIDREC_WEIGHTS")):
        folders += [d for d in (value or "").split(os.pathsep) if d]
    return folders + [cache_dir()]


def _download_member(url: str, member: str, out: str) -> None:
    """`member` of the zip archive at `url`, written to `out` (the archive is not kept)."""
    import tempfile
    import zipfile

    with tempfile.TemporaryDirectory() as tmp:
        archive = os.path.join(tmp, "archive.zip")
        torch.hub.download_url_to_file(url, archive, progress=True)
        with zipfile.ZipFile(archive) as z, z.open(member) as src, open(out, "wb") as dst:
            while block := src.read(1 << 20):
                dst.write(block)


def _check_sha256(path: str, entry: WeightEntry) -> None:
    if entry.sha256 and sha256_of(path) != entry.sha256:
        raise VidrecError(
            f"{path} is not the file of weights '{entry.name}' (sha256 differs from "
            f"{entry.sha256[:12]}...); remove it or fetch the original from {entry.url}"
        )


def _copy(src: str, dst: str) -> None:
    with open(src, "rb") as fi, open(dst, "wb") as fo:
        while block := fi.read(1 << 20):
            fo.write(block)


def hub_snapshot(repo_id: str) -> str:
    """A Hugging Face hub repository (e.g. MCG-NJU/videomae-base-finetuned-kinetics) in the local
    cache, downloaded when online. Only configs and safetensors/bin weights are fetched."""
    from huggingface_hub import snapshot_download

    patterns = ["config.json", "preprocessor_config.json", "*.safetensors", "pytorch_model.bin"]
    try:
        return snapshot_download(repo_id, allow_patterns=patterns)
    except Exception as e:
        try:  # offline: whatever the cache already holds
            return snapshot_download(repo_id, allow_patterns=patterns, local_files_only=True)
        except Exception:
            raise VidrecError(
                f"'{repo_id}' is not in the Hugging Face cache and the hub cannot be reached "
                f"({type(e).__name__}); download it on a machine with internet or pass a "
                f"local directory"
            ) from None


__all__ = ["cache_dir", "fetch_weights", "hub_snapshot", "sha256_of", "weight_folders"]
