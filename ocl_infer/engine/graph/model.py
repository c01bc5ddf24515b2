"""Our own immutable graph: tensors with shapes and constants, ops with flat input/output tensor names."""

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Tensor:
    """One tensor. `data` is set for constants (NNEF variables, literals); activations have None."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "scalar"  # NNEF type name: scalar, integer, logical
    data: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * 4


@dataclass(frozen=True)
class Op:
    """One NNEF invocation. `inputs`/`outputs` are tensor names in NNEF parameter order (lists flattened);
    `args` keeps the raw NNEF input arguments (identifiers and literals) so the graph can be written back."""

    kind: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    attrs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    args: tuple[tuple[str, Any], ...] = ()
    dtype: str | None = None

    @property
    def name(self) -> str:
        """The op's name in messages: its kind and the first tensor it produces."""
        return f"{self.kind} -> {self.outputs[0]}" if self.outputs else self.kind


@dataclass(frozen=True)
class Graph:
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    tensors: Mapping[str, Tensor]
    ops: tuple[Op, ...]
    source: str = ""  # the file or folder it came from, for messages

    def tensor(self, name: str) -> Tensor:
        return self.tensors[name]

    def consumers(self) -> dict[str, list[int]]:
        """Tensor name -> indices of the ops that read it."""
        uses: dict[str, list[int]] = {}
        for i, op in enumerate(self.ops):
            for name in op.inputs:
                uses.setdefault(name, []).append(i)
        return uses

    def weights_bytes(self) -> int:
        return sum(t.data.nbytes for t in self.tensors.values() if t.data is not None)


def freeze(mapping: Mapping[str, Any]) -> Mapping[str, Any]:
    """A read-only copy whose list values become tuples, so ops stay immutable."""

    def _f(v: Any) -> Any:
        if isinstance(v, list | tuple):
            return tuple(_f(x) for x in v)
        return v

    return MappingProxyType({k: _f(v) for k, v in mapping.items()})
