"""Atomic writes: the whole file or nothing under the final name, with the mode open() gives."""

import os
import stat

import pytest
import torch
from safetensors.torch import save_file

from vidrec.utils import atomic_write, atomic_write_text


def test_atomic_write_mode_replace_and_failure(tmp_path):
    umask = os.umask(0o022)
    try:
        path = tmp_path / "sub" / "out.json"
        atomic_write_text(path, "one")
        assert path.read_text() == "one"
        # readable by others, as open() makes it: mkstemp's 0600 would hide models and results
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        atomic_write_text(path, "two")
        assert path.read_text() == "two"
        weights = tmp_path / "model.safetensors"  # safetensors itself writes 0600 files
        atomic_write(weights, lambda tmp: save_file({"w": torch.zeros(2)}, tmp))
        assert stat.S_IMODE(weights.stat().st_mode) == 0o644

        def crash(tmp: str) -> None:
            with open(tmp, "w") as f:
                f.write("half")
            raise RuntimeError("killed mid-write")

        with pytest.raises(RuntimeError):
            atomic_write(path, crash)
        assert path.read_text() == "two"  # the old file stays whole
        assert sorted(os.listdir(path.parent)) == ["out.json"]  # no temporary file left behind
    finally:
        os.umask(umask)
