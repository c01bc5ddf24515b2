"""The kernel table: (op, variant) -> wrapper class, and the choice per step by shape and device facts.

Another kernel (a faster conv, say) plugs in with `register` and a higher `priority` or a narrower `supports`."""

from collections.abc import Mapping

from ocl_infer.engine.kernels.base import Kernel
from ocl_infer.engine.plan.model import DeviceFacts, Step
from ocl_infer.errors import ModelError

KERNELS: dict[tuple[str, str], type[Kernel]] = {}


def register(cls: type[Kernel]) -> type[Kernel]:
    for op in cls.ops:
        KERNELS[(op, cls.variant)] = cls
    return cls


_loaded = False


def _load_families() -> None:
    """Import the built-in families once (for their `register` side effect), whatever was imported before."""
    global _loaded
    if not _loaded:
        from ocl_infer.engine.kernels import (  # noqa: F401
            conv,
            conv_covec,
            conv_depthwise,
            conv_gemm,
            conv_winograd,
            conv_winograd4,
            elementwise,
            layout,
            matmul,
            pool,
        )

        _loaded = True


def choose_kernel(step: Step, shapes: Mapping[str, tuple[int, ...]], facts: DeviceFacts) -> type[Kernel]:
    """The highest-priority registered wrapper that supports `step` on a device with `facts`."""
    _load_families()
    candidates = [cls for (op, _), cls in KERNELS.items() if op == step.kind and cls.supports(step, shapes, facts)]
    if not candidates:
        known = sorted({op for op, _ in KERNELS})
        raise ModelError(f"op {step.name}: no kernel supports this op with these shapes/attributes "
                         f"(kernels exist for: {', '.join(known)})")
    return max(candidates, key=lambda c: c.priority)


def kernel_for(step: Step) -> type[Kernel]:
    """The wrapper class a plan chose for `step`."""
    _load_families()
    try:
        return KERNELS[(step.kind, step.variant)]
    except KeyError as err:
        raise ModelError(f"op {step.name}: kernel variant {step.variant!r} is not registered") from err
