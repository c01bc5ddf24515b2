"""Buffer plan by liveness: tensors whose lifetimes do not overlap share a buffer slot."""

from collections.abc import Sequence

from ocl_infer.engine.plan.model import BufferPlan, Step


def plan_buffers(steps: Sequence[Step], shapes: dict[str, tuple[int, ...]], inputs: Sequence[str],
                 outputs: Sequence[str]) -> BufferPlan:
    """Assign every activation to a storage (aliases share one) and every unpinned storage to a slot.

    Graph inputs and outputs are pinned: the host writes/reads them, so they are never reused. A step's
    outputs never share a slot with its own inputs (its inputs are released only after it). A concat the
    planner placed (variant "alias") launches nothing: each of its inputs is written straight into its slice
    of the concat's storage (`offset_of`), so that storage lives from the first input's producer on."""

    def size(t: str) -> int:
        n = 4
        for d in shapes[t]:
            n *= d
        return n

    # input of a placed concat -> (its output, byte offset); a placed split's views sit in its input's storage,
    # so a run of them in a concat places the split's input instead (the planner checked they are all of it)
    view_of: dict[str, tuple[str, int]] = {}
    for step in steps:
        if step.variant == "alias" and step.kind == "split":
            at = 0
            for t in step.outputs:
                view_of[t] = (step.inputs[0], at)
                at += size(t)
    placed: dict[str, tuple[str, int]] = {}
    for step in steps:
        if step.variant == "alias" and step.kind == "concat":
            at = 0
            for t in step.inputs:
                src, inner = view_of.get(t, (t, 0))
                placed[src] = (step.outputs[0], at - inner)
                at += size(t)

    def home(t: str) -> tuple[str, int]:  # through nested placements to the outermost storage
        off = 0
        while t in placed:
            t, d = placed[t]
            off += d
        return t, off

    storage_of: dict[str, str] = {n: n for n in inputs}
    offset_of: dict[str, int] = {}
    for step in steps:
        if step.variant == "alias" and step.kind != "concat":
            src = step.inputs[0]
            for o in step.outputs:  # reshape-like: one output at offset 0; a placed split: its views
                inner = view_of[o][1] if step.kind == "split" else 0
                storage_of[o] = storage_of.get(src, src)
                if offset_of.get(src, 0) + inner:
                    offset_of[o] = offset_of.get(src, 0) + inner
        else:
            for o in step.outputs:
                storage_of[o], off = home(o)
                if off:
                    offset_of[o] = off
    pinned = set(inputs) | {storage_of[o] for o in outputs if o in storage_of}
    nbytes: dict[str, int] = {}
    for t, root in storage_of.items():
        nbytes[root] = max(nbytes.get(root, 0), offset_of.get(t, 0) + size(t))
    last_use: dict[str, int] = {}
    for i, step in enumerate(steps):
        for t in (*step.inputs, *step.outputs):
            if t in storage_of:
                last_use[storage_of[t]] = i
    slot_bytes: list[int] = []
    slot_of: dict[str, int] = {}
    free: list[int] = []
    for i, step in enumerate(steps):
        for o in step.outputs:
            root = storage_of[o]
            if root in pinned or root in slot_of or step.variant == "alias":
                continue
            need = nbytes[root]
            fits = [s for s in free if slot_bytes[s] >= need]
            if fits:
                slot = min(fits, key=lambda s: slot_bytes[s])
            elif free:  # grow the biggest free slot rather than open a new one
                slot = max(free, key=lambda s: slot_bytes[s])
                slot_bytes[slot] = need
            else:
                slot = len(slot_bytes)
                slot_bytes.append(need)
            if slot in free:
                free.remove(slot)
            slot_of[root] = slot
        for root, slot in slot_of.items():
            if last_use.get(root, -1) == i and slot not in free:
                free.append(slot)
    return BufferPlan(storage_of=storage_of, slot_of=slot_of, slot_bytes=tuple(slot_bytes),
                      pinned_bytes={r: nbytes[r] for r in sorted(pinned)}, offset_of=offset_of)
