"""Graph -> Plan: constant folding, batch-norm folding, conv/linear + activation fusion, conv + residual add and
conv + 2x2 max-pool fusion, aliases, kernel choice (and tuned parameters), weight re-layout, the buffer plan and
the kernels' scratch. Pure Python and numpy; no device needed."""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

import numpy as np

from ocl_infer.engine.graph.model import Graph
from ocl_infer.engine.plan.memory import plan_buffers
from ocl_infer.engine.plan.model import DeviceFacts, Plan, Step, scratch_slots
from ocl_infer.errors import ConfigError, ModelError

# Activations a conv/linear kernel applies at its store; the codes are the kernels' ACT_* constants.
FUSABLE_ACTIVATIONS = ("relu", "leaky_relu", "clamp", "sigmoid", "tanh", "elu")
ALIAS_OPS = ("reshape", "squeeze", "unsqueeze", "copy")
PRECISIONS = ("fp32", "fp16")  # fp16: conv kernels that can store their weights (and scratch) as half do so


class StepTuning(Protocol):
    """A per-device tuning table: `apply` returns `step` with the tuned attrs of kernel `cls`, if it has any."""

    def apply(self, cls: Any, step: Step, shapes: Mapping[str, tuple[int, ...]]) -> Step: ...


@dataclass
class _Draft:
    kind: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict[str, Any]
    name: str
    variant: str = ""
    fused: list[str] = field(default_factory=list)


def _scalar_const(consts: dict[str, np.ndarray], name: str) -> float | None:
    a = consts.get(name)
    return float(a.reshape(-1)[0]) if a is not None and a.size == 1 else None


def _fold_constant(d: _Draft, consts: dict[str, np.ndarray], shapes: dict[str, tuple[int, ...]]) -> bool:
    """Evaluate shape-only ops on constants at plan time (e.g. unsqueeze of a PReLU slope)."""
    if d.kind not in ("reshape", "squeeze", "unsqueeze", "copy", "transpose") or d.inputs[0] not in consts:
        return False
    x = consts[d.inputs[0]]
    out = np.transpose(x, d.attrs["axes"]) if d.kind == "transpose" else x.reshape(shapes[d.outputs[0]])
    consts[d.outputs[0]] = np.ascontiguousarray(out, dtype=np.float32)
    return True


def make_plan(graph: Graph, facts: DeviceFacts | None = None, fuse: bool = True,
              choose: Callable[[Step, dict[str, tuple[int, ...]], DeviceFacts], Any] | None = None,
              precision: str = "fp32", tuning: "StepTuning | None" = None) -> Plan:
    """Make the execution plan of `graph` for a device described by `facts`.

    `choose(step, shapes, facts)` returns the kernel class for a step (default: the kernel registry).
    `precision="fp16"` marks every conv step (attr `precision`); the covec and Winograd kernels then keep
    their weights as float16 constants. Activations and the plan's inputs/outputs stay float32.
    `tuning` (engine/tuning.py's TuningTable of this device): a step with an entry gets the tuned kernel
    parameters as attrs (overriding the kernel's rule); without one the rule applies."""
    from ocl_infer.engine.kernels.registry import choose_kernel

    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {list(PRECISIONS)}, got {precision!r}")
    facts = facts or DeviceFacts()
    choose = choose or choose_kernel
    shapes = {n: t.shape for n, t in graph.tensors.items()}
    consts = {n: t.data for n, t in graph.tensors.items() if t.data is not None}
    outputs = set(graph.outputs)
    drafts: list[_Draft] = []
    for op in graph.ops:
        d = _Draft(op.kind, list(op.inputs), list(op.outputs), dict(op.attrs), op.name)
        if op.kind == "cast":  # integers and logicals are float32 holding exact integers, logicals 0/1:
            to, src = graph.tensors[op.outputs[0]].dtype, graph.tensors[op.inputs[0]].dtype
            if (to, src) in (("integer", "scalar"), ("logical", "scalar"), ("logical", "integer")):
                d.attrs["to"] = to  # truncation, or nonzero -> 1
            else:
                d.kind = "copy"  # the same values
        if not _fold_constant(d, consts, shapes):
            drafts.append(d)
    if fuse:
        drafts = _fold_batch_norm(drafts, consts, shapes, outputs)
        drafts = _fuse_activations(drafts, consts, outputs)
        drafts = _fuse_residual(drafts, consts, shapes, outputs, graph.inputs,
                                lambda st: _kernel_or_none(choose, st, shapes, facts))
        drafts = _fuse_activations(drafts, consts, outputs)  # act(conv + residual): ResNet's order
        drafts = _fuse_max_pool(drafts, shapes, outputs, lambda st: _supported(choose, st, shapes, facts))
    _mark_aliases(drafts)
    steps: list[Step] = []
    device_consts: dict[str, np.ndarray] = {}
    scratch_needs: list[tuple[int, ...]] = []
    for d in drafts:
        missing = [n for n in d.inputs if n not in shapes]
        if missing:
            raise ModelError(f"{graph.source}: op {d.name} reads unknown tensor(s) {missing}")
        attrs = {**d.attrs, "precision": precision} if precision != "fp32" and d.kind == "conv" else d.attrs
        step = Step(d.kind, d.variant, tuple(d.inputs), tuple(d.outputs), MappingProxyType(dict(attrs)),
                    " + ".join([d.name, *d.fused]))
        if d.variant != "alias":
            cls = choose(step, shapes, facts)
            step = cls.device_rule(step, shapes, facts)
            if tuning is not None:
                step = tuning.apply(cls, step, shapes)
            kernel = cls(step, shapes)
            scratch_needs.append(kernel.scratch_sizes())
            renamed = kernel.relayout({n: consts[n] for n in step.inputs if n in consts})
            new_inputs = list(step.inputs)
            for i, n in enumerate(step.inputs):
                if n in renamed:
                    key, arr = renamed[n]
                    # float16 only where the kernel asked for it (precision "fp16"); else float32
                    device_consts[key] = np.ascontiguousarray(arr, dtype=np.float16 if arr.dtype == np.float16
                                                              else np.float32)
                    shapes[key] = shapes[n]  # the logical shape: kernels derive geometry from it
                    new_inputs[i] = key
                elif n in consts:
                    device_consts[n] = np.ascontiguousarray(consts[n], dtype=np.float32)
            step = Step(step.kind, cls.variant, tuple(new_inputs), step.outputs, step.attrs, step.name)
        steps.append(step)
    for name in graph.outputs:
        if name in consts or name in graph.inputs:
            raise ModelError(f"{graph.source}: output '{name}' is a constant or an input; nothing to compute")
    if fuse:
        # sub-buffer origins: multiples of the device's base address alignment (facts.base_align_bytes); YOLO's
        # maps meet 512 bytes at 13x13 with 128-channel slices, 26x26 with 64, 52x52 with 16, and 128 bytes
        # (PoCL) with any channel count at 13x13 and 26x26
        steps = _place_splits(steps, shapes, set(graph.outputs), facts.base_align_bytes)
        steps = _place_concats(steps, shapes, set(graph.inputs) | set(graph.outputs), facts.base_align_bytes)
    buffers = plan_buffers(steps, shapes, graph.inputs, graph.outputs)
    return Plan(inputs=graph.inputs, outputs=graph.outputs, shapes=MappingProxyType(shapes),
                steps=tuple(steps), constants=MappingProxyType(device_consts), buffers=buffers,
                scratch_bytes=sum(scratch_slots(scratch_needs)))


def _single_consumer(drafts: list[_Draft], name: str, outputs: set[str]) -> _Draft | None:
    users = [d for d in drafts if name in d.inputs]
    return users[0] if len(users) == 1 and name not in outputs else None


def _fold_batch_norm(drafts: list[_Draft], consts: dict[str, np.ndarray], shapes: dict[str, tuple[int, ...]],
                     outputs: set[str]) -> list[_Draft]:
    """conv -> batch_normalization becomes one conv with scaled weights and shifted bias (float64 math)."""
    out: list[_Draft] = []
    removed: set[int] = set()
    for d in drafts:
        if id(d) in removed:
            continue
        if d.kind == "conv" and all(n in consts for n in d.inputs[1:]):
            bn = _single_consumer(drafts, d.outputs[0], outputs)
            if bn is not None and bn.kind == "batch_normalization" and all(n in consts for n in bn.inputs[1:]):
                mean, var, offset, scale = (consts[n].astype(np.float64).reshape(-1) for n in bn.inputs[1:5])
                oc = shapes[d.inputs[1]][0]
                k = np.broadcast_to(scale / np.sqrt(var + float(bn.attrs["epsilon"])), (oc,))
                w = consts[d.inputs[1]].astype(np.float64) * k.reshape(-1, *([1] * (len(shapes[d.inputs[1]]) - 1)))
                b = consts[d.inputs[2]].astype(np.float64).reshape(-1) if len(d.inputs) > 2 else np.zeros(1)
                b = np.broadcast_to((np.broadcast_to(b, (oc,)) - mean) * k + offset, (oc,))
                wn, bn_name = f"{bn.outputs[0]}:filter", f"{bn.outputs[0]}:bias"
                consts[wn], consts[bn_name] = w.astype(np.float32), b.reshape(1, oc).astype(np.float32)
                shapes[wn], shapes[bn_name] = consts[wn].shape, (1, oc)
                d = _Draft("conv", [d.inputs[0], wn, bn_name], [bn.outputs[0]], d.attrs, d.name, fused=[bn.name])
                removed.add(id(bn))
        out.append(d)
    return out


def _fuse_activations(drafts: list[_Draft], consts: dict[str, np.ndarray], outputs: set[str]) -> list[_Draft]:
    out: list[_Draft] = []
    removed: set[int] = set()
    for d in drafts:
        if id(d) in removed:
            continue
        if d.kind in ("conv", "linear") and "activation" not in d.attrs:
            act = _single_consumer(drafts, d.outputs[0], outputs)
            params = _activation_params(act, consts) if act is not None else None
            silu = _silu_after(drafts, d.outputs[0], outputs) if params is None else None
            if act is not None and params is not None:
                d = _Draft(d.kind, d.inputs, [act.outputs[0]], {**d.attrs, "activation": params}, d.name,
                           fused=[*d.fused, act.name])
                removed.add(id(act))
            elif silu is not None:
                sig, mul = silu
                d = _Draft(d.kind, d.inputs, [mul.outputs[0]], {**d.attrs, "activation": ("silu", 0.0, 0.0)},
                           d.name, fused=[*d.fused, sig.name, mul.name])
                removed.update((id(sig), id(mul)))
        out.append(d)
    return out


def _silu_after(drafts: list[_Draft], name: str, outputs: set[str]) -> tuple[_Draft, _Draft] | None:
    """(sigmoid, mul) when `name` feeds exactly `s = sigmoid(name)` and `mul(name, s)` (SiLU as exported by
    PyTorch/ONNX: two passes over the tensor after every conv of YOLOv5/v8/11), else None."""
    if name in outputs:
        return None
    users = [d for d in drafts if name in d.inputs]
    sig = next((d for d in users if d.kind == "sigmoid" and d.inputs == [name]), None)
    if len(users) != 2 or sig is None or sig.outputs[0] in outputs:
        return None
    mul = next(d for d in users if d is not sig)
    if (mul.kind != "mul" or sorted(mul.inputs) != sorted([name, sig.outputs[0]])
            or _single_consumer(drafts, sig.outputs[0], outputs) is not mul):
        return None
    return sig, mul


def _is_pool_2x2(d: _Draft, rank: int) -> bool:
    a = d.attrs
    pads = a.get("padding") or ()
    return (d.kind == "max_pool" and rank == 4 and tuple(a["size"]) == (1, 1, 2, 2)
            and tuple(a.get("stride") or ()) == (1, 1, 2, 2) and all(tuple(p) == (0, 0) for p in pads)
            and all(v == 1 for v in (a.get("dilation") or (1,))) and len(pads) in (0, 4))


def _supported(choose: Callable[..., Any], step: Step, shapes: dict[str, tuple[int, ...]],
               facts: DeviceFacts) -> bool:
    try:
        choose(step, shapes, facts)
        return True
    except ModelError:
        return False


def _kernel_or_none(choose: Callable[..., Any], step: Step, shapes: dict[str, tuple[int, ...]],
                    facts: DeviceFacts) -> Any:
    try:
        return choose(step, shapes, facts)
    except ModelError:
        return None


def _fuse_residual(drafts: list[_Draft], consts: dict[str, np.ndarray], shapes: dict[str, tuple[int, ...]],
                   outputs: set[str], graph_inputs: tuple[str, ...],
                   kernel_of: Callable[[Step], Any]) -> list[_Draft]:
    """conv (+ activation) -> add(other) becomes one conv step that adds `other` in its epilogue (a residual
    connection: the sum is never written and read back separately). attrs["residual"] says where: "pre" adds
    before the activation (ResNet: a relu after the add is fused next), "post" after it (Darknet's shortcut).
    Only when `other` is computed before the conv and the kernel chosen stays the same one."""
    produced_before: set[str] = set(graph_inputs)
    out: list[_Draft] = []
    removed: set[int] = set()
    for d in drafts:
        if id(d) in removed:
            continue
        add = _single_consumer(drafts, d.outputs[0], outputs) if d.kind == "conv" else None
        if (add is not None and add.kind == "add" and len(add.inputs) == 2 and len(d.inputs) == 3
                and not d.attrs.get("pool") and "residual" not in d.attrs):
            other = add.inputs[1] if add.inputs[0] == d.outputs[0] else add.inputs[0]
            if (other != d.outputs[0] and other not in consts and other in produced_before
                    and tuple(shapes[other]) == tuple(shapes[d.outputs[0]])
                    and tuple(shapes[add.outputs[0]]) == tuple(shapes[d.outputs[0]])):
                attrs = {**d.attrs, "residual": "post" if "activation" in d.attrs else "pre"}
                plain = Step("conv", "", tuple(d.inputs), tuple(d.outputs), MappingProxyType(d.attrs), d.name)
                trial = Step("conv", "", (*d.inputs, other), (add.outputs[0],), MappingProxyType(attrs), d.name)
                kernel = kernel_of(plain)
                if kernel is not None and kernel_of(trial) is kernel:
                    d = _Draft("conv", [*d.inputs, other], [add.outputs[0]], attrs, d.name, fused=[*d.fused, add.name])
                    removed.add(id(add))
        produced_before.update(d.outputs)
        out.append(d)
    return out


def _fuse_max_pool(drafts: list[_Draft], shapes: dict[str, tuple[int, ...]], outputs: set[str],
                   supported: Callable[[Step], bool]) -> list[_Draft]:
    """conv (+ activation) -> 2x2/2 max pool becomes one conv step writing the pooled map, when a conv kernel
    can do it on this device; the full-size conv output is then never written."""
    out: list[_Draft] = []
    removed: set[int] = set()
    for d in drafts:
        if id(d) in removed:
            continue
        if d.kind == "conv" and len(shapes[d.inputs[0]]) == 4 and "residual" not in d.attrs:
            pool = _single_consumer(drafts, d.outputs[0], outputs)
            act = d.attrs.get("activation")
            # max commutes with non-decreasing activations only
            monotonic = (act is None or act[0] in ("relu", "clamp", "sigmoid", "tanh")
                         or (act[0] in ("leaky_relu", "elu") and act[1] >= 0))  # silu dips below 0: not
            if pool is not None and monotonic and _is_pool_2x2(pool, len(shapes[d.outputs[0]])):
                attrs = {**d.attrs, "pool": 2, "conv_shape": shapes[d.outputs[0]]}
                trial = Step("conv", "", tuple(d.inputs), (pool.outputs[0],), MappingProxyType(attrs), d.name)
                if supported(trial):
                    d = _Draft("conv", d.inputs, [pool.outputs[0]], attrs, d.name, fused=[*d.fused, pool.name])
                    removed.add(id(pool))
        out.append(d)
    return out


def _contiguous_parts(y: tuple[int, ...], axis: int) -> bool:
    """Slices along `axis` are contiguous runs of the tensor when every dim before it is 1."""
    return all(d == 1 for d in y[: axis % len(y)])


def _bytes(shape: tuple[int, ...]) -> int:
    return 4 * int(np.prod(shape, dtype=np.int64))


def _place_splits(steps: list[Step], shapes: Mapping[str, tuple[int, ...]], outputs: set[str],
                  align: int) -> list[Step]:
    """Split as views: where the parts are contiguous runs of the input at `align`-byte aligned offsets, each
    output is a sub-buffer of the input's storage (the split becomes an alias: no copy, no launch). Graph
    outputs keep their own buffers."""
    out: list[Step] = []
    for s in steps:
        if s.kind == "split" and s.variant != "alias":
            x = shapes[s.inputs[0]]
            at, ok = 0, _contiguous_parts(x, int(s.attrs.get("axis", 0))) and not outputs & set(s.outputs)
            for t in s.outputs:
                ok = ok and at % align == 0
                at += _bytes(shapes[t])
            if ok and at == _bytes(x):
                s = Step(s.kind, "alias", s.inputs, s.outputs, MappingProxyType({**s.attrs, "placed": True}), s.name)
        out.append(s)
    return out


def _place_concats(steps: list[Step], shapes: Mapping[str, tuple[int, ...]], pinned: set[str],
                   align: int) -> list[Step]:
    """Concat as a layout decision: where every input of a concat is a contiguous slice of its output (all dims
    before the axis are 1: YOLO's channel concats at batch 1), each input's producer writes straight into its
    slice (the buffer plan gives it a sub-buffer there) and the concat becomes an alias: no copy, no launch.
    Only for inputs computed here by a real step (not graph inputs/outputs, constants or aliases), each read by
    no other concat, at offsets aligned for sub-buffers (`align` bytes); otherwise the concat stays a copy. A run
    of inputs that is every view of a placed split, in order (C2f: concat(split(t), m...)), places the split's
    input."""
    producer = {o: s for s in steps for o in s.outputs}
    in_concats: dict[str, int] = {}
    for s in steps:
        if s.kind == "concat":
            for t in s.inputs:
                in_concats[t] = in_concats.get(t, 0) + 1
    out: list[Step] = []
    taken: set[str] = set()  # a tensor lives in one place only
    for s in steps:
        homes = _placeable(s, shapes, pinned, producer, in_concats, align) if s.kind == "concat" else None
        if homes is not None and not taken & set(homes) and s.variant != "alias":
            taken.update(homes)
            s = Step(s.kind, "alias", s.inputs, s.outputs, MappingProxyType({**s.attrs, "placed": True}), s.name)
        out.append(s)
    return out


def _placeable(s: Step, shapes: Mapping[str, tuple[int, ...]], pinned: set[str], producer: Mapping[str, Step],
               in_concats: Mapping[str, int], align: int) -> list[str] | None:
    """The tensors the concat would place (its inputs, or a placed split's input for the run of its views), or
    None where it cannot."""
    if not _contiguous_parts(shapes[s.outputs[0]], int(s.attrs.get("axis", 0))) or s.outputs[0] in pinned:
        return None
    homes: list[str] = []
    at, i = 0, 0
    while i < len(s.inputs):
        t = s.inputs[i]
        p = producer.get(t)
        if p is not None and p.kind == "split" and p.variant == "alias":  # the run must be all of its views
            views = p.outputs
            if tuple(s.inputs[i: i + len(views)]) != views or any(in_concats.get(v) != 1 for v in views):
                return None
            t = p.inputs[0]
            p = producer.get(t)
            i += len(views)
            if in_concats.get(t):  # the split's input also in a concat of its own
                return None
        else:
            i += 1
            if in_concats.get(t) != 1:
                return None
        if p is None or p.variant == "alias" or t in pinned or at % align:
            return None
        homes.append(t)
        at += _bytes(shapes[t])
    return homes


def _activation_params(act: _Draft, consts: dict[str, np.ndarray]) -> tuple[str, float, float] | None:
    if act.kind not in FUSABLE_ACTIVATIONS:
        return None
    if act.kind == "clamp":
        lo, hi = _scalar_const(consts, act.inputs[1]), _scalar_const(consts, act.inputs[2])
        return None if lo is None or hi is None else ("clamp", lo, hi)
    return (act.kind, float(act.attrs.get("alpha", 0.0)), 0.0)


def _mark_aliases(drafts: list[_Draft]) -> None:
    """Reshape-like ops share their input's buffer (no launch). A group holding a graph input or output is
    pinned as a whole by the buffer plan, so the host still reads the right bytes."""
    for d in drafts:
        if d.kind in ALIAS_OPS:
            d.variant = "alias"
