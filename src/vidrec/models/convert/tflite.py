"""MoViNet stream models from TensorFlow Lite files (the official int8 or float exports).

The flatbuffer is read with the `tflite` package (a base dependency); nothing is
executed. Every constant tensor is accounted for:

- parameters (conv kernels, biases, ReZero scales) are dequantized with their per-channel scales
  and zero points and mapped, by their official TF Model Garden name, onto one vidrec tensor whose
  shape is asserted. TFLite fuses names (`a;b;c` lists every original op a constant came from),
  so the name is the first component of the right kind, and the op that consumes a kernel must
  consume the bias mapped to the same layer;
- batch norm is folded into the convolutions in these files: each BN becomes the identity plus the
  folded bias;
- graph constants (reshape shapes, slice bounds, the pool's 1/(H*W)) are checked, not mapped.

A tensor that fits none of these is an error, never a warning.
"""

from __future__ import annotations

import os
import re

import numpy as np
import torch

from vidrec.errors import VidrecError
from vidrec.models.convert.common import load_exact
from vidrec.models.convert.tflite_graph import TFLiteGraph
from vidrec.models.movinet import SPECS, STREAM_PREP, int8_points, kinetics600_labels
from vidrec.models.registry import create_model

# Official layer path (after `movinet_classifier/`) -> vidrec module, for kernels and biases.
_BLOCK = r"movinet/block(\d+)_layer(\d+)/bneck/"
_LAYERS = [  # (kernel pattern, bias pattern, vidrec module, has batch norm)
    (
        r"movinet/stem/stem/conv2d/conv2d/Conv2D",
        r"movinet/stem/stem/conv2d/bn/FusedBatchNormV3",
        "stem",
        True,
    ),
    (
        _BLOCK + r"expansion/conv2d/conv2d/Conv2D",
        _BLOCK + r"expansion/conv2d/bn/FusedBatchNormV3",
        "blocks.{0}.{1}.expansion",
        True,
    ),
    (
        _BLOCK + r"feature/conv2d/depthwise_conv2d/depthwise",
        _BLOCK + r"feature/conv2d/bn/FusedBatchNormV3",
        "blocks.{0}.{1}.spatial",
        True,
    ),
    (
        _BLOCK + r"feature/conv2d_temporal/depthwise_conv2d_1/depthwise",
        _BLOCK + r"feature/conv2d_temporal/bn_temporal/FusedBatchNormV3",
        "blocks.{0}.{1}.temporal",
        True,
    ),
    (
        _BLOCK + r"projection/conv2d/conv2d_1/Conv2D",
        _BLOCK + r"projection/conv2d/bn/FusedBatchNormV3",
        "blocks.{0}.{1}.projection",
        True,
    ),
    (
        _BLOCK + r"skip/skip_project/conv2d/conv2d_2/Conv2D",
        _BLOCK + r"skip/skip_project/conv2d/bn/FusedBatchNormV3",
        "blocks.{0}.{1}.skip",
        True,
    ),
    (
        r"movinet/head/project/conv2d/conv2d/Conv2D",
        r"movinet/head/project/conv2d/bn/FusedBatchNormV3",
        "project",
        True,
    ),
    (
        r"classifier_head/head/conv2d/conv2d/Conv2D",
        r"classifier_head/head/conv2d/conv2d/bias",
        "hidden",
        False,
    ),
    (
        r"classifier_head/classifier/conv2d/conv2d_1/Conv2D",
        r"classifier_head/classifier/conv2d/conv2d_1/bias",
        "head",
        False,
    ),
]
_REZERO = re.compile(_BLOCK + r"rezero/mul$")
_POOL_DIVISOR = re.compile(r"movinet/head/global_average_pool3d/(truediv|Cast)$")
_STRUCTURE_OPS = {"RESHAPE", "STRIDED_SLICE", "SUM", "SQUEEZE", "CONCATENATION", "ADD"}  # int32 operands only
_ACTIVATIONS = {"RELU6": "relu6", "RELU": "relu"}


def _official(name: str) -> list[str]:
    return [part.removeprefix("movinet_classifier/") for part in name.split(";")]


def _layer_of(name: str, role: int) -> tuple[str, bool] | None:
    """The vidrec module of a kernel (`role` 0) or bias (1): first fused name part that matches."""
    for part in _official(name):
        for patterns in _LAYERS:
            m = re.fullmatch(patterns[role], part)
            if m:
                return patterns[2].format(*m.groups()), patterns[3]
    return None


def _to_torch(kernel: np.ndarray, target: torch.Tensor, depthwise: bool) -> torch.Tensor:
    """TFLite kernels to PyTorch layouts: conv (O, kh, kw, I) -> (O, I, kh, kw); depthwise
    (1, kh, kw, C) -> (C, 1, kh, kw), or (C, 1, kt, 1, 1) for the temporal convs."""
    k = torch.from_numpy(np.ascontiguousarray(kernel))
    k = k.permute(3, 0, 1, 2) if depthwise else k.permute(0, 3, 1, 2)
    return k.reshape(target.shape) if k.numel() == target.numel() else k


def _architecture(graph: TFLiteGraph, layers: dict[str, torch.Tensor]) -> dict:
    """The MoViNet config these tensors describe (model_id from the kernels' shapes)."""
    activations = {op["activation"] for op in graph.ops if op["type"] in ("CONV_2D", "DEPTHWISE_CONV_2D")} - {
        "NONE"
    }
    if len(activations) != 1 or next(iter(activations)) not in _ACTIVATIONS:
        found = sorted(
            activations | {op["type"] for op in graph.ops if op["type"] in ("HARD_SWISH", "LOGISTIC")}
        )
        raise VidrecError(
            f"unsupported MoViNet variant: activations {found} (vidrec reads ReLU/ReLU6 exports)"
        )
    expand = {}
    for key, value in layers.items():
        m = re.fullmatch(r"blocks\.(\d+)\.(\d+)\.spatial\.conv\.weight", key)
        if m:
            expand[int(m[1]), int(m[2])] = (value.shape[-1], value.shape[1])  # TFLite (1, k, k, C)
    for model_id, spec in SPECS.items():
        wanted = {
            (s, i): (layer.expand, layer.kernel[1])
            for s, (_, ls) in enumerate(spec.stages)
            for i, layer in enumerate(ls)
        }
        if wanted == expand:
            return {
                "model_id": model_id,
                "activation": _ACTIVATIONS[activations.pop()],
                "se_type": "none",
                "num_classes": layers["head.weight"].shape[0] if "head.weight" in layers else 600,
            }
    raise VidrecError(f"the blocks in this file match no known MoViNet ({', '.join(SPECS)})")


def read_tflite_movinet(
    path: str,
) -> tuple[TFLiteGraph, dict[str, torch.Tensor], dict[str, bool], dict[str, str]]:
    """`(graph, parameters by vidrec key in TFLite layout, module -> has folded BN, key -> op type)`."""
    graph = TFLiteGraph(path)
    consumers: dict[int, list[tuple[dict, int]]] = {}
    for op in graph.ops:
        for slot, index in enumerate(op["inputs"]):
            consumers.setdefault(index, []).append((op, slot))
    params: dict[str, torch.Tensor] = {}
    folded: dict[str, bool] = {}
    kinds: dict[str, str] = {}
    unmapped = []
    for index, tensor in enumerate(graph.tensors):
        if tensor["value"] is None:
            continue
        name, uses = tensor["name"], consumers.get(index, [])
        parts = _official(name)
        if uses and all(
            op["type"] in ("CONV_2D", "DEPTHWISE_CONV_2D") and slot in (1, 2) for op, slot in uses
        ):
            slot = uses[0][1]
            found = _layer_of(name, slot - 1)
            if found is None:
                unmapped.append(name)
                continue
            module, has_bn = found
            key = (
                f"{module}.{'conv.weight' if has_bn else 'weight'}"
                if slot == 1
                else f"{module}.{'bn.bias' if has_bn else 'bias'}"
            )
            if key in params:
                raise VidrecError(f"{path}: two tensors map to {key}")
            params[key], folded[module] = (
                torch.from_numpy(np.array(tensor["value"], dtype=np.float32)),
                has_bn,
            )
            kinds[key] = uses[0][0]["type"]
            for op, _ in uses:  # the kernel and the bias of one op must belong to one layer
                other = op["inputs"][3 - slot] if len(op["inputs"]) > 2 else -1
                if other >= 0 and _layer_of(graph.tensors[other]["name"], 2 - slot) not in (None, found):
                    raise VidrecError(
                        f"{path}: {name} and {graph.tensors[other]['name']} feed one op but name two layers"
                    )
        elif rezero := next(filter(None, map(_REZERO.fullmatch, parts)), None):
            values = np.unique(tensor["value"])
            if values.size != 1:
                raise VidrecError(f"{path}: {name} is not a single ReZero scale")
            params[f"blocks.{rezero[1]}.{rezero[2]}.rezero.scale"] = torch.tensor(float(values[0]))
        elif any(_POOL_DIVISOR.fullmatch(p) for p in parts):
            pass  # checked below against the last feature map's size
        elif (
            tensor["type"] == 2
            and "quantized" not in tensor
            and uses
            and all(op["type"] in _STRUCTURE_OPS for op, _ in uses)
        ):
            pass  # shapes, slice bounds, axes, the frame counter's +1: graph structure, not weights
        else:
            unmapped.append(name)
    if unmapped:
        raise VidrecError(f"{path}: {len(unmapped)} tensors map to no MoViNet layer, e.g. {unmapped[:3]}")
    return graph, params, folded, kinds


_BLOCK_OP = re.compile(_BLOCK + r"(skip/skip_pool/AvgPool|rezero/mul1?|add(_\d+)?)$")
_PASS_THROUGH = {"RESHAPE", "CONCATENATION", "STRIDED_SLICE"}  # int8 in, int8 out on the same grid


def activation_points(graph: TFLiteGraph, path: str) -> dict[str, dict]:
    """The op computing every activation the runtime rounds to int8, by vidrec point name
    (vidrec.models.movinet.int8_points): conv outputs by module, per block the skip pool,
    ReZero product and sum,
    and the head's pool. Ops that only move int8 data must keep its grid; any other int8 output
    is an error."""
    producer = graph.producer

    def source(op) -> str:  # name of the tensor an op reads first
        return graph.tensors[op["inputs"][0]]["name"]

    def grid_of(index: int):
        return graph.tensors[index].get("grid")

    points, unmapped = {}, []
    for op in graph.ops:
        out = graph.tensors[op["outputs"][0]]
        grid, kind, parts = out.get("grid"), op["type"], _official(out["name"])
        if grid is None:
            continue  # float or int32: the frame counter and the mean's division
        block = next(filter(None, map(_BLOCK_OP.fullmatch, parts)), None)
        if kind in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            point = _layer_of(graph.tensors[op["inputs"][1]]["name"], 0)[0]
        elif block and kind in ("AVERAGE_POOL_2D", "MUL", "ADD"):
            point = (
                f"blocks.{block[1]}.{block[2]}."
                + {"AVERAGE_POOL_2D": "skip_pool", "MUL": "rezero", "ADD": "add"}[kind]
            )
        elif kind == "SUM":
            point = "frame_pool.sum"
        elif kind == "MUL" and any(_POOL_DIVISOR.fullmatch(p) for p in parts):
            point = "frame_pool.mean"
        elif kind == "ADD" and any(
            "pool_buffer" in source(producer[i]) for i in op["inputs"] if i in producer
        ):
            point = "pool.sum"  # the running sum: this frame's mean + the state read back
        elif kind == "QUANTIZE" and "image" in source(op):
            point = "input"
        elif kind == "QUANTIZE" and "head_pool_buffer" in source(op):
            point = "pool.state"
        elif (
            kind == "QUANTIZE" and op["inputs"][0] in producer and producer[op["inputs"][0]]["type"] == "DIV"
        ):
            point = "pool.mean"
        elif kind == "QUANTIZE" and "stream_buffer" in source(op):
            continue  # the concatenation that reads it must find it on its own output's grid
        elif kind in _PASS_THROUGH:
            if any(grid_of(i) not in (None, grid) for i in op["inputs"] if graph.tensors[i]["value"] is None):
                raise VidrecError(f"{path}: {kind} {out['name']} changes the int8 grid of its input")
            continue
        else:
            unmapped.append(f"{kind} {out['name']}")
            continue
        if point in points:
            raise VidrecError(f"{path}: two activations map to {point}")
        points[point] = op
    if unmapped:
        raise VidrecError(
            f"{path}: {len(unmapped)} int8 activations map to no MoViNet point, e.g. {unmapped[:3]}"
        )
    return points


def activation_grids(graph: TFLiteGraph, path: str) -> dict[str, tuple]:
    """`{point: (scale, zero_point, *input grids)}` (vidrec.deploy.movinet_int8's points): convolutions
    and sums add their input's grid, adds the grids of their two inputs (the branch, a ReZero
    product or a frame's mean, first); a pool must keep its input's grid."""
    grids = {}
    for point, op in activation_points(graph, path).items():
        grid = graph.tensors[op["outputs"][0]]["grid"]
        inputs = [graph.tensors[i].get("grid") for i in op["inputs"]]
        if op["type"] in ("CONV_2D", "DEPTHWISE_CONV_2D", "SUM"):
            grid += inputs[0]
        elif op["type"] == "ADD":
            order = sorted(
                range(2), key=lambda k: graph.producer.get(op["inputs"][k], {}).get("type") != "MUL"
            )
            if [graph.producer.get(op["inputs"][k], {}).get("type") == "MUL" for k in order] != [True, False]:
                raise VidrecError(f"{path}: the sum {point} does not add one product to one other input")
            grid += inputs[order[0]] + inputs[order[1]]
        elif op["type"] == "AVERAGE_POOL_2D" and inputs[0] != grid:
            raise VidrecError(f"{path}: the pool {point} changes the int8 grid")
        grids[point] = grid
    return grids


def load_tflite_movinet(path: str | os.PathLike):
    """A vidrec `MoViNet` with the weights of an official MoViNet stream TFLite file; an int8
    file's activation grids are kept in `model.quant_grids` (vidrec.deploy.to_int8 uses them)."""
    path = os.fspath(path)
    graph, params, folded, kinds = read_tflite_movinet(path)
    config = _architecture(graph, params)
    grids = activation_grids(graph, path)
    model = create_model(
        f"movinet_{config['model_id']}_stream", **{k: v for k, v in config.items() if k != "model_id"}
    )
    if grids and set(grids) != set(int8_points(model)):
        odd = sorted(set(grids) ^ set(int8_points(model)))
        raise VidrecError(f"{path}: the int8 activations do not fit {model.arch}: {odd[:3]}")
    own = model.state_dict()
    state = {}
    for key, value in params.items():
        if key not in own:
            raise VidrecError(f"{path}: {key} is not a tensor of {model.arch}")
        if key.endswith("weight") and value.ndim == 4:
            value = _to_torch(value.numpy(), own[key], kinds[key] == "DEPTHWISE_CONV_2D")
        if value.shape != own[key].shape:
            raise VidrecError(
                f"{path}: {key} has shape {tuple(value.shape)}, the model wants {tuple(own[key].shape)}"
            )
        state[key] = value
    for module, has_bn in folded.items():
        if has_bn:  # folded batch norm: the identity in eval mode, (x - 0) / sqrt((1 - eps) + eps) * 1
            eps = model.get_submodule(f"{module}.bn").eps
            bn = f"{module}.bn."
            state.update(
                {
                    bn + "weight": torch.ones_like(own[bn + "weight"]),
                    bn + "running_mean": torch.zeros_like(own[bn + "running_mean"]),
                    bn + "running_var": torch.full_like(own[bn + "running_var"], 1.0 - eps),
                    bn + "num_batches_tracked": torch.zeros_like(own[bn + "num_batches_tracked"]),
                }
            )
    load_exact(model, state, path)
    image = next((s for n, s in graph.inputs.items() if "image" in n), None)
    _check_pool_divisor(graph, model, image, path)
    model.preprocessing = STREAM_PREP
    model.quant_grids = grids or None
    if model.num_classes == 600:
        model.set_labels(kinetics600_labels())
    return model


def _check_pool_divisor(graph: TFLiteGraph, model, image: tuple | None, path: str) -> None:
    """The head's mean is a multiply by 1/(H*W) baked for the exported size: it must agree."""
    if image is None:
        raise VidrecError(f"{path}: no image input")
    size = image[2]
    for _ in range(1 + sum(b.downsample for _, b in model.named_layers())):
        size = -(-size // 2)
    for t in graph.tensors:
        if t["value"] is not None and any(_POOL_DIVISOR.fullmatch(p) for p in _official(t["name"])):
            if not np.allclose(t["value"], 1.0 / size**2, rtol=1e-2):
                raise VidrecError(
                    f"{path}: head pool divides by {1 / float(t['value'].flat[0]):.1f}, not {size * size}"
                )
