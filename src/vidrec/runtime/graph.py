"""What running an exported graph needs whatever the runtime (ONNX Runtime, `vidrec.runtime.onnxruntime`;
the TFLite runtime, `vidrec.runtime.litert`): a stream model's `step`/`step_features` from one
`run`, and its state as the graph's own arrays."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch


class GraphState(Mapping):
    """A stream state as an exported step's own arrays (in the graph's order), read as `{name:
    tensor}` with each tensor made on access: a state handed straight back to the next step is not
    converted to tensors and back (MoViNet-A0: 31 of each a frame, 4% of a TFLite step)."""

    def __init__(self, names: list[str], arrays: list[np.ndarray]):
        self.names, self.arrays = names, arrays

    def __getitem__(self, name: str) -> torch.Tensor:
        try:
            return torch.from_numpy(np.asarray(self.arrays[self.names.index(name)]))  # 0-d: a NumPy scalar
        except ValueError:
            raise KeyError(name) from None

    def __iter__(self):
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


def state_arrays(state, names: list[str]) -> list[np.ndarray]:
    """`state`'s tensors as float32 NumPy arrays in the graph's order `names`: a `GraphState` of
    this very graph (its `names` list) as it is, anything else converted."""
    if isinstance(state, GraphState) and state.names is names:
        return state.arrays
    return [state[n].detach().float().cpu().contiguous().numpy() for n in names]


class GraphStep:
    """`step` and `step_features` of a stream model from one `run(frames, state) -> (logits,
    features, next state)` of an exported graph."""

    def step(self, frames: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """The logits after the last of `frames`, and the next state (as `StreamingModel.step`)."""
        logits, _, new_state = self.run(frames, state)
        return logits, new_state

    def step_features(self, frames: torch.Tensor, state: dict) -> tuple[torch.Tensor, dict]:
        """Each frame's features `(B, t, P)`, and the next state (as MoViNet's `step_features`)."""
        _, feats, new_state = self.run(frames, state)
        return feats, new_state


__all__ = ["GraphState", "GraphStep", "state_arrays"]
