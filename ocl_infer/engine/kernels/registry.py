"""The kernel table: (op, variant) -> wrapper class, and the choice per step by shape and device facts.

A family module registers its wrappers with `register` when it is imported, and `kernels/__init__.py` imports
every family right after this module. Python runs a package's `__init__` before any of its modules, so whoever
imports this module (or a family) gets the table filled: no lazy loading, no flag. Another kernel (a faster
conv, say) plugs in with `register` and a higher `priority` or a narrower `supports`, and its module goes into
`FAMILIES` in `kernels/__init__.py` (a test checks that every registering module is listed there)."""

from collections.abc import Mapping

from ocl_infer.engine.kernels.base import Kernel
from ocl_infer.engine.plan.model import DeviceFacts, Step
from ocl_infer.errors import ModelError

KERNELS: dict[tuple[str, str], type[Kernel]] = {}


def register(cls: type[Kernel]) -> type[Kernel]:
    for op in cls.ops:
        KERNELS[(op, cls.variant)] = cls
    return cls


def choose_kernel(step: Step, shapes: Mapping[str, tuple[int, ...]], facts: DeviceFacts) -> type[Kernel]:
    """The highest-priority registered wrapper that supports `step` on a device with `facts`."""
    candidates = [cls for (op, _), cls in KERNELS.items() if op == step.kind and cls.supports(step, shapes, facts)]
    if not candidates:
        known = sorted({op for op, _ in KERNELS})
        raise ModelError(f"op {step.name}: no kernel supports this op with these shapes/attributes "
                         f"(kernels exist for: {', '.join(known)})")
    return max(candidates, key=lambda c: c.priority)


def kernel_for(step: Step) -> type[Kernel]:
    """The wrapper class a plan chose for `step`."""
    try:
        return KERNELS[(step.kind, step.variant)]
    except KeyError as err:
        raise ModelError(f"op {step.name}: kernel variant {step.variant!r} is not registered") from err
