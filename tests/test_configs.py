"""Every shipped config parses strictly and builds its architecture with its options and inputs."""

import dataclasses
import glob
import os

import pytest
import torch

from vidrec.models.registry import create_model
from vidrec.train.config import load_config
from vidrec.train.setup import preprocessing_for

CONFIGS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "configs", "*.yaml")))


def test_every_architecture_has_a_kinetics_config():
    archs = {load_config(p).model.name for p in CONFIGS if p.endswith("_k400.yaml")}
    wanted = {
        "i3d_inception_rgb",
        "i3d_inception_flow",
        "i3d_r50",
        "slowfast_r50_8x8",
        "slowfast_r50_4x16",
        "slowfast_r101_8x8",
        "slowfast_r101_16x8",
        "slow_r50_8x8",
        "fast_r50",
        "tsn_r50",
        "videomae_s",
        "videomae_b",
        "videomae_l",
        "videomae_h",
        "videomae_b_pretrain",
    }
    assert wanted <= archs, wanted - archs


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_shipped_config_builds(path):
    cfg = load_config(path)
    pretrain = cfg.model.name.endswith("_pretrain")
    with torch.device("meta"):  # shapes only
        model = create_model(
            cfg.model.name, **({} if pretrain else {"num_classes": 400}), **cfg.model.options
        )
    prep = preprocessing_for(model.preprocessing, cfg)
    for f in dataclasses.fields(prep):  # what the config sets is what the model will see
        if getattr(cfg.data, f.name) is not None:
            assert getattr(prep, f.name) == getattr(cfg.data, f.name), f.name
    name = os.path.basename(path)
    assert name.startswith(
        cfg.model.name.removesuffix("_pretrain")
        .removesuffix("_8x8")
        .removesuffix("_4x16")
        .removesuffix("_16x8")
    )
    assert ("_pt_" in name) == pretrain


def test_what_the_user_did_not_set_follows_what_they_did():
    """The quick form `--model fast_r50 --resize 64 --crop-size 56`: SlowFast tests on the whole
    short side (256 of 256), so a 64 resize tests on 64; a crop that cannot fit names its setting."""
    from vidrec.errors import ConfigError
    from vidrec.train.config import config_from_dict

    model = create_model("fast_r50", num_classes=3)
    cfg = config_from_dict({"model": {"name": "fast_r50"}, "data": {"resize": 64, "crop_size": 56}})
    prep = preprocessing_for(model.preprocessing, cfg)
    assert (prep.resize, prep.crop_size, prep.test_crop_size) == (64, 56, 64)
    cfg = config_from_dict({"model": {"name": "fast_r50"}, "data": {"crop_size": 288}})  # grows the resize
    assert preprocessing_for(model.preprocessing, cfg).resize == 288
    for data, named in (
        ({"resize": 64}, "crop_size (the model's) 224"),
        ({"resize": 64, "crop_size": 56, "test_crop_size": 80}, "data.test_crop_size 80"),
    ):
        with pytest.raises(ConfigError, match=named.replace("(", r"\(").replace(")", r"\)")):
            preprocessing_for(
                model.preprocessing, config_from_dict({"model": {"name": "fast_r50"}, "data": data})
            )


def test_every_preprocessing_field_is_a_data_key_and_a_flag():
    """pad and modality too: the run config and the CLI are derived from one list."""
    from vidrec.cli import build_parser
    from vidrec.train.config import PREPROCESSING_FIELDS, config_from_dict

    cfg = config_from_dict({"model": {"name": "tsn_small"}, "data": {"pad": "loop", "modality": "flow"}})
    prep = preprocessing_for(create_model("tsn_small", num_classes=3, in_channels=2).preprocessing, cfg)
    assert prep.pad == "loop" and prep.modality == "flow"
    args = build_parser().parse_args(["train", "--pad", "loop", "--no-flip", "--mean", "0.1", "0.2", "0.3"])
    assert (args.pad, args.flip, args.mean) == ("loop", False, [0.1, 0.2, 0.3])
    assert {f.name for f in PREPROCESSING_FIELDS} >= {"pad", "modality", "test_crop_size", "train_scale"}


def test_a_key_without_a_section_is_a_model_option_on_every_command():
    # `vidrec eval run.yaml --set width=16` reads the config as `vidrec train run.yaml --set width=16` does
    path = next(p for p in CONFIGS if p.endswith("i3d_small_synth.yaml"))
    cfg = load_config(path, ["width=16", "optimizer.lr=0.5"])
    assert cfg.model.options["width"] == 16 and cfg.optimizer.lr == 0.5


def test_fsdp_refuses_what_needs_a_whole_model_and_fits_a_random_head():
    from vidrec.errors import ConfigError
    from vidrec.train.config import config_from_dict

    base = {"model": {"name": "videomae_s", "init": "runs/pt"}, "run": {"strategy": "fsdp"}}
    assert config_from_dict(base).head_init == "random"  # the probe needs the whole head on one process
    assert config_from_dict({**base, "run": {}}).head_init == "probe"
    for section, values, named in (
        ("run", {"strategy": "fsdp", "ema": 0.999}, "run.ema"),
        ("model", {"name": "videomae_s", "head_init": "probe"}, "head_init probe"),
        ("model", {"name": "videomae_s", "sync_bn": True}, "sync_bn"),
        ("run", {"strategy": "zero3"}, "run.strategy"),
    ):
        with pytest.raises(ConfigError, match=named):
            config_from_dict({**base, section: values})
