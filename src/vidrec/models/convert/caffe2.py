"""PySlowFast's Caffe2 model zoo (`.pkl`: `{"blobs": {name: array}}`, pickled by Python 2),
renamed to PySlowFast's PyTorch names so the `.pyth` importer reads it."""

from __future__ import annotations

import re

import numpy as np
import torch

from vidrec.errors import VidrecError

# Caffe2 blob names (PySlowFast's .pkl model zoo, AVA included) -> PySlowFast's PyTorch names.
# "t_" marks the Fast pathway; "_s/_b/_rm/_riv" are a BN's scale, bias, mean and variance.
_C2_PARAMS = {"w": "weight", "b": "bias", "s": "weight", "rm": "running_mean", "riv": "running_var"}
_C2_RULES = [
    (r"t_pool1_subsample_bn_(s|b|rm|riv)", lambda m: f"s1_fuse.bn.{_C2_PARAMS[m[1]]}"),
    (r"t_pool1_subsample_(w|b)", lambda m: f"s1_fuse.conv_f2s.{_C2_PARAMS[m[1]]}"),
    (
        r"t_res(\d+)_\d+_branch2c_bn_subsample_bn_(s|b|rm|riv)",
        lambda m: f"s{m[1]}_fuse.bn.{_C2_PARAMS[m[2]]}",
    ),
    (r"t_res(\d+)_\d+_branch2c_bn_subsample_(w|b)", lambda m: f"s{m[1]}_fuse.conv_f2s.{_C2_PARAMS[m[2]]}"),
    (r"(t_)?res_conv1_bn_(s|b|rm|riv)", lambda m: f"s1.pathway{int(bool(m[1]))}_stem.bn.{_C2_PARAMS[m[2]]}"),
    (r"(t_)?conv1_(w|b)", lambda m: f"s1.pathway{int(bool(m[1]))}_stem.conv.{_C2_PARAMS[m[2]]}"),
    (
        r"(t_)?res(\d+)_(\d+)_branch2([abc])_bn_(s|b|rm|riv)",
        lambda m: f"s{m[2]}.pathway{int(bool(m[1]))}_res{m[3]}.branch2.{m[4]}_bn.{_C2_PARAMS[m[5]]}",
    ),
    (
        r"(t_)?res(\d+)_(\d+)_branch2([abc])_(w|b)",
        lambda m: f"s{m[2]}.pathway{int(bool(m[1]))}_res{m[3]}.branch2.{m[4]}.{_C2_PARAMS[m[5]]}",
    ),
    (
        r"(t_)?res(\d+)_(\d+)_branch1_bn_(s|b|rm|riv)",
        lambda m: f"s{m[2]}.pathway{int(bool(m[1]))}_res{m[3]}.branch1_bn.{_C2_PARAMS[m[4]]}",
    ),
    (
        r"(t_)?res(\d+)_(\d+)_branch1_(w|b)",
        lambda m: f"s{m[2]}.pathway{int(bool(m[1]))}_res{m[3]}.branch1.{_C2_PARAMS[m[4]]}",
    ),
    (
        r"nonlocal_conv(\d+)_(\d+)_(theta|phi|g|out)_(w|b)",
        lambda m: f"s{m[1]}.pathway0_nonlocal{m[2]}.conv_{m[3]}.{_C2_PARAMS[m[4]]}",
    ),
    (
        r"nonlocal_conv(\d+)_(\d+)_bn_(s|b|rm|riv)",
        lambda m: f"s{m[1]}.pathway0_nonlocal{m[2]}.bn.{_C2_PARAMS[m[3]]}",
    ),
    (r"pred_(w|b)", lambda m: f"head.projection.{_C2_PARAMS[m[1]]}"),
]
_C2_IGNORED = re.compile(r".*_momentum$|^model_iter$|^lr$")


def caffe2_to_pyslowfast(blobs: dict) -> dict[str, torch.Tensor]:
    """PySlowFast's Caffe2 blobs as a state dict with its PyTorch names (what `pyslowfast_key`
        maps onto vidrec), each BN given the `num_batches_tracked` counter Caffe2 does not keep.
        Optimizer state is dropped; a blob no rule knows is an error. Non-local blocks
    (`nonlocal_conv4_6_theta_w`) are the Slow pathway's, as in PySlowFast's converter."""
    state, unknown = {}, []
    for name, value in blobs.items():
        if _C2_IGNORED.match(name):
            continue
        for pattern, rename in _C2_RULES:
            m = re.fullmatch(pattern, name)
            if m:
                state[rename(m)] = torch.from_numpy(np.ascontiguousarray(value))
                break
        else:
            unknown.append(name)
    if unknown:
        raise VidrecError(f"Caffe2 blobs vidrec cannot map: {unknown[:5]}")
    for key in [k for k in state if k.endswith(".running_mean")]:
        state[key.removesuffix("running_mean") + "num_batches_tracked"] = torch.tensor(0)
    return state


__all__ = ["caffe2_to_pyslowfast"]
