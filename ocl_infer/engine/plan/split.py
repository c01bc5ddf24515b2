"""Split a graph into consecutive stages of about equal work, one per device, for layer pipelining."""

import itertools
from collections.abc import Sequence

import numpy as np

from ocl_infer.engine.graph.model import Graph, Op


def op_cost(graph: Graph, op: Op) -> float:
    """Rough work of one op: multiply-adds for conv/deconv/linear/matmul, output elements otherwise."""
    out = float(np.prod(graph.tensors[op.outputs[0]].shape, dtype=np.float64)) if op.outputs else 0.0
    if op.kind in ("conv", "deconv") and len(op.inputs) > 1:
        f = graph.tensors[op.inputs[1]].shape
        per_output = float(np.prod(f[1:], dtype=np.float64))
        if op.kind == "deconv":
            per_output = float(np.prod(f, dtype=np.float64)) / max(1, f[1])
        return out * per_output
    if op.kind in ("linear", "matmul"):
        a = graph.tensors[op.inputs[0]].shape
        return out * (a[-1] if a else 1)
    return out


_ACTIVATIONS = ("relu", "leaky_relu", "clamp", "sigmoid", "tanh", "elu", "max_pool", "batch_normalization")


def _keeps_fusion(ops: Sequence[Op], i: int) -> bool:
    """True when cutting after op i would separate a conv/linear from the op the planner fuses into it."""
    return (i + 1 < len(ops) and ops[i].kind in ("conv", "linear", *_ACTIVATIONS)
            and ops[i + 1].kind in _ACTIVATIONS and ops[i].outputs[0] in ops[i + 1].inputs)


def split_graph(graph: Graph, stages: int, costs: Sequence[float] | None = None) -> list[Graph]:
    """Cut `graph.ops` (already in execution order) into at most `stages` consecutive, non-empty pieces of
    about equal cost. Each piece is a Graph whose inputs are the activations it reads from earlier pieces (or
    the graph's inputs) and whose outputs are what later pieces or the caller need."""
    ops = list(graph.ops)
    stages = max(1, min(stages, len(ops)))
    costs = list(costs) if costs is not None else [op_cost(graph, op) for op in ops]
    total = sum(costs) or 1.0
    cuts, acc, want = [], 0.0, 1
    for i, c in enumerate(costs):
        acc += c
        left_ops, left_cuts = len(ops) - (i + 1), stages - 1 - len(cuts)
        if left_cuts <= 0:
            break
        if left_ops == left_cuts or (acc >= total * want / stages and not _keeps_fusion(ops, i)):
            cuts.append(i + 1)
            want += 1
    bounds = [0, *cuts, len(ops)]
    pieces = [ops[a:b] for a, b in itertools.pairwise(bounds) if b > a]
    const = {n for n, t in graph.tensors.items() if t.data is not None}
    result = []
    for s, piece in enumerate(pieces):
        mine = {o for op in piece for o in op.outputs}
        reads = [n for op in piece for n in op.inputs if n not in const and n not in mine]
        inputs = tuple(dict.fromkeys(reads))
        later = {n for p in pieces[s + 1:] for op in p for n in op.inputs}
        outputs = tuple(o for op in piece for o in op.outputs if o in later or o in graph.outputs)
        result.append(Graph(name=f"{graph.name}_stage{s}", inputs=inputs, outputs=outputs, tensors=graph.tensors,
                            ops=tuple(piece), source=f"{graph.source} (stage {s})"))
    return result
