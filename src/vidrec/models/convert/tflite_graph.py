"""Reading a TensorFlow Lite flatbuffer without running it: every tensor (constants dequantized
with their scales and zero points), every operator with its fused activation, padding and strides,
and a custom operator's flexbuffer options. The MoViNet and SSD importers build on it."""

from __future__ import annotations

import numpy as np

from vidrec.errors import VidrecError

DTYPES = {0: np.float32, 1: np.float16, 2: np.int32, 3: np.uint8, 4: np.int64, 9: np.int8}


def is_tflite(path: str) -> bool:
    """Whether a file is a TensorFlow Lite flatbuffer."""
    with open(path, "rb") as f:
        return f.read(8)[4:8] == b"TFL3"


def _import_tflite():
    try:
        import tflite
    except ImportError:
        raise VidrecError("reading .tflite files needs the tflite package: pip install tflite") from None
    return tflite


class TFLiteGraph:
    """The tensors (with dequantized constant values) and operators of a TFLite file's main graph."""

    def __init__(self, path: str):
        tfl = _import_tflite()
        with open(path, "rb") as f:
            data = f.read()
        if data[4:8] != b"TFL3":
            raise VidrecError(f"{path}: not a TensorFlow Lite model (no TFL3 identifier)")
        try:
            model = tfl.Model.GetRootAsModel(data, 0)
            graph = model.Subgraphs(0)
            self.opcodes = {v: k for k, v in vars(tfl.BuiltinOperator).items() if not k.startswith("_")}
            self.activation_names = {
                v: k for k, v in vars(tfl.ActivationFunctionType).items() if not k.startswith("_")
            }
            self.tensors = [self._tensor(model, graph.Tensors(i)) for i in range(graph.TensorsLength())]
            self.ops = [self._op(tfl, model, graph.Operators(j)) for j in range(graph.OperatorsLength())]
            self.inputs = {self.tensors[i]["name"]: self.tensors[i]["shape"] for i in graph.InputsAsNumpy()}
            self.producer = {o: op for op in self.ops for o in op["outputs"]}
        except VidrecError:
            raise
        except Exception as e:  # truncated or corrupt flatbuffers fail anywhere in the accessors
            raise VidrecError(f"{path}: unreadable TensorFlow Lite file ({type(e).__name__}: {e})") from None

    @staticmethod
    def _tensor(model, t) -> dict:
        shape = tuple(int(s) for s in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        entry = {"name": t.Name().decode(), "shape": shape, "type": t.Type(), "value": None}
        buffer = model.Buffers(t.Buffer())
        q = t.Quantization()
        if buffer is not None and buffer.DataLength():
            if t.Type() not in DTYPES:
                raise VidrecError(f"tensor {entry['name']}: unsupported TFLite type {t.Type()}")
            raw = np.frombuffer(buffer.DataAsNumpy().tobytes(), dtype=DTYPES[t.Type()]).reshape(shape)
            if q is not None and q.ScaleLength():
                scale, zero = q.ScaleAsNumpy().astype(np.float64), q.ZeroPointAsNumpy().astype(np.float64)
                axis = q.QuantizedDimension() if scale.size > 1 else None
                view = [1] * raw.ndim
                if axis is not None:
                    view[axis] = -1
                entry["value"] = ((raw.astype(np.float64) - zero.reshape(view)) * scale.reshape(view)).astype(
                    np.float32
                )
                entry["quantized"] = True
            else:
                entry["value"] = raw
        elif q is not None and q.ScaleLength() == 1 and t.Type() in (3, 9):  # a (u)int8 activation's grid
            entry["grid"] = (float(q.ScaleAsNumpy()[0]), int(q.ZeroPointAsNumpy()[0]))
        return entry

    def _op(self, tfl, model, op) -> dict:
        code = model.OperatorCodes(op.OpcodeIndex())
        name = self.opcodes.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
        entry = {
            "type": name,
            "inputs": [int(i) for i in op.InputsAsNumpy()],
            "outputs": [int(i) for i in op.OutputsAsNumpy()],
            "activation": "NONE",
        }
        options = {"CONV_2D": tfl.Conv2DOptions, "DEPTHWISE_CONV_2D": tfl.DepthwiseConv2DOptions}.get(name)
        if options is not None:
            table = op.BuiltinOptions()
            parsed = options()
            parsed.Init(table.Bytes, table.Pos)
            entry["activation"] = self.activation_names[parsed.FusedActivationFunction()]
            entry["padding"] = "SAME" if parsed.Padding() == tfl.Padding.SAME else "VALID"
            entry["stride"] = (parsed.StrideH(), parsed.StrideW())
        if name == "CUSTOM":
            from flatbuffers import flexbuffers

            entry["custom"] = code.CustomCode().decode()
            raw = op.CustomOptionsAsNumpy()
            entry["options"] = flexbuffers.Loads(raw.tobytes()) if op.CustomOptionsLength() else {}
        return entry


__all__ = ["DTYPES", "TFLiteGraph", "is_tflite"]
