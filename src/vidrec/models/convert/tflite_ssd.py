"""The TFLite example's COCO detector (SSD MobileNet v1, uint8) as a vidrec `SSDMobileNetV1`.

Every convolution's kernel and (BN-folded) bias is dequantized and mapped by its TF object-detection
API name; the anchors are the file's own constant (checked against vidrec's anchor generator); the
`TFLite_Detection_PostProcess` op's options (box scales, NMS IoU, score floor, detection count,
class count) become the model's config; each layer's uint8 output grid is kept for
`vidrec.deploy.on_uint8_grids`. A tensor or op that fits none of this is an error.
"""

from __future__ import annotations

import os
import re

import numpy as np
import torch

from vidrec.errors import VidrecError
from vidrec.models.convert.common import load_exact
from vidrec.models.convert.tflite_graph import TFLiteGraph
from vidrec.models.ssd import SSDMobileNetV1, coco_labels, ssd_mobilenet_v1

_MODULES = [  # (pattern on the op's kernel name, vidrec module)
    (r"Conv2d_13_pointwise_1_Conv2d_(\d)_1x1_\d+/", lambda m: f"extras.{int(m[1]) - 2}.0"),
    (r"Conv2d_13_pointwise_2_Conv2d_(\d)_3x3_s2_\d+/", lambda m: f"extras.{int(m[1]) - 2}.1"),
    (r"MobilenetV1/Conv2d_0/", lambda m: "features.0"),
    (r"MobilenetV1/Conv2d_(\d+)_depthwise/", lambda m: f"features.{2 * int(m[1]) - 1}"),
    (r"MobilenetV1/Conv2d_(\d+)_pointwise/", lambda m: f"features.{2 * int(m[1])}"),
    (r"BoxPredictor_(\d)/BoxEncodingPredictor/", lambda m: f"box_heads.{m[1]}"),
    (r"BoxPredictor_(\d)/ClassPredictor/", lambda m: f"class_heads.{m[1]}"),
]
_GLUE = {"RESHAPE", "CONCATENATION", "LOGISTIC"}  # between the heads and the post-processing op


def _module_of(name: str) -> str | None:
    for pattern, module in _MODULES:
        m = re.search(pattern, name)
        if m:
            return module(m)
    return None


_POST_PROCESS = "TFLite_Detection_PostProcess"


def _post_processing(graph: TFLiteGraph) -> list[dict]:
    return [op for op in graph.ops if op.get("custom") == _POST_PROCESS]


def is_tflite_ssd(path: str | os.PathLike) -> bool:
    """Whether a TFLite file is an SSD detector (it ends in TFLite_Detection_PostProcess). The custom
    op's name is stored as plain bytes in the flatbuffer: a scan, not a second parse of the graph
    the importer then reads."""
    with open(path, "rb") as f:
        return _POST_PROCESS.encode() in f.read()


def load_tflite_ssd(path: str | os.PathLike) -> SSDMobileNetV1:
    """An `SSDMobileNetV1` holding the weights, anchors and post-processing settings of the file."""
    path = os.fspath(path)
    graph = TFLiteGraph(path)
    post = _post_processing(graph)
    if len(post) != 1:
        raise VidrecError(f"{path}: not an SSD detector (no TFLite_Detection_PostProcess op)")
    options = post[0]["options"]
    if options.get("use_regular_nms"):
        raise VidrecError(f"{path}: regular (per-class) NMS exports are not supported, only the fast path")
    params, grids = {}, {}
    for op in graph.ops:
        if op["type"] in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            kernel, bias = (graph.tensors[i] for i in op["inputs"][1:3])
            module = _module_of(kernel["name"])
            if module is None or kernel["value"] is None or bias["value"] is None:
                raise VidrecError(f"{path}: no vidrec layer for {kernel['name']}")
            if "grid" in graph.tensors[op["outputs"][0]]:
                grids[module] = graph.tensors[op["outputs"][0]]["grid"]
            k = torch.from_numpy(np.ascontiguousarray(kernel["value"], dtype=np.float32))
            # TFLite (O, kh, kw, I) -> (O, I, kh, kw); depthwise (1, kh, kw, C) -> (C, 1, kh, kw)
            k = k.permute(3, 0, 1, 2) if op["type"] == "DEPTHWISE_CONV_2D" else k.permute(0, 3, 1, 2)
            params[f"{module}.weight"] = k
            params[f"{module}.bias"] = torch.from_numpy(np.asarray(bias["value"], dtype=np.float32))
        elif op["type"] not in _GLUE and op is not post[0]:
            raise VidrecError(f"{path}: unexpected {op['type']} op in an SSD MobileNet graph")
    width = params["features.0.weight"].shape[0]
    model = ssd_mobilenet_v1(
        depth_multiplier=width / 32,
        num_classes=int(options["num_classes"]),
        box_scales=tuple(float(options[k]) for k in ("y_scale", "x_scale", "h_scale", "w_scale")),
        nms_iou=float(options["nms_iou_threshold"]),
        score_threshold=float(options["nms_score_threshold"]),
        max_detections=int(options["max_detections"]),
    )
    load_exact(model, params, path)
    anchors = graph.tensors[post[0]["inputs"][2]]["value"]
    if anchors is None or anchors.shape != tuple(model.anchors.shape):
        raise VidrecError(f"{path}: anchors do not fit the model's {tuple(model.anchors.shape)}")
    anchors = torch.from_numpy(np.asarray(anchors, dtype=np.float32))
    step = float(anchors[:, 2:].max()) / 255  # the file stores them on a uint8 grid
    if (anchors - model.anchors).abs().max() > step:
        raise VidrecError(f"{path}: the file's anchors are not SSD's standard ones for this model")
    model.anchors.copy_(anchors)  # the runtime decodes on these exact values
    model.quant_grids = grids or None  # vidrec.deploy.on_uint8_grids computes on them
    if model.num_classes == 90:
        model.set_labels(coco_labels())
    model.source_file = os.path.abspath(path)  # the runtime can run the file as shipped
    return model


__all__ = ["is_tflite_ssd", "load_tflite_ssd"]
