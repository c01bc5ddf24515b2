"""The kernel wrapper contract: one class per op variant, owning its source, build options, weight layout,
work sizes and argument checks. Wrappers are made from a plan Step without a device; `launches` binds them."""

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from ocl_infer.engine.plan.model import DeviceFacts, Step
from ocl_infer.errors import ModelError

MAX_RANK = 8


@dataclass(frozen=True)
class Launch:
    """One bound kernel launch: arguments already set, so a run only enqueues."""

    kernel: Any  # pyopencl.Kernel
    global_size: tuple[int, ...]
    local_size: tuple[int, ...] | None = None


@dataclass(frozen=True)
class ScratchLaunch(Launch):
    """A launch that owns scratch buffers (Winograd V/M, split-K partials): OpenCL does not retain buffers set
    as kernel arguments, so the launch keeps them alive as long as it is bound."""

    scratch: tuple[Any, ...] = ()


@cache
def read_source(cl_file: str) -> str:
    return (Path(__file__).with_name(cl_file)).read_text()


class Kernel:
    """Base of every kernel wrapper. Subclasses set `ops`, `variant`, `cl_file` and implement `launches`."""

    ops: ClassVar[tuple[str, ...]] = ()
    variant: ClassVar[str] = ""
    priority: ClassVar[int] = 0  # higher wins among wrappers that support a step
    cl_file: ClassVar[str] = ""
    headers: ClassVar[tuple[str, ...]] = ()  # shared .h.cl snippets put before cl_file (helpers, activations)

    def __init__(self, step: Step, shapes: Mapping[str, tuple[int, ...]]) -> None:
        self.step = step
        self.shapes = shapes

    @classmethod
    def supports(cls, step: Step, shapes: Mapping[str, tuple[int, ...]], facts: DeviceFacts) -> bool:
        return step.kind in cls.ops

    @classmethod
    def device_rule(cls, step: Step, shapes: Mapping[str, tuple[int, ...]], facts: DeviceFacts) -> Step:
        """`step` with any attrs this kernel derives from the device's facts (a blocking rule, say), so that
        wrappers re-created later without the facts (runtime, tuner) build the same kernel. Default: unchanged."""
        return step

    def relayout(self, consts: Mapping[str, np.ndarray]) -> dict[str, tuple[str, np.ndarray]]:
        """Constant input name -> (new name, array in this kernel's device layout). Default: unchanged."""
        return {}

    def source(self) -> str:
        return "".join(read_source(name) for name in (*self.headers, self.cl_file))

    def build_options(self) -> str:
        return ""

    # The runtime's scratch buffers, one per slot, each at least as large as any step's need in that slot
    # (plan.model.scratch_slots): set before `launches`. Steps run one after another on the runtime's in-order
    # queue, so a step's scratch is dead when the next one starts, and one set serves them all (YOLO11n's
    # Winograd layers: 11.4 MB of their own V/M buffers -> 3.1 MB shared).
    shared_scratch: tuple[Any, ...] | None = None

    def scratch_sizes(self) -> tuple[int, ...]:
        """Bytes of each scratch buffer the launches need beyond the plan's tensors, slot by slot."""
        return ()

    def scratch_buffers(self) -> tuple[Any, ...]:
        """This step's scratch, one of the runtime's shared buffers per `scratch_sizes` slot."""
        if self.shared_scratch is None:
            raise self.fail("no scratch buffers: the runtime sets them before binding the launches")
        return tuple(self.shared_scratch[: len(self.scratch_sizes())])

    def launches(self, program: Any, ins: list[Any], outs: list[Any]) -> list[Launch]:
        raise NotImplementedError

    # helpers shared by the families
    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.shapes[name])

    def fail(self, what: str) -> ModelError:
        return ModelError(f"op {self.step.name}: {what}")


def size_of(shape: tuple[int, ...]) -> int:
    return int(np.prod(shape, dtype=np.int64))


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides = [1] * len(shape)
    for i in range(len(shape) - 2, -1, -1):
        strides[i] = strides[i + 1] * shape[i + 1]
    return tuple(strides)


def collapse_dims(dims: tuple[int, ...], *strides: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """Drop size-1 dims and merge neighbours that are contiguous in every stride set (a broadcast operand's 0
    strides merge too), so most copies (concat and split along channels, plain copies) become one flat run and
    most broadcasts (a scalar, a row across channels) one or two dims. Returns (dims, *strides)."""
    kept = [(d, *s) for d, *s in zip(dims, *strides, strict=True) if d != 1]
    if not kept:
        return ((1,), *(((1,),) * len(strides)))
    out = [kept[0]]
    for d, *s in kept[1:]:
        pd, *ps = out[-1]
        if all(p == a * d for p, a in zip(ps, s, strict=True)):
            out[-1] = (pd * d, *s)
        else:
            out.append((d, *s))
    return tuple(tuple(x[i] for x in out) for i in range(len(strides) + 1))


def auto_padding(size: int, out: int, k: int, stride: int, dil: int) -> tuple[int, int]:
    """NNEF's padding when the attribute is []: 'same' style, the odd pixel at the back."""
    total = max(0, (out - 1) * stride + (k - 1) * dil + 1 - size)
    return total // 2, total - total // 2


def nnef_broadcast_strides(in_shape: tuple[int, ...], out_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Strides that read `in_shape` broadcast to `out_shape` the NNEF way: missing dims are trailing 1s."""
    if len(in_shape) > len(out_shape):
        extra = in_shape[len(out_shape):]
        if any(d != 1 for d in extra):
            raise ValueError(f"shape {list(in_shape)} does not broadcast to {list(out_shape)}")
        in_shape = in_shape[: len(out_shape)]
    padded = tuple(in_shape) + (1,) * (len(out_shape) - len(in_shape))
    strides = contiguous_strides(padded)
    out = []
    for d_in, d_out, s in zip(padded, out_shape, strides, strict=True):
        if d_in == d_out:
            out.append(s)
        elif d_in == 1:
            out.append(0)
        else:
            raise ValueError(f"shape {list(in_shape)} does not broadcast to {list(out_shape)}")
    return tuple(out)


def int8(values: tuple[int, ...], fill: int) -> np.ndarray:
    """An OpenCL int8 argument, right-aligned: unused leading components hold `fill`."""
    import pyopencl.cltypes as clt

    if len(values) > MAX_RANK:
        raise ValueError(f"rank {len(values)} exceeds {MAX_RANK}")
    v = (fill,) * (MAX_RANK - len(values)) + tuple(int(x) for x in values)
    return clt.make_int8(*v)


def global_1d(n: int, group: int = 64) -> tuple[int]:
    return (max(1, -(-n // group) * group),)


# The GPU family's work-group for kernels over 2-D maps (pool, upsample): 64 work-items (two warps, one
# wavefront) rather than the CPU family's 8, which would leave most lanes of a GPU's SIMD units idle; rows are
# then padded to it as columns are.
GPU_LOCAL_2D = (8, 8, 1)


def local_2d(step: Step, facts: DeviceFacts) -> Step:
    """`step` with attr `local` = GPU_LOCAL_2D on GPU-family devices: a `device_rule` of the 2-D map kernels."""
    if facts.family != "gpu":
        return step
    return Step(step.kind, step.variant, step.inputs, step.outputs,
                MappingProxyType({**step.attrs, "local": list(GPU_LOCAL_2D)}), step.name)


def new_kernel(program: Any, name: str) -> Any:
    """A fresh kernel object: each launch binds its own arguments once, so launches never share one."""
    import pyopencl as cl

    return cl.Kernel(program, name)
