"""Per-device kernel tuning: the blocking and work-group sizes of the conv kernels, measured once per device and
layer shape and cached on disk.

A `TuningTable` belongs to one device (`DeviceFacts.key`: platform | device | driver) and lives in
``<cache>/tuning/<device>-<hash>.json``. Its entries are keyed by kernel variant and the layer's signature (the
shapes that matter) and hold the step attrs the kernel wrapper reads before its rule (e.g. covec's `blocking`,
`local`). The planner calls `table.apply(cls, step, shapes)` per step; a step without an entry keeps the rule.

`tune_graph` fills a table: for every tunable step of the plan (a wrapper class with a `candidates`
classmethod, the rule's choice first) it builds one runtime holding every candidate as its own step on the same
random input and weights, checks each candidate's output against the rule's (a candidate that differs is
dropped, never chosen), then times them all in interleaved rounds with OpenCL profiling events and keeps each
one's minimum. Steps with the same variant and signature are tuned once."""

import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from ocl_infer.engine.devices.discovery import DeviceInfo
from ocl_infer.engine.devices.facts import facts_of
from ocl_infer.engine.devices.selection import cl_device
from ocl_infer.engine.graph import Graph
from ocl_infer.engine.kernels.registry import kernel_for
from ocl_infer.engine.plan import Plan, Step, make_plan, plan_buffers
from ocl_infer.errors import OclInferError
from ocl_infer.paths import cache_dir

log = logging.getLogger(__name__)

FORMAT = "ocl_infer tuning table"
VERSION = 1
TUNED_ATTR = "tuned"  # set on steps whose kernel parameters came from a table (bench/gpu's reports count them)
CHECK_TOLERANCE = 1e-4  # a candidate's max error relative to the rule output's largest magnitude
# A candidate must beat the rule by this factor to replace it: smaller gaps are within the noise of a shared
# machine, and a non-rule choice may cost a program compile (and a JIT per local size) at a cold start.
MIN_GAIN = 1.03


# Tables measured on real devices and shipped with the package, so users of the same device start tuned. One
# is used when the user's cache has none for the device; it matches on platform and device name, whatever the
# driver version (`ocl-infer tune` then writes the user's own table, which wins from then on).
SHIPPED_DIR = Path(__file__).with_name("tuned")


def tuning_dir() -> Path:
    return cache_dir() / "tuning"


def without_driver(device_key: str) -> str:
    return device_key.rsplit(" | ", 1)[0]


def table_path(device_key: str, directory: Path | None = None) -> Path:
    """One file per device: a readable slug of the key plus a hash of the whole key (keys may be long)."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", device_key).strip("-")[:60] or "device"
    digest = hashlib.sha256(device_key.encode()).hexdigest()[:12]
    return (directory or tuning_dir()) / f"{slug}-{digest}.json"


def step_signature(kernel: Any) -> str:
    """What a tuned choice depends on: batch, channels, spatial sizes, taps, padding, fused pool, activation
    code, fused residual add and storage precision, read from a conv wrapper (kernels.conv_common.ConvBase)."""
    k = kernel
    precision = k.step.attrs.get("precision", "fp32")
    return (f"n{k.n} ic{k.ic} {k.ih}x{k.iw} oc{k.oc} {k.oh}x{k.ow} k{k.kh}x{k.kw} p{k.pt},{k.pl} "
            f"pool{getattr(k, 'pool', 0)} act{k.act} res{getattr(k, 'res', 0)} {precision}")


def is_tunable(cls: Any) -> bool:
    return callable(getattr(cls, "candidates", None))


def describe(params: Mapping[str, Any]) -> str:
    """Compact text of a candidate: 'blocking 7/2/1 local 1,1,1'."""
    return " ".join(f"{k} {('/' if k == 'blocking' else ',').join(str(v) for v in vals)}"
                    for k, vals in params.items())


@dataclass(frozen=True)
class TuneEntry:
    """The winner for one (variant, signature): its step attrs and device ms, and the rule's for comparison."""

    params: Mapping[str, Any]
    ms: float
    rule: Mapping[str, Any]
    rule_ms: float
    layer: str = ""  # the first layer it was measured on (for people reading the file)
    rounds: int = 0
    when: str = ""

    @classmethod
    def from_json(cls, d: Any) -> "TuneEntry":
        if not isinstance(d, dict) or not isinstance(d.get("params"), dict) or not isinstance(d.get("rule"), dict):
            raise ValueError("entry needs 'params' and 'rule' objects")
        for params in (d["params"], d["rule"]):
            for k, v in params.items():
                if not (isinstance(v, list) and v and all(isinstance(i, int) and i > 0 for i in v)):
                    raise ValueError(f"parameter {k!r} must be a list of positive integers, got {v!r}")
        return cls(params=d["params"], rule=d["rule"], ms=float(d["ms"]), rule_ms=float(d["rule_ms"]),
                   layer=str(d.get("layer", "")), rounds=int(d.get("rounds", 0)), when=str(d.get("when", "")))


class TuningTable:
    """The tuned kernel parameters of one device. Load with `TuningTable.load(facts.key)`; a missing, corrupt or
    foreign file gives an empty table (with a warning for the last two), never an error."""

    def __init__(self, device_key: str, path: Path | None = None,
                 entries: Mapping[str, TuneEntry] | None = None) -> None:
        self.device_key = device_key
        self.path = path or table_path(device_key)
        self.entries: dict[str, TuneEntry] = dict(entries or {})

    def __len__(self) -> int:
        return len(self.entries)

    @staticmethod
    def entry_key(variant: str, signature: str) -> str:
        return f"{variant} | {signature}"

    @classmethod
    def load(cls, device_key: str, directory: Path | None = None, shipped: Path | None = SHIPPED_DIR
             ) -> "TuningTable":
        """The device's table in `directory` (default: the cache), else a shipped table of the same device."""
        path = table_path(device_key, directory)
        entries = _read_entries(path, device_key)
        if not entries and not path.exists() and shipped is not None:
            entries = _shipped_entries(shipped, device_key)
        return cls(device_key, path, entries)

    def get(self, variant: str, signature: str) -> TuneEntry | None:
        return self.entries.get(self.entry_key(variant, signature))

    def put(self, variant: str, signature: str, entry: TuneEntry) -> None:
        self.entries[self.entry_key(variant, signature)] = entry

    def apply(self, cls: Any, step: Step, shapes: Mapping[str, tuple[int, ...]]) -> Step:
        """`step` with its tuned attrs when this table has an entry for `cls` on this step's shapes; an entry
        that is not one of the kernel's current candidates (older table, hand edit) is ignored with a warning."""
        if not self.entries or not is_tunable(cls):
            return step
        signature = step_signature(cls(step, shapes))
        entry = self.get(cls.variant, signature)
        if entry is None:
            return step
        params = {k: list(v) for k, v in entry.params.items()}
        if params not in cls.candidates(step, shapes):
            log.warning("tuning table %s: entry for %s [%s] %s is not a candidate of this kernel; using its rule",
                        self.path, step.name, cls.variant, describe(params))
            return step
        attrs = {**step.attrs, **params, TUNED_ATTR: True}
        return Step(step.kind, step.variant, step.inputs, step.outputs, MappingProxyType(attrs), step.name)

    def save(self) -> Path:
        """Write atomically (temporary file in the same folder, then rename): a reader sees the old table or the
        new one, never half a file. Entries another process saved meanwhile are kept unless we have the key."""
        on_disk = _read_entries(self.path, self.device_key, quiet=True)
        self.entries = {**on_disk, **self.entries}
        doc = {"format": FORMAT, "version": VERSION, "device": self.device_key,
               "entries": {k: asdict(e) for k, e in sorted(self.entries.items())}}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".tmp-", suffix=".json")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(doc, f, indent=1, default=list)
                f.flush()
                os.fsync(f.fileno())
            Path(tmp).replace(self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return self.path


def _shipped_entries(directory: Path, device_key: str) -> dict[str, TuneEntry]:
    """The entries of a shipped table written for this platform and device name (any driver version)."""
    for path in sorted(directory.glob("*.json")):
        try:
            device = json.loads(path.read_text()).get("device", "")
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(device, str) and without_driver(device) == without_driver(device_key):
            entries = _read_entries(path, device, quiet=True)
            if entries:
                log.info("tuning: using the shipped table %s for %s", path.name, device_key)
                return entries
    return {}


def _read_entries(path: Path, device_key: str, quiet: bool = False) -> dict[str, TuneEntry]:
    """The entries of the table file at `path`, or {} (with a warning unless `quiet`) when it is unreadable,
    not a tuning table of this format version, or written for another device."""
    warn = log.debug if quiet else log.warning
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as err:
        warn("tuning table %s is unreadable (%s); ignored, the kernels' rules apply", path, err)
        return {}
    if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
        warn("tuning table %s is not a version-%d ocl_infer tuning table; ignored", path, VERSION)
        return {}
    if doc.get("device") != device_key:
        warn("tuning table %s was written for device %r, not %r; ignored", path, doc.get("device"), device_key)
        return {}
    entries: dict[str, TuneEntry] = {}
    raw = doc.get("entries")
    for key, value in (raw.items() if isinstance(raw, dict) else ()):
        try:
            entries[str(key)] = TuneEntry.from_json(value)
        except (KeyError, TypeError, ValueError) as err:
            warn("tuning table %s: entry %r is malformed (%s); ignored", path, key, err)
    return entries


# ---------------------------------------------------------------------------------------------------- tuner


@dataclass(frozen=True)
class TuneResult:
    """One tuned (variant, signature), as measured now or as read from the table (`cached`)."""

    layer: str
    variant: str
    signature: str
    rule: Mapping[str, Any]
    rule_ms: float
    best: Mapping[str, Any]
    best_ms: float
    tried: int = 0
    dropped: int = 0
    cached: bool = False
    layers: int = 1  # steps of the network with this signature

    @property
    def speedup(self) -> float:
        return self.rule_ms / self.best_ms if self.best_ms > 0 else float("nan")


def tunable_steps(plan: Plan) -> list[tuple[Step, Any, str]]:
    """(step, wrapper class, signature) of every step of `plan` whose kernel has candidates."""
    out = []
    for step in plan.steps:
        if step.variant == "alias":
            continue
        cls = kernel_for(step)
        if is_tunable(cls):
            out.append((step, cls, step_signature(cls(step, plan.shapes))))
    return out


def tune_graph(graph: Graph, info: DeviceInfo, table: TuningTable, rounds: int = 3, reps: int = 2, fuse: bool = True,
               precision: str = "fp32", force: bool = False,
               progress: Callable[[str], None] | None = None, kernels: str = "auto") -> list[TuneResult]:
    """Tune every tunable step of `graph`'s plan on device `info` that `table` lacks (all of them with `force`),
    store the winners in `table` (not saved: call `table.save()`), and return one result per distinct (variant,
    signature) in plan order, cached ones included."""
    if rounds < 1 or reps < 1:
        raise OclInferError(f"tuning needs rounds >= 1 and reps >= 1, got {rounds}, {reps}")
    plan = make_plan(graph, facts_of(info, kernels), fuse=fuse, precision=precision)  # the rule's plan
    device = cl_device(info)
    groups: dict[tuple[str, str], list[Step]] = {}
    classes: dict[tuple[str, str], Any] = {}
    for step, cls, sig in tunable_steps(plan):
        groups.setdefault((cls.variant, sig), []).append(step)
        classes[(cls.variant, sig)] = cls
    results = []
    for (variant, sig), steps in groups.items():
        entry = table.get(variant, sig)
        if entry is not None and not force:
            results.append(TuneResult(steps[0].name, variant, sig, entry.rule, entry.rule_ms, entry.params,
                                      entry.ms, cached=True, layers=len(steps)))
            continue
        t0 = time.perf_counter()
        res = tune_step(steps[0], classes[(variant, sig)], plan.shapes, device, info.label, rounds, reps)
        res = TuneResult(**{**asdict(res), "layers": len(steps)})
        table.put(variant, sig, TuneEntry(res.best, res.best_ms, res.rule, res.rule_ms, res.layer, rounds,
                                          time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())))
        results.append(res)
        if progress is not None:
            progress(f"tuned {res.layer} [{variant}]: {len(steps)} layer(s), {res.tried} candidates "
                     f"({res.dropped} dropped), {res.rule_ms:.3f} -> {res.best_ms:.3f} ms "
                     f"in {time.perf_counter() - t0:.1f} s")
    return results


def _without_tuning(step: Step) -> Step:
    attrs = {k: v for k, v in step.attrs.items() if k != TUNED_ATTR}
    return Step(step.kind, step.variant, step.inputs, step.outputs, MappingProxyType(attrs), step.name)


def candidate_plan(step: Step, cls: Any, shapes: Mapping[str, tuple[int, ...]],
                   candidates: list[dict[str, Any]], rng: np.random.Generator) -> Plan:
    """One plan running every candidate of `step` as its own step "candidate <i>": inputs "x" (and "r3" for a
    fused residual), outputs "y0".. (y0 is the rule's), after an untimed "warm-up" step (output "y_warm");
    random weights re-laid out by each candidate's wrapper (shared where the layout is the same).

    The step is re-created with plain tensor names so each wrapper sees the logical shapes."""
    x_shape, y_shape = tuple(shapes[step.inputs[0]]), tuple(shapes[step.outputs[0]])
    probe = cls(_without_tuning(step), shapes)
    w_shape = (probe.oc, probe.ic, probe.kh, probe.kw)
    consts = {"w": (rng.standard_normal(w_shape) / np.sqrt(probe.ic * probe.kh * probe.kw)).astype(np.float32),
              "b": rng.standard_normal((1, probe.oc)).astype(np.float32)}
    plan_shapes: dict[str, tuple[int, ...]] = {"x": x_shape, "w": w_shape, "b": (1, probe.oc)}
    # tensors after input, filter and bias (a fused residual add's) are plan inputs too, fed random data
    extra = {f"r{i}": tuple(shapes[n]) for i, n in enumerate(step.inputs[3:], start=3)}
    plan_shapes.update(extra)
    inputs = (*("x", "w", "b")[: len(step.inputs)], *extra)
    device_consts: dict[str, np.ndarray] = {}
    steps = []
    for i, params in enumerate(candidates):
        out = f"y{i}"
        plan_shapes[out] = y_shape
        attrs = {**_without_tuning(step).attrs, **params}
        cand = Step(step.kind, cls.variant, inputs, (out,), MappingProxyType(attrs), f"candidate {i}")
        renamed = cls(cand, plan_shapes).relayout({n: consts[n] for n in inputs[1:3]})
        new_inputs = list(inputs)
        for j, n in enumerate(inputs[1:3], start=1):
            key, arr = renamed.get(n, (n, consts[n]))
            device_consts[key] = np.ascontiguousarray(arr, dtype=np.float16 if arr.dtype == np.float16
                                                      else np.float32)
            plan_shapes[key] = plan_shapes[n]
            new_inputs[j] = key
        steps.append(Step(cand.kind, cand.variant, tuple(new_inputs), cand.outputs, cand.attrs, cand.name))
    # A copy of the rule's step runs first and is not timed: the first launch after the host's pause between
    # passes pays PoCL's worker wake-up, which would otherwise count against the rule every time.
    plan_shapes["y_warm"] = y_shape
    steps.insert(0, Step(steps[0].kind, steps[0].variant, steps[0].inputs, ("y_warm",), steps[0].attrs, "warm-up"))
    outputs = ("y_warm", *(f"y{i}" for i in range(len(candidates))))
    buffers = plan_buffers(steps, plan_shapes, ("x", *extra), outputs)
    return Plan(inputs=("x", *extra), outputs=outputs, shapes=MappingProxyType(plan_shapes), steps=tuple(steps),
                constants=MappingProxyType(device_consts), buffers=buffers)


def random_feeds(plan: Plan, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {n: rng.standard_normal(plan.shapes[n]).astype(np.float32) for n in plan.inputs}


def _rel_error(got: np.ndarray, want: np.ndarray) -> float:
    if not np.all(np.isfinite(got)):
        return float("inf")
    scale = max(float(np.max(np.abs(want))), 1e-6)
    return float(np.max(np.abs(got.astype(np.float64) - want))) / scale


def _runtime(plan: Plan, device: Any, label: str, what: str) -> Any:
    from ocl_infer.engine.runtime import DeviceRuntime  # imports pyopencl: not at `import ocl_infer.engine`

    try:
        return DeviceRuntime(plan, device, label, poison=True, disk_cache=False)
    except OclInferError as err:
        raise OclInferError(f"tuning {what} on {label}: {err}") from err


def tune_step(step: Step, cls: Any, shapes: Mapping[str, tuple[int, ...]], device: Any, label: str,
              rounds: int = 3, reps: int = 2, seed: int = 0) -> TuneResult:
    """Measure every candidate of one step on `device` (a pyopencl device) and return the fastest correct one.

    Screening: all candidates run from one runtime (one context, shared programs), first once with NaN-filled
    outputs to compare each with the rule's (candidate 0), then `rounds` x `reps` profiled passes over all of
    them in turn; each candidate's time is its minimum over the passes (the sum of its launches' event times).
    Confirmation: the fastest, if not the rule, runs against the rule in adjacent pairs (rule-candidate,
    candidate-rule, ...), which share whatever else the machine is doing; it wins only if both the median of
    its paired time ratios and its minimum time beat the rule's by MIN_GAIN. Otherwise the rule's choice is
    kept (and stored as tuned)."""
    what = f"{step.name} [{cls.variant}]"
    candidates = cls.candidates(_without_tuning(step), shapes)
    rng = np.random.default_rng(seed)
    plan = candidate_plan(step, cls, shapes, candidates, rng)
    feeds = random_feeds(plan, rng)
    rt = _runtime(plan, device, label, what)
    try:
        outs = rt.run(feeds)  # also PoCL's first-launch JIT of every candidate
        want = outs["y0"].astype(np.float64)
        if not np.all(np.isfinite(want)):
            raise OclInferError(f"tuning {what} on {label}: the rule's output is not finite")
        ok = [i for i in range(len(candidates)) if _rel_error(outs[f"y{i}"], want) <= CHECK_TOLERANCE]
        for i in sorted(set(range(len(candidates))) - set(ok)):
            log.info("tuning %s: candidate %s differs from the rule's output; dropped", what, describe(candidates[i]))
        best = dict.fromkeys(ok, float("inf"))
        for _ in range(rounds * reps):
            times = dict(rt.profile(feeds))  # keyed "<step name> [<variant>]"
            for i in ok:
                best[i] = min(best[i], times[f"candidate {i} [{cls.variant}]"])
    finally:
        rt.close()
    win = min(ok, key=best.__getitem__)
    rule_ms, win_ms = best[0], best[win]
    if win != 0 and best[win] * MIN_GAIN <= best[0]:
        ratio, rule_ms, win_ms = confirm(step, cls, shapes, device, label, candidates[0], candidates[win],
                                         rounds * reps, seed)
        if ratio * MIN_GAIN > 1.0 or win_ms * MIN_GAIN > rule_ms:
            log.info("tuning %s: %s not confirmed in pairs with the rule (median time ratio %.3f, min %.3f vs "
                     "%.3f ms); rule kept", what, describe(candidates[win]), ratio, win_ms, rule_ms)
            win = 0
    else:
        win = 0  # within the noise margin: keep the rule's choice
    return TuneResult(step.name, cls.variant, step_signature(cls(step, shapes)), candidates[0], rule_ms,
                      candidates[win], rule_ms if win == 0 else win_ms, tried=len(candidates),
                      dropped=len(candidates) - len(ok))


PAIRS = 4  # (rule, candidate) pairs per confirmation pass, in alternating order


def confirm(step: Step, cls: Any, shapes: Mapping[str, tuple[int, ...]], device: Any, label: str,
            rule: dict[str, Any], cand: dict[str, Any], passes: int, seed: int = 0) -> tuple[float, float, float]:
    """(median of candidate/rule time ratios over adjacent launch pairs, rule's min ms, candidate's min ms)."""
    order = [rule, cand, cand, rule] * (PAIRS // 2)
    rng = np.random.default_rng(seed)
    plan = candidate_plan(step, cls, shapes, order, rng)
    feeds = random_feeds(plan, rng)
    rt = _runtime(plan, device, label, f"{step.name} [{cls.variant}]")
    ratios: list[float] = []
    mins = [float("inf"), float("inf")]
    try:
        rt.run(feeds)
        for _ in range(passes):
            t = dict(rt.profile(feeds))
            ms = [t[f"candidate {i} [{cls.variant}]"] for i in range(len(order))]
            for k in range(0, len(order), 2):
                r, c = (ms[k], ms[k + 1]) if order[k] is rule else (ms[k + 1], ms[k])
                ratios.append(c / r)
                mins = [min(mins[0], r), min(mins[1], c)]
    finally:
        rt.close()
    return float(np.median(ratios)), mins[0], mins[1]


def device_table(info: DeviceInfo, graph: Graph, tune: bool, fuse: bool = True, precision: str = "fp32",
                 kernels: str = "auto") -> TuningTable:
    """The tuning table of device `info`; with `tune`, the steps of `graph` it lacks are tuned first and the
    table saved (slow: seconds per distinct layer shape)."""
    table = TuningTable.load(facts_of(info).key)
    if tune:
        before = len(table)
        tune_graph(graph, info, table, fuse=fuse, precision=precision,
                   progress=lambda line: log.info("%s: %s", info.label, line), kernels=kernels)
        if len(table) != before:
            table.save()
    return table
