"""What the planner produces: steps with a chosen kernel, constants to upload, and a buffer plan."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class DeviceFacts:
    """What kernel choice may depend on; plain data so plans are made and tested without a device."""

    type: str = "cpu"
    compute_units: int = 1
    local_mem_bytes: int = 32768
    max_work_group_size: int = 4096
    fp16: bool = False
    # kernel family: "cpu" (wide vector registers, no local memory) or "gpu" (tiles staged in local memory);
    # "" takes it from the device type
    family: str = ""
    key: str = ""  # platform | device | driver: names the device's tuning table (engine/tuning.py); "" = none
    # sub-buffer origins must be multiples of this (CL_DEVICE_MEM_BASE_ADDR_ALIGN in bytes: 128 on PoCL, 512 on
    # the GPUs we know, the default): where a placed concat input or a split view may start
    base_align_bytes: int = 512

    def __post_init__(self) -> None:
        if not self.family:
            object.__setattr__(self, "family", "gpu" if self.type in ("gpu", "accelerator") else "cpu")


@dataclass(frozen=True)
class Step:
    """One kernel launch group. `variant` keys the kernel registry; "alias" steps launch nothing."""

    kind: str
    variant: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping[str, Any]
    name: str  # the NNEF op(s) it came from, for messages


@dataclass(frozen=True)
class BufferPlan:
    """Activations share `slots` by liveness; graph inputs/outputs are `pinned` (own buffer each).

    `storage_of` maps every activation tensor to the tensor whose buffer it uses (itself unless aliased);
    `offset_of` the byte offset of a tensor inside that storage where it is not 0 (the inputs of a placed concat
    live in their slice of its output: the runtime hands kernels a sub-buffer there)."""

    storage_of: Mapping[str, str]
    slot_of: Mapping[str, int]
    slot_bytes: tuple[int, ...]
    pinned_bytes: Mapping[str, int]
    offset_of: Mapping[str, int] = field(default_factory=dict)

    @property
    def activation_bytes(self) -> int:
        return sum(self.slot_bytes) + sum(self.pinned_bytes.values())


@dataclass(frozen=True)
class Plan:
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    shapes: Mapping[str, tuple[int, ...]]
    steps: tuple[Step, ...]
    constants: Mapping[str, np.ndarray] = field(repr=False)  # device layout, uploaded once per device
    buffers: BufferPlan = field(repr=False)
    scratch_bytes: int = 0  # the scratch slots the steps share (Winograd's transformed tiles): `scratch_slots`

    @property
    def weights_bytes(self) -> int:
        return sum(int(a.nbytes) for a in self.constants.values())

    @property
    def peak_bytes(self) -> int:
        """Planned device memory: weights, activations at their peak, and the kernels' own scratch."""
        return self.weights_bytes + self.buffers.activation_bytes + self.scratch_bytes

    def size(self, name: str) -> int:
        return int(np.prod(self.shapes[name], dtype=np.int64))


def scratch_slots(needs: Iterable[tuple[int, ...]]) -> tuple[int, ...]:
    """Bytes of each scratch slot shared by a runtime's steps: the largest of the steps' needs in that slot (a
    step's `scratch_sizes`, slot by slot). Steps run one after another, so one buffer per slot serves them all."""
    slots: list[int] = []
    for sizes in needs:
        for i, n in enumerate(sizes):
            if i == len(slots):
                slots.append(0)
            slots[i] = max(slots[i], max(4, n))
    return tuple(slots)
