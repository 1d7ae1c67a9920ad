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


@pytest.mark.parametrize("sizes", [(3, 5, 7), (1, 1, 1), (1000, 33, 2)])
def test_safetensors_data_starts_on_64_bytes_and_reads_back(tmp_path, sizes):
    """write_safetensors pads the header so the data starts on a 64-byte boundary, whatever the
    names, dtypes and shapes (its prediction of safetensors' layout is checked by the file itself);
    the tensors and metadata read back unchanged."""
    import json
    import struct

    from safetensors import safe_open
    from safetensors.torch import load_file

    from vidrec.utils import write_safetensors

    a, b, c = sizes
    state = {
        "head.bias": torch.randn(a),
        "blocks.0.weight": torch.randn(b, c).to(torch.bfloat16),
        "bn.num_batches_tracked": torch.tensor(a, dtype=torch.int64),
        "mask": torch.rand(c) > 0.5,
        "grid": torch.randint(0, 255, (b,), dtype=torch.uint8),
        "half": torch.randn(a, 2).half(),
        "émoji_ünïcode": torch.randn(c, dtype=torch.float64),
    }
    path = tmp_path / "w.safetensors"
    write_safetensors(path, state, {"format": "pt"})
    raw = path.read_bytes()
    (length,) = struct.unpack("<Q", raw[:8])
    assert (8 + length) % 64 == 0
    assert json.loads(raw[8 : 8 + length])["__metadata__"]["format"] == "pt"
    loaded = load_file(path)
    assert loaded.keys() == state.keys() and all(torch.equal(loaded[k], v) for k, v in state.items())
    with safe_open(path, "pt") as f:
        assert f.metadata()["format"] == "pt"
