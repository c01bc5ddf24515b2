"""Convolution family: register-blocked direct conv (any stride, dilation, padding, groups incl. depthwise;
1x1 runs the same kernel as a GEMM-shaped loop) and transposed conv. Fused bias + activation."""

from collections.abc import Mapping
from typing import Any

import numpy as np

from ocl_infer.engine.kernels.base import Kernel, Launch, new_kernel
from ocl_infer.engine.kernels.pool import auto_padding
from ocl_infer.engine.kernels.registry import register
from ocl_infer.engine.plan.model import DeviceFacts, Step

XB = 8
ACTIVATIONS = {None: 0, "relu": 1, "leaky_relu": 2, "clamp": 3, "sigmoid": 4, "tanh": 5, "elu": 6}
RESIDUALS = {None: 0, "pre": 1, "post": 2}  # as RES in activation.h.cl


class _ConvBase(Kernel):
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


@register
class ConvBlocked(_ConvBase):
    ops = ("conv",)
    variant = "blocked"
    fuses_residual = True

    def __init__(self, step: Step, shapes: Mapping[str, tuple[int, ...]]) -> None:
        super().__init__(step, shapes)
        self.ocb = 8 if self.ocg >= 8 else 4 if self.ocg >= 4 else 2 if self.ocg >= 2 else 1
        self.nocb = -(-self.ocg // self.ocb)
        self.yb = 1  # rows per work-item; 2 and 4 measured no faster on PoCL here

    def defines(self) -> dict[str, int]:
        return {**super().defines(), "OCB": self.ocb, "NOCB": self.nocb, "YB": self.yb}

    def relayout(self, consts: Mapping[str, np.ndarray]) -> dict[str, tuple[str, np.ndarray]]:
        fname = self.step.inputs[1]
        if fname not in consts:
            raise self.fail("filter must be a constant")
        f = consts[fname].reshape(self.g, self.ocg, self.icg, self.kh, self.kw)
        padded = np.zeros((self.g, self.nocb * self.ocb, self.icg, self.kh, self.kw), np.float32)
        padded[:, : self.ocg] = f
        w = padded.reshape(self.g, self.nocb, self.ocb, self.icg, self.kh, self.kw).transpose(0, 1, 3, 4, 5, 2)
        return {fname: (f"{fname}#blocked{self.ocb}", np.ascontiguousarray(w)), **self.bias(consts)}

    def launches(self, program: Any, ins: list[Any], outs: list[Any]) -> list[Launch]:
        k = new_kernel(program, "conv2d_blocked")
        bias = ins[2] if len(ins) > 2 else ins[1]  # no bias: NNEF writes 0.0, which arrives as a constant
        k.set_args(ins[0], ins[1], bias, outs[0], np.float32(self.a0), np.float32(self.a1), *self.residual_args(ins))
        gx, gz = -(-self.ow // XB), self.n * self.g * self.nocb
        lx, lz = self.local_size(gx, gz)
        # explicit small work-groups: PoCL's automatic choice can be huge and its per-work-group
        # context of float8 accumulators then overflows the worker stack
        gy = -(-self.oh // self.yb)
        return [Launch(k, (-(-gx // lx) * lx, gy, -(-gz // lz) * lz), (lx, 1, lz))]

    @staticmethod
    def local_size(gx: int, gz: int) -> tuple[int, int]:
        return min(gx, 4), min(gz, 2)


@register
class Deconv(_ConvBase):
    ops = ("deconv",)
    variant = "gather"
    transposed = True

    def __init__(self, step: Step, shapes: Mapping[str, tuple[int, ...]]) -> None:
        super().__init__(step, shapes)
        f = shapes[step.inputs[1]]  # deconv filter is [IC, OC/groups, KH, KW]
        self.ocg = f[1]
        self.icg = self.ic // self.g

    def defines(self) -> dict[str, int]:
        return {**super().defines(), "OCB": 1, "NOCB": 1, "YB": 1}

    def relayout(self, consts: Mapping[str, np.ndarray]) -> dict[str, tuple[str, np.ndarray]]:
        return self.bias(consts)

    def launches(self, program: Any, ins: list[Any], outs: list[Any]) -> list[Launch]:
        k = new_kernel(program, "deconv2d")
        k.set_args(ins[0], ins[1], ins[2], outs[0], np.float32(self.a0), np.float32(self.a1))
        return [Launch(k, (self.ow, self.oh, self.n * self.oc))]
