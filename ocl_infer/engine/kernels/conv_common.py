"""What every convolution wrapper shares: the geometry and fused-epilogue reading of a conv step (`ConvBase`),
the activation and residual codes of activation.h.cl, and the helpers of the re-laid-out variants (fp16 weight
storage, the logical filter shape behind a re-laid-out constant). In one module of its own so that the conv
variants import it instead of each other (and the Gemm wrapper gets the activation codes without importing a
conv family)."""

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np

from ocl_infer.engine.kernels.base import Kernel, auto_padding
from ocl_infer.engine.plan.model import DeviceFacts, Step
from ocl_infer.errors import ModelError

ACTIVATIONS = {None: 0, "relu": 1, "leaky_relu": 2, "clamp": 3, "sigmoid": 4, "tanh": 5, "elu": 6, "silu": 7}
RESIDUALS = {None: 0, "pre": 1, "post": 2}  # as RES in activation.h.cl


# Blockings whose padded work is within this factor of the least padded one count as equal: the rule's order
# of preference (register reuse measured per kernel) decides between them.
PADDING_TIE = 1.02


def least_padded(options: tuple[tuple[int, ...], ...], extents: tuple[int, ...]) -> tuple[int, ...]:
    """The first of `options` (block sizes, one per extent, in order of preference) whose padded work (each
    extent rounded up to its block, multiplied) is within PADDING_TIE of the least. A block that pads a small
    dimension (80 channels in blocks of 64, 52 columns in blocks of 7) computes up to 1.6x the useful work: on
    the CPU family the tuner measured such padding as the main cost difference between blockings (YOLOv8n,
    2026-12-06: Winograd 7/3 on 64 channels 1.2x slower than 5/4, covec 7 columns on 52 1.07x)."""
    def padded(block: tuple[int, ...]) -> int:
        work = 1
        for b, e in zip(block, extents, strict=True):
            work *= -(-e // b) * b
        return work

    best = min(padded(o) for o in options)
    return next(o for o in options if padded(o) <= best * PADDING_TIE)


class ConvBase(Kernel):
    """A conv or deconv step read once for every variant: N, IC, H, W, OC, taps, groups, stride, dilation,
    padding (NNEF's automatic padding resolved), the fused activation and residual add, and the build defines
    conv.cl's kernels take. A variant subclasses it and adds its blocking, layout and launches."""

    cl_file = "conv.cl"
    headers = ("activation.h.cl",)
    transposed = False

    def __init__(self, step: Step, shapes: Mapping[str, tuple[int, ...]]) -> None:
        super().__init__(step, shapes)
        x, f, y = (tuple(shapes[n]) for n in (step.inputs[0], step.inputs[1], step.outputs[0]))
        a = step.attrs
        if a.get("pool"):  # a fused max pool: the geometry is the conv's, the step writes the pooled map
            y = tuple(a["conv_shape"])
        one_d = len(x) == 3  # 1-D conv runs as 2-D with height 1
        if one_d:
            x, f, y = ((*s[:2], 1, *s[2:]) for s in (x, f, y))
        if len(x) != 4:
            raise self.fail(f"only 1-D and 2-D convolutions run; input has rank {len(x)}")
        self.n, self.ic, self.ih, self.iw = x
        self.oc, self.oh, self.ow = y[1], y[2], y[3]
        self.kh, self.kw = f[2], f[3]
        g = int(a.get("groups", 1)) or self.ic  # groups = 0 means depthwise in NNEF
        self.g = g
        self.icg = self.ic // g
        self.ocg = self.oc // g
        def pair(v: Any, default: int) -> tuple[int, int]:
            v = tuple(v) if v else (default, default)
            return ((default, *v)) if one_d else v  # type: ignore[return-value]
        self.sh, self.sw = pair(a.get("stride"), 1)
        self.dh, self.dw = pair(a.get("dilation"), 1)
        pads = list(a.get("padding") or ())
        if pads:
            if one_d:
                pads = [(0, 0), *pads]
            self.pt, self.pl = pads[0][0], pads[1][0]
        elif self.transposed:
            self.pt = auto_padding(self.oh, self.ih, self.kh, self.sh, self.dh)[0]
            self.pl = auto_padding(self.ow, self.iw, self.kw, self.sw, self.dw)[0]
        else:
            self.pt = auto_padding(self.ih, self.oh, self.kh, self.sh, self.dh)[0]
            self.pl = auto_padding(self.iw, self.ow, self.kw, self.sw, self.dw)[0]
        act = a.get("activation")
        self.act = ACTIVATIONS[act[0] if act else None]
        self.res = RESIDUALS[a.get("residual")]  # a fused residual add: its tensor is the step's 4th input
        self.a0, self.a1 = (float(act[1]), float(act[2])) if act else (0.0, 0.0)

    @classmethod
    def supports(cls, step: Step, shapes: Mapping[str, tuple[int, ...]], facts: DeviceFacts) -> bool:
        return (step.kind in cls.ops and len(shapes[step.inputs[0]]) in (3, 4)
                and step.attrs.get("border", "constant") in ("constant", "ignore")
                and (cls.fuses_pool or not step.attrs.get("pool"))
                and (cls.fuses_residual or not step.attrs.get("residual")))

    fuses_pool = False  # wrappers that can apply a fused 2x2/2 max pool set this
    fuses_residual = False  # wrappers whose epilogue adds a residual tensor (RES) set this

    def residual_args(self, ins: list[Any]) -> tuple[Any, ...]:
        """The residual buffer as the kernel's last argument, when one is fused."""
        return (ins[3],) if self.res else ()

    def bias(self, consts: Mapping[str, np.ndarray]) -> dict[str, tuple[str, np.ndarray]]:
        if len(self.step.inputs) < 3:
            return {}
        name = self.step.inputs[2]
        if name not in consts:
            raise self.fail("bias must be a constant")
        b = np.broadcast_to(consts[name].astype(np.float32).reshape(-1), (self.oc,))
        return {name: (f"{name}#bias{self.oc}", np.ascontiguousarray(b))}

    def defines(self) -> dict[str, int]:
        return dict(N=self.n, IC=self.ic, OC=self.oc, G=self.g, ICG=self.icg, OCG=self.ocg, IH=self.ih, IW=self.iw,
                    OH=self.oh, OW=self.ow, KH=self.kh, KW=self.kw, SH=self.sh, SW=self.sw, DH=self.dh, DW=self.dw,
                    PT=self.pt, PL=self.pl, ACT=self.act, RES=self.res)

    def build_options(self) -> str:
        return " ".join(f"-D{k}={v}" for k, v in self.defines().items())


class PixelVectorConv(ConvBase):
    """The convs vectorised over output pixels (pointwise: 1x1; pixels: k x k, stride 1 or 2): a work-item
    keeps OB output channels x NPV vectors of 16 pixels; weights [NOB][IC][KH][KW][OB] (OC zero-padded to
    NOB * OB, a 1x1's [NOB][IC][OB] byte for byte), bias [NOB * OB]; the blocking from the variant's rule or a
    tuning-table entry. The variant gives its constant-name tag, its rule, its tuner blockings and launches."""

    headers = (*ConvBase.headers, "conv_pixel_vectors.h.cl")
    fuses_residual = True
    tag: ClassVar[str]
    blockings: ClassVar[tuple[tuple[int, int], ...]]  # what the tuner tries besides the rule's choice

    def __init__(self, step: Step, shapes: Mapping[str, tuple[int, ...]]) -> None:
        super().__init__(step, logical_shapes(step, shapes, self.tag))
        tuned = step.attrs.get("blocking")  # a tuning-table entry (engine/tuning.py) overrides the rule
        self.ob, self.npv = (int(tuned[0]), int(tuned[1])) if tuned else self.rule_blocking()
        self.nob = -(-self.oc // self.ob)
        self.half = is_half(step)

    def rule_blocking(self) -> tuple[int, int]:
        """(OB, NPV) without a tuning-table entry."""
        raise NotImplementedError

    @classmethod
    def filter_taps(cls, step: Step, shapes: Mapping[str, tuple[int, ...]]) -> tuple[int, ...]:
        """The filter's taps: a re-laid-out filter (runtime) carries them in its name, the logical one as dims."""
        name = step.inputs[1]
        if cls.tag in name:
            return tuple(int(v) for v in name.rsplit(":", 1)[1].split("x"))
        return tuple(shapes[name][2:])

    def defines(self) -> dict[str, int]:
        return {"OB": self.ob, "NPV": self.npv, "ACT": self.act}

    def build_options(self) -> str:
        fixed = self.defines()
        if self.half:
            fixed["HALF"] = 1
        if self.res:
            fixed["RES"] = self.res
        return " ".join(f"-D{k}={v}" for k, v in fixed.items()) + " -cl-fast-relaxed-math -cl-mad-enable"

    def relayout(self, consts: Mapping[str, np.ndarray]) -> dict[str, tuple[str, np.ndarray]]:
        fname, bname = self.step.inputs[1], self.step.inputs[2]
        if fname not in consts or bname not in consts:
            raise self.fail("filter and bias must be constants")
        cpad = self.nob * self.ob
        f = np.zeros((cpad, self.ic, self.kh, self.kw), np.float32)
        f[: self.oc] = consts[fname].reshape(self.oc, self.ic, self.kh, self.kw)
        wl = f.reshape(self.nob, self.ob, self.ic, self.kh, self.kw).transpose(0, 2, 3, 4, 1)  # [NOB][IC][KH][KW][OB]
        b = np.zeros(cpad, np.float32)
        b[: self.oc] = np.broadcast_to(consts[bname].astype(np.float32).reshape(-1), (self.oc,))
        return {fname: (f"{fname}{self.tag}{self.ob}:{self.kh}x{self.kw}",
                        storage_array(wl, self.half, f"op {self.step.name}: filter {fname}")),
                bname: (f"{bname}{self.tag}{cpad}", b)}

    @classmethod
    def candidates(cls, step: Step, shapes: Mapping[str, tuple[int, ...]]) -> list[dict[str, Any]]:
        """Step attrs the tuner tries, the rule's choice first; OC padded by at most 1/8."""
        rule = cls(Step(step.kind, step.variant, step.inputs, step.outputs,
                        {k: v for k, v in step.attrs.items() if k != "blocking"}, step.name), shapes)
        out = [(rule.ob, rule.npv)]
        for ob, npv in cls.blockings:
            if (ob, npv) not in out and ob <= rule.oc and -(-rule.oc // ob) * ob * 8 <= rule.oc * 9:
                out.append((ob, npv))
        return [{"blocking": list(b)} for b in out]


def all_ones(v: Any) -> bool:
    """A stride or dilation attribute that is 1 on every axis (absent counts as all ones)."""
    return all(int(s) == 1 for s in (v or ()))


HALF_MAX = 65504.0  # largest finite half


def storage_array(a: np.ndarray, half: bool, what: str) -> np.ndarray:
    """`a` as the kernel stores it: float32, or float16 for precision "fp16" (a value beyond half's range
    would turn into inf on the device, so it is refused, naming the tensor)."""
    if not half:
        return np.ascontiguousarray(a, dtype=np.float32)
    big = float(np.max(np.abs(a))) if a.size else 0.0
    if not big <= HALF_MAX:
        raise ModelError(f"{what}: |value| up to {big:.6g} does not fit fp16 storage (max {HALF_MAX:g}); "
                         f"use precision fp32")
    return np.ascontiguousarray(a, dtype=np.float16)


def is_half(step: Step) -> bool:
    """The planner marks conv steps of a precision="fp16" plan; kernels then store weights (and scratch) as half."""
    return step.attrs.get("precision") == "fp16"


def logical_shapes(step: Step, shapes: Mapping[str, tuple[int, ...]], tag: str) -> Mapping[str, tuple[int, ...]]:
    """`shapes` with the filter back in NNEF order [OC, IC, KH, KW] when it is already in our layout.

    The runtime re-creates wrappers from the plan, whose filter shape is the re-laid-out one; ConvBase reads
    KH, KW from the filter's dims 2 and 3, so it gets the logical shape instead (stored in the constant's name:
    `<filter><tag><co_v>:<KH>x<KW>`)."""
    fname = step.inputs[1]
    if tag not in fname:
        return shapes
    kh, kw = (int(v) for v in fname.rsplit(":", 1)[1].split("x"))
    x, y = shapes[step.inputs[0]], shapes[step.outputs[0]]
    return {**shapes, fname: (y[1], x[1], kh, kw)}
