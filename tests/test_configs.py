"""Every shipped config parses strictly and builds its architecture with its options and inputs."""

import glob
import os

import pytest
import torch

from vidrec.config import load_config
from vidrec.engine.setup import preprocessing_for
from vidrec.registry import create_model

CONFIGS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "configs", "*.yaml")))


def test_every_architecture_has_a_kinetics_config():
    archs = {load_config(p).model.name for p in CONFIGS if p.endswith("_k400.yaml")}
    wanted = {"i3d_inception_rgb", "i3d_inception_flow", "i3d_r50", "slowfast_r50_8x8", "slowfast_r50_4x16",
              "slowfast_r101_8x8", "slowfast_r101_16x8", "slow_r50_8x8", "fast_r50", "tsn_r50", "videomae_s",
              "videomae_b", "videomae_l", "videomae_h", "videomae_b_pretrain"}
    assert wanted <= archs, wanted - archs


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_shipped_config_builds(path):
    cfg = load_config(path)
    pretrain = cfg.model.name.endswith("_pretrain")
    with torch.device("meta"):  # shapes only
        model = create_model(cfg.model.name, **({} if pretrain else {"num_classes": 400}), **cfg.model.options)
    prep = preprocessing_for(model.preprocessing, cfg)
    assert prep.crop_size <= prep.resize and prep.num_frames >= 1
    name = os.path.basename(path)
    assert name.startswith(cfg.model.name.removesuffix("_pretrain").removesuffix("_8x8").removesuffix("_4x16")
                           .removesuffix("_16x8"))
    assert ("_pt_" in name) == pretrain
