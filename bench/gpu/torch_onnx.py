"""A small ONNX → PyTorch interpreter, so PyTorch runs exactly our network on the GPU as the peer to beat.

Only the ops a plain CNN detector needs (YOLOv3-tiny: Conv, LeakyRelu, MaxPool incl. the size-2 stride-1 pool
padded bottom/right, nearest Resize, Concat) plus a few trivial ones; anything else raises NotImplementedError
naming the op at construction, never a silent wrong answer. Weights become buffers, so `.cuda()` and `.half()`
move and convert them; attributes are read once here, not per frame. NCHW float tensors throughout.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


def _attrs(node: Any) -> dict[str, Any]:
    from onnx import helper

    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _pads(pads: list[int] | None, rank: int = 2) -> tuple[list[int], list[int]]:
    """ONNX pads [x1_begin, x2_begin, ..., x1_end, x2_end] → (begins, ends)."""
    pads = list(pads or [0] * (2 * rank))
    return pads[:rank], pads[rank:]


def _torch_pad(begins: list[int], ends: list[int]) -> tuple[int, ...]:
    """F.pad order: last dimension first, (begin, end) each."""
    out: list[int] = []
    for b, e in zip(reversed(begins), reversed(ends), strict=True):
        out += [b, e]
    return tuple(out)


class OnnxModule(torch.nn.Module):
    """`forward(*inputs)` → tuple of the graph's outputs, in graph order."""

    def __init__(self, model: Any) -> None:
        from onnx import numpy_helper

        super().__init__()
        graph = model.graph
        self.consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
        for node in graph.node:
            if node.op_type == "Constant":
                self.consts[node.output[0]] = numpy_helper.to_array(_attrs(node)["value"])
        self._buffer_of: dict[str, str] = {}
        for i, (name, arr) in enumerate(self.consts.items()):
            if arr.dtype.kind == "f":
                self.register_buffer(f"c{i}", torch.from_numpy(np.array(arr, dtype=np.float32, copy=True)))
                self._buffer_of[name] = f"c{i}"
        self.input_names = [i.name for i in graph.input if i.name not in self.consts]
        self.output_names = [o.name for o in graph.output]
        self.steps: list[tuple[Callable[..., torch.Tensor], list[str], str]] = []
        unsupported = sorted({n.op_type for n in graph.node if n.op_type != "Constant"
                              and not hasattr(self, f"_op_{n.op_type}")})
        if unsupported:
            raise NotImplementedError(f"ONNX ops not supported by the torch interpreter: {unsupported}")
        for node in graph.node:
            if node.op_type == "Constant":
                continue
            if len(node.output) != 1:
                raise NotImplementedError(f"{node.op_type} {node.name}: {len(node.output)} outputs")
            fn = getattr(self, f"_op_{node.op_type}")(node, _attrs(node))
            self.steps.append((fn, [i for i in node.input], node.output[0]))

    def _const(self, name: str) -> torch.Tensor:
        return getattr(self, self._buffer_of[name])

    def _np(self, name: str, what: str) -> np.ndarray:
        if name not in self.consts:
            raise NotImplementedError(f"{what}: input {name!r} must be a constant")
        return self.consts[name]

    # ----------------------------------------------------------------------------------------- op builders
    # Each returns fn(*tensors of the node's non-constant inputs) -> tensor.

    def _op_Conv(self, node: Any, a: dict[str, Any]) -> Callable[..., torch.Tensor]:
        if a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            raise NotImplementedError(f"Conv {node.name}: auto_pad={a['auto_pad']}")
        w_name = node.input[1]
        b_name = node.input[2] if len(node.input) > 2 and node.input[2] else None
        rank = self.consts[w_name].ndim - 2
        if rank != 2:
            raise NotImplementedError(f"Conv {node.name}: {rank}-D")
        begins, ends = _pads(a.get("pads"), rank)
        stride, dilation, groups = a.get("strides", [1, 1]), a.get("dilations", [1, 1]), a.get("group", 1)
        symmetric = begins == ends
        pad = _torch_pad(begins, ends)

        def conv(x: torch.Tensor) -> torch.Tensor:
            w = self._const(w_name)
            b = self._const(b_name) if b_name else None
            if not symmetric:
                x = F.pad(x, pad)
            return F.conv2d(x, w, b, stride, begins if symmetric else 0, dilation, groups)

        return conv

    def _op_MaxPool(self, node: Any, a: dict[str, Any]) -> Callable[..., torch.Tensor]:
        if a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID") or a.get("storage_order", 0):
            raise NotImplementedError(f"MaxPool {node.name}: auto_pad/storage_order")
        kernel = a["kernel_shape"]
        stride, dilation = a.get("strides", [1] * len(kernel)), a.get("dilations", [1] * len(kernel))
        begins, ends = _pads(a.get("pads"), len(kernel))
        ceil = bool(a.get("ceil_mode", 0))
        pad = _torch_pad(begins, ends)
        padded = any(pad)

        def pool(x: torch.Tensor) -> torch.Tensor:
            if padded:  # ONNX pads a max pool with -inf (padding never wins), also asymmetrically
                x = F.pad(x, pad, value=float("-inf"))
            return F.max_pool2d(x, kernel, stride, 0, dilation, ceil_mode=ceil)

        return pool

    def _op_AveragePool(self, node: Any, a: dict[str, Any]) -> Callable[..., torch.Tensor]:
        begins, ends = _pads(a.get("pads"), len(a["kernel_shape"]))
        if begins != ends or a.get("auto_pad", "NOTSET") != "NOTSET":
            raise NotImplementedError(f"AveragePool {node.name}: asymmetric or auto padding")
        kernel, stride = a["kernel_shape"], a.get("strides", [1] * len(a["kernel_shape"]))
        include = bool(a.get("count_include_pad", 0))
        ceil = bool(a.get("ceil_mode", 0))
        return lambda x: F.avg_pool2d(x, kernel, stride, begins, ceil, include)

    def _op_GlobalAveragePool(self, node: Any, a: dict[str, Any]) -> Callable[..., torch.Tensor]:
        return lambda x: x.mean(dim=(2, 3), keepdim=True)

    def _op_LeakyRelu(self, node: Any, a: dict[str, Any]) -> Callable[..., torch.Tensor]:
        alpha = float(a.get("alpha", 0.01))
        return lambda x: F.leaky_relu(x, alpha)

    def _op_Relu(self, node: Any, a: dict[str, Any]) -> Callable[..., torch.Tensor]:
        return F.relu

    def _op_Sigmoid(self, node: Any, a: dict[str, Any]) -> Callable[..., torch.Tensor]:
        return torch.sigmoid

    def _op_Identity(self, node: Any, a: dict[str, Any]) -> Callable[..., torch.Tensor]:
        return lambda x: x

    def _binary(self, node: Any, op: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
                ) -> Callable[..., torch.Tensor]:
        names = list(node.input)
        return lambda *xs: op(*self._operands(names, xs))

    def _operands(self, names: list[str], xs: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        it = iter(xs)
        return [self._const(n) if n in self._buffer_of else next(it) for n in names]

    def _op_Add(self, node: Any, a: dict[str, Any]) -> Callable[..., torch.Tensor]:
        return self._binary(node, torch.add)

    def _op_Mul(self, node: Any, a: dict[str, Any]) -> Callable[..., torch.Tensor]:
        return self._binary(node, torch.mul)

    def _op_Concat(self, node: Any, a: dict[str, Any]) -> Callable[..., torch.Tensor]:
        axis = int(a["axis"])
        names = list(node.input)
        return lambda *xs: torch.cat(self._operands(names, xs), dim=axis)

    def _op_Resize(self, node: Any, a: dict[str, Any]) -> Callable[..., torch.Tensor]:
        mode = a.get("mode", "nearest")
        ctm = a.get("coordinate_transformation_mode", "half_pixel")
        if mode != "nearest" or a.get("nearest_mode", "round_prefer_floor") != "floor" or ctm != "asymmetric":
            # torch's "nearest" is ONNX's asymmetric + floor; other combinations differ at some pixels
            raise NotImplementedError(f"Resize {node.name}: mode={mode} nearest_mode={a.get('nearest_mode')} "
                                      f"coordinate_transformation_mode={ctm}")
        inputs = list(node.input) + [""] * 4
        if inputs[2]:
            scales = [float(s) for s in self._np(inputs[2], f"Resize {node.name}")]
            if scales[:2] != [1.0, 1.0]:
                raise NotImplementedError(f"Resize {node.name}: scales {scales} change N or C")
            factor = (scales[2], scales[3])
            return lambda x: F.interpolate(x, scale_factor=factor, mode="nearest")
        sizes = [int(s) for s in self._np(inputs[3], f"Resize {node.name}")]
        return lambda x: F.interpolate(x, size=tuple(sizes[2:]), mode="nearest")

    def _op_Upsample(self, node: Any, a: dict[str, Any]) -> Callable[..., torch.Tensor]:
        if a.get("mode", "nearest") != "nearest":
            raise NotImplementedError(f"Upsample {node.name}: mode {a.get('mode')}")
        scales = [float(s) for s in (a["scales"] if "scales" in a else self._np(node.input[1], "Upsample"))]
        factor = (scales[2], scales[3])
        return lambda x: F.interpolate(x, scale_factor=factor, mode="nearest")

    # ------------------------------------------------------------------------------------------------ run

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        env: dict[str, torch.Tensor] = dict(zip(self.input_names, inputs, strict=True))
        for fn, names, out in self.steps:
            env[out] = fn(*(env[n] for n in names if n and n not in self.consts))
        return tuple(env[n] for n in self.output_names)


def load(path: str) -> OnnxModule:
    import onnx

    return OnnxModule(onnx.load(path)).eval()
