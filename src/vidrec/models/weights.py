"""The pretrained weights vidrec knows: `arch.tag` -> where the file comes from, its sha256, and
what the weights are (labels, preprocessing, the config overrides of the variant they were
trained as, their parameter count). Data only: downloading is `vidrec.models.download`, loading
`vidrec.models.loader`."""

from __future__ import annotations

from dataclasses import dataclass, field

from vidrec.data.preprocessing import Preprocessing
from vidrec.data.synthetic import CLASSES as SYNTHMOTION_CLASSES
from vidrec.data.synthetic import SYNTHMOTION_PREP
from vidrec.errors import ConfigError, unknown_name_message
from vidrec.models.movinet import STREAM_PREP, kinetics600_labels
from vidrec.models.ssd import coco_labels


@dataclass(frozen=True)
class WeightEntry:
    """A pretrained checkpoint: where it comes from and what it is."""

    name: str  # "arch.tag"
    url: str  # official source (https://... or hf://repo_id/filename)
    sha256: str  # of the downloaded file ("" when unknown)
    filename: str  # name in the cache
    num_classes: int
    labels: tuple[str, ...] = ()
    preprocessing: Preprocessing = Preprocessing()
    config: dict = field(default_factory=dict)  # overrides of the architecture's config these weights need
    metrics: dict = field(default_factory=dict)  # e.g. {"k600_top1": 72.0}
    num_params: int | None = None  # of the model these weights fill (checked by the tests)

    @property
    def arch(self) -> str:
        """The architecture part of `arch.tag`."""
        return self.name.split(".")[0]

    @property
    def model_options(self) -> dict:
        """What `create_model(entry.arch, **entry.model_options)` needs to fit these weights."""
        return {**self.config, "num_classes": self.num_classes}


WEIGHTS: dict[str, WeightEntry] = {}


def register_weights(entry: WeightEntry) -> WeightEntry:
    """Add an entry to the table (a plain dict insert; duplicates are an error)."""
    if entry.name in WEIGHTS:
        raise ValueError(f"weights '{entry.name}' registered twice")
    WEIGHTS[entry.name] = entry
    return entry


def weights_for(name: str) -> list[WeightEntry]:
    """The entries of an `arch.tag`, or every entry of an architecture (its default first)."""
    return [w for k, w in WEIGHTS.items() if k == name or w.arch == name]


def get_weights(name: str) -> WeightEntry:
    """The entry of a tag or architecture; unknown names raise with the closest."""
    found = weights_for(name)
    if not found:
        raise ConfigError(unknown_name_message("weights", name, list(WEIGHTS)))
    return found[0]


# Google's int8 TFLite export of MoViNet-A0 Stream (TF Hub / Kaggle, Apache-2.0): the
# quantization-friendly variant, ReLU6 and no squeeze-excitation (the importer checks the file
# says so too).
register_weights(
    WeightEntry(
        name="movinet_a0_stream.k600_int8",
        url="https://tfhub.dev/tensorflow/lite-model/movinet/a0/stream/kinetics-600/classification/tflite/int8/1"
        "?lite-format=tflite",
        sha256="6125b36e2485eeb5cc1fd6206cf5e5d70235593fbc84610d1dce97fe3aa9c2ac",
        filename="movinet_a0_int8.tflite",
        num_classes=600,
        labels=tuple(kinetics600_labels()),
        preprocessing=STREAM_PREP,
        config={"activation": "relu6", "se_type": "none"},
        num_params=2_732_383,
    )
)


# The COCO person/object detector of TensorFlow Lite's object-detection example (SSD MobileNet v1
# at depth 0.75, uint8, Apache-2.0): the official archive holds it as detect.tflite. The sha256 is
# that of the copy on this project's machines (../shared/weights/ssd_mobilenet_v1_coco_quant/,
# ssd_mobilenet.tflite); a download that differs is refused and removed.
register_weights(
    WeightEntry(
        name="ssd_mobilenet_v1.coco_uint8",
        url="https://storage.googleapis.com/download.tensorflow.org/models/tflite/"
        "coco_ssd_mobilenet_v1_1.0_quant_2018_06_29.zip#detect.tflite",
        sha256="cbdecd08b44c5dea3821f77c5468e2936ecfbf43cde0795a2729fdb43401e58b",
        filename="ssd_mobilenet.tflite",
        num_classes=90,
        labels=tuple(coco_labels()),
        config={"depth_multiplier": 0.75},
        num_params=4_101_231,
    )
)


def shipped_synthmotion(arch: str, *, sha256: str, num_params: int, metrics: dict) -> WeightEntry:
    """`ARCH.synthmotion`: weights trained by vidrec on SynthMotion, shipped inside the package
    (vidrec/models/pretrained/ARCH_synthmotion.safetensors, never downloaded)."""
    filename = f"{arch}_synthmotion.safetensors"
    return WeightEntry(
        name=f"{arch}.synthmotion",
        url=f"package://{filename}",
        sha256=sha256,
        filename=filename,
        num_classes=len(SYNTHMOTION_CLASSES),
        labels=SYNTHMOTION_CLASSES,
        preprocessing=SYNTHMOTION_PREP,
        metrics=metrics,
        num_params=num_params,
    )


# Trained on this project's CPUs, all on the same videos, made with
# `vidrec synth D --train 7200 --val 240 --test 480 --seed 1 --noise 4 --jitter 1`. Test top-1 on
# sets they never saw: bench/synthmotion_generalise.py, results/synthmotion.md.
# (arch, sha256, parameters, top-1 % on D's test split, on SynthMotion drawn with seed 7)
_SHIPPED_SYNTHMOTION = (
    # I3D: `vidrec train --data D --model i3d_small --epochs 4 --batch-size 16 --lr 0.002` (40 min
    # on 2 cores).
    ("i3d_small", "b727db7f5a37d483b8d6d6fa7688b1a5c9270a031a1ca8b0ffc247d82f24cc0f", 723_692, 83.75, 86.3),
    # SlowFast: its Fast pathway alone, `vidrec train configs/fast_small_synth.yaml --set
    # data.train=D --set schedule.epochs=4` (33 min). slowfast_small scored higher on clean
    # SynthMotion (96.0 against 93.5%) but is 13 MB; this is 0.65 MB.
    ("fast_small", "5bedc9781dfb9b0498776d88d1608394d661e2ebeb89ee38ebd79aa3d3f2900e", 157_812, 84.17, 84.2),
    # VideoMAE: `vidrec train configs/videomae_small_synth.yaml --set data.train=D --set
    # schedule.epochs=12` (46 min): the ViT with its tubelet MLP, 2.4 MB. Below the CNNs on this
    # noisy set: pixel noise and camera shake slow the ViT far more than them.
    (
        "videomae_small_synth",
        "515203e35cda20f1d9fa0e9a163a3efff187fe4346574854ed2aaee81821da13",
        597_004,
        66.46,
        70.4,
    ),
)
for _arch, _sha256, _params, _test, _seed7 in _SHIPPED_SYNTHMOTION:
    register_weights(
        shipped_synthmotion(
            _arch,
            sha256=_sha256,
            num_params=_params,
            metrics={"synthmotion_test_top1": _test, "synthmotion_seed7_top1": _seed7},
        )
    )

__all__ = ["WEIGHTS", "WeightEntry", "get_weights", "register_weights", "weights_for"]
