"""Load model cases one by one and report each as a JSON line: run as a subprocess by test_model_fuzz.py.

argv: <file with one case path per line> <results file>. Before each case it appends {"start": i}, so a crash
(segfault, abort, kill by the address-space limit) names its case. Each case runs the device-free half of
the engine: load_graph (parse, validate, read weights) then make_plan (fusion, kernel choice, buffer plan).
Python allocations are traced per case; the address space is capped so a huge allocation fails loudly.
"""

import json
import resource
import sys
import tracemalloc
from pathlib import Path

import numpy as np

ADDRESS_SPACE_BYTES = 6 * 2**30


def main(list_file: str, results_file: str) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE_BYTES, ADDRESS_SPACE_BYTES))
    from ocl_infer.engine.graph import load_graph
    from ocl_infer.engine.plan import DeviceFacts, make_plan
    from ocl_infer.errors import ModelError

    paths = Path(list_file).read_text().splitlines()
    with open(results_file, "a", buffering=1) as out:
        for i, path in enumerate(paths):
            out.write(json.dumps({"start": i}) + "\n")
            tracemalloc.start()
            result: dict = {"index": i}
            try:
                graph = load_graph(path)
                plan = make_plan(graph, DeviceFacts())
                result.update(outcome="ok", ops=len(graph.ops), steps=len(plan.steps),
                              inputs={n: list(graph.tensors[n].shape) for n in graph.inputs},
                              weights={n: float(np.sum(t.data, dtype=np.float64)) for n, t in graph.tensors.items()
                                       if t.data is not None and t.data.ndim > 0})
            except ModelError as err:
                result.update(outcome="ModelError", message=str(err)[:300])
            except BaseException as err:
                result.update(outcome=type(err).__name__, message=str(err)[:300])
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            result["peak_bytes"] = peak
            out.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
